"""The conversation keys of the SQLite analytics file: every (organisation, bot,
channel, status, satisfaction) that a conversation has had, and the conversations
indexed in that order, then by start.

Outcomes, satisfaction and hand-offs count a period's conversations per local day
and key. Grouping by those six values sorts every conversation of the period;
counting each key's stretch of the index for each local day (a seek, then a walk
over what is counted) does not, so a month of conversations costs a pass instead
of a sort. The catalog says which keys there are to count.

Keys are only ever added (by triggers on insert and on update): a key whose
conversations are all gone stays listed and counts nothing, which costs a few
seeks and never a wrong number.
"""
from __future__ import annotations

import sqlite3

from .sqlite_write import write_transaction

TABLE = "conversation_keys"
INDEX = "conversations_keys"
#: A conversation's satisfaction as keyed here: the score, or 0 for none (scores are 1 to 5),
#: as key columns cannot be NULL.
SCORE = "coalesce({}satisfaction, 0)"

_KEY = ("org_id", "bot_id", "channel", "status")


def _add_key_of(row: str) -> str:
    values = ", ".join([f"{row}.{name}" for name in _KEY] + [SCORE.format(f"{row}.")])
    return f"INSERT OR IGNORE INTO {TABLE} ({', '.join(_KEY)}, score) VALUES ({values});"


def _statements() -> list:
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} (org_id TEXT NOT NULL, bot_id TEXT NOT NULL, channel TEXT NOT NULL,"
        f" status TEXT NOT NULL, score INTEGER NOT NULL, PRIMARY KEY ({', '.join(_KEY)}, score)) WITHOUT ROWID",
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON conversations ({', '.join(_KEY)}, {SCORE.format('')}, started_at)",
        f"INSERT OR IGNORE INTO {TABLE} SELECT DISTINCT {', '.join(_KEY)}, {SCORE.format('')} FROM conversations",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_insert AFTER INSERT ON conversations BEGIN {_add_key_of('NEW')} END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_update AFTER UPDATE OF {', '.join(_KEY)}, satisfaction"
        f" ON conversations BEGIN {_add_key_of('NEW')} END",
    ]


def build_conversation_keys(conn: sqlite3.Connection) -> None:
    """Create the catalog (filled from the conversations), its index and its triggers, in one
    transaction of its own (the caller must not hold one)."""
    with write_transaction(conn):
        for statement in _statements():
            conn.execute(statement)


def counts_sql(key_where: str) -> str:
    """SQL of ``(local day, bot, channel, status, satisfaction, conversations)`` for the keys
    matching ``key_where`` (over alias ``k``) in ranges of local days. Parameters: the ranges
    as one JSON array of ``[day, start ms, end ms]``, then those of ``key_where``, then the
    period's start and end ms. One row per key with conversations in the period and range,
    zero counts included (the caller drops them); organisations sharing a key come apart."""
    # The unary + takes the column's affinity away, or SQLite would convert the indexed
    # expression (which has none) before comparing and could not seek on it.
    same_key = (f"c.org_id = k.org_id AND c.bot_id = k.bot_id AND c.channel = k.channel AND c.status = k.status"
                f" AND {SCORE.format('c.')} = +k.score")
    return (f"WITH days (d, lo, hi) AS MATERIALIZED (SELECT json_extract(value, '$[0]'),"
            f" json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?))"
            f" SELECT days.d, k.bot_id, k.channel, k.status, nullif(k.score, 0),"
            f" (SELECT count(*) FROM conversations c INDEXED BY {INDEX} WHERE {same_key}"
            f" AND c.started_at >= days.lo AND c.started_at < days.hi)"
            f" FROM {TABLE} k CROSS JOIN days WHERE {key_where} AND EXISTS (SELECT 1 FROM conversations c"
            f" INDEXED BY {INDEX} WHERE {same_key} AND c.started_at >= ? AND c.started_at < ?)")
