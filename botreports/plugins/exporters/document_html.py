"""The ReportDocument as one self-contained HTML page, shared by the HTML and
PDF exports: a view of plain, already formatted values, rendered by the
built-in Jinja2 template (autoescaped) with inline CSS and inline SVG charts.

Long tables are cut to ``max_rows`` with a note saying where the complete data
is; a raw table's iterator is read only as far as shown.
"""
from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from pathlib import Path
from typing import Mapping, Optional

from ...core.manifest import manifest_lines
from ...core.scheduling import inclusive_days
from .display_values import (NUMERIC_TYPES, as_local_datetime, change_of, format_cell, format_kpi_value,
                             kpi_parts, period_text)

#: Where the built-in templates and stylesheets live (also the only files the PDF renderer may read).
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "builtin_templates"
#: A report with at least this many sections gets a table of contents.
TOC_MIN_SECTIONS = 3


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


@functools.lru_cache(maxsize=4)
def stylesheet(name: str) -> str:
    return (TEMPLATES_DIR / name).read_text(encoding="utf-8")


def _markdown(text: str) -> str:
    # One sanitizer for every Markdown the service prints: no scripts, no images, safe links only.
    from ..templates.markdown_text import render_markdown

    return render_markdown(text)


def _anchor(index: int, name: str) -> str:
    return f"s{index}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def table_view(table, timezone: str, max_rows: int) -> dict:
    """A table's header and first ``max_rows`` rows as formatted text, and whether it was cut."""
    columns = [{"label": c.label, "numeric": c.type in NUMERIC_TYPES} for c in table.columns]
    types = [c.type for c in table.columns]
    total: Optional[int] = len(table.rows) if isinstance(table.rows, (list, tuple)) else None
    taken = list(itertools.islice(iter(table.rows), max_rows + 1))
    cut = len(taken) > max_rows
    rows = [[format_cell(value, kind, timezone) for value, kind in zip(row, types)] for row in taken[:max_rows]]
    return {"kind": "table", "title": table.title, "columns": columns, "rows": rows, "raw": table.raw,
            "cut": cut, "shown": len(rows), "total": total, "note": table.unavailable_note()}


#: A raw-data table is previewed, not printed: its place is the CSV and XLSX exports.
RAW_PREVIEW_ROWS = 10


def block_view(block, timezone: str, max_rows: int, charts: bool, media: str = "screen") -> Optional[dict]:
    if block.kind == "kpis":
        return {"kind": "kpis", "items": [
            {"label": kpi.label, "value": kpi_parts(kpi)[0], "unit": kpi_parts(kpi)[1], "change": change_of(kpi),
             "previous": format_kpi_value(type(kpi)(kpi.name, kpi.label, kpi.previous, kpi.unit))
             if kpi.previous is not None else None, "unavailable": kpi.unavailable}
            for kpi in block.items]}
    if block.kind == "table":
        return table_view(block, timezone, min(max_rows, RAW_PREVIEW_ROWS) if block.raw else max_rows)
    if block.kind == "chart":
        if not charts:
            return None
        from markupsafe import Markup, escape

        from .chart_svg import render_chart_svg
        svg = render_chart_svg(block)
        if media == "print":
            # On paper the chart is an SVG image: still vector with real text, but its stylesheet stays
            # inside it instead of joining the page's cascade, where its rules would be matched against
            # every element of the document (most of the PDF's styling time).
            import base64
            svg = (f'<img class="chart-svg" alt="{escape(block.title)}" '
                   f'src="data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()}">')
        return {"kind": "chart", "title": block.title, "svg": Markup(svg)}
    if block.kind == "text":
        from markupsafe import Markup
        return {"kind": "text", "html": Markup(_markdown(block.markdown))}
    return None


def filters_of(document) -> list:
    """The report's filters as (label, text) pairs for the cover."""
    params = document.parameters or {}
    bots = params.get("bot_id") or []
    if isinstance(bots, str):
        bots = [bots]
    return [("Bots", ", ".join(bots) if bots else "all bots"),
            ("Channel", params.get("channel") or "all channels")]


def document_view(document, *, max_rows: int, media: str, charts: bool = True, page_size: str = "A4") -> dict:
    """Everything the template prints, as plain formatted values."""
    from markupsafe import Markup

    tz = document.period.timezone
    sections = []
    for index, section in enumerate(document.sections, start=1):
        blocks = [view for view in (block_view(b, tz, max_rows, charts, media) for b in section.blocks) if view]
        sections.append({"anchor": _anchor(index, section.name), "title": section.title,
                         "description": section.description, "blocks": blocks})
    generated = as_local_datetime(document.generated_at, tz) or document.generated_at
    presentation: Mapping = getattr(document, "presentation", None) or {}
    intro = presentation.get("intro_markdown")
    logo = presentation.get("logo")
    return {
        "title": document.title,
        "type_title": document.type.replace("_", " ").title(),
        "period": period_text(document.period),
        "timezone": tz,
        "generated_at": generated.strftime("%Y-%m-%d %H:%M") if isinstance(generated, dt.datetime) else "",
        "report_id": document.report_id,
        "organization": document.organization,
        "filters": filters_of(document),
        "sections": sections,
        "toc": len(sections) >= TOC_MIN_SECTIONS,
        "media": media,
        "css": Markup(stylesheet("report.css") + ("\n" + stylesheet("print.css") if media == "print" else "")
                      + (f"\n@page {{ size: {_page_size(page_size)}; }}" if media == "print" else "")),
        "custom_css": Markup(_safe_css(presentation.get("css") or "")),
        "intro": Markup(_template_intro(intro)) if intro else None,
        "logo": logo if isinstance(logo, str) and logo.startswith("data:image/") else None,
        "layout_html": None,
        "manifest": manifest_lines(getattr(document, "manifest", None) or {}),
    }


def _page_size(name: str) -> str:
    return {"a4": "A4", "letter": "letter"}.get(str(name).lower(), "A4")


def _safe_css(css: str) -> str:
    # Checked when its template is stored; written back from its tokens with no "<" in it, whatever it holds.
    from ..templates.stylesheet import safe_stylesheet

    return safe_stylesheet(css) if css else ""


def _template_intro(markdown: str) -> str:
    # A template's intro is the user's text: rendered in the template sandbox, not in this process.
    from ..templates.layout import intro_html

    return intro_html(markdown)


def render_html(document, *, max_rows: int, media: str = "screen", charts: bool = True,
                page_size: str = "A4") -> str:
    """The whole page as text; ``media="print"`` adds the paper stylesheet."""
    view = document_view(document, max_rows=max_rows, media=media, charts=charts, page_size=page_size)
    template = _environment().get_template("report.html")
    layout = (getattr(document, "presentation", None) or {}).get("layout")
    if layout:
        view["layout_html"] = _arranged(document, view, layout)
    return template.render(**view)


def _arranged(document, view: dict, layout: str):
    """The sections, intro and logo as the template's sandboxed layout arranges them."""
    from markupsafe import Markup, escape

    from ..templates.layout import apply_layout

    render_section = _environment().get_template("section.html").module.render_section
    fragments = {section["anchor"]: str(render_section(section)) for section in view["sections"]}
    if view["intro"]:
        fragments["intro"] = f'<section class="intro">{view["intro"]}</section>'
    if view["logo"]:
        fragments["logo"] = f'<img class="logo" src="{escape(view["logo"])}" alt="">'
    first, last = inclusive_days(document.period)
    context = {
        "title": document.title, "type": document.type, "timezone": document.period.timezone,
        "period_start": str(first), "period_end": str(last),
        "generated_at": document.generated_at.isoformat(), "parameters": dict(document.parameters),
        "sections": [{"key": s["anchor"], "name": name, "title": s["title"]}
                     for s, name in zip(view["sections"], (x.name for x in document.sections))],
    }
    return Markup(apply_layout(layout, context, fragments))
