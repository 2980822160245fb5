"""Table rows as SpreadsheetML text, streamed into a write-only openpyxl sheet.

openpyxl's own row path builds a cell object, guesses its type and opens XML
elements one by one for every cell (about 5 µs a cell): for a million-row raw
table that is most of the export. Here each column gets one converter, chosen
once from its type, that turns a value straight into the cell's XML; rows are
rendered in chunks and handed, parsed, to the very XML stream openpyxl writes
the sheet with, so everything else (columns, frozen panes, charts, the zip)
stays openpyxl's.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Callable, Iterable, List, Optional, Sequence

#: Rows rendered before they are parsed and written out (about 250 KB of text): a parse has little fixed cost,
#: and larger chunks were measured slower as well as heavier (2,000 rows: +10 % time, +30 MB peak).
CHUNK_ROWS = 500
_TEMPORAL_KINDS = ("date", "datetime")


def column_letters(count: int) -> List[str]:
    """``A``, ``B``, ... for ``count`` columns."""
    from openpyxl.utils import get_column_letter

    return [get_column_letter(index) for index in range(1, count + 1)]


def xml_text(text: str) -> str:
    """Escape text for an XML text node. CR becomes ``&#13;``: a raw CR would be read back as a line feed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def text_cell(ref: str, text: str, style: str = "") -> str:
    """An inline-string cell (``text`` already safe); empty text is no cell at all."""
    if not text:
        return ""
    # Without xml:space="preserve" spreadsheets drop leading and trailing spaces.
    opening = '<t xml:space="preserve">' if text[0].isspace() or text[-1].isspace() else "<t>"
    return f'<c r="{ref}"{style} t="inlineStr"><is>{opening}{xml_text(text)}</t></is></c>'


class CellRenderer:
    """Everything the converters of one table share: style ids, the report's clock, text safety.

    ``styles`` maps a column type (``integer``, ``date``...) to the workbook's
    style id for its number format; ``local`` turns an aware datetime into the
    report's local wall time; ``safe_text`` makes text formula- and XML-safe.
    """

    def __init__(self, styles: dict, local: Callable, safe_text: Callable[[object], str]):
        from openpyxl.utils.datetime import to_excel

        self.styles = {kind: f' s="{style}"' for kind, style in styles.items()}
        self.local = local
        self.safe_text = safe_text
        self.to_excel = to_excel

    def serial(self, moment) -> str:
        """A date or naive datetime as an Excel serial number, printed as openpyxl prints it."""
        return "%.16g" % self.to_excel(moment)

    def any_value(self, kind: str) -> Callable[[object, str], str]:
        """The converter for any value in a column of type ``kind`` (the fallback of the fast ones)."""
        styles, local, safe_text, serial = self.styles, self.local, self.safe_text, self.serial
        number_style = styles.get(kind, "")
        date_style = styles[kind] if kind in _TEMPORAL_KINDS else styles["date"]
        datetime_style = styles[kind] if kind in _TEMPORAL_KINDS else styles["datetime"]

        def convert(value, ref: str) -> str:
            if value is None:
                return ""
            if isinstance(value, str):
                if kind in _TEMPORAL_KINDS:
                    moment = parse_instant(value)
                    if moment is not None:
                        moment = local(moment) if kind == "datetime" else moment.date()
                        return f'<c r="{ref}"{number_style}><v>{serial(moment)}</v></c>'
                return text_cell(ref, safe_text(value))
            if isinstance(value, bool):
                return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
            if isinstance(value, int):
                return f'<c r="{ref}"{number_style}><v>{value}</v></c>'
            if isinstance(value, float):
                if not math.isfinite(value):
                    return ""  # NaN and infinities have no spreadsheet form
                # repr is the shortest text that reads back as the very same float (openpyxl's "%.16g" is not).
                return f'<c r="{ref}"{number_style}><v>{value!r}</v></c>'
            if isinstance(value, dt.datetime):
                return f'<c r="{ref}"{datetime_style}><v>{serial(local(value))}</v></c>'
            if isinstance(value, dt.date):
                return f'<c r="{ref}"{date_style}><v>{serial(value)}</v></c>'
            return text_cell(ref, safe_text(value))
        return convert

    def for_column(self, kind: str) -> Callable[[object, str], str]:
        """The converter for a column of type ``kind``: the expected value type first, the rest via ``any_value``."""
        fallback = self.any_value(kind)
        style = self.styles.get(kind, "")
        if kind == "text":
            safe_text = self.safe_text

            def text(value, ref: str) -> str:
                if type(value) is str:
                    return text_cell(ref, safe_text(value))
                return fallback(value, ref)
            return text
        if kind == "datetime":
            local, serial = self.local, self.serial

            def instant(value, ref: str) -> str:
                if type(value) is str:
                    moment = parse_instant(value)
                    if moment is not None:
                        return f'<c r="{ref}"{style}><v>{serial(local(moment))}</v></c>'
                return fallback(value, ref)
            return instant
        if kind in ("integer", "number", "percent", "duration"):
            isfinite = math.isfinite

            def number(value, ref: str) -> str:
                kind_of_value = type(value)
                if kind_of_value is int:
                    return f'<c r="{ref}"{style}><v>{value}</v></c>'
                if kind_of_value is float and isfinite(value):
                    return f'<c r="{ref}"{style}><v>{value!r}</v></c>'
                return fallback(value, ref)
            return number
        return fallback


def parse_instant(text: str) -> Optional[dt.datetime]:
    """An ISO date or date-time text as a datetime, or None when it is not one."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def render_rows(rows: Iterable[Sequence], converters: Sequence[Callable], first_row: int) -> Iterable[str]:
    """``<row>`` elements, one per row, numbered from ``first_row``."""
    letters = column_letters(len(converters))
    pairs = list(zip(letters, converters))
    for number, values in enumerate(rows, start=first_row):
        suffix = str(number)
        cells = [convert(value, letter + suffix) for (letter, convert), value in zip(pairs, values)]
        yield f'<row r="{suffix}">{"".join(cells)}</row>'


class SheetDataStream:
    """The ``<sheetData>`` of one write-only sheet, fed with rendered rows.

    openpyxl's ``WriteOnlyWorksheet`` writes rows through a coroutine kept in
    ``sheet._rows`` that holds the sheet's XML stream open inside
    ``<sheetData>``; ``sheet.close()`` (run by ``workbook.save``) closes it.
    This installs a coroutine of the same shape that writes pre-rendered rows,
    so the sheet is opened, closed and zipped exactly as openpyxl does it.
    Set column widths and frozen panes first: they are written when the stream
    opens. Use ``write`` only, never ``sheet.append``, on such a sheet.
    """

    def __init__(self, sheet):
        if sheet._rows is not None:
            raise ValueError("rows were already appended to this sheet")
        sheet._get_writer()  # writes the sheet's properties, views and columns
        self._rows = sheet._rows = self._feed(sheet)
        next(self._rows)

    @staticmethod
    def _feed(sheet):
        from openpyxl.xml.functions import fromstring

        xf = sheet._writer.xf.send(True)
        with xf.element("sheetData"):
            try:
                while True:
                    chunk = yield
                    for row in fromstring(f"<rows>{chunk}</rows>"):
                        xf.write(row)
            except GeneratorExit:
                pass
        sheet._writer.xf.send(None)

    def write(self, rendered_rows: List[str]) -> None:
        """Write rows rendered by ``render_rows`` (a list, written in one piece)."""
        if rendered_rows:
            self._rows.send("".join(rendered_rows))
