"""Charts as SVG for the HTML and PDF exports, drawn with pygal.

Why pygal: it writes clean vector SVG with titles, axes and legends in about
5 ms a chart and weighs a few hundred kB, where matplotlib adds ~117 MB to the
install and ~70 ms a chart. Its SVG embeds inline in HTML and WeasyPrint draws
it as vectors, so the PDF's charts stay sharp and their text stays text.
Every chart shares one palette and the document's sans-serif font.
"""
from __future__ import annotations

import datetime as dt
import re

#: One palette for every chart of every format (the XLSX charts use it too).
PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
           "#64748b", "#f97316")
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
WIDTH, HEIGHT = 800, 340
#: Beyond this many categories the x axis shows only every n-th label, so labels never overlap.
MAX_X_LABELS = 16

#: Light solid guides: pygal's dashed black ones only fade out with its script, which we drop.
GUIDES_CSS = ("CHART_ID .axis .guide.line, CHART_ID .axis .major.guide.line "
              "{stroke: #e2e8f0; stroke-dasharray: none; opacity: 1}")
_STYLE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S)
_INTERACTIVE = re.compile(r":hover|tooltip|\.active|transition|user-select|text-overlay|\.activate")
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def _style():
    from pygal.style import Style

    return Style(
        font_family=FONT, background="#ffffff", plot_background="#ffffff", foreground="#334155",
        foreground_strong="#0f172a", foreground_subtle="#e2e8f0", colors=PALETTE, opacity=".85",
        opacity_hover=".95", title_font_size=15, label_font_size=11, major_label_font_size=11,
        legend_font_size=12, value_font_size=10, tooltip_font_size=12)


def category_label(category) -> str:
    """``2025-01-05`` -> ``5 Jan``; other categories as they are."""
    if isinstance(category, (dt.date, dt.datetime)):
        day = category
    else:
        text = str(category)
        try:
            day = dt.date.fromisoformat(text) if len(text) == 10 else None
        except ValueError:
            day = None
        if day is None:
            return text
    return f"{day.day} {day.strftime('%b')}"


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if value == value and abs(value) != float("inf") else None


def render_chart_svg(chart) -> str:
    """One ``Chart`` block as an SVG element ready to embed in HTML (no script, no XML prolog)."""
    import pygal

    kinds = {"bar": pygal.Bar, "line": pygal.Line, "stacked_bar": pygal.StackedBar, "pie": pygal.Pie}
    labels = [category_label(c) for c in chart.categories]
    config = dict(
        style=_style(), js=[], disable_xml_declaration=True, width=WIDTH, height=HEIGHT, title=chart.title,
        legend_at_bottom=True, legend_at_bottom_columns=min(max(len(chart.series), 1), 4),
        truncate_legend=40, truncate_label=24, margin=12, spacing=10, show_y_guides=True,
        show_x_guides=False, print_values=False, dots_size=2.5, stroke_style={"width": 2},
        css=["file://style.css", "file://graph.css", "inline:" + GUIDES_CSS],
    )
    if chart.chart == "pie":
        config.update(inner_radius=0.45, legend_at_bottom_columns=min(max(len(labels), 1), 4))
        drawing = kinds["pie"](**config)
        values = chart.series[0].values if chart.series else ()
        for label, value in zip(labels, values):
            drawing.add(label, _number(value))
    else:
        config.update(x_title=chart.x_label or None, y_title=chart.y_label or None,
                      x_label_rotation=30 if len(labels) > 8 else 0)
        if len(labels) > MAX_X_LABELS:
            config.update(x_labels_major_every=-(-len(labels) // MAX_X_LABELS), show_minor_x_labels=False)
        if chart.chart == "line" and len(labels) > 60:
            config.update(show_dots=False)
        drawing = kinds[chart.chart](**config)
        drawing.x_labels = labels
        for series in chart.series:
            drawing.add(series.name, [_number(v) for v in series.values])
    svg = drawing.render(is_unicode=True)
    # pygal's tooltip script and its dated comments have no place in a static, reproducible file.
    svg = _COMMENT.sub("", _SCRIPT.sub("", svg))
    svg = _STYLE.sub(lambda m: m.group(1) + _static_rules(m.group(2)) + m.group(3), svg, count=1)
    # pygal does not template inline CSS: scope ours to this chart's id by hand.
    chart_id = re.search(r'id="(chart-[0-9a-f-]+)"', svg)
    svg = svg.replace("CHART_ID", f"#{chart_id.group(1)}" if chart_id else "")
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(chart.title)}" ', 1)


def _static_rules(css: str) -> str:
    """pygal's stylesheet without its hover, tooltip and transition rules: a static chart needs none,
    and each rule costs the PDF renderer a selector match on every element of the chart."""
    rules = [rule for rule in css.split("}") if rule.strip() and not _INTERACTIVE.search(rule)]
    return "}".join(rules) + "}"


def _attr(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"))
