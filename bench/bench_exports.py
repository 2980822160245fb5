"""How fast and how lean the exporters are, each against a baseline in the same run.

- CSV of N raw rows (default 1,000,000) vs a bare ``csv.writer`` over the same
  SQLite cursor. Targets: >= 0.65x its rows/s, peak memory growth <= 100 MB.
- XLSX of the same rows vs a bare openpyxl write-only loop writing the same
  typed values (created_at as a date, as the exporter writes it). Targets:
  >= 0.8x, <= 150 MB. For reference, the loop that writes created_at as plain
  text is measured too (a cheaper file, not the same one).
- PDF of each standard report type over demo data (target <= 1.5 s each) and
  HTML (<= 0.3 s), export time of a computed document; the baseline is
  WeasyPrint rendering a one-page plain document in the same run (machine speed).

Each measurement runs in its own process, so its peak RSS is its own.

    python bench/bench_exports.py [--rows 1000000] [--skip-xlsx]
"""
import argparse
import datetime as dt
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY = ("SELECT id, created_at, bot_id, channel, direction, latency_ms, tokens, cost_usd, intent "
         "FROM raw ORDER BY rowid")
COLUMNS = (("id", "text"), ("created_at", "datetime"), ("bot_id", "text"), ("channel", "text"),
           ("direction", "text"), ("latency_ms", "integer"), ("tokens", "integer"), ("cost_usd", "number"),
           ("intent", "text"))


def make_rows_db(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE raw (id TEXT, created_at TEXT, bot_id TEXT, channel TEXT, direction TEXT, "
                 "latency_ms INTEGER, tokens INTEGER, cost_usd REAL, intent TEXT)")
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    intents = ("greeting", "billing", "=cmd|' /C calc'!A0", "order_status", "-refund", "@mention", "handoff")
    conn.executemany("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (
        (f"m{i:08d}", (start + dt.timedelta(seconds=i * 2.6)).isoformat(), f"bot-{i % 20:03d}",
         ("web", "whatsapp", "teams", "slack")[i % 4], "in" if i % 2 else "out", 200 + (i * 7919) % 3000,
         (i * 31) % 900, ((i * 13) % 1000) / 100000, intents[i % len(intents)]) for i in range(rows)))
    conn.commit()
    conn.close()


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def child(mode: str, db: str, out: str) -> None:
    """One measurement; prints {seconds, rows, peak_growth_mb}."""
    from botreports import Column, Period, ReportDocument, SectionResult, Table

    conn = sqlite3.connect(db)
    names = [name for name, _ in COLUMNS]
    if mode.startswith("xlsx"):
        import openpyxl  # noqa: F401 - imported before the clock, for both sides alike
    before = rss_mb()
    started = time.perf_counter()
    cursor = conn.execute(QUERY)
    count = 0
    if mode == "csv-bare":
        import csv
        with open(out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            writer.writerows(cursor)
    elif mode in ("xlsx-bare", "xlsx-bare-text"):
        from openpyxl import Workbook
        book = Workbook(write_only=True)
        sheet = book.create_sheet("Raw data")
        sheet.append(names)
        if mode == "xlsx-bare":
            # The same typed values the exporter writes: created_at as an Excel date, not as text
            # (the report's timezone is UTC, so the wall times are the same too).
            parse = dt.datetime.fromisoformat
            for row in cursor:
                row = list(row)
                row[1] = parse(row[1]).replace(tzinfo=None)
                sheet.append(row)
        else:
            for row in cursor:
                sheet.append(row)
        book.save(out)
    else:
        columns = [Column(name, name.replace("_", " ").capitalize(), kind) for name, kind in COLUMNS]
        utc = dt.timezone.utc
        period = Period(dt.datetime(2025, 1, 1, tzinfo=utc), dt.datetime(2025, 2, 1, tzinfo=utc), "UTC")
        document = ReportDocument("Bench", "custom", period, dt.datetime.now(utc), {},
                                  [SectionResult("raw", "Raw data", [Table("Raw data", columns, cursor, raw=True)])])
        if mode == "csv-ours":
            from botreports.plugins.exporters.csv_exporter import export_csv as export
        else:
            from botreports.plugins.exporters.xlsx_exporter import export_xlsx as export
        with open(out, "wb") as handle:
            export(document, handle, {})
    took = time.perf_counter() - started
    count = sum(1 for _ in sqlite3.connect(db).execute("SELECT 1 FROM raw"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": took, "rows": count, "peak_growth_mb": peak - before, "bytes": Path(out).stat().st_size}))


def measure(mode: str, db: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(db), str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def documents_bench(work: Path) -> list:
    """Export times of PDF and HTML per standard report type, over demo data."""
    from botreports import Reports
    from botreports.core.pipeline import build_document
    from botreports.core.service import SYSTEM
    from botreports.plugins.sources.synthetic import generate
    from weasyprint import HTML

    data = work / "data"
    generate(data / "analytics.db", days=30, bots=20, messages=100_000, seed=1, end_date=dt.date(2025, 1, 31))
    rk = Reports(data_dir=data, load_entrypoints=False)
    HTML(string="<p>warm-up</p>").write_pdf()
    started = time.perf_counter()
    HTML(string="<h1>Baseline</h1>" + "<p>A plain paragraph of text.</p>" * 30).write_pdf()
    baseline = time.perf_counter() - started
    results = []
    for name in sorted(t for t in rk.report_types if t != "custom"):
        spec = rk.validate({"type": name, "format": "pdf", "start_date": "2025-01-01", "end_date": "2025-01-31",
                            "timezone": "America/New_York"})
        for fmt in ("pdf", "html"):
            best = None
            for _ in range(2):
                document = build_document(spec, sections=rk.sections, report_types=rk.report_types,
                                          source=rk.source, principal=SYSTEM, reports=rk, settings=rk.settings)
                out = work / f"{name}.{fmt}"
                with open(out, "wb") as handle:
                    started = time.perf_counter()
                    rk.exporters[fmt].export(document, handle, {})
                    took = time.perf_counter() - started
                best = took if best is None else min(best, took)
            results.append((name, fmt, best, out.stat().st_size))
    rk.close()
    return baseline, results


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-xlsx", action="store_true", help="leave out the (slow) XLSX pair")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "raw.db"
        make_rows_db(db, args.rows)
        print(f"{'measurement':<34}{'seconds':>9}{'rows/s':>12}{'peak MB':>9}{'ratio':>8}  target")
        pairs = [("csv", 0.65, 100)] + ([] if args.skip_xlsx else [("xlsx", 0.8, 150)])
        for fmt, target, memory in pairs:
            bare = min((measure(f"{fmt}-bare", db, work / f"bare.{fmt}") for _ in range(2 if fmt == "csv" else 1)),
                       key=lambda r: r["seconds"])
            ours = min((measure(f"{fmt}-ours", db, work / f"ours.{fmt}") for _ in range(2 if fmt == "csv" else 1)),
                       key=lambda r: r["seconds"])
            ratio = bare["seconds"] / ours["seconds"]
            for label, result, note in ((f"{fmt.upper()} bare baseline", bare, ""),
                                        (f"{fmt.upper()} exporter", ours,
                                         f">= {target}x, <= {memory} MB: "
                                         f"{'ok' if ratio >= target and ours['peak_growth_mb'] <= memory else 'MISSED'}")):
                print(f"{label:<34}{result['seconds']:>9.2f}{result['rows'] / result['seconds']:>12,.0f}"
                      f"{result['peak_growth_mb']:>9.1f}{(ratio if note else 1):>8.2f}  {note}")
            if fmt == "xlsx":
                text = measure("xlsx-bare-text", db, work / "bare-text.xlsx")
                print(f"{'XLSX bare, dates as text (ref.)':<34}{text['seconds']:>9.2f}"
                      f"{text['rows'] / text['seconds']:>12,.0f}{text['peak_growth_mb']:>9.1f}"
                      f"{text['seconds'] / ours['seconds']:>8.2f}  exporter vs this cheaper loop, for reference")
        baseline, results = documents_bench(work)
        print(f"{'WeasyPrint one-page baseline':<34}{baseline:>9.2f}")
        for name, fmt, took, size in results:
            target = 1.5 if fmt == "pdf" else 0.3
            verdict = "ok" if took <= target else "MISSED"
            print(f"{(fmt.upper() + ' ' + name):<34}{took:>9.2f}{'':>12}{'':>9}{took / baseline:>8.1f}  "
                  f"<= {target} s: {verdict} ({size / 1024:,.0f} KB)")


if __name__ == "__main__":
    main()
