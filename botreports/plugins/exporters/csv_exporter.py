"""CSV export: the report's raw-data table, streamed row by row, UTF-8 with a
header row. A report type without a raw-data table exports its largest table.

Options: ``csv_dialect`` (``comma``, or ``semicolon`` for spreadsheet locales
that use the comma as decimal mark), ``csv_decimal`` (``point`` or ``comma``;
default: comma with the semicolon dialect), ``csv_header`` (column ``names``
or ``labels``) and ``csv_bom`` (a byte-order mark, which some spreadsheets
need to recognise UTF-8). Dates are ISO 8601; date-times are ISO 8601 in the
report's timezone with their UTC offset. Text that a spreadsheet would take for
a formula gets a leading ``'`` (see ``cell_safety``).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import numbers
from typing import Callable, List, Optional, Tuple

from ... import hookimpl
from ...core.errors import ReportFailed
from ...core.models import Exporter, Option
from ...core.scheduling import zone
from .cell_safety import FORMULA_TRIGGERS
from .export_options import with_defaults

OPTIONS = {
    "csv_dialect": Option("str", "comma", "field separator", choices=("comma", "semicolon")),
    "csv_decimal": Option("str", None, "decimal mark of numbers (default: comma for semicolon CSV)",
                          choices=("point", "comma")),
    "csv_header": Option("str", "names", "header row: column names or their labels", choices=("names", "labels")),
    "csv_bom": Option("bool", False, "start the file with a UTF-8 byte-order mark"),
}
#: Rows encoded per write: big enough to keep the stream cheap, small enough to keep memory flat.
CHUNK_ROWS = 2000
_TRIGGERS = frozenset(FORMULA_TRIGGERS)


def export_table(document):
    """The table CSV exports: the raw-data table, else the table with the most rows."""
    raw = document.raw_table()
    if raw is not None:
        return raw
    tables = [block for _, block in document.blocks("table")]
    if not tables:
        return None
    return max(tables, key=lambda t: len(t.rows) if isinstance(t.rows, (list, tuple)) else float("inf"))


def _text(value):
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if value and value[0] in _TRIGGERS:
        return "'" + value
    return value


def _number(decimal_comma: bool) -> Callable:
    def convert(value):
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                return None
            # repr is the shortest text that reads back as the same float
            return repr(value).replace(".", ",") if decimal_comma else value
        if isinstance(value, numbers.Real):  # Decimal, numpy scalars: a number, never escaped
            return str(value).replace(".", ",") if decimal_comma else str(value)
        return _text(value)  # text in a numeric column is still text: keep it safe
    return convert


def _datetime(timezone: str) -> Callable:
    tz = zone(timezone)

    def convert(value):
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            return value.astimezone(tz).isoformat()
        return _text(value)
    return convert


def _date(value):
    if isinstance(value, dt.date):
        return value.isoformat()
    return _text(value)


def converters(columns, timezone: str, decimal_comma: bool) -> List[Tuple[int, Callable]]:
    """``(column index, converter)`` for each column that needs one, by column type."""
    number = _number(decimal_comma)
    by_type = {"integer": number, "number": number, "percent": number, "duration": number,
               "datetime": _datetime(timezone), "date": _date, "text": _text}
    return [(index, by_type.get(column.type, _text)) for index, column in enumerate(columns)]


#: Inline fast paths for the common value of each column type; anything else calls its converter.
_FAST = {
    "text": "(v{i} if not v{i} or v{i}[0] not in T else \"'\" + v{i}) if type(v{i}) is str else c{i}(v{i})",
    "integer": "v{i} if type(v{i}) is int else c{i}(v{i})",
}


def row_converter(columns, timezone: str, decimal_comma: bool) -> Callable:
    """A function turning a list of rows into a list of CSV-ready tuples.

    Converting cell by cell through a Python call each was most of the export's
    time, so the per-row code is generated once per table: one list
    comprehension whose expressions handle each column's usual value inline
    (safe text, plain integers) and call the column's converter only for
    anything else. Only column indexes are interpolated into the code.
    """
    convert = dict(converters(columns, timezone, decimal_comma))
    names = ", ".join(f"v{i}" for i in range(len(columns))) + ("," if len(columns) == 1 else "")
    parts = []
    for index, column in enumerate(columns):
        template = _FAST.get(column.type, "c{i}(v{i})")
        parts.append("(" + template.format(i=index) + ")")
    code = f"lambda rows: [({', '.join(parts)},) for ({names}) in rows]"
    namespace = {"T": _TRIGGERS, **{f"c{i}": function for i, function in convert.items()}}
    return eval(code, namespace)  # noqa: S307 - code built from fixed templates and integers only


def write_csv(table, stream, *, timezone: str = "UTC", dialect: str = "comma", decimal: Optional[str] = None,
              header: str = "names", bom: bool = False) -> int:
    """Write ``table`` to the binary ``stream``; returns the number of data rows."""
    decimal_comma = (decimal or ("comma" if dialect == "semicolon" else "point")) == "comma"
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";" if dialect == "semicolon" else ",", lineterminator="\r\n")
    if bom:
        buffer.write("\ufeff")
    writer.writerow([_text(c.name if header == "names" else c.label) for c in table.columns])
    convert = row_converter(table.columns, timezone, decimal_comma)
    rows = iter(table.rows)
    count = 0
    while True:
        chunk = list(itertools.islice(rows, CHUNK_ROWS))
        if not chunk:
            break
        writer.writerows(convert(chunk))
        count += len(chunk)
        stream.write(buffer.getvalue().encode("utf-8"))
        buffer.seek(0)
        buffer.truncate()
    stream.write(buffer.getvalue().encode("utf-8"))
    return count


def export_csv(document, stream, options):
    opts = with_defaults(OPTIONS, options)
    table = export_table(document)
    if table is None:
        raise ReportFailed("this report has no table to export as CSV; choose another format")
    write_csv(table, stream, timezone=document.period.timezone, dialect=opts["csv_dialect"],
              decimal=opts["csv_decimal"], header=opts["csv_header"], bom=opts["csv_bom"])


@hookimpl
def register_exporters():
    return Exporter("csv", ".csv", "text/csv; charset=utf-8", export_csv, "CSV",
                    "The raw data (a report without raw data: its largest table), UTF-8 with a header row",
                    options=OPTIONS)
