"""The metadata store in an SQLite file: the embedded default, and the reference implementation
of the store contract (``botreports.core.store`` holds its code and migrations)."""
from ..store import MIGRATIONS, Store as SQLiteStore

__all__ = ["SQLiteStore", "MIGRATIONS"]
