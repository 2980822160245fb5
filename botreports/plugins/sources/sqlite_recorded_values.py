"""What the SQLite analytics file records at all: per measure of
``core.datasource.MEASURES`` that a column holds, how many rows hold a value,
kept by triggers, so ``unrecorded()`` reads eight numbers instead of searching
millions of rows for a value that is nowhere (a search that finds nothing reads
everything). The two measures that are whole tables are asked of the tables
themselves: a table's first row is found at once.
"""
from __future__ import annotations

import sqlite3
from typing import FrozenSet, List

from .sqlite_write import write_transaction

TABLE = "recorded_values"

#: Measure -> (table, condition of a row holding a value over row ``{t}``, the columns it reads).
COUNTED = {
    "messages.latency_ms": ("messages", "({t}.direction = 'out' AND {t}.latency_ms IS NOT NULL)",
                            ("direction", "latency_ms")),
    "messages.tokens": ("messages", "({t}.tokens IS NOT NULL)", ("tokens",)),
    "messages.is_error": ("messages", "({t}.is_error IS NOT NULL)", ("is_error",)),
    "messages.intent": ("messages", "({t}.intent IS NOT NULL)", ("intent",)),
    "conversations.satisfaction": ("conversations", "({t}.satisfaction IS NOT NULL)", ("satisfaction",)),
    "conversations.ended_at": ("conversations", "({t}.ended_at IS NOT NULL)", ("ended_at",)),
}
#: Measures that are a whole table: recorded when the table has a row.
TABLE_MEASURES = {"llm_calls": "llm_calls", "system_samples": "system_samples"}


def _trigger_sql(measure: str) -> List[str]:
    table, condition, columns = COUNTED[measure]
    name = f"{TABLE}_{measure.replace('.', '_')}"
    new, old = condition.format(t="NEW"), condition.format(t="OLD")
    change = f"UPDATE {TABLE} SET n = n + ({{0}}) WHERE measure = '{measure}';"
    # A row replaced by ingest (INSERT OR REPLACE) leaves through the delete trigger first
    # (the writer turns recursive triggers on), so each row counts once.
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name}_insert AFTER INSERT ON {table} WHEN {new}"
        f" BEGIN {change.format('1')} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_delete AFTER DELETE ON {table} WHEN {old}"
        f" BEGIN {change.format('-1')} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_update AFTER UPDATE OF {', '.join(columns)} ON {table}"
        f" WHEN {new} IS NOT {old} BEGIN {change.format(f'{new} - {old}')} END",
    ]


def build_recorded_values(conn: sqlite3.Connection) -> None:
    """(Re)count the rows holding each measure's value and install the triggers that keep the
    counts current. One pass over each table; one transaction of its own."""
    with write_transaction(conn):
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (measure TEXT PRIMARY KEY, n INTEGER NOT NULL)"
                     f" WITHOUT ROWID")
        for table in dict.fromkeys(table for table, _, _ in COUNTED.values()):
            measures = [m for m, (t, _, _) in COUNTED.items() if t == table]
            counts = conn.execute(
                f"SELECT {', '.join(f'coalesce(sum({COUNTED[m][1].format(t=table)}), 0)' for m in measures)}"
                f" FROM {table}").fetchone()
            conn.executemany(f"INSERT OR REPLACE INTO {TABLE} (measure, n) VALUES (?, ?)", zip(measures, counts))
        for measure in COUNTED:
            for statement in _trigger_sql(measure):
                conn.execute(statement)


def unrecorded_in(conn: sqlite3.Connection, counted: bool) -> FrozenSet[str]:
    """The measures no row of the file holds a value for: from the counts when the file has
    them (``counted``), else by searching the tables (files written before the counts existed)."""
    missing = set()
    if counted:
        found = dict(conn.execute(f"SELECT measure, n FROM {TABLE}").fetchall())
        missing.update(measure for measure in COUNTED if found.get(measure, 0) <= 0)
    else:
        probes = [f"EXISTS (SELECT 1 FROM {table} WHERE {condition.format(t=table)})"
                  for table, condition, _ in COUNTED.values()]
        present = conn.execute(f"SELECT {', '.join(probes)}").fetchone()
        missing.update(measure for measure, there in zip(COUNTED, present) if not there)
    probes = [f"EXISTS (SELECT 1 FROM {table})" for table in TABLE_MEASURES.values()]
    present = conn.execute(f"SELECT {', '.join(probes)}").fetchone()
    missing.update(measure for measure, there in zip(TABLE_MEASURES, present) if not there)
    return frozenset(missing)
