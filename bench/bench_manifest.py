"""What keeping a report's record costs: the raw table hashed row by row as the exporter reads it,
then the record built and compressed, against the same export without, in the same run.

CSV and JSON of N raw rows (default 500,000), each export timed three times either way (best of
three); the ratio is traced / plain (target <= 1.25x), and the record's stored size is printed.

    python bench/bench_manifest.py [--rows 500000]
"""
import argparse
import datetime as dt
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_exports import COLUMNS, QUERY, make_rows_db  # noqa: E402


def document(conn):
    from botreports import Column, Period, ReportDocument, SectionResult, Table

    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)

    def rows():
        for row in conn.execute(QUERY):
            yield [row[0], dt.datetime.fromisoformat(row[1]), *row[2:]]

    table = Table("Raw", [Column(name, name, kind) for name, kind in COLUMNS], rows(), raw=True)
    return ReportDocument("Bench", "custom", Period(start, start + dt.timedelta(days=30)), start, {},
                          [SectionResult("raw", "Raw", [table])], manifest={"schema": "botreports-manifest/1"})


def export(db: Path, out: Path, fmt: str, traced: bool):
    from botreports.core.pipeline import write_artifact
    from botreports.core.report_records import document_record, pack, trace_tables
    from botreports.plugins.exporters.csv_exporter import register_exporters as csv_exporters
    from botreports.plugins.exporters.json_exporter import register_exporters as json_exporters

    exporter = {"csv": csv_exporters, "json": json_exporters}[fmt]()
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    doc = document(conn)
    if traced:
        doc = trace_tables(doc)
    write_artifact(doc, exporter, out, {})
    size = len(pack(document_record(doc))) if traced else 0
    took = time.perf_counter() - started
    conn.close()
    return took, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-manifest-"))
    db = folder / "rows.db"
    make_rows_db(db, args.rows)
    worst = 0.0
    for fmt in ("csv", "json"):
        plain = min(export(db, folder / f"plain.{fmt}", fmt, False)[0] for _ in range(3))
        runs = [export(db, folder / f"traced.{fmt}", fmt, True) for _ in range(3)]
        traced = min(took for took, _ in runs)
        ratio = traced / plain
        worst = max(worst, ratio)
        print(f"{fmt}: {args.rows:,} rows plain {plain:.2f} s, with the record {traced:.2f} s "
              f"(ratio {ratio:.2f}x, target <= 1.25x); record {runs[0][1]:,} bytes")
    return 0 if worst <= 1.25 else 1


if __name__ == "__main__":
    sys.exit(main())
