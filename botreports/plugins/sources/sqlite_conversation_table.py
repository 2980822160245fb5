"""The conversations raw-data table read from the SQLite analytics file: its rows in
the table's column order, typed (datetimes) for CSV and XLSX, or as JSON text that
SQLite writes itself for the JSON export."""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable, Iterator, Optional, Sequence, Tuple

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


class ConversationTableRows:
    """The rows of the conversations raw table, read when first iterated, on the connection
    of the thread that reads. Iterating gives typed rows (lists; datetimes aware, UTC).
    ``json_text(n)`` gives the same rows as JSON arrays, ``n`` rows a string joined by
    commas: SQLite encodes each row, so a table with a row per conversation costs one
    string splice a row in Python instead of a datetime, a list and an encoding.

    ``columns`` are the SQL expressions of the table's fourteen columns in order (the
    user's id in place of its label; the two instants as epoch ms; the average latency
    already rounded), and ``rest`` the FROM, WHERE and ORDER BY clauses. ``stored_json``
    names the columns that hold each row's two JSON arrays ready (``json_cells_sql``, kept
    by the table itself), if the table has them.
    """

    def __init__(self, source, columns: Sequence[str], rest: str, params: list, user_label: Callable[[str], str],
                 stored_json: Optional[Tuple[str, str]] = None):
        self.source, self.columns, self.rest, self.params = source, list(columns), rest, params
        self.user_label, self.stored_json = user_label, stored_json

    def __iter__(self) -> Iterator[list]:
        utc = dt.timezone.utc
        from_seconds = dt.datetime.fromtimestamp
        labels = _Labels(self.user_label)
        columns = list(self.columns)
        columns[4:6] = [f"{columns[4]} / 1000.0", f"{columns[5]} / 1000.0"]
        # One unpacking and one list display per row: the cheapest way Python has to reshape it.
        for (id_, bot, channel, user, started, ended, duration, count, m_in, m_out, errors, latency, status,
             satisfaction) in self.source.conn.execute(f"SELECT {', '.join(columns)} {self.rest}", self.params):
            yield [id_, bot, channel, labels[user], from_seconds(started, utc),
                   None if ended is None else from_seconds(ended, utc), duration, count, m_in, m_out, errors,
                   latency, status, satisfaction]

    def json_text(self, rows_per_text: int = 500) -> Iterator[str]:
        """The rows as JSON arrays (instants as the JSON export spells them), ``rows_per_text``
        rows a string, joined by commas. SQLite writes (or has kept) the three cells before the
        user and the ten after it; Python splices in the user's label (a JSON string, made once
        per user)."""
        head, tail = self.stored_json or json_cells_sql(self.columns)
        sql = f"SELECT {head}, {self.columns[3]}, {tail} {self.rest}"
        labels = _Labels(self.user_label, _json_label)
        cursor = self.source.conn.execute(sql, self.params)
        while True:
            rows = cursor.fetchmany(rows_per_text)
            if not rows:
                return
            yield ",".join([head + labels[user] + tail for head, user, tail in rows])
