"""The conversations raw table read from botserver's PostgreSQL: its rows typed for CSV
and XLSX, or as JSON text that PostgreSQL spells itself for the JSON export, with the
columns a report leaves blank written as nulls by the query either way."""
from __future__ import annotations

import operator
from typing import Callable, FrozenSet, Iterable, Iterator, List, Sequence, Tuple

import attrs

from .read_ahead import read_ahead
from .sqlite_conversation_table import _MARK, _json_label, _Labels


@attrs.frozen
class Cell:
    """One column of the table: its SQL over the counted conversations ``c``, its PostgreSQL
    type (for reading it typed) and what it is as JSON: ``text``, ``instant``, ``integer``,
    ``float``, or ``user`` (an id Python swaps for its label)."""

    sql: str
    type: str
    kind: str


def table_cells(duration_ms: str) -> Tuple[Cell, ...]:
    """The fourteen columns of the conversations raw table in its order (the user's id in place
    of its label), ``duration_ms`` the source's SQL of a conversation's duration in ms. The
    duration in seconds is the quotient correctly rounded, as Python divides; the average
    latency is rounded to 3 decimals halves away from zero, by PostgreSQL, so that every
    format writes the same number."""
    return (
        Cell("c.id::text", "text", "text"),
        Cell("c.bot_id::text", "text", "text"),
        Cell("c.channel", "text", "text"),
        Cell("c.user_id::text", "text", "user"),
        Cell("c.started_at", "timestamptz", "instant"),
        Cell("c.ended_at", "timestamptz", "instant"),
        Cell(f"(({duration_ms}) / 1000.0)::float8", "float8", "float"),
        Cell("c.message_count", "int8", "integer"),
        Cell("c.messages_in", "int8", "integer"),
        Cell("c.messages_out", "int8", "integer"),
        Cell("NULL::int4", "int4", "integer"),  # botserver keeps no error flag per message
        Cell("round(c.avg_latency::numeric, 3)::float8", "float8", "float"),
        Cell("c.status", "text", "text"),
        Cell("c.satisfaction", "int4", "integer"),
    )


#: The JSON export's spelling of an instant (``"2025-01-02T03:04:05Z"``: UTC, whole seconds
#: truncated, as ``convert.utc_text`` writes a Python datetime).
_INSTANT = """'"' || to_char(({0}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '"'"""

#: A float8 as Python's ``repr`` spells it (what the JSON export writes): PostgreSQL's
#: shortest exact digits (``extra_float_digits`` 1, set by the reader), with ``.0`` after a
#: whole number (PostgreSQL writes 12 where Python writes 12.0, and 1e+15 where Python writes
#: 1000000000000000.0); NaN and infinities, which JSON cannot hold, as null. Exponents agree
#: below 1e-4; a fraction at or past 1e15 (no duration or latency of these columns' types
#: reaches it) would not.
_FLOAT = ("CASE WHEN ({0}) = 'NaN' OR abs({0}) = 'Infinity' THEN NULL"
          " WHEN ({0}) = trunc({0}) AND abs({0}) < 1e16 THEN ({0})::bigint::text || '.0' ELSE ({0})::text END")

#: Each kind of cell as its JSON text (SQL NULL where the cell is null).
_JSON = {"text": "to_json({0})::text", "instant": _INSTANT, "integer": "({0})::text", "float": _FLOAT}


def json_sql(sql: str, kind: str) -> str:
    """SQL of the JSON text of a cell of ``kind`` (``null`` for a NULL)."""
    return f"coalesce({_JSON[kind].format(sql)}, 'null')"


def json_row_sql(cells: Sequence[Cell]) -> str:
    """SQL of a row as the JSON export writes it (``["c1", "b1", ...]``, its separators
    included), the user's id between two marks for the label Python puts there."""
    parts = [f"chr(31) || ({cell.sql}) || chr(31)" if cell.kind == "user" else json_sql(cell.sql, cell.kind)
             for cell in cells]
    return "'[' || " + " || ', ' || ".join(parts) + " || ']'"


class BotserverConversationTable:
    """The rows of the conversations raw table, read when first iterated. Iterating gives
    typed rows (lists; instants aware, UTC); ``json_text(n)`` the same rows as the JSON
    export writes them, joined by commas, ``n`` rows a string, spelled by PostgreSQL.
    ``blanked(indexes)`` is the same table with those columns null.

    ``source`` is the BotserverAnalytics reading, ``columns`` the table's cells
    (``table_cells``), ``from_where`` the FROM and WHERE clauses over the counted
    conversations ``c`` of the scope, ``params`` their parameters.
    """

    ORDER = "c.started_at, c.id"

    def __init__(self, source, columns: Sequence[Cell], from_where: str, params: dict,
                 user_label: Callable[[str], str], blank: FrozenSet[int] = frozenset()):
        self.source, self.columns, self.from_where, self.params = source, tuple(columns), from_where, params
        self.user_label, self.blank = user_label, frozenset(blank)

    @property
    def cells(self) -> List[Cell]:
        """The columns as read: a blanked one a typed NULL."""
        return [attrs.evolve(cell, sql=f"NULL::{cell.type}") if index in self.blank else cell
                for index, cell in enumerate(self.columns)]

    def blanked(self, indexes: Iterable[int]) -> "BotserverConversationTable":
        """This table with the columns at ``indexes`` null (whatever botserver's rows hold)."""
        indexes = frozenset(indexes)
        if any(self.columns[index].kind == "user" for index in indexes):
            raise ValueError("the user column is the key to its labels and cannot be blanked")
        return BotserverConversationTable(self.source, self.columns, self.from_where, self.params, self.user_label,
                                          self.blank | indexes)

    def _sql(self, select: str) -> str:
        return f"SELECT {select} {self.from_where} ORDER BY {self.ORDER}"

    def __iter__(self) -> Iterator[list]:
        cells = self.cells
        labels = _Labels(self.user_label)
        sql = self._sql(", ".join(cell.sql for cell in cells))
        # One unpacking and one list display per row; instants come as aware UTC datetimes
        # already (the connection's TimeZone is UTC).
        for rows in self.source.copy_batches(sql, self.params, [cell.type for cell in cells]):
            for (id_, bot, channel, user, started, ended, duration, count, m_in, m_out, errors, latency, status,
                 rating) in rows:
                yield [id_, bot, channel, labels[user], started, ended, duration, count, m_in, m_out, errors,
                       latency, status, rating]

    def json_text(self, rows_per_text: int = 2000) -> Iterator[str]:
        """The rows as the JSON export writes them, joined by commas, ``rows_per_text`` a string.

        A row per conversation makes every Python step per row count, so Python takes none:
        PostgreSQL writes each row's text, the user's id between two marks, and the rows come
        ``rows_per_text`` at a time, joined, the ids swapped for labels (a JSON string, made
        once per user) with one split and one join. The rows are read on a thread of their
        own, a batch ahead, while the text before is spliced and written.
        """
        labels = _Labels(self.user_label, _json_label)
        label_of = labels.__getitem__
        first = operator.itemgetter(0)
        for rows in read_ahead(self.source.text_batches(self._sql(json_row_sql(self.cells)), self.params,
                                                        rows_per_text)):
            parts = ",".join(map(first, rows)).split(_MARK)
            # A user's id is a uuid (never null, never holding the mark): two marks a row.
            if len(parts) != 2 * len(rows) + 1:
                raise ValueError("a conversation's user id could not be told apart in its row's JSON text")
            parts[1::2] = map(label_of, parts[1::2])
            yield "".join(parts)
