"""Writing to the SQLite analytics file: one transaction, all or nothing."""
from __future__ import annotations

import contextlib
import sqlite3
from typing import Iterator


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
