"""Telling "the store cannot write now" (a full disk or database, a read-only filesystem) from
other errors, so the service answers 503 with ``Retry-After`` and the queue waits quietly
instead of turning each attempt into a 500 or a traceback."""
from __future__ import annotations

import errno
from typing import Optional

#: SQLite primary result codes meaning the file cannot take a write: SQLITE_READONLY,
#: SQLITE_IOERR (a write the OS refused, ENOSPC among them) and SQLITE_FULL.
SQLITE_CODES = {8: "the database is read-only", 10: "a disk write failed", 13: "the database or disk is full"}
#: The same, for drivers that only give a message.
SQLITE_MESSAGES = {"database or disk is full": "the database or disk is full",
                   "disk i/o error": "a disk write failed",
                   "attempt to write a readonly database": "the database is read-only"}
OS_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
             errno.EROFS: "the filesystem is read-only"}
#: PostgreSQL SQLSTATEs: class 53 (insufficient resources: disk full, out of memory) and a
#: read-only transaction (a standby, or a database switched to read-only).
PG_STATES = {"53100": "the database's disk is full", "53200": "the database is out of memory",
             "53000": "the database lacks resources", "25006": "the database is read-only"}


def storage_fault(exc: Optional[BaseException]) -> Optional[str]:
    """A short reason when ``exc`` (or an error it was raised from) means the store cannot
    write now and will likely recover when space is freed; None for any other error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in SQLITE_CODES:
            return SQLITE_CODES[code & 0xFF]
        state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if isinstance(state, str) and state in PG_STATES:
            return PG_STATES[state]
        if isinstance(exc, OSError) and exc.errno in OS_ERRNOS:
            return OS_ERRNOS[exc.errno]
        if type(exc).__module__ == "sqlite3" or type(exc).__name__ in ("OperationalError", "DatabaseError"):
            text = str(exc).lower()
            for needle, reason in SQLITE_MESSAGES.items():
                if needle in text:
                    return reason
        exc = exc.__cause__ or exc.__context__
    return None
