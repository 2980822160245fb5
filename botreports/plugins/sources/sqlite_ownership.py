"""Which ingested rows an organisation may not write into the shared SQLite analytics file.

Asked inside the write transaction, so that no other ingest can slip between the
check and the write. Refusals never depend on what another organisation holds
beyond "this id is not available": a reference to another organisation's
conversation reads exactly like a reference to no conversation at all.
"""
from __future__ import annotations

import sqlite3
from typing import Dict, Iterable, Optional, Sequence, Tuple

from ...core.analytics_schema import TABLES

#: Tables whose rows point at a conversation (the row's ``conversation_id``).
REFERRING = ("messages", "llm_calls")
ID_TAKEN = "id is not available; ids are unique across the service, so use random ones (UUIDs)"
NO_CONVERSATION = ("conversation_id names no conversation of your organisation; send the conversation"
                   " before its messages or in the same batch")
UNKNOWN_CONVERSATION = "conversation_id names no conversation of the row's organisation"


def refused_rows(conn: sqlite3.Connection, org_id: Optional[str],
                 events: Sequence[Tuple[str, dict]]) -> Dict[int, str]:
    """``{position: problem}`` of the ``events`` that must not be written.

    For an organisation (``org_id``): a row whose id a row of another organisation
    already has (writing it would replace that row), and a message or LLM call whose
    conversation is not one of the organisation's, stored or in this batch, or whose
    bot is not that conversation's. For the local system (``org_id`` None, loading
    every organisation's rows): a conversation that is known must be of the row's
    organisation and bot; an unknown one is allowed (files come in any order).
    """
    problems: Dict[int, str] = {}
    if org_id is not None:
        ids: Dict[str, set] = {}
        for table, row in events:
            if "id" in TABLES[table]:
                ids.setdefault(table, set()).add(row["id"])
        taken = {table: _held_by_others(conn, table, org_id, wanted) for table, wanted in ids.items()}
        for position, (table, row) in enumerate(events):
            if row.get("id") in taken.get(table, ()):
                problems[position] = ID_TAKEN
    # The conversation a reference resolves to: the last one of the batch with that id that
    # will be written (it replaces any stored one), else the stored one.
    batch: Dict[str, Tuple[str, str]] = {}
    for position, (table, row) in enumerate(events):
        if table == "conversations" and position not in problems:
            batch[row["id"]] = (row["org_id"], row["bot_id"])
    wanted = {row["conversation_id"] for table, row in events
              if table in REFERRING and row.get("conversation_id") is not None} - set(batch)
    known = {**_conversations(conn, wanted), **batch}
    for position, (table, row) in enumerate(events):
        conversation = row.get("conversation_id") if table in REFERRING else None
        if conversation is None or position in problems:
            continue
        owner = known.get(conversation)
        if owner is None:
            if org_id is not None:
                problems[position] = NO_CONVERSATION
        elif owner[0] != row["org_id"]:
            problems[position] = NO_CONVERSATION if org_id is not None else UNKNOWN_CONVERSATION
        elif owner[1] != row["bot_id"]:
            problems[position] = f"bot_id must be the bot of conversation {conversation}: {owner[1]}"
    return problems


def _chunks(values: Iterable[str], size: int = 500):
    values = sorted(values)
    for start in range(0, len(values), size):  # under SQLite's limit of bound parameters
        yield values[start:start + size]


def _held_by_others(conn: sqlite3.Connection, table: str, org_id: str, values: set) -> set:
    """Which of the ids ``values`` rows of ``table`` of organisations other than ``org_id`` hold."""
    found = set()
    for chunk in _chunks(values):
        found.update(value for (value,) in conn.execute(
            f"SELECT id FROM {table} WHERE org_id != ? AND id IN ({', '.join('?' * len(chunk))})",
            [org_id] + chunk))
    return found


def _conversations(conn: sqlite3.Connection, ids: set) -> Dict[str, Tuple[str, str]]:
    """``{id: (org_id, bot_id)}`` of the stored conversations among ``ids``."""
    found: Dict[str, Tuple[str, str]] = {}
    for chunk in _chunks(ids):
        for id_, org, bot in conn.execute(
                f"SELECT id, org_id, bot_id FROM conversations WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
            found[id_] = (org, bot)
    return found
