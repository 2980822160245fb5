"""The report-type benchmark on botserver's PostgreSQL next to SQLite, same data.

Builds the demo data (30 days, 20 bots, N messages), its uuid-keyed copy, and
botserver's tables in a PostgreSQL schema of their own (dropped at the end);
then renders each report type to JSON over the 30 days (America/New_York,
all organisations) from each source, each run in a fresh process so its time
and peak memory are its own.

    python bench/bench_botserver_pg.py --source postgresql://postgres@127.0.0.1/test [--messages 1000000]
"""
import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report_types import END, TYPES  # noqa: E402  (the same types and period)


def one(data_dir: Path, source: str, report_type: str) -> None:
    """Child process: render one type from ``source`` and print its time and peak memory."""
    import resource

    from botreports import Reports
    from botreports.core.service import SYSTEM

    rk = Reports(data_dir=data_dir, data_source=source, load_entrypoints=False)
    body = {"type": report_type, "format": "json", "start_date": "2025-01-02", "end_date": "2025-01-31",
            "timezone": "America/New_York"}
    started = time.perf_counter()
    out = rk.render(SYSTEM, body, data_dir / f"{report_type}-{source.split(':')[0]}.json")
    took = time.perf_counter() - started
    rk.close()
    print(json.dumps({"seconds": took, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "bytes": out.stat().st_size}))


def timed(data_dir: Path, source: str, report_type: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", report_type, "--data-dir", str(data_dir),
                           "--source", source], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="PostgreSQL URL of a database to create a schema in")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args.data_dir, args.source, args.one)

    import psycopg
    from psycopg import sql

    from botreports.plugins.sources.botserver_fixture import install_schema, load_botserver, uuid_keyed_copy
    from botreports.plugins.sources.synthetic import generate

    work = Path(tempfile.mkdtemp(prefix="bench-botserver-"))
    started = time.perf_counter()
    generate(work / "canonical.db", days=30, bots=20, messages=args.messages, seed=1, end_date=END)
    lite = uuid_keyed_copy(work / "canonical.db", work / "analytics.db")
    print(f"demo data and uuid-keyed copy: {time.perf_counter() - started:.1f} s")
    schema = f"botserver_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(args.source)
    try:
        started = time.perf_counter()
        install_schema(admin, schema)
        counts = load_botserver(admin, schema, lite)
        print(f"botserver tables loaded in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
        pg = f"{args.source}{'&' if '?' in args.source else '?'}schema={schema}"
        print(f"\n{'type':<15}{'SQLite s':>10}{'MB':>7}{'PostgreSQL s':>15}{'MB':>7}")
        for report_type in TYPES:
            a = timed(work, f"sqlite://{lite}", report_type)
            b = timed(work, pg, report_type)
            print(f"{report_type:<15}{a['seconds']:>10.2f}{a['peak_mb']:>7.0f}{b['seconds']:>15.2f}{b['peak_mb']:>7.0f}")
    finally:
        admin.rollback()
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        admin.commit()
        admin.close()


if __name__ == "__main__":
    main()
