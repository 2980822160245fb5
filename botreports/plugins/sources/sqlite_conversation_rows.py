"""The conversation raw rows kept ready in the SQLite analytics file: one row per
conversation, in start order, with what its messages add up to, so that the
raw table of a period is one range of one table instead of a lookup of each
conversation's message counts.

Built in bulk after a load (``build_conversation_rows``), then kept current by
triggers on conversations and messages. The triggers recompute a
conversation's counts from its messages (a short walk of
``messages_conversation``) rather than reading another rollup, so they do not
depend on the order in which SQLite fires triggers.
"""
from __future__ import annotations

import sqlite3

from .sqlite_conversation_table import json_cells_sql
from .sqlite_write import drop_triggers, has_tables, triggers_current, write_transaction

#: The table's name; files written before it existed read the raw rows the slower way.
TABLE = "rollup_conversation_rows"

_CONVERSATION = ("org_id", "bot_id", "channel", "user_id", "ended_at", "message_count", "status",
                 "satisfaction")
#: What a conversation's messages add up to (0 for a conversation without messages): messages in
#: and out, errored replies and the latencies of replies (bot replies only, as the error rates and
#: reply latency sections count them).
_COUNTS = ("messages_in", "messages_out", "errors", "latency_n", "latency_sum")
COLUMNS = ("started_at", "id") + _CONVERSATION + _COUNTS


def _counts_of(conversation: str) -> str:
    """A one-row SELECT of the counts of the messages of ``conversation`` (an SQL expression)."""
    return ("SELECT coalesce(sum(m.direction = 'in'), 0), coalesce(sum(m.direction = 'out'), 0),"
            f" coalesce(sum({REPLY % 'is_error'}), 0), count({REPLY % 'latency_ms'}),"
            f" coalesce(sum({REPLY % 'latency_ms'}), 0) FROM messages m WHERE m.conversation_id = {conversation}")


#: A message's column when the message is a bot reply (NULL otherwise), over alias ``m``.
REPLY = "CASE WHEN m.direction = 'out' THEN m.%s END"


def _insert_of(conversation: str) -> str:
    """The statement adding the row of the conversation whose id is ``conversation``."""
    columns = ", ".join(f"c.{name}" for name in ("started_at", "id") + _CONVERSATION)
    return (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT {columns}, k.*"
            f" FROM conversations c, ({_counts_of(conversation)}) k WHERE c.id = {conversation};")


def _refresh_of(conversation: str) -> str:
    """The statement recounting the messages of the row of ``conversation`` (if it has one)."""
    return (f"UPDATE {TABLE} SET ({', '.join(_COUNTS)}) = ({_counts_of(conversation)})"
            f" WHERE id = {conversation};")


def _drop_of(conversation: str) -> str:
    return f"DELETE FROM {TABLE} WHERE id = {conversation};"


def table_columns(alias: str = "") -> list:
    """The fourteen cells of the conversations raw table, in its order, as SQL over this table
    (the user's id in place of its label, instants as epoch ms, the average latency rounded)."""
    a = alias
    return [f"{a}id", f"{a}bot_id", f"{a}channel", f"{a}user_id", f"{a}started_at", f"{a}ended_at",
            f"({a}ended_at - {a}started_at) / 1000.0", f"{a}message_count", f"{a}messages_in",
            f"{a}messages_out", f"{a}errors",
            f"round(CASE WHEN {a}latency_n > 0 THEN {a}latency_sum * 1.0 / {a}latency_n END, 3)",
            f"{a}status", f"{a}satisfaction"]


#: Each row's raw-table cells as JSON, kept by SQLite whenever the row changes, so that the
#: JSON export of a month of conversations reads text instead of encoding every cell.
JSON_COLUMNS = ("json_head", "json_tail")


def _schema() -> list:
    columns = ", ".join(f"{name} NOT NULL" if name in ("started_at", "id") else name for name in COLUMNS)
    stored = ", ".join(f"{name} TEXT GENERATED ALWAYS AS ({sql}) STORED"
                       for name, sql in zip(JSON_COLUMNS, json_cells_sql(table_columns())))
    return [
        f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns}, {stored}, PRIMARY KEY (started_at, id)) WITHOUT ROWID",
        # The triggers find a conversation's row by its id alone.
        f"CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_id ON {TABLE} (id)",
    ]


def _triggers() -> list:
    return [
        # Dropping first keeps an insert right even where a replaced row skipped its delete trigger.
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_conversation_insert AFTER INSERT ON conversations"
        f" BEGIN {_drop_of('NEW.id')} {_insert_of('NEW.id')} END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_conversation_delete AFTER DELETE ON conversations"
        f" BEGIN {_drop_of('OLD.id')} END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_conversation_update AFTER UPDATE ON conversations"
        f" BEGIN {_drop_of('OLD.id')} {_drop_of('NEW.id')} {_insert_of('NEW.id')} END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_message_insert AFTER INSERT ON messages"
        f" BEGIN {_refresh_of('NEW.conversation_id')} END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_message_delete AFTER DELETE ON messages"
        f" BEGIN {_refresh_of('OLD.conversation_id')} END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE}_message_update AFTER UPDATE ON messages"
        f" BEGIN {_refresh_of('OLD.conversation_id')} {_refresh_of('NEW.conversation_id')} END",
    ]


def conversation_rows_current(conn: sqlite3.Connection) -> bool:
    """Whether the file's table (if it has one) is kept by today's triggers: one whose triggers
    counted an incoming message's error flag as an errored reply is read the slower way until
    the file's next write rebuilds it."""
    return not has_tables(conn, TABLE) or triggers_current(conn, _triggers())


def build_conversation_rows(conn: sqlite3.Connection) -> None:
    """(Re)build the table from the base tables and install its triggers, in one transaction
    of its own (the caller must not hold one). Reads ``rollup_conversation_messages`` when the
    file has it rather than grouping every message again."""
    with write_transaction(conn):
        for statement in _schema():
            conn.execute(statement)
        drop_triggers(conn, _triggers())  # those of an earlier definition, if any
        conn.execute(f"DELETE FROM {TABLE}")
        columns = ", ".join(f"c.{name}" for name in ("started_at", "id") + _CONVERSATION)
        if has_tables(conn, "rollup_conversation_messages"):
            per_conversation = "rollup_conversation_messages"
        else:
            per_conversation = (
                "(SELECT m.conversation_id, sum(m.direction = 'in') AS messages_in,"
                f" sum(m.direction = 'out') AS messages_out, sum({REPLY % 'is_error'}) AS errors,"
                f" count({REPLY % 'latency_ms'}) AS latency_n, sum({REPLY % 'latency_ms'}) AS latency_sum"
                " FROM messages m GROUP BY m.conversation_id)")
        counts = ", ".join(f"coalesce(r.{name}, 0)" for name in _COUNTS)
        conn.execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT {columns}, {counts}"
                     f" FROM conversations c LEFT JOIN {per_conversation} r ON r.conversation_id = c.id")
        for statement in _triggers():
            conn.execute(statement)
