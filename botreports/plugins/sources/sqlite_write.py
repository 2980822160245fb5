"""Shaping and writing the SQLite analytics file: which tables it holds, and one write
transaction, all or nothing."""
from __future__ import annotations

import contextlib
import sqlite3
from typing import Iterable, Iterator


def has_tables(conn: sqlite3.Connection, *names: str) -> bool:
    """Whether the file holds every table ``names`` (files written before some existed do not)."""
    marks = ", ".join("?" for _ in names)
    found = conn.execute(f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
                         names).fetchone()[0]
    return found == len(set(names))


def triggers_current(conn: sqlite3.Connection, statements: Iterable[str]) -> bool:
    """Whether no trigger of ``statements`` (``CREATE TRIGGER IF NOT EXISTS name ...``) is in the
    file with another definition than written there: a file whose triggers were written by an
    earlier definition (counting other rows) is not current, and its structure is rebuilt."""
    wanted = {}
    for statement in statements:
        words = statement.split(None, 6)
        if words[:5] == ["CREATE", "TRIGGER", "IF", "NOT", "EXISTS"]:
            # SQLite keeps the statement without its IF NOT EXISTS.
            wanted[words[5]] = statement.replace("IF NOT EXISTS ", "", 1)
    if not wanted:
        return True
    marks = ", ".join("?" for _ in wanted)
    found = dict(conn.execute(f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({marks})",
                              list(wanted)).fetchall())
    return all(wanted[name] == sql for name, sql in found.items())


def drop_triggers(conn: sqlite3.Connection, statements: Iterable[str]) -> None:
    """Drop the triggers ``statements`` create, whatever their present definition (inside the
    caller's transaction), so that creating them again installs the current one."""
    for statement in statements:
        words = statement.split(None, 6)
        if words[:5] == ["CREATE", "TRIGGER", "IF", "NOT", "EXISTS"]:
            conn.execute(f"DROP TRIGGER IF EXISTS {words[5]}")


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
