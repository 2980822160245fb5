"""HTML export: one self-contained, responsive page (inline CSS and SVG charts,
no external fetch) that reads well on a phone and on a desktop."""
from __future__ import annotations

from ... import hookimpl
from ...core.models import Exporter, Option
from .export_options import with_defaults

OPTIONS = {
    "max_table_rows": Option("int", 500, "rows shown per table; the full data is in CSV and XLSX",
                             minimum=1, maximum=20_000),
}


def export_html(document, stream, options):
    """Render the document page and write it as UTF-8."""
    from .document_html import render_html

    opts = with_defaults(OPTIONS, options)
    html = render_html(document, max_rows=opts["max_table_rows"], media="screen")
    stream.write(html.encode("utf-8"))


@hookimpl
def register_exporters():
    return Exporter("html", ".html", "text/html; charset=utf-8", export_html, "HTML",
                    "A self-contained web page with KPI cards, tables and SVG charts", options=OPTIONS)
