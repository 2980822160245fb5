"""How fast `botreports demo-data` synthesizes and loads messages.

Target: 1,000,000 messages in under 30 s on a 2-core machine. Baseline, in the
same run: a bare sqlite3 executemany of the same number of pre-built message
rows into the same schema (the floor for any loader). Prints both and the ratio.

    python bench/bench_demo_data.py [--messages 1000000]
"""
import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

from botreports.plugins.sources.sqlite import create_database, create_indexes
from botreports.plugins.sources.synthetic import generate


def baseline(path: Path, messages: int) -> float:
    conn = create_database(path)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    rows = [(f"m{i}", "org-acme", f"c{i // 8}", "bot-001", "web", f"u{i % 5000}", "in" if i % 2 == 0 else "out",
             1_700_000_000_000 + i * 1000, 800, 100, "greeting", 0) for i in range(messages)]
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    create_indexes(conn)
    took = time.perf_counter() - started
    conn.close()
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        counts = generate(tmp / "analytics.db", days=30, bots=20, messages=args.messages, seed=1,
                          end_date=dt.date(2025, 1, 31))
        ours = time.perf_counter() - started
        floor = baseline(tmp / "baseline.db", args.messages)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"demo-data  {args.messages:>10,} messages (+{sum(counts.values()) - counts['messages']:,} other rows)"
          f"  {ours:6.2f} s  target < 30 s  {'OK' if ours < 30 else 'SLOW'}")
    print(f"baseline   bare executemany + indexes of pre-built message rows  {floor:6.2f} s")
    print(f"ratio      demo-data / baseline = {ours / floor:.2f}x   (peak RSS {peak_mb:.0f} MB)")


if __name__ == "__main__":
    main()
