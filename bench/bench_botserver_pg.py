"""The report types on botserver's real schema, cold (no rollups) and warm (rollups
current), next to the SQLite source on the same data, and the incremental refresh.

Builds the demo data (30 days, 20 bots, N messages), loads it into a new database
made from botserver's own migrations the way botserver writes its rows
(``botserver_fixture.load_botserver``), and writes the canonical SQLite file of
the same rows (``expected_canonical``). Then renders each report type to JSON over
the 30 days (America/New_York, all organisations) from the SQLite file, from
PostgreSQL without rollups and from PostgreSQL with rollups just rebuilt, each
run in a fresh process so its time and peak memory are its own; then writes
100k new messages into botserver's tables and times the refresh that takes them
into the rollups. The database is dropped at the end unless ``--keep``.

Targets on a 2-core machine at 10M messages: warm <= 1.5x the SQLite source and
<= 5 s per type; the incremental refresh after 100k new messages <= 10 s.

    python bench/bench_botserver_pg.py --admin postgresql://postgres@127.0.0.1/test [--messages 1000000]
"""
import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report_types import END, TYPES  # noqa: E402  (the same types and period)

NEW_MESSAGES = 100_000


def one(data_dir: Path, source: str, report_type: str) -> None:
    """Child process: render one type from ``source`` and print its time and peak memory."""
    from botreports import Reports
    from botreports.core.service import SYSTEM

    rk = Reports(data_dir=data_dir, data_source=source, load_entrypoints=False)
    # Opened before the clock starts, as a running service has it open (PostgreSQL: the driver
    # imported and the connection pool opened).
    getattr(rk.source, "pool", None)
    body = {"type": report_type, "format": "json", "start_date": "2025-01-02", "end_date": "2025-01-31",
            "timezone": "America/New_York"}
    started = time.perf_counter()
    out = rk.render(SYSTEM, body, data_dir / f"{report_type}-{source.split(':')[0]}.json")
    took = time.perf_counter() - started
    rk.close()
    print(json.dumps({"seconds": took, "peak_mb": peak_mb(), "bytes": out.stat().st_size}))


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: getrusage's maxrss would carry the parent's
    over the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(data_dir: Path, source: str, report_type: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", report_type, "--data-dir", str(data_dir),
                           "--source", source], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{report_type} from {source.split('?')[0]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def with_options(url: str, **options) -> str:
    return url + ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in options.items())


def new_messages(url: str, count: int) -> dt.datetime:
    """Write ``count`` messages as botserver's save_message does (the session's next message_index),
    a user's message and the bot's reply in turn over the last ten minutes, into the busiest
    sessions; returns the instant the last one was written at."""
    import psycopg

    with psycopg.connect(url) as conn:
        now = conn.execute("SELECT statement_timestamp()").fetchone()[0]
        sessions = conn.execute(
            "SELECT s.id, s.user_id, (SELECT count(*) FROM message_history m WHERE m.session_id = s.id)"
            " FROM user_sessions s WHERE s.user_id <> s.bot_id ORDER BY s.id LIMIT %s", [count // 20]).fetchall()
        index = {session: n for session, _, n in sessions}
        with conn.cursor().copy("COPY message_history (id, session_id, user_id, role, content_encrypted,"
                                " message_type, message_index, created_at) FROM STDIN") as copy:
            for k in range(count):
                session, user, _ = sessions[(k // 2) % len(sessions)]
                at = now - dt.timedelta(minutes=10) + dt.timedelta(microseconds=int(k * 600e6 / count))
                copy.write_row((uuid.uuid4(), session, user, 1 + k % 2, "enc:v1:new", 0, index[session], at))
                index[session] += 1
        conn.execute("ANALYZE message_history")
    return now


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", help="PostgreSQL URL of a role that may create databases (required)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database and files (printed)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.data_dir, args.source, args.one)
    if not args.admin:
        parser.error("--admin is required")

    from botreports.plugins.sources.botserver_fixture import (create_botserver_database, drop_botserver_database,
                                                              expected_canonical, load_botserver)
    from botreports.plugins.sources.botserver_pg import BotserverAnalytics
    from botreports.plugins.sources.synthetic import generate

    work = Path(tempfile.mkdtemp(prefix="bench-botserver-"))
    print(f"{args.messages:,} messages; load average {os.getloadavg()[0]:.1f}", flush=True)
    started = time.perf_counter()
    generate(work / "canonical.db", days=30, bots=20, messages=args.messages, seed=1, end_date=END)
    print(f"demo data: {time.perf_counter() - started:.0f} s", flush=True)
    url = create_botserver_database(args.admin)
    try:
        started = time.perf_counter()
        counts = load_botserver(url, work / "canonical.db")
        print(f"botserver's tables (its migrations) loaded in {time.perf_counter() - started:.0f} s: "
              + ", ".join(f"{n:,} {t}" for t, n in counts.items()), flush=True)
        started = time.perf_counter()
        lite = expected_canonical(work / "canonical.db", work / "analytics.db")
        print(f"the same rows as a canonical SQLite file in {time.perf_counter() - started:.0f} s", flush=True)

        rows = {}
        for report_type in TYPES:
            rows[report_type] = {"sqlite": timed(work, f"sqlite://{lite}", report_type),
                                 "cold": timed(work, with_options(url, rollups="off", statement_timeout="10min"),
                                               report_type)}
        source = BotserverAnalytics(url)
        rebuilt = source.rebuild_rollups()
        print(rebuilt.describe(), flush=True)
        for report_type in TYPES:
            rows[report_type]["warm"] = timed(work, with_options(url, statement_timeout="10min"), report_type)

        print(f"\nload average {os.getloadavg()[0]:.1f}")
        print(f"{'type':<15}{'SQLite s':>10}{'MB':>6}{'PG cold s':>11}{'x SQLite':>10}{'PG warm s':>11}"
              f"{'x SQLite':>10}{'MB':>6}")
        for report_type, r in rows.items():
            lite_s = r["sqlite"]["seconds"]
            print(f"{report_type:<15}{lite_s:>10.2f}{r['sqlite']['peak_mb']:>6.0f}{r['cold']['seconds']:>11.2f}"
                  f"{r['cold']['seconds'] / lite_s:>9.1f}x{r['warm']['seconds']:>11.2f}"
                  f"{r['warm']['seconds'] / lite_s:>9.1f}x{r['warm']['peak_mb']:>6.0f}")

        started = time.perf_counter()
        written_at = new_messages(url, NEW_MESSAGES)
        print(f"\n{NEW_MESSAGES:,} new messages written in {time.perf_counter() - started:.0f} s", flush=True)
        # The refresh of the next quarter hour: the one whose window takes the new messages in
        # (until then they are read from botserver's rows).
        refreshed = source.refresh_rollups(now=written_at + dt.timedelta(minutes=16))
        print(f"incremental refresh: {refreshed.describe()}")
        source.close()
    finally:
        if args.keep:
            print(f"kept: {url} and {work}")
        else:
            drop_botserver_database(args.admin, url)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
