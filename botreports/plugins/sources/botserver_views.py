"""botserver's tables presented as the canonical analytics tables (DESIGN §5).

Each canonical table is an SQL subquery over botserver's own tables; the
source's queries select from these subqueries and PostgreSQL pushes the scope
filters down into them, so the aggregation runs on botserver's rows and
indexes without a copy. The mapping is documented in docs/data_sources.md.
"""
from __future__ import annotations

import uuid
from typing import Dict, List, Optional

from ...core.models import Scope

#: The latest attendant session of each user session: where botserver keeps a
#: conversation's channel, outcome, rating and end.
ATTENDANT = (
    "(SELECT DISTINCT ON (session_id) session_id, channel, status, satisfaction_rating, ended_at"
    " FROM attendant_sessions WHERE session_id IS NOT NULL ORDER BY session_id, started_at DESC, id)")

#: botserver's attendant states and ours: ours pass through, a session a human still holds is
#: handed off, a closed one resolved, one the customer left abandoned.
STATUS = (
    "CASE WHEN a.status IN ('resolved', 'abandoned', 'handed_off', 'open') THEN a.status"
    " WHEN a.status IN ('waiting', 'assigned', 'active', 'transferred', 'in_progress') THEN 'handed_off'"
    " WHEN a.status IN ('ended', 'closed', 'completed', 'done') THEN 'resolved'"
    " WHEN a.status IN ('timeout', 'missed', 'cancelled', 'left') THEN 'abandoned'"
    " WHEN a.ended_at IS NOT NULL THEN 'resolved' ELSE 'open' END")

CHANNEL = "coalesce(a.channel, s.context_data->>'channel', 'unknown')"

CONVERSATIONS = (
    "(SELECT s.id, b.org_id, s.bot_id, s.user_id, " + CHANNEL + " AS channel, s.created_at AS started_at,"
    " a.ended_at, " + STATUS + " AS status, a.satisfaction_rating AS satisfaction, s.message_count"
    " FROM user_sessions s JOIN bots b ON b.id = s.bot_id LEFT JOIN " + ATTENDANT + " a ON a.session_id = s.id)")

#: Messages of users (role 1) and of the bot (role 2); tool and system turns are not conversation.
MESSAGES = (
    "(SELECT m.id, b.org_id, m.session_id AS conversation_id, s.bot_id, " + CHANNEL + " AS channel, m.user_id,"
    " CASE m.role WHEN 1 THEN 'in' ELSE 'out' END AS direction, m.created_at,"
    " CASE WHEN m.role = 2 THEN m.processing_time_ms END AS latency_ms, m.token_count AS tokens"
    " FROM message_history m JOIN user_sessions s ON s.id = m.session_id JOIN bots b ON b.id = s.bot_id"
    " LEFT JOIN " + ATTENDANT + " a ON a.session_id = s.id WHERE m.role IN (1, 2))")

#: The same without the channel, cheaper when no channel is asked for (no attendant join).
MESSAGES_NO_CHANNEL = (
    "(SELECT m.id, b.org_id, m.session_id AS conversation_id, s.bot_id, m.user_id,"
    " CASE m.role WHEN 1 THEN 'in' ELSE 'out' END AS direction, m.created_at,"
    " CASE WHEN m.role = 2 THEN m.processing_time_ms END AS latency_ms, m.token_count AS tokens"
    " FROM message_history m JOIN user_sessions s ON s.id = m.session_id JOIN bots b ON b.id = s.bot_id"
    " WHERE m.role IN (1, 2))")

LLM_CALLS = (
    "(SELECT l.request_id AS id, b.org_id, l.bot_id, l.session_id AS conversation_id, l.model,"
    " l.timestamp AS created_at, l.input_tokens, l.output_tokens, l.latency_ms, l.success,"
    " l.estimated_cost AS cost_usd FROM llm_metrics l JOIN bots b ON b.id = l.bot_id)")

#: botserver's results and ours: success is allowed, failure an error.
AUDIT_RESULT = (
    "CASE WHEN result IN ('allowed', 'denied', 'error') THEN result"
    " WHEN result IN ('success', 'ok', 'granted') THEN 'allowed'"
    " WHEN result IN ('forbidden', 'rejected', 'blocked') THEN 'denied' ELSE 'error' END")

AUDIT_EVENTS = (
    "(SELECT id, org_id, bot_id, created_at, coalesce(user_id::text, 'system') AS actor, action, resource_type,"
    " resource_id, " + AUDIT_RESULT + " AS result, ip_address AS ip FROM compliance_audit_log)")

BOTS = "(SELECT id, org_id, name, created_at FROM bots)"


def messages_view(scope: Scope, need_channel: bool = False) -> str:
    """The messages subquery, with the attendant join only when a channel is needed."""
    return MESSAGES if (scope.channel or need_channel) else MESSAGES_NO_CHANNEL


def as_uuid(value) -> Optional[str]:
    """``value`` as a UUID text, or None when it cannot be one (and so matches nothing)."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None


def scope_params(scope: Scope) -> Dict[str, object]:
    """The named parameters every query of a scope uses: org, period, bots, channel and zone.

    Ids that are not UUIDs cannot be botserver's: they become a NULL org (which
    matches nothing) or drop out of the bot list (an empty list matches nothing).
    """
    return {
        "org": as_uuid(scope.org_id) if scope.org_id is not None else None,
        "start": scope.period.start, "end": scope.period.end, "tz": scope.period.timezone,
        "bots": [i for i in (as_uuid(b) for b in scope.bot_ids) if i is not None],
        "channel": scope.channel,
    }


def scope_where(scope: Scope, time_column: Optional[str], *, alias: str = "", bots: bool = True,
                channel: str = "column", period: bool = True) -> str:
    """The WHERE clause restricting a canonical subquery to a scope (named parameters).

    ``channel`` says how the channel filter applies: ``column`` (the table has
    one), ``conversation`` (through ``conversation_id``, for LLM calls) or
    ``none`` (the table has no channel: audit events).
    """
    p = f"{alias}." if alias else ""
    clauses: List[str] = []
    if scope.org_id is not None:
        clauses.append(f"{p}org_id = %(org)s::uuid")
    if period and time_column:
        clauses.append(f"{p}{time_column} >= %(start)s AND {p}{time_column} < %(end)s")
    if bots and scope.bot_ids:
        clauses.append(f"{p}bot_id = ANY(%(bots)s::uuid[])")
    if scope.channel and channel != "none":
        if channel == "column":
            clauses.append(f"{p}channel = %(channel)s")
        else:
            clauses.append(f"{p}conversation_id IN (SELECT c.id FROM {CONVERSATIONS} c WHERE c.channel = %(channel)s)")
    return " AND ".join(clauses) or "TRUE"


def local(column: str) -> str:
    """The local wall-clock time of ``column`` in the report's zone."""
    return f"({column} AT TIME ZONE %(tz)s)"


def local_day(column: str) -> str:
    return f"({local(column)})::date"


def local_hour_start(column: str) -> str:
    """The UTC instant at which the local clock hour of ``column`` began.

    Subtracting the minutes and seconds past the local hour is exact for every
    zone (offsets are whole minutes), keeps the two 01:00 hours of an autumn
    night apart, and needs no conversion back from local time.
    """
    return f"({column} - ({local(column)} - date_trunc('hour', {local(column)})))"
