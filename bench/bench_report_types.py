"""How long each report type takes over a month of a busy bot fleet.

Builds the demo data once (30 days, 20 bots, N messages), then times each
report type rendered to JSON over the 30 days (America/New_York, all
organisations), each in a fresh process so its peak memory is its own. Beside
each, the time of bare SQL computing the same headline aggregates in the
plainest way (no local time, percentiles by sorting), run in the same process.

Targets on a 2-core machine: each type <= 1.5 s at 1M messages, <= 8 s at 10M,
peak memory <= 300 MB.

    python bench/bench_report_types.py --messages 1000000 [--keep DIR]
"""
import argparse
import datetime as dt
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TYPES = ("usage", "conversations", "performance", "compliance")
END = dt.date(2025, 1, 31)
LO, HI = 1735776000000, 1738368000000  # 2025-01-02 .. 2025-02-01 UTC, the period's instants (UTC)

#: The headline aggregates of each type as bare SQL: what a hand-written dashboard would run.
BARE_SQL = {
    "usage": [
        "SELECT sum(direction = 'in'), sum(direction = 'out'), count(DISTINCT CASE WHEN direction = 'in'"
        " THEN user_id END) FROM messages WHERE created_at >= :lo AND created_at < :hi",
        "SELECT created_at / 86400000 AS d, count(*), count(DISTINCT user_id) FROM messages"
        " WHERE created_at >= :lo AND created_at < :hi GROUP BY d",
        "SELECT bot_id, count(*), count(DISTINCT user_id) FROM messages WHERE created_at >= :lo AND created_at < :hi"
        " GROUP BY bot_id",
        "SELECT channel, count(*) FROM messages WHERE created_at >= :lo AND created_at < :hi GROUP BY channel",
        "SELECT (created_at / 3600000) % 24 AS h, count(*) FROM messages WHERE created_at >= :lo"
        " AND created_at < :hi GROUP BY h",
        "SELECT user_id, count(*) AS n FROM messages WHERE direction = 'in' AND created_at >= :lo"
        " AND created_at < :hi GROUP BY user_id ORDER BY n DESC LIMIT 10",
        "SELECT bot_id, sum(input_tokens + output_tokens), sum(cost_usd) FROM llm_calls WHERE created_at >= :lo"
        " AND created_at < :hi GROUP BY bot_id",
    ],
    "conversations": [
        "SELECT status, count(*), avg(message_count) FROM conversations WHERE started_at >= :lo"
        " AND started_at < :hi GROUP BY status",
        "SELECT message_count FROM conversations WHERE started_at >= :lo AND started_at < :hi"
        " ORDER BY message_count LIMIT 1 OFFSET (SELECT count(*) / 2 FROM conversations"
        " WHERE started_at >= :lo AND started_at < :hi)",
        "SELECT intent, count(*) FROM messages WHERE direction = 'in' AND intent IS NOT NULL AND created_at >= :lo"
        " AND created_at < :hi GROUP BY intent",
        "SELECT satisfaction, count(*) FROM conversations WHERE started_at >= :lo AND started_at < :hi"
        " GROUP BY satisfaction",
        "SELECT c.id, c.message_count, c.status, count(m.id) FROM conversations c JOIN messages m"
        " ON m.conversation_id = c.id WHERE c.started_at >= :lo AND c.started_at < :hi GROUP BY c.id",
    ],
    "performance": [
        "SELECT latency_ms FROM messages WHERE direction = 'out' AND created_at >= :lo AND created_at < :hi"
        " ORDER BY latency_ms LIMIT 1 OFFSET (SELECT count(*) * 95 / 100 FROM messages WHERE direction = 'out'"
        " AND created_at >= :lo AND created_at < :hi)",
        "SELECT bot_id, count(*), sum(is_error), avg(latency_ms) FROM messages WHERE direction = 'out'"
        " AND created_at >= :lo AND created_at < :hi GROUP BY bot_id",
        "SELECT model, count(*), sum(success = 0), avg(latency_ms), sum(cost_usd) FROM llm_calls"
        " WHERE created_at >= :lo AND created_at < :hi GROUP BY model",
        "SELECT created_at / 60000 AS m, count(*) AS n FROM messages WHERE created_at >= :lo AND created_at < :hi"
        " GROUP BY m ORDER BY n DESC LIMIT 1",
        "SELECT host, avg(cpu_pct), max(cpu_pct), sum(requests), sum(errors) FROM system_samples"
        " WHERE created_at >= :lo AND created_at < :hi GROUP BY host",
        "SELECT created_at / 3600000 AS h, bot_id, count(*), avg(latency_ms) FROM messages"
        " WHERE created_at >= :lo AND created_at < :hi GROUP BY h, bot_id",
    ],
    "compliance": [
        "SELECT action, result, count(*) FROM audit_events WHERE created_at >= :lo AND created_at < :hi"
        " GROUP BY action, result",
        "SELECT actor, count(*) FROM audit_events WHERE result = 'denied' AND created_at >= :lo"
        " AND created_at < :hi GROUP BY actor",
        "SELECT * FROM audit_events WHERE created_at >= :lo AND created_at < :hi ORDER BY created_at",
    ],
}


def bare_sql(path: Path, report_type: str) -> float:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    started = time.perf_counter()
    for statement in BARE_SQL[report_type]:
        conn.execute(statement, {"lo": LO, "hi": HI}).fetchall()
    took = time.perf_counter() - started
    conn.close()
    return took


def one(data_dir: Path, report_type: str) -> None:
    """Child process: render one type to JSON and print its time and peak memory."""
    from botreports import Reports
    from botreports.core.service import SYSTEM

    rk = Reports(data_dir=data_dir, load_entrypoints=False)
    body = {"type": report_type, "format": "json", "start_date": "2025-01-02", "end_date": "2025-01-31",
            "timezone": "America/New_York"}
    started = time.perf_counter()
    out = rk.render(SYSTEM, body, data_dir / f"{report_type}.json")
    took = time.perf_counter() - started
    print(json.dumps({"seconds": took, "peak_mb": peak_rss_mb(), "bytes": out.stat().st_size}))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    ``ru_maxrss`` of a child that was forked from a big parent starts at the parent's size (Linux
    carries the high-water mark across ``exec``), so it would report what the bench had read
    before; ``VmHWM`` belongs to the process's own address space. ``ru_maxrss`` is the fallback
    where there is no ``/proc``.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the data here (reused when it exists)")
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated report types to time")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.data_dir, args.one)

    from botreports.plugins.sources.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.keep or Path(tmp)
        db = data_dir / "analytics.db"
        if not db.exists():
            started = time.perf_counter()
            generate(db, days=30, bots=20, messages=args.messages, seed=1, end_date=END)
            print(f"demo data: {args.messages:,} messages in {time.perf_counter() - started:.1f} s")
        limit = 1.5 if args.messages <= 1_000_000 else 8.0
        print(f"{'type':<14} {'report (JSON)':>14} {'bare SQL':>10} {'ratio':>7} {'peak MB':>8}  target")
        for report_type in args.types.split(","):
            done = subprocess.run([sys.executable, __file__, "--one", report_type, "--data-dir", str(data_dir)],
                                  capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            floor = bare_sql(db, report_type)
            ok = result["seconds"] <= limit and result["peak_mb"] <= 300
            print(f"{report_type:<14} {result['seconds']:>12.2f} s {floor:>8.2f} s {result['seconds'] / floor:>6.1f}x"
                  f" {result['peak_mb']:>8.0f}  <= {limit} s, 300 MB {'OK' if ok else 'SLOW'}")


if __name__ == "__main__":
    main()
