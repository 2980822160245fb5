"""PDF export with WeasyPrint, from the HTML export's template plus print CSS:
A4 or Letter, running header, "Page X of Y", a table of contents for
multi-section reports, repeated table headers, vector charts, extractable text.

WeasyPrint fetches only our own template files and ``data:`` URLs: every other
URL (http, https, ftp, other files) is refused by a locked-down URL fetcher. It
runs in a child process with time and memory limits (``pdf_renderer``).
"""
from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path

from ... import hookimpl
from ...core.errors import ReportFailed
from ...core.models import Exporter, Option
from .export_options import with_defaults

OPTIONS = {
    "max_table_rows": Option("int", 100, "rows printed per table; the full data is in CSV and XLSX",
                             minimum=1, maximum=2_000),
    "page_size": Option("str", "A4", "paper size", choices=("A4", "Letter")),
    "max_pages": Option("int", 500, "a report longer than this fails instead of filling the disk",
                        minimum=1, maximum=5_000),
}
#: The page limit of the render running in this thread (see ``_limit_pages``).
_page_limit = threading.local()


class PageLimitExceeded(Exception):
    """A document that lays out to more pages than its limit."""


@functools.lru_cache(maxsize=1)
def _limit_pages() -> bool:
    """Make WeasyPrint stop laying out pages beyond the current thread's limit.

    WeasyPrint builds every page before it returns, so a hostile template with
    thousands of page breaks would cost its whole layout before a count after
    the fact could refuse it. Its page generator is wrapped once; each render
    sets its own limit in a thread-local. Returns False when this WeasyPrint
    has no such generator (the count after layout still applies).
    """
    from weasyprint import layout

    original = getattr(layout, "make_all_pages", None)
    if original is None:
        return False

    def limited(*args, **kwargs):
        limit = getattr(_page_limit, "value", None)
        for count, page in enumerate(original(*args, **kwargs), start=1):
            if limit is not None and count > limit:
                raise PageLimitExceeded(f"the PDF would have more than {limit:,} pages (the limit)")
            yield page

    layout.make_all_pages = limited
    return True


def allowed_url(url: str, assets_dir: Path) -> bool:
    """Only ``data:`` URLs and files inside ``assets_dir`` may be read."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return True
    if scheme != "file":
        return False
    from urllib.parse import unquote, urlsplit

    path = Path(unquote(urlsplit(url).path)).resolve()
    return path == assets_dir or assets_dir in path.parents


@functools.lru_cache(maxsize=1)
def _fetcher_class():
    from weasyprint.urls import URLFetcher

    from .document_html import TEMPLATES_DIR

    class LockedDownFetcher(URLFetcher):
        """Refuses every URL but ``data:`` and our own template files."""

        def fetch(self, url, headers=None):
            if not allowed_url(url, TEMPLATES_DIR):
                raise ValueError(f"fetching {url[:80]!r} is not allowed in reports")
            return super().fetch(url, headers)

    return LockedDownFetcher


def locked_down_fetcher():
    """A WeasyPrint URL fetcher that only reads ``data:`` URLs and our own assets."""
    return _fetcher_class()(timeout=2, allow_redirects=False, allowed_protocols=("data", "file"))


def render_pdf(document, options) -> bytes:
    """The document as PDF bytes, laid out in a child process under time and memory limits."""
    from .document_html import render_html
    from .pdf_renderer import render_pdf_in_child

    opts = with_defaults(OPTIONS, options)
    html = render_html(document, max_rows=opts["max_table_rows"], media="print", page_size=opts["page_size"])
    return render_pdf_in_child(html, opts["max_pages"])


def weasyprint_pdf(html: str, max_pages: int) -> bytes:
    """``html`` laid out by WeasyPrint in this process (the renderer's child calls this)."""
    from weasyprint import HTML

    from .document_html import TEMPLATES_DIR

    fetcher = locked_down_fetcher()
    # WeasyPrint warns for each refused URL; those warnings are the fetcher doing its job.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    _limit_pages()
    _page_limit.value = max_pages
    try:
        rendering = HTML(string=html, base_url=TEMPLATES_DIR.as_uri() + "/", url_fetcher=fetcher).render()
    except PageLimitExceeded as exc:
        raise ReportFailed(str(exc)) from None
    finally:
        _page_limit.value = None
    if len(rendering.pages) > max_pages:
        raise ReportFailed(f"the PDF would have {len(rendering.pages):,} pages; the limit is {max_pages:,}")
    return rendering.write_pdf(uncompressed_pdf=False)


def export_pdf(document, stream, options):
    # WeasyPrint builds the whole PDF in memory anyway; a report's PDF is small (tables are capped).
    stream.write(render_pdf(document, options))


@hookimpl
def register_exporters():
    return Exporter("pdf", ".pdf", "application/pdf", export_pdf, "PDF",
                    "A formatted, paginated document with KPI cards, tables and vector charts",
                    options=OPTIONS)
