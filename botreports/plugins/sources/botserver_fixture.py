"""botserver's tables filled from a canonical analytics file, for tests and benchmarks.

Two steps keep the SQLite and PostgreSQL sides comparable number for number:
``uuid_keyed_copy`` rewrites a canonical file (``botreports demo-data``) with
every id turned into a UUID (``uuid5``, so the same id always gives the same
UUID), and ``load_botserver`` copies that file into botserver's tables with
the mapping of docs/data_sources.md. What botserver has no column for
(message intents, per-message error flags, system samples) is not loaded.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from pathlib import Path
from typing import Dict, Optional

from .sqlite import create_database, create_indexes

#: The namespace of every UUID made from a canonical id.
NAMESPACE = uuid.UUID("6b1c1c52-8d0e-5b6c-9f3e-0b0d1e2a3c4d")
#: Where the schema fixture lives in a source checkout.
SCHEMA_SQL = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "botserver_schema.sql"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: Stands in for the encrypted message text: reports never read it.
PLACEHOLDER_TEXT = "enc:v1:synthetic"


def uuid_for(kind: str, value: Optional[str]) -> Optional[str]:
    """The UUID (as text) that canonical id ``value`` of ``kind`` (org, bot, user, ...) maps to."""
    if value is None:
        return None
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{value}"))


def instant(ms: Optional[int]) -> Optional[dt.datetime]:
    """Epoch milliseconds -> an aware UTC datetime, exactly (no float rounding)."""
    return None if ms is None else EPOCH + dt.timedelta(milliseconds=ms)


#: ``INSERT ... SELECT`` of the uuid-keyed copy, per canonical table.
_COPY_SQL = {
    "bots": "SELECT u('bot', id), u('org', org_id), name, created_at FROM src.bots",
    "conversations": (
        "SELECT u('conversation', id), u('org', org_id), u('bot', bot_id), u('user', user_id), channel,"
        " started_at, ended_at, status, satisfaction, message_count FROM src.conversations"),
    "messages": (
        "SELECT u('message', id), u('org', org_id), u('conversation', conversation_id), u('bot', bot_id), channel,"
        " u('user', user_id), direction, created_at, latency_ms, tokens, intent, is_error FROM src.messages"),
    "llm_calls": (
        "SELECT u('llm', id), u('org', org_id), u('bot', bot_id), u('conversation', conversation_id), model,"
        " created_at, input_tokens, output_tokens, latency_ms, success, cost_usd FROM src.llm_calls"),
    "system_samples": (
        "SELECT u('org', org_id), host, created_at, cpu_pct, mem_pct, requests, errors, p95_ms"
        " FROM src.system_samples"),
    "audit_events": (
        "SELECT u('audit', id), u('org', org_id), u('bot', bot_id), created_at, u('user', actor), action,"
        " resource_type, resource_id, result, ip FROM src.audit_events"),
}


def uuid_keyed_copy(source: Path, target: Path) -> Path:
    """Write ``target``: the canonical file ``source`` with every id (and actor) a UUID."""
    target = Path(target)
    target.unlink(missing_ok=True)
    conn = create_database(target)
    try:
        conn.create_function("u", 2, uuid_for, deterministic=True)
        conn.execute("ATTACH DATABASE ? AS src", (str(Path(source).resolve()),))
        conn.execute("BEGIN")
        for table, select in _COPY_SQL.items():
            conn.execute(f"INSERT INTO main.{table} {select}")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE src")
        create_indexes(conn)
    finally:
        conn.close()
    return target


def install_schema(conn, schema: str, sql: Optional[str] = None) -> None:
    """Create schema ``schema`` holding botserver's tables (``SCHEMA_SQL`` by default)."""
    from psycopg import sql as pgsql

    text = sql if sql is not None else SCHEMA_SQL.read_text()
    with conn.cursor() as cur:
        cur.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
        cur.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
        cur.execute(text)
    conn.commit()


def _copy(cur, table: str, columns: str, rows) -> int:
    count = 0
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def load_botserver(conn, schema: str, uuid_file: Path) -> Dict[str, int]:
    """Fill botserver's tables in ``schema`` from a uuid-keyed canonical file; returns row counts.

    ``conn`` is a psycopg connection (committed at the end). Mapping:
    conversations -> ``user_sessions`` plus one ``attendant_sessions`` row each
    (channel, status, satisfaction, end); messages -> ``message_history``;
    llm_calls -> ``llm_metrics``; audit_events -> ``compliance_audit_log``.
    """
    from psycopg import sql as pgsql

    lite = sqlite3.connect(f"file:{Path(uuid_file).resolve()}?mode=ro", uri=True)
    counts: Dict[str, int] = {}
    try:
        with conn.cursor() as cur:
            cur.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
            counts["bots"] = _copy(cur, "bots", "id, org_id, name, is_active, created_at, updated_at", (
                (id_, org, name, True, instant(created), instant(created))
                for id_, org, name, created in lite.execute("SELECT id, org_id, name, created_at FROM bots")))
            sessions = lite.execute(
                "SELECT c.id, c.user_id, c.bot_id, c.started_at, c.message_count,"
                " coalesce(t.tokens, 0), coalesce(t.last_at, c.started_at)"
                " FROM conversations c LEFT JOIN (SELECT conversation_id, sum(tokens) AS tokens,"
                " max(created_at) AS last_at FROM messages GROUP BY conversation_id) t ON t.conversation_id = c.id"
                " ORDER BY c.started_at")
            counts["user_sessions"] = _copy(
                cur, "user_sessions",
                "id, user_id, bot_id, title, message_count, total_tokens, created_at, updated_at, last_activity", (
                    (id_, user, bot, "Conversation", count, tokens, instant(started), instant(last), instant(last))
                    for id_, user, bot, started, count, tokens, last in sessions))
            attendant = lite.execute(
                "SELECT id, org_id, bot_id, user_id, channel, started_at, ended_at, status, satisfaction"
                " FROM conversations")
            counts["attendant_sessions"] = _copy(
                cur, "attendant_sessions",
                "id, org_id, bot_id, session_id, session_number, channel, customer_id, status, started_at,"
                " ended_at, handle_time_seconds, satisfaction_rating, transfer_count, created_at", (
                    (uuid_for("attendant", id_), org, bot, id_, id_[:50], channel, user, status, instant(started),
                     instant(ended), None if ended is None else (ended - started) // 1000, rating,
                     1 if status == "handed_off" else 0, instant(started))
                    for id_, org, bot, user, channel, started, ended, status, rating in attendant))
            messages = lite.execute(
                "SELECT id, conversation_id, user_id, direction, tokens, latency_ms, created_at,"
                " row_number() OVER (PARTITION BY conversation_id ORDER BY created_at, rowid)"
                " FROM messages")
            counts["message_history"] = _copy(
                cur, "message_history",
                "id, session_id, user_id, role, content_encrypted, message_type, token_count, processing_time_ms,"
                " message_index, created_at", (
                    (id_, conv, user, 1 if direction == "in" else 2, PLACEHOLDER_TEXT, 0, tokens, latency,
                     index, instant(created))
                    for id_, conv, user, direction, tokens, latency, created, index in messages))
            calls = lite.execute(
                "SELECT id, conversation_id, bot_id, model, input_tokens, output_tokens, latency_ms, success,"
                " cost_usd, created_at FROM llm_calls")
            counts["llm_metrics"] = _copy(
                cur, "llm_metrics",
                "id, request_id, session_id, bot_id, model, input_tokens, output_tokens, total_tokens, latency_ms,"
                " success, error, estimated_cost, timestamp", (
                    (id_, id_, conv, bot, model, tin or 0, tout or 0, (tin or 0) + (tout or 0), latency or 0,
                     bool(success), None if success else "request failed", cost or 0.0, instant(created))
                    for id_, conv, bot, model, tin, tout, latency, success, cost, created in calls))
            events = lite.execute(
                "SELECT id, org_id, bot_id, actor, resource_type, resource_id, action, result, ip, created_at"
                " FROM audit_events")
            counts["compliance_audit_log"] = _copy(
                cur, "compliance_audit_log",
                "id, org_id, bot_id, event_type, user_id, resource_type, resource_id, action, result, ip_address,"
                " created_at", (
                    (id_, org, bot, action.split(".")[0], actor, rtype, rid, action, result, ip, instant(created))
                    for id_, org, bot, actor, rtype, rid, action, result, ip, created in events))
            cur.execute("ANALYZE")
        conn.commit()
    finally:
        lite.close()
    return counts
