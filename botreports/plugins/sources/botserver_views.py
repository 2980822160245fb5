"""botserver's tables presented as the canonical analytics tables (DESIGN §5).

Each canonical table is an SQL subquery over botserver's own tables, as its
migrations define them and as its code fills them; the source's queries select
from these subqueries and PostgreSQL pushes the scope filters down into them,
so the aggregation runs on botserver's rows without a copy. The mapping is
documented in docs/data_sources.md.

A botserver session (``user_sessions``) is one long-lived thread per user and
bot, reused: on this source a "conversation" is that thread. Its channel and
its hand-off or resolution live in ``context_data``, the only place botserver
writes them.
"""
from __future__ import annotations

import uuid
from typing import Dict, List, Optional

import attrs

from ...core.models import Scope

#: What botserver writes as ``compliance_audit_log.org_id`` ("Placeholder"): the bot's organisation counts.
NIL_UUID = "00000000-0000-0000-0000-000000000000"

#: botserver reads a session without a channel as web (src/attendance/queue.rs).
CHANNEL = "coalesce(nullif(s.context_data->>'channel', ''), 'web')"

#: Resolved by an attendant: botserver writes status resolved, resolved true and resolved_at together.
RESOLVED = ("(s.context_data->>'status' = 'resolved' OR s.context_data->>'resolved' = 'true'"
            " OR s.context_data->>'resolved_at' IS NOT NULL)")

#: Statuses botserver's transfer and queue code write while a person holds or will hold the session.
HANDED_OFF_STATUSES = ("assigned", "queued", "transferred", "pending_transfer", "waiting", "active")

STATUS = (
    f"CASE WHEN {RESOLVED} THEN 'resolved'"
    " WHEN s.context_data->>'status' = 'abandoned' THEN 'abandoned'"
    " WHEN s.context_data->>'status' IN (" + ", ".join(f"'{s}'" for s in HANDED_OFF_STATUSES) + ")"
    " OR s.context_data->>'needs_human' = 'true' THEN 'handed_off' ELSE 'open' END")

#: An RFC 3339 instant as botserver writes it (``Utc::now().to_rfc3339()``, up to nine fractional
#: digits); anything else, or a day no calendar has, is no end, so that a hand-edited value can never
#: make a report fail on a cast (PostgreSQL 15 has no cast that answers NULL instead of an error).
TIMESTAMP_TEXT = (r"'^[1-9]\d{3}-((0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31"
                  r"|02-29)[T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-](0\d|1[0-5])(:?[0-5]\d)?)?$'")
_RESOLVED_AT = "s.context_data->>'resolved_at'"
_YEAR = f"substr({_RESOLVED_AT}, 1, 4)::int"
#: Whether a session's ``resolved_at`` is an instant PostgreSQL can read: the pattern, and 29 February
#: only in a leap year. A CASE, because only it fixes the order: the year is read once the pattern holds.
READABLE_END = (f"CASE WHEN {_RESOLVED_AT} ~ {TIMESTAMP_TEXT} THEN substr({_RESOLVED_AT}, 6, 5) <> '02-29'"
                f" OR (mod({_YEAR}, 4) = 0 AND (mod({_YEAR}, 100) <> 0 OR mod({_YEAR}, 400) = 0)) ELSE false END")
ENDED_AT = f"CASE WHEN {READABLE_END} THEN ({_RESOLVED_AT})::timestamptz END"

#: Sessions automations open for themselves: their user is the bot (src/core/automation/mod.rs).
AUTOMATION = "s.user_id = s.bot_id"

#: Messages of a conversation: the user's (role 1) and the bot's (role 2); system (3) and summary (9) rows are not.
CONVERSATION_ROLES = "role IN (1, 2)"

#: Message counts per session over all its history (botserver never writes user_sessions.message_count).
SESSION_COUNTS = (
    "(SELECT session_id, count(*) AS message_count, count(*) FILTER (WHERE role = 1) AS messages_in,"
    " count(*) FILTER (WHERE role = 2) AS messages_out,"
    " sum(processing_time_ms) FILTER (WHERE role = 2)::float8"
    " / nullif(count(processing_time_ms) FILTER (WHERE role = 2), 0) AS avg_latency"
    " FROM message_history WHERE " + CONVERSATION_ROLES + " {sessions} GROUP BY session_id)")


@attrs.frozen
class Views:
    """The canonical tables as subqueries; ``automation`` False leaves automation sessions out."""

    automation: bool = True

    @property
    def _sessions(self) -> str:
        """The sessions that count, joined to their bot (whose organisation is theirs)."""
        skip = "" if self.automation else f" AND NOT ({AUTOMATION})"
        return f"user_sessions s JOIN bots b ON b.id = s.bot_id{skip}"

    @property
    def conversations(self) -> str:
        """Sessions as conversations, without message counts (cheap: no pass over the messages)."""
        return (f"(SELECT s.id, b.org_id, s.bot_id, s.user_id, {CHANNEL} AS channel, s.created_at AS started_at,"
                f" {ENDED_AT} AS ended_at, {STATUS} AS status, NULL::int AS satisfaction FROM {self._sessions})")

    def counted_conversations(self, sessions: str = "") -> str:
        """Sessions as conversations with their message counts; ``sessions`` narrows the counting.

        The counts are one grouped pass over the messages, restricted by ``sessions``
        (``AND session_id IN (...)``, which botserver's index on ``session_id`` serves)
        to the conversations a query asks about.
        """
        counts = SESSION_COUNTS.format(sessions=sessions)
        return (f"(SELECT c.*, coalesce(n.message_count, 0) AS message_count, coalesce(n.messages_in, 0)"
                f" AS messages_in, coalesce(n.messages_out, 0) AS messages_out, n.avg_latency"
                f" FROM {self.conversations} c LEFT JOIN {counts} n ON n.session_id = c.id)")

    @property
    def messages(self) -> str:
        return (f"(SELECT m.id, b.org_id, m.session_id AS conversation_id, s.bot_id, {CHANNEL} AS channel,"
                f" m.user_id, CASE m.role WHEN 1 THEN 'in' ELSE 'out' END AS direction, m.created_at,"
                f" CASE WHEN m.role = 2 THEN m.processing_time_ms END AS latency_ms, m.token_count AS tokens,"
                f" NULL::text AS intent, NULL::int AS is_error"
                f" FROM message_history m JOIN {self._sessions} ON s.id = m.session_id WHERE m.{CONVERSATION_ROLES})")

    @property
    def llm_calls(self) -> str:
        skip = ("" if self.automation else
                f" WHERE NOT EXISTS (SELECT 1 FROM user_sessions s WHERE s.id = l.session_id AND {AUTOMATION})")
        return ("(SELECT l.id, b.org_id, l.bot_id, l.session_id AS conversation_id, l.model,"
                " l.timestamp AS created_at, l.input_tokens, l.output_tokens, l.latency_ms, l.success,"
                f" l.estimated_cost AS cost_usd FROM llm_metrics l JOIN bots b ON b.id = l.bot_id{skip})")

    @property
    def audit_events(self) -> str:
        return AUDIT_EVENTS

    @property
    def bots(self) -> str:
        return BOTS


#: botserver's results (success / failure / denied / error) and ours.
AUDIT_RESULT = ("CASE a.result WHEN 'success' THEN 'allowed' WHEN 'allowed' THEN 'allowed'"
                " WHEN 'denied' THEN 'denied' ELSE 'error' END")

AUDIT_EVENTS = (
    f"(SELECT a.id, CASE WHEN a.org_id = '{NIL_UUID}'::uuid THEN b.org_id ELSE a.org_id END AS org_id,"
    " a.bot_id, a.created_at, coalesce(a.user_id::text, 'system') AS actor, a.action, a.resource_type,"
    f" a.resource_id, {AUDIT_RESULT} AS result, a.ip_address AS ip"
    " FROM compliance_audit_log a LEFT JOIN bots b ON b.id = a.bot_id)")

BOTS = "(SELECT id, org_id, name, created_at FROM bots)"


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
            clauses.append(f"{p}conversation_id IN (SELECT s.id FROM user_sessions s WHERE {CHANNEL} = %(channel)s)")
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
