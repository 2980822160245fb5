"""The conversations raw-data table read from the SQLite analytics file: its rows in
the table's column order, typed (datetimes) for CSV and XLSX, or ready for JSON
(instants already spelled as text) for the JSON export."""
from __future__ import annotations

import datetime as dt
import functools
from typing import Callable, Iterator

#: Where each row's two instants go in the SELECT: ``{started}`` and ``{ended}``.
_TYPED_INSTANTS = {"started": "c.started_at / 1000.0", "ended": "c.ended_at / 1000.0"}
#: Whole UTC seconds, floored (SQLite's integer division truncates towards zero).
_SECOND_INSTANTS = {"started": "(c.started_at / 1000 - (c.started_at % 1000 < 0))",
                    "ended": "(c.ended_at / 1000 - (c.ended_at % 1000 < 0))"}
_UNIX_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


class _Labels(dict):
    """User id -> label, asked of ``user_label`` once per user (users come back)."""

    def __init__(self, user_label: Callable[[str], str]):
        super().__init__({None: None})
        self.user_label = user_label

    def __missing__(self, user):
        label = self[user] = self.user_label(user)
        return label


class _Dates(dict):
    """Days since the Unix epoch -> ISO date (a period's instants fall on a few hundred days)."""

    def __missing__(self, day: int) -> str:
        text = self[day] = dt.date.fromordinal(_UNIX_EPOCH_ORDINAL + day).isoformat()
        return text


def _placed(select: str, instants: dict) -> str:
    """``select`` with its instants' expressions in place (a plain replace: the WHERE clause is
    the source's own text and may hold braces of its own)."""
    for name, expression in instants.items():
        select = select.replace("{" + name + "}", expression)
    return select


@functools.lru_cache(maxsize=1)
def _clock() -> tuple:
    """``"THH:MM:SSZ"`` for each second of a day, built once when first needed."""
    return tuple(f"T{s // 3600:02}:{s // 60 % 60:02}:{s % 60:02}Z" for s in range(86400))


class ConversationTableRows:
    """The rows of the conversations raw table, read when first iterated, on the connection
    of the thread that reads. Iterating gives typed rows (lists; datetimes aware, UTC).
    ``json_rows()`` gives the same rows with each instant spelled as the JSON export spells
    a UTC datetime (``2025-01-02T03:04:05Z``): a table with a row per conversation formats
    two instants a row, which costs less from whole seconds than from datetimes.

    ``select`` is the SQL with ``{started}`` and ``{ended}`` where the instants go, the
    columns in the table's order with the user's id in place of its label.
    """

    def __init__(self, source, select: str, params: list, user_label: Callable[[str], str]):
        self.source, self.select, self.params, self.user_label = source, select, params, user_label

    def __iter__(self) -> Iterator[list]:
        utc = dt.timezone.utc
        from_seconds = dt.datetime.fromtimestamp
        labels = _Labels(self.user_label)
        # One unpacking and one list display per row: the cheapest way Python has to reshape it.
        for (id_, bot, channel, user, started, ended, duration, count, m_in, m_out, errors, latency, status,
             satisfaction) in self.source.conn.execute(_placed(self.select, _TYPED_INSTANTS), self.params):
            yield [id_, bot, channel, labels[user], from_seconds(started, utc),
                   None if ended is None else from_seconds(ended, utc), duration, count, m_in, m_out, errors,
                   None if latency is None else round(latency, 3), status, satisfaction]

    def json_rows(self) -> Iterator[list]:
        """The rows with the instants as ISO text in UTC, whole seconds (what the JSON export writes)."""
        labels, dates, clock = _Labels(self.user_label), _Dates(), _clock()
        for (id_, bot, channel, user, started, ended, duration, count, m_in, m_out, errors, latency, status,
             satisfaction) in self.source.conn.execute(_placed(self.select, _SECOND_INSTANTS),
                                                          self.params):
            yield [id_, bot, channel, labels[user], dates[started // 86400] + clock[started % 86400],
                   None if ended is None else dates[ended // 86400] + clock[ended % 86400], duration, count,
                   m_in, m_out, errors, None if latency is None else round(latency, 3), status, satisfaction]
