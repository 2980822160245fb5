"""XLSX export with openpyxl in write-only mode (rows stream to disk, memory stays flat).

Sheets: ``Summary`` (the KPIs), one sheet per section table, one per chart
(its data and a native Excel chart), ``Raw data`` (continued on ``Raw data (2)``
beyond Excel's 1,048,576 rows), and ``About`` (the report's period, filters and
notes). A KPI or column the data source does not record has empty cells and the
reason beside them ("not recorded by this source": the KPI's Note cell, a line
under the table, or for raw data a note on the About sheet). Cells are typed: numbers with number formats, percentages as %, dates
and date-times (in the report's timezone) as Excel dates; header rows are
frozen and columns sized. Text that a spreadsheet would take for a formula gets
a leading ``'`` (see ``cell_safety``); numbers stay numbers. Table rows are
rendered by ``xlsx_rows``, one converter per column, for speed on raw data.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import tempfile
from typing import Callable, Iterable, List, Optional

from ... import hookimpl
from ...core.models import Exporter
from ...core.scheduling import zone
from ..templates.markdown_text import markdown_as_text
from . import xlsx_rows
from .cell_safety import FORMULA_TRIGGERS
from .chart_svg import PALETTE
from .display_values import format_cell

#: Excel's last row is 1,048,576: a header row and this many data rows fill one sheet.
MAX_DATA_ROWS = 1_048_575
MAX_CELL_TEXT = 32_767
NUMBER_FORMATS = {
    "integer": "#,##0",
    "number": "#,##0.00",
    "percent": "0.0%",
    "duration": '#,##0.0" s"',
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm:ss",
}
DEFAULT_WIDTHS = {"integer": 12, "number": 14, "percent": 10, "duration": 12, "date": 12, "datetime": 20,
                  "text": 24}
#: Characters XML 1.0 cannot hold (openpyxl refuses them, a parser rejects them): shown as U+FFFD instead.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TRIGGERS = frozenset(FORMULA_TRIGGERS)
_END = object()


def safe_text(value) -> str:
    """Text for a cell: formula-safe, XML-safe, within Excel's length limit."""
    text = value if isinstance(value, str) else str(value)
    if text and text[0] in _TRIGGERS:
        text = "'" + text
    # isprintable() is a fast C check that clears most text; only the rest is searched.
    if not text.isprintable() and _ILLEGAL.search(text):
        text = _ILLEGAL.sub("\ufffd", text)
    return text[:MAX_CELL_TEXT]


class SheetNames:
    """Unique, valid sheet names (31 characters, no ``[]:*?/\\``, case-insensitive).

    ``reserved`` names belong to the workbook's own sheets (``About``): a table or chart titled
    the same gets a numbered name, and ``reserved_name`` hands the name itself to its owner."""

    def __init__(self, reserved=()):
        self.reserved = {name.lower(): name for name in reserved}
        self.used = set(self.reserved)

    def reserved_name(self, name: str) -> str:
        return self.reserved[name.lower()]

    def __call__(self, wanted: str) -> str:
        base = re.sub(r"[\[\]:*?/\\]", " ", wanted or "Sheet").strip().strip("'") or "Sheet"
        base = base[:31]
        name, number = base, 2
        while name.lower() in self.used or name.lower() == "history":
            suffix = f" ({number})"
            name = base[: 31 - len(suffix)] + suffix
            number += 1
        self.used.add(name.lower())
        return name


def _local(timezone: str) -> Callable:
    tz = zone(timezone)

    def naive_local(value):
        # Excel has no timezones: date-times are written as the report's local wall time.
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(tz).replace(tzinfo=None)
    return naive_local


def _header_style():
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    return {"font": Font(bold=True, color="FFFFFF"), "fill": PatternFill("solid", fgColor="1E3A8A"),
            "alignment": Alignment(vertical="center"),
            "border": Border(bottom=Side(style="thin", color="0F172A"))}


def _style_id(sheet, **style) -> int:
    """The workbook's id for a cell style (registered on first use)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet)
    for name, value in style.items():
        setattr(cell, name, value)
    return cell.style_id


class TableSheet:
    """One table's rows on one write-only sheet: header, then typed, styled, safe cells.

    Each column gets one converter, chosen once from its type (see
    ``xlsx_rows``); rows are rendered straight to SpreadsheetML in chunks.
    """

    def __init__(self, sheet, columns, timezone: str):
        styles = {kind: _style_id(sheet, number_format=fmt) for kind, fmt in NUMBER_FORMATS.items()}
        renderer = xlsx_rows.CellRenderer(styles, _local(timezone), safe_text)
        self.converters = [renderer.for_column(column.type) for column in columns]
        header = f' s="{_style_id(sheet, **_header_style())}"'
        self.stream = xlsx_rows.SheetDataStream(sheet)
        cells = (xlsx_rows.text_cell(f"{_column_letter(index)}1", safe_text(column.label), header)
                 for index, column in enumerate(columns, start=1))
        self.stream.write([f'<row r="1">{"".join(cells)}</row>'])

    def write(self, rows: Iterable, limit: int) -> int:
        """Write up to ``limit`` rows from the iterator ``rows``; returns how many were written."""
        written, chunk = 0, []
        for row in xlsx_rows.render_rows(itertools.islice(rows, limit), self.converters, first_row=2):
            chunk.append(row)
            if len(chunk) == xlsx_rows.CHUNK_ROWS:
                self.stream.write(chunk)
                written += len(chunk)
                chunk = []
        self.stream.write(chunk)
        return written + len(chunk)


def _header(sheet, labels):
    from openpyxl.cell import WriteOnlyCell

    cells = []
    for label in labels:
        cell = WriteOnlyCell(sheet, value=safe_text(label))
        for name, value in _header_style().items():
            setattr(cell, name, value)
        cells.append(cell)
    return cells


def _widths(sheet, widths):
    from openpyxl.utils import get_column_letter

    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(8, min(width, 60))


def _table_widths(table, timezone: str, sample: Optional[list]) -> List[float]:
    widths = []
    for index, column in enumerate(table.columns):
        width = max(len(column.label) + 2, DEFAULT_WIDTHS.get(column.type, 16) if sample is None else 8)
        if sample:
            longest = max((len(format_cell(row[index], column.type, timezone)) for row in sample), default=0)
            width = max(width, longest + 2)
        widths.append(width)
    return widths


def write_table(workbook, names: SheetNames, title: str, table, timezone: str) -> List[str]:
    """One table on one sheet, or on several when it is longer than a sheet; returns the sheet names."""
    rows = iter(table.rows)
    sample = list(table.rows[:200]) if isinstance(table.rows, (list, tuple)) else None
    widths = _table_widths(table, timezone, sample)
    created = []
    exhausted = False
    while not exhausted:
        sheet = workbook.create_sheet(names(title))
        created.append(sheet.title)
        sheet.freeze_panes = "A2"
        _widths(sheet, widths)
        limit = MAX_DATA_ROWS
        writer = TableSheet(sheet, table.columns, timezone)
        written = writer.write(rows, limit)
        if written < limit:
            exhausted = True
            note = None if table.raw else table.unavailable_note()
            if note and written + 2 < limit:  # a blank row, then the note under the table
                writer.stream.write([f'<row r="{written + 3}">'
                                     f'{xlsx_rows.text_cell(f"A{written + 3}", safe_text(note))}</row>'])
        else:  # a full sheet: continue on the next one only if a row is left
            following = next(rows, _END)
            exhausted = following is _END
            if not exhausted:
                rows = itertools.chain([following], rows)
    return created


def write_chart(workbook, names: SheetNames, chart):
    """The chart's data on its own sheet with a native Excel chart beside it."""
    from openpyxl.chart import BarChart, LineChart, PieChart, Reference

    sheet = workbook.create_sheet(names(chart.title))
    sheet.freeze_panes = "A2"
    series = list(chart.series)
    _widths(sheet, [max(14, max((len(str(c)) for c in chart.categories), default=0) + 2)]
            + [max(12, len(s.name) + 2) for s in series])
    sheet.append(_header(sheet, [chart.x_label or "Category"] + [s.name for s in series]))
    for index, category in enumerate(chart.categories):
        values = []
        for s in series:
            value = s.values[index] if index < len(s.values) else None
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            values.append(value if ok else None)
        sheet.append([safe_text(category)] + values)
    count = len(chart.categories)
    if chart.chart == "pie":
        drawing = PieChart()
    elif chart.chart == "line":
        drawing = LineChart()
    else:
        drawing = BarChart()
        drawing.type = "col"
        if chart.chart == "stacked_bar":
            drawing.grouping = "stacked"
            drawing.overlap = 100
    drawing.title = chart.title
    drawing.width, drawing.height = 22, 11
    data = Reference(sheet, min_col=2, max_col=1 + max(len(series), 1), min_row=1, max_row=1 + count)
    drawing.add_data(data, titles_from_data=True)
    drawing.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=1 + count))
    if chart.chart != "pie":
        drawing.x_axis.title = chart.x_label or None
        drawing.y_axis.title = chart.y_label or None
        # openpyxl 3.1 marks axes deleted by default; Excel then draws none.
        drawing.x_axis.delete = False
        drawing.y_axis.delete = False
        for index, item in enumerate(drawing.series):
            colour = PALETTE[index % len(PALETTE)].lstrip("#")
            if chart.chart == "line":
                item.graphicalProperties.line.solidFill = colour
                item.graphicalProperties.line.width = 22000
                item.smooth = False
            else:
                item.graphicalProperties.solidFill = colour
                item.graphicalProperties.line.solidFill = colour
    drawing.legend.position = "b"
    sheet.add_chart(drawing, f"{_column_letter(len(series) + 3)}2")


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)


KPI_COLUMNS = ("Section", "Metric", "Value", "Unit", "Previous period", "Change", "Note")


def _kpi_format(kpi) -> str:
    unit = (kpi.unit or "").strip()
    if unit == "%":
        return "0.0%"
    base = "#,##0" if isinstance(kpi.value, int) and isinstance(kpi.previous, (int, type(None))) else "#,##0.00"
    return f'{base}" {unit}"' if unit and '"' not in unit else base


def write_summary(workbook, names: SheetNames, document):
    from openpyxl.cell import WriteOnlyCell

    sheet = workbook.create_sheet(names("Summary"))
    sheet.freeze_panes = "A2"
    _widths(sheet, [26, 30, 16, 8, 16, 10, 28])
    sheet.append(_header(sheet, KPI_COLUMNS))
    for section, block in document.blocks("kpis"):
        for kpi in block.items:
            row = [safe_text(section.title), safe_text(kpi.label)]
            for value in (kpi.value, None, kpi.previous, kpi.change):
                row.append(None)
            number_format = _kpi_format(kpi)
            for position, value, fmt in ((2, kpi.value, number_format), (4, kpi.previous, number_format),
                                         (5, kpi.change, "+0.0%;-0.0%;0.0%")):
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.number_format = fmt
                    row[position] = cell
            row[3] = safe_text(kpi.unit) if kpi.unit else None
            # A metric without a value at all says why beside its empty value cell.
            row.append(safe_text(kpi.unavailable) if kpi.unavailable else None)
            sheet.append(row)


def write_about(workbook, names: SheetNames, document, notes: List[str], csv_note: Optional[str]):
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    from .display_values import period_text
    from .document_html import filters_of

    sheet = workbook.create_sheet(names.reserved_name("About"))
    _widths(sheet, [22, 90])
    local = _local(document.period.timezone)
    title = WriteOnlyCell(sheet, value=safe_text(document.title))
    title.font = Font(bold=True, size=14)
    sheet.append([title])
    rows = [("Report type", document.type), ("Period", period_text(document.period)),
            ("Timezone", document.period.timezone)]
    rows += [(label, value) for label, value in filters_of(document)]
    rows += [("Generated at", local(document.generated_at)), ("Report ID", document.report_id),
             ("Organisation", document.organization)]
    if csv_note:
        rows.append(("Raw data", csv_note))
    for label, value in rows:
        if value is None:
            continue
        if isinstance(value, dt.datetime):
            cell = WriteOnlyCell(sheet, value=value)
            cell.number_format = NUMBER_FORMATS["datetime"]
            value = cell
        else:
            value = safe_text(value)
        sheet.append([safe_text(label), value])
    for note in notes:
        sheet.append([])
        sheet.append(["Note", safe_text(note)])
    write_manifest(sheet, document)


def write_manifest(sheet, document) -> None:
    """The manifest (``core.manifest``) under its own heading: one label and its text a row."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    from ...core.manifest import manifest_lines

    lines = manifest_lines(document.manifest)
    if not lines:
        return
    sheet.append([])
    heading = WriteOnlyCell(sheet, value="Manifest")
    heading.font = Font(bold=True)
    sheet.append([heading])
    for label, text in lines:
        sheet.append([safe_text(label), safe_text(text)])


def export_xlsx(document, stream, options):
    """Build the workbook (sheets stream to temporary files) and copy it to ``stream``."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    names = SheetNames(reserved=("About",))
    tz = document.period.timezone
    write_summary(workbook, names, document)
    notes, raw_tables = [], []
    for section in document.sections:
        for block in section.blocks:
            if block.kind == "table":
                if block.raw:
                    raw_tables.append(block)
                else:
                    write_table(workbook, names, block.title, block, tz)
            elif block.kind == "chart":
                write_chart(workbook, names, block)
            elif block.kind == "text":
                notes.append(markdown_as_text(block.markdown))
    for table in raw_tables:
        title = "Raw data" if len(raw_tables) == 1 else f"Raw data - {table.title}"
        sheets = write_table(workbook, names, title, table, tz)
        note = table.unavailable_note()
        if note:  # raw data sheets hold data rows only: the note goes to About
            notes.append(f"{sheets[0]}: {note}")
    csv_note = None if raw_tables else "This report type has no raw-data table; each table has its own sheet."
    write_about(workbook, names, document, notes, csv_note)
    # The zip is assembled in a temporary file: openpyxl's zip writer wants a seekable file.
    with tempfile.TemporaryFile() as spool:
        workbook.save(spool)
        spool.seek(0)
        while True:
            chunk = spool.read(1 << 20)
            if not chunk:
                break
            stream.write(chunk)


@hookimpl
def register_exporters():
    return Exporter("xlsx", ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    export_xlsx, "Excel", "A workbook: KPI summary, one sheet per table, native charts, raw data")
