"""Where the metadata lives: one store contract, two implementations. ``open_store`` picks the
SQLite file of the data directory (the embedded default) or a PostgreSQL database (many hosts)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from .sqlite import SQLiteStore

#: URL schemes of the PostgreSQL store.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(location: Optional[Union[str, Path]], data_dir: Path):
    """The store at ``location``: ``postgresql://...``, ``sqlite:///path``, a file path, or None for
    ``<data_dir>/botreports.db``. Both answer the same methods (those of ``SQLiteStore``)."""
    text = str(location) if location is not None else ""
    if text.startswith(POSTGRES_SCHEMES):
        from .postgresql import PostgresStore

        return PostgresStore(text)
    if text.startswith("sqlite://"):
        return SQLiteStore(Path(text[len("sqlite://"):]))
    if "://" in text:
        raise ValueError(f"BOTREPORTS_STORE must be postgresql://..., sqlite:///path or a file path, not {text!r}")
    return SQLiteStore(Path(text) if text else Path(data_dir) / "botreports.db")


__all__ = ["open_store", "SQLiteStore", "POSTGRES_SCHEMES"]
