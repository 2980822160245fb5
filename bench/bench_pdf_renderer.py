"""What laying PDFs out in a limited child process costs, against WeasyPrint in the service's process.

For each standard report type over demo data, the same page (the exporter's HTML) is laid out
by WeasyPrint in this process (how PDFs were made before: the baseline) and by the renderer's
child forked from its warm fork server (how they are made now), alternately; best of ``--runs``
each. Target:
the child path takes at most 1.15x the baseline, or 0.1 s more. The memory this process grew by
is printed for each path: the child path's should stay near zero.

    python bench/bench_pdf_renderer.py [--messages 30000] [--runs 5]
"""
import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from botreports import Reports
    from botreports.core.pipeline import build_document
    from botreports.core.service import SYSTEM
    from botreports.plugins.exporters.document_html import render_html
    from botreports.plugins.exporters.pdf_exporter import weasyprint_pdf
    from botreports.plugins.exporters.pdf_renderer import render_pdf_in_child
    from botreports.plugins.sources.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(data / "analytics.db", days=30, bots=20, messages=args.messages, seed=1,
                 end_date=dt.date(2025, 1, 31))
        rk = Reports(data_dir=data, load_entrypoints=False)
        pages = {}
        for name in sorted(t for t in rk.report_types if t != "custom"):
            spec = rk.validate({"type": name, "format": "pdf", "start_date": "2025-01-01",
                                "end_date": "2025-01-31", "timezone": "America/New_York"})
            document = build_document(spec, sections=rk.sections, report_types=rk.report_types,
                                      source=rk.source, principal=SYSTEM, reports=rk, settings=rk.settings)
            pages[name] = render_html(document, max_rows=100, media="print")
        rk.close()

    def timed(render, html):
        started = time.perf_counter()
        data = render(html, 500)
        took = time.perf_counter() - started
        assert data.startswith(b"%PDF")
        return took

    render_pdf_in_child("<p>warm</p>", 1)  # the fork server loads WeasyPrint once, before the clock
    before = rss_mb()
    for html in pages.values():
        render_pdf_in_child(html, 500)
    child_growth = rss_mb() - before
    weasyprint_pdf("<p>warm</p>", 1)  # the same warm-up for the baseline
    before = rss_mb()
    for html in pages.values():
        weasyprint_pdf(html, 500)
    inline_growth = rss_mb() - before
    # The two paths alternate, so a change in the machine's load touches both alike; best run of each.
    child, inline = {}, {}
    for name, html in pages.items():
        child[name] = inline[name] = float("inf")
        for _ in range(args.runs):
            child[name] = min(child[name], timed(render_pdf_in_child, html))
            inline[name] = min(inline[name], timed(weasyprint_pdf, html))

    print(f"{'report':<16}{'in process s':>14}{'child s':>10}{'ratio':>8}  target <= 1.15x or +0.1 s")
    missed = 0
    for name in pages:
        ratio = child[name] / inline[name]
        ok = ratio <= 1.15 or child[name] - inline[name] <= 0.1
        missed += not ok
        print(f"{name:<16}{inline[name]:>14.3f}{child[name]:>10.3f}{ratio:>8.2f}  {'ok' if ok else 'MISSED'}")
    total_inline, total_child = sum(inline.values()), sum(child.values())
    print(f"{'all':<16}{total_inline:>14.3f}{total_child:>10.3f}{total_child / total_inline:>8.2f}")
    print(f"memory this process grew by: in process {inline_growth:.0f} MB, child {child_growth:.0f} MB")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
