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
into the rollups. The database is dropped at the end unless ``--keep``; ``--reuse DIR``
times again on what such a run kept (the new messages of its refresh taken out), and
``--repeat N`` times each SQLite and warm run N times, in turns, for medians.

Targets on a 2-core machine at 10M messages: warm <= 1.5x the SQLite source and
<= 5 s per type; the incremental refresh after 100k new messages <= 10 s.

    python bench/bench_botserver_pg.py --admin postgresql://postgres@127.0.0.1/test [--messages 1000000] [--keep]
    python bench/bench_botserver_pg.py --reuse /tmp/bench-botserver-XXXX --repeat 5 --skip-cold
"""
import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report_types import END, TYPES  # noqa: E402  (the same types and period)

NEW_MESSAGES = 100_000
#: What ``new_messages`` writes as each message's text (and ``--reuse`` deletes).
NEW_TEXT = "enc:v1:new"
#: What a run keeps in its folder for ``--reuse``: the database's URL, the SQLite file.
KEPT = "kept.json"


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
                copy.write_row((uuid.uuid4(), session, user, 1 + k % 2, NEW_TEXT, 0, index[session], at))
                index[session] += 1
        conn.execute("ANALYZE message_history")
    return now


def load_average() -> float:
    return os.getloadavg()[0]


def prepare(args, work: Path) -> dict:
    """A new database loaded with N messages and its canonical SQLite file, or (``--reuse``) those
    of an earlier ``--keep`` run with what its refresh measurement added taken out again."""
    from botreports.plugins.sources.botserver_fixture import create_botserver_database, expected_canonical, load_botserver
    from botreports.plugins.sources.synthetic import generate

    if args.reuse:
        kept = json.loads((work / KEPT).read_text())
        removed = remove_new_messages(kept["url"])
        print(f"reusing {kept['url']} ({kept['messages']:,} messages) and {kept['sqlite']}"
              + (f"; {removed:,} messages of an earlier refresh measurement removed" if removed else ""), flush=True)
        started = time.perf_counter()
        if bring_up_to_date(Path(kept["sqlite"])):
            print(f"the SQLite file's rollups, of an earlier definition, rebuilt in {time.perf_counter() - started:.0f} s",
                  flush=True)
        return kept
    started = time.perf_counter()
    generate(work / "canonical.db", days=30, bots=20, messages=args.messages, seed=1, end_date=END)
    print(f"demo data: {time.perf_counter() - started:.0f} s", flush=True)
    url = create_botserver_database(args.admin)
    kept = {"url": url, "messages": args.messages, "sqlite": None}
    (work / KEPT).write_text(json.dumps(kept))  # dropped at the end unless --keep
    started = time.perf_counter()
    counts = load_botserver(url, work / "canonical.db")
    print(f"botserver's tables (its migrations) loaded in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{n:,} {t}" for t, n in counts.items()), flush=True)
    started = time.perf_counter()
    kept["sqlite"] = str(expected_canonical(work / "canonical.db", work / "analytics.db"))
    print(f"the same rows as a canonical SQLite file in {time.perf_counter() - started:.0f} s", flush=True)
    (work / KEPT).write_text(json.dumps(kept))
    return kept


def bring_up_to_date(path: Path) -> bool:
    """Rebuild what the SQLite file keeps beside its rows when the code now defines it otherwise
    (a file's next write does so; until then the source reads the slow way): True if it did."""
    import sqlite3

    from botreports.plugins.sources.sqlite import SqliteAnalytics

    def tables():
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT group_concat(sql) FROM sqlite_master").fetchone()[0]

    before = tables()
    source = SqliteAnalytics(path)
    try:
        source.write_events([])
    finally:
        source.close()
    return tables() != before


def remove_new_messages(url: str) -> int:
    """Delete the messages ``new_messages`` wrote in an earlier run, so the database holds the same
    rows as the SQLite file again; returns how many."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        removed = conn.execute("DELETE FROM message_history WHERE content_encrypted = %s", [NEW_TEXT]).rowcount
        if removed:
            conn.execute("VACUUM ANALYZE message_history")
    return removed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", help="PostgreSQL URL of a role that may create databases (required)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true",
                        help="keep the database and files, to --reuse them (loading 10M messages takes ~10 min)")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="the folder a --keep run printed: its database and SQLite file, not loaded again")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each SQLite and warm run this many times, in turns, and report medians")
    parser.add_argument("--types", default=",".join(TYPES), help="report types, comma-separated")
    parser.add_argument("--skip-cold", action="store_true", help="leave out the runs without rollups")
    parser.add_argument("--skip-refresh", action="store_true",
                        help="leave out the incremental refresh after 100k new messages")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.data_dir, args.source, args.one)
    if not args.admin and not args.reuse:
        parser.error("--admin is required (or --reuse DIR)")
    types = [t for t in args.types.split(",") if t]
    if not set(types) <= set(TYPES):
        parser.error(f"--types takes {', '.join(TYPES)}")

    from botreports.plugins.sources.botserver_fixture import drop_botserver_database
    from botreports.plugins.sources.botserver_pg import BotserverAnalytics

    work = args.reuse or Path(tempfile.mkdtemp(prefix="bench-botserver-"))
    keep = args.keep or bool(args.reuse)
    print(f"{'reusing ' + str(work) if args.reuse else f'{args.messages:,} messages'};"
          f" load average {load_average():.1f}", flush=True)
    kept = None
    try:
        kept = prepare(args, work)
        url, lite = kept["url"], f"sqlite://{kept['sqlite']}"

        def sample(source: str, report_type: str) -> dict:
            before = load_average()
            result = timed(work, source, report_type)
            return {**result, "load": (before + load_average()) / 2}

        rows = {t: {"sqlite": [], "cold": [], "warm": []} for t in types}
        if not args.skip_cold:
            for report_type in types:
                rows[report_type]["cold"].append(
                    sample(with_options(url, rollups="off", statement_timeout="10min"), report_type))
        source = BotserverAnalytics(url)
        rebuilt = source.rebuild_rollups()
        print(rebuilt.describe(), flush=True)
        warm = with_options(url, statement_timeout="10min")
        for turn in range(args.repeat):
            for report_type in types:  # in turns, so each pair of runs meets about the same load
                rows[report_type]["sqlite"].append(sample(lite, report_type))
                rows[report_type]["warm"].append(sample(warm, report_type))
            print(f"turn {turn + 1}/{args.repeat}: " + ", ".join(
                f"{t} {rows[t]['sqlite'][-1]['seconds']:.2f} / {rows[t]['warm'][-1]['seconds']:.2f} s"
                f" (load {rows[t]['warm'][-1]['load']:.1f})" for t in types), flush=True)
        report(rows, args.repeat)

        if not args.skip_refresh:
            started = time.perf_counter()
            written_at = new_messages(url, NEW_MESSAGES)
            print(f"\n{NEW_MESSAGES:,} new messages written in {time.perf_counter() - started:.0f} s", flush=True)
            # The refresh of the next quarter hour: the one whose window takes the new messages in
            # (until then they are read from botserver's rows).
            load = load_average()
            refreshed = source.refresh_rollups(now=written_at + dt.timedelta(minutes=16))
            print(f"incremental refresh: {refreshed.describe()} (load average {load:.1f})")
        source.close()
    finally:
        if keep:
            print(f"kept: {kept['url'] if kept else 'nothing'} and {work}; run again with --reuse {work}")
        else:
            if kept is not None:
                drop_botserver_database(args.admin, kept["url"])
            shutil.rmtree(work, ignore_errors=True)


def report(rows: dict, repeat: int) -> None:
    """The medians of each type and source, the ratios of the medians and the load while timing."""
    def cell(samples, key="seconds"):
        return statistics.median([s[key] for s in samples]) if samples else float("nan")

    print(f"\nmedians of {repeat} run(s) each; load average while timing"
          f" {min(s['load'] for r in rows.values() for k in r.values() for s in k):.1f}"
          f"-{max(s['load'] for r in rows.values() for k in r.values() for s in k):.1f}")
    print(f"{'type':<15}{'SQLite s':>10}{'MB':>6}{'PG cold s':>11}{'x SQLite':>10}{'PG warm s':>11}"
          f"{'x SQLite':>10}{'MB':>6}{'min-max warm s':>16}")
    for report_type, r in rows.items():
        lite_s, cold_s, warm_s = cell(r["sqlite"]), cell(r["cold"]), cell(r["warm"])
        spread = f"{min(s['seconds'] for s in r['warm']):.2f}-{max(s['seconds'] for s in r['warm']):.2f}"
        cold = f"{cold_s:>11.2f}{cold_s / lite_s:>9.1f}x" if r["cold"] else f"{'-':>11}{'-':>10}"
        print(f"{report_type:<15}{lite_s:>10.2f}{cell(r['sqlite'], 'peak_mb'):>6.0f}{cold}"
              f"{warm_s:>11.2f}{warm_s / lite_s:>9.2f}x{cell(r['warm'], 'peak_mb'):>6.0f}{spread:>16}")
    print("ratios of each turn (warm / SQLite): " + "; ".join(
        f"{t} " + " ".join(f"{w['seconds'] / s['seconds']:.2f}" for s, w in zip(r["sqlite"], r["warm"]))
        for t, r in rows.items()))


if __name__ == "__main__":
    main()
