"""A Markdown exporter for botreports (format ``markdown``, ``.md``).

Everything a third-party exporter needs: ``register_exporters`` returning an
``Exporter`` whose ``export(document, stream, options)`` writes bytes, and the
options it accepts, which botreports validates before the report runs.
"""
from __future__ import annotations

import itertools

from botreports.plugin_api import Exporter, Option, hookimpl

OPTIONS = {"max_table_rows": Option("int", 50, "rows written per table", minimum=1, maximum=10_000)}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    # Pipes and newlines would break the table; backslash-escape and flatten them.
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(lines, headers, rows):
    lines.append("| " + " | ".join(_cell(h) for h in headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    lines.append("")


def render_markdown(document, max_rows: int = 50) -> str:
    """The document as Markdown text."""
    period = document.period
    lines = [f"# {document.title}", "",
             f"*{document.type} report, {period.start:%Y-%m-%d %H:%M} to {period.end:%Y-%m-%d %H:%M} UTC "
             f"(shown in {period.timezone})*", ""]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if block.kind == "kpis":
                for kpi in block.items:
                    if kpi.unavailable:  # the source records nothing it could be computed from: say why
                        lines.append(f"- **{kpi.label}**: *{kpi.unavailable}*")
                        continue
                    change = f" ({kpi.change * 100:+.1f}% vs previous period)" if kpi.change is not None else ""
                    unit = f" {kpi.unit}" if kpi.unit else ""
                    lines.append(f"- **{kpi.label}**: {_cell(kpi.value)}{unit}{change}")
                lines.append("")
            elif block.kind == "table":
                rows = list(itertools.islice(iter(block.rows), max_rows + 1))
                lines += [f"### {block.title}", ""]
                _table(lines, [c.label for c in block.columns], rows[:max_rows])
                if len(rows) > max_rows:
                    lines += [f"*First {max_rows} rows shown.*", ""]
                if block.unavailable_note():  # columns left empty, and why
                    lines += [f"*{block.unavailable_note()}*", ""]
            elif block.kind == "chart":
                lines += [f"### {block.title}", ""]
                _table(lines, [block.x_label or "Category"] + [s.name for s in block.series],
                       [[category] + [s.values[i] if i < len(s.values) else None for s in block.series]
                        for i, category in enumerate(block.categories)])
            elif block.kind == "text":
                lines += [block.markdown, ""]
    return "\n".join(lines)


def export_markdown(document, stream, options):
    max_rows = (options or {}).get("max_table_rows", OPTIONS["max_table_rows"].default)
    stream.write(render_markdown(document, max_rows).encode("utf-8"))


@hookimpl
def register_exporters():
    return Exporter("markdown", ".md", "text/markdown; charset=utf-8", export_markdown, "Markdown",
                    "The report as Markdown: KPIs as lists, tables and chart data as tables",
                    options=OPTIONS)
