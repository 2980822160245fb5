"""The conversations raw-data table read from the SQLite analytics file: its rows in
the table's column order, typed (datetimes) for CSV and XLSX, or as JSON text that
SQLite writes itself for the JSON export."""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from .read_ahead import read_ahead

#: The JSON export's spelling of a UTC instant (``2025-01-02T03:04:05Z``) from epoch ms,
#: whole seconds floored (SQLite's integer division truncates towards zero).
_JSON_INSTANT = "strftime('%Y-%m-%dT%H:%M:%SZ', {0} / 1000 - ({0} % 1000 < 0), 'unixepoch')"


class _Labels(dict):
    """User id -> label, asked of ``user_label`` once per user (users come back)."""

    def __init__(self, user_label: Callable[[str], str], spell: Callable = lambda label: label):
        super().__init__({None: spell(None)})
        self.user_label, self.spell = user_label, spell

    def __missing__(self, user):
        label = self[user] = self.spell(self.user_label(user))
        return label


def json_cells_sql(columns: Sequence[str]) -> Tuple[str, str]:
    """``(head, tail)``: SQL of a row's JSON array around the user's cell, from the table's
    fourteen column expressions (instants as epoch ms): ``["c1","bot-1","web",`` and
    ``,"2025-01-02T03:04:05Z",...]``, so that head, label and tail are the row. Each cell is a
    string, a number or null, so only the array's own bracket is trimmed."""
    started, ended = columns[4], columns[5]
    instants = [_JSON_INSTANT.format(started), f"CASE WHEN {ended} IS NOT NULL THEN {_JSON_INSTANT.format(ended)} END"]
    return (f"rtrim(json_array({', '.join(columns[:3])}), ']') || ','",
            f"',' || ltrim(json_array({', '.join(instants + list(columns[6:]))}), '[')")


def _json_label(label) -> str:
    """A label as a JSON string (as the JSON export writes text: non-ASCII kept), or null."""
    return "null" if label is None else _encode_string(str(label))


_encode_string = json.encoder.encode_basestring


#: Marks the user's id in a row read as JSON text: a control character, which JSON never
#: leaves bare, so it can only be a mark (or inside a user's id, which the count check catches).
_MARK = "\x1f"


class ConversationTableRows:
    """The rows of the conversations raw table, read when first iterated, on the connection
    of the thread that reads. Iterating gives typed rows (lists; datetimes aware, UTC).
    ``json_text(n)`` gives the same rows as JSON arrays joined by commas, about ``n`` rows a
    string, written by SQLite.

    ``columns`` are the SQL expressions of the table's fourteen columns in order over alias
    ``c`` (the user's id in place of its label; the two instants as epoch ms; the average
    latency already rounded), ``from_where`` the FROM and WHERE clauses of the scope but its
    period, and ``span`` the period's start and end in epoch ms (rows come in the order of
    ``c.started_at, c.id``).
    ``stored_json`` names the columns that hold each row's two JSON arrays ready
    (``json_cells_sql``, kept by the table itself), if the table has them.
    """

    ORDER = "c.started_at, c.id"
    #: Rows of a stretch of the period (whose start and end ms follow the scope's parameters).
    WITHIN = "AND c.started_at >= ? AND c.started_at < ?"

    def __init__(self, source, columns: Sequence[str], from_where: str, params: list,
                 user_label: Callable[[str], str], span: Tuple[int, int],
                 stored_json: Optional[Tuple[str, str]] = None):
        self.source, self.columns, self.from_where, self.params = source, list(columns), from_where, params
        self.user_label, self.span, self.stored_json = user_label, span, stored_json

    def __iter__(self) -> Iterator[list]:
        utc = dt.timezone.utc
        from_seconds = dt.datetime.fromtimestamp
        labels = _Labels(self.user_label)
        columns = list(self.columns)
        columns[4:6] = [f"{columns[4]} / 1000.0", f"{columns[5]} / 1000.0"]
        # One unpacking and one list display per row: the cheapest way Python has to reshape it.
        for (id_, bot, channel, user, started, ended, duration, count, m_in, m_out, errors, latency, status,
             satisfaction) in self.source.conn.execute(
                f"SELECT {', '.join(columns)} {self.from_where} {self.WITHIN} ORDER BY {self.ORDER}",
                self.params + list(self.span)):
            yield [id_, bot, channel, labels[user], from_seconds(started, utc),
                   None if ended is None else from_seconds(ended, utc), duration, count, m_in, m_out, errors,
                   latency, status, satisfaction]

    def json_text(self, rows_per_text: int = 2000) -> Iterator[str]:
        """The rows as JSON arrays (instants as the JSON export spells them), joined by commas,
        about ``rows_per_text`` rows a string.

        A row per conversation makes every Python step per row count, so Python takes no step
        per row: SQLite writes (or has kept) each row's cells before and after the user's and joins a
        stretch of the period's rows into one string, the user's id between two marks; Python
        swaps the ids for labels (a JSON string, made once per user) with one split and one
        join. The stretches are read on a thread of their own, one ahead, while the text before
        is spliced and written: the database works without the interpreter lock meanwhile.
        """
        labels = _Labels(self.user_label, _json_label)
        label_of = labels.__getitem__
        for lo, hi, count, text in read_ahead(self._stretches(rows_per_text)):
            parts = text.split(_MARK) if text is not None else []
            if len(parts) == 2 * count + 1:
                parts[1::2] = map(label_of, parts[1::2])
                yield "".join(parts)
            else:  # a user's id holds the mark itself: this stretch row by row
                yield ",".join(head + labels[user] + tail for head, user, tail in self._json_rows(lo, hi))

    def _cells(self) -> Tuple[str, str, str]:
        head, tail = self.stored_json or json_cells_sql(self.columns)
        return head, self.columns[3], tail

    def _json_rows(self, lo: int, hi: int) -> List[tuple]:
        head, user, tail = self._cells()
        return self.source.conn.execute(
            f"SELECT {head}, {user}, {tail} {self.from_where} {self.WITHIN}"
            f" ORDER BY {self.ORDER}", self.params + [lo, hi]).fetchall()

    def _stretches(self, rows: int) -> Iterator[Tuple[int, int, int, str]]:
        """``(start ms, end ms, rows, text)`` of successive stretches of the period, each read in
        one statement of one read transaction (the whole table is one snapshot of the file).
        A stretch starts at 15 minutes and grows or shrinks to hold about ``rows`` rows."""
        head, user, tail = self._cells()
        sql = (f"SELECT count(*), group_concat(row, ',') FROM (SELECT {head} || char(31) || {user} || char(31)"
               f" || {tail} AS row {self.from_where} {self.WITHIN}"
               f" ORDER BY {self.ORDER})")
        conn = self.source.connect()
        try:
            conn.execute("BEGIN")
            lo, end = self.span
            width = 900_000
            while lo < end:
                hi = min(end, lo + width)
                count, text = conn.execute(sql, self.params + [lo, hi]).fetchone()
                if count:
                    yield lo, hi, count, text
                if count > 2 * rows:
                    width = max(1_000, width // 2)
                elif count < rows // 2:
                    width = min(86_400_000, width * 2)
                lo = hi
        finally:
            conn.close()
