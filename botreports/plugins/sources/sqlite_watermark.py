"""The SQLite file's data watermark: per organisation and table, a count of the rows ever
written, replaced or deleted, and the newest instant written, kept by triggers.

``PRAGMA data_version`` would not do: it belongs to one connection and starts again with it.
The counts only grow, so equal watermarks mean no row of the organisation changed between them.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Optional

from .sqlite_write import write_transaction

TABLE = "data_watermark"
#: Each table of the canonical schema with the instant that places its rows in time.
TIME_COLUMNS = {"bots": "created_at", "conversations": "started_at", "messages": "created_at",
                "llm_calls": "created_at", "system_samples": "created_at", "audit_events": "created_at"}

_NEWEST = "newest = coalesce(max(newest, excluded.newest), newest, excluded.newest)"


def _bump(table: str, row: str, instant: str) -> str:
    return (f"INSERT INTO {TABLE} (org_id, table_name, changes, newest)"
            f" VALUES (coalesce({row}.org_id, ''), '{table}', 1, {instant})"
            f" ON CONFLICT (org_id, table_name) DO UPDATE SET changes = changes + 1, {_NEWEST};")


def trigger_sql(table: str, column: str) -> list:
    """The triggers that count every insert, delete and update of ``table``."""
    name = f"{TABLE}_{table}"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name}_insert AFTER INSERT ON {table} BEGIN"
        f" {_bump(table, 'NEW', f'NEW.{column}')} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_delete AFTER DELETE ON {table} BEGIN {_bump(table, 'OLD', 'NULL')} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_update AFTER UPDATE ON {table} BEGIN"
        f" {_bump(table, 'OLD', 'NULL')} {_bump(table, 'NEW', f'NEW.{column}')} END",
    ]


def build_watermark(conn: sqlite3.Connection) -> None:
    """Create the watermark table and its triggers, counting the rows already there (after a bulk
    load, which writes without triggers, the rows loaded are added to the counts: they only grow).
    Runs in one transaction of its own (the caller must not hold one)."""
    with write_transaction(conn):
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (org_id TEXT NOT NULL, table_name TEXT NOT NULL,"
                     f" changes INTEGER NOT NULL, newest INTEGER, PRIMARY KEY (org_id, table_name)) WITHOUT ROWID")
        for table, column in TIME_COLUMNS.items():
            conn.execute(f"INSERT INTO {TABLE} (org_id, table_name, changes, newest)"
                         f" SELECT coalesce(org_id, ''), '{table}', count(*), max({column}) FROM {table}"
                         f" GROUP BY 1 ON CONFLICT (org_id, table_name) DO UPDATE"
                         f" SET changes = changes + excluded.changes, {_NEWEST}")
            for statement in trigger_sql(table, column):
                conn.execute(statement)


def _instant(ms: Optional[int]) -> Optional[str]:
    if ms is None:
        return None
    instant = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_watermark(conn: sqlite3.Connection, org_id: Optional[str]) -> dict:
    """``{"organization", "tables": {table: {"changes", "newest"}}, "newest_event"}`` of one
    organisation (all of them for None). A file written before the watermark existed is counted
    from its rows instead (``"rows"`` in place of ``"changes"``) until it gains the table."""
    kept = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [TABLE]).fetchone()
    tables = {}
    for table, column in TIME_COLUMNS.items():
        if kept:
            where, params = ("WHERE table_name = ? AND org_id = ?", [table, org_id]) if org_id is not None \
                else ("WHERE table_name = ?", [table])
            count, newest = conn.execute(f"SELECT coalesce(sum(changes), 0), max(newest) FROM {TABLE} {where}",
                                         params).fetchone()
            tables[table] = {"changes": count, "newest": _instant(newest)}
        else:
            where, params = ("WHERE org_id = ?", [org_id]) if org_id is not None else ("", [])
            count, newest = conn.execute(f"SELECT count(*), max({column}) FROM {table} {where}", params).fetchone()
            tables[table] = {"rows": count, "newest": _instant(newest)}
    events = [entry["newest"] for name, entry in tables.items() if name != "bots" and entry["newest"]]
    return {"organization": org_id, "tables": tables, "newest_event": max(events) if events else None}
