"""Shaping and writing the SQLite analytics file: which tables it holds, and one write
transaction, all or nothing."""
from __future__ import annotations

import contextlib
import sqlite3
from typing import Iterator


def has_tables(conn: sqlite3.Connection, *names: str) -> bool:
    """Whether the file holds every table ``names`` (files written before some existed do not)."""
    marks = ", ".join("?" for _ in names)
    found = conn.execute(f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
                         names).fetchone()[0]
    return found == len(set(names))


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken at once (``BEGIN IMMEDIATE``, so two writers never deadlock
    upgrading a read lock): committed when the block ends, rolled back if it raises. The
    connection must be in autocommit mode (``isolation_level=None``) and hold no transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
