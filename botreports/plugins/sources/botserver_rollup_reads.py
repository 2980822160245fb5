"""Reading the botserver rollups (botserver_rollups.py): whether a source may, what they
cover now, how a period splits between them and botserver's rows, and the relations
report queries select from, the same whichever way a period is read."""
from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Dict, Optional, Tuple

import attrs

from .botserver_rollups import BUCKET, EPOCH, VERSION, RollupSettings, ceil_bucket, floor_bucket
from .botserver_views import ENDED_AT, STATUS

log = logging.getLogger("botreports.botserver.rollups")

#: A stretch of a period shorter than this is read raw: not worth a second relation.
MIN_COVERED = dt.timedelta(hours=1)
#: How long a source keeps its answer to "may I read the rollups?" (privileges, tables).
ACCESS_TTL_S = 60.0
TABLE_NAMES = ("rollup_state", "message_buckets", "bot_buckets", "session_buckets", "message_minutes",
               "session_totals", "session_users")


@attrs.frozen
class Coverage:
    """The rollups' state as a report reads it: every message before ``covered_until`` is in them."""

    covered_until: dt.datetime
    replies_with_latency: int
    messages_with_tokens: int
    generation: int = 0


@attrs.frozen
class Plan:
    """How one period's messages are read: rollup buckets over ``covered`` (``[lo, hi)``, whole
    buckets), botserver's rows over each range of ``raw``."""

    covered: Optional[Tuple[dt.datetime, dt.datetime]]
    raw: Tuple[Tuple[dt.datetime, dt.datetime], ...]
    covered_until: dt.datetime

    def params(self) -> Dict[str, dt.datetime]:
        values: Dict[str, dt.datetime] = {"covered_until": self.covered_until}
        if self.covered:
            values["r_lo"], values["r_hi"] = self.covered
        for index, (lo, hi) in enumerate(self.raw):
            values[f"raw{index}_lo"], values[f"raw{index}_hi"] = lo, hi
        return values


def zone_on_grid(timezone: str, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether every offset of ``timezone`` over ``[start, end)`` is a whole number of quarter
    hours and changes on the quarter hour: then a 15-minute bucket lies in one local hour and
    day, and folding buckets into them is exact (true of every zone since 1972)."""
    from ...core.scheduling import offset_changes

    quarter = int(BUCKET.total_seconds())
    first, changes = offset_changes(timezone, start, end)
    return first % quarter == 0 and all(
        offset % quarter == 0 and int((instant - EPOCH).total_seconds()) % quarter == 0
        for instant, offset in changes)


def plan_period(start: dt.datetime, end: dt.datetime, timezone: str, coverage: Optional[Coverage]) -> Plan:
    """The rollups for the whole buckets of ``[start, end)`` they cover, raw rows for the rest."""
    until = coverage.covered_until if coverage else start
    if coverage is not None:
        lo, hi = ceil_bucket(start), min(floor_bucket(end), coverage.covered_until)
        if hi - lo >= MIN_COVERED and zone_on_grid(timezone, start, end):
            raw = tuple(r for r in ((start, lo), (hi, end)) if r[0] < r[1])
            return Plan((lo, hi), raw, until)
    return Plan(None, ((start, end),), until)


class RollupSQL:
    """The relations report queries read, over rollups and botserver's rows alike.

    ``automation`` False leaves automation sessions out (as ``Views`` does); ``channel``
    is the expression of a session's channel over ``user_sessions s``.
    """

    def __init__(self, schema: str, automation: bool, channel: str):
        self.s = f'"{schema}"'
        self.automation = automation
        self.channel = channel

    #: Message facts of one of botserver's rows (``m``, its session ``s``), as a rollup row holds them.
    RAW_FACTS = {
        "t": "m.created_at", "session_id": "m.session_id", "user_id": "m.user_id", "bot_id": "s.bot_id",
        "automation": "s.user_id = s.bot_id", "messages_in": "(m.role = 1)::int",
        "messages_out": "(m.role = 2)::int",
        "latency_n": "(m.role = 2 AND m.processing_time_ms IS NOT NULL)::int",
        "latency_sum": "CASE WHEN m.role = 2 THEN m.processing_time_ms END::bigint",
        "latency_max": "CASE WHEN m.role = 2 THEN m.processing_time_ms END",
        "first_in": "CASE WHEN m.role = 1 THEN m.created_at END",
        "last_in": "CASE WHEN m.role = 1 THEN m.created_at END",
    }
    FACTS = tuple(RAW_FACTS)
    #: What ``bot_buckets`` holds of them.
    COUNTS = ("t", "bot_id", "automation", "messages_in", "messages_out", "latency_n", "latency_sum", "latency_max")

    def _relation(self, plan: Plan, table: str, columns, need_channel: bool) -> str:
        channel = f", {self.channel} AS channel" if need_channel else ""
        parts = []
        if plan.covered:
            join = " JOIN user_sessions s ON s.id = r.session_id" if need_channel else ""
            names = ", ".join("r.bucket AS t" if c == "t" else f"r.{c}" for c in columns)
            parts.append(f"SELECT {names}{channel} FROM {self.s}.{table} r{join}"
                         f" WHERE r.bucket >= %(r_lo)s AND r.bucket < %(r_hi)s")
        for index, _ in enumerate(plan.raw):
            names = ", ".join(f"{self.RAW_FACTS[c]} AS {c}" for c in columns)
            parts.append(f"SELECT {names}{channel} FROM message_history m JOIN user_sessions s ON s.id = m.session_id"
                         f" WHERE m.role IN (1, 2) AND m.created_at >= %(raw{index}_lo)s"
                         f" AND m.created_at < %(raw{index}_hi)s")
        skip = "" if self.automation else " WHERE NOT f.automation"
        return f"(SELECT f.*, b.org_id FROM ({' UNION ALL '.join(parts)}) f JOIN bots b ON b.id = f.bot_id{skip})"

    def facts(self, plan: Plan, need_channel: bool = False) -> str:
        """``(...)``: message facts ``t, session_id, user_id, bot_id, automation, org_id, messages_in,
        messages_out, latency_n, latency_sum, latency_max, first_in, last_in`` (and ``channel``), a
        row per session and rollup bucket or per raw message; ``t`` is the bucket's start or the
        message's time (the same local hour and day: ``zone_on_grid``)."""
        return self._relation(plan, "message_buckets", self.FACTS, need_channel)

    def counts(self, plan: Plan, need_channel: bool = False) -> str:
        """``(...)``: the counting columns of ``facts`` (``t, bot_id, org_id, messages_in, messages_out,
        latency_n, latency_sum, latency_max``), a row per bot and bucket where no channel is asked for."""
        if need_channel:
            return self.facts(plan, need_channel)
        return self._relation(plan, "bot_buckets", self.COUNTS, False)

    def minutes(self, plan: Plan) -> str:
        """``(...) m``: messages per minute ``minute, bot_id, org_id, messages`` (no channel)."""
        parts = []
        if plan.covered:
            parts.append(f"SELECT r.minute, r.bot_id, r.automation, r.messages FROM {self.s}.message_minutes r"
                         f" WHERE r.minute >= %(r_lo)s AND r.minute < %(r_hi)s")
        for index, _ in enumerate(plan.raw):
            parts.append(
                "SELECT date_trunc('minute', m.created_at), s.bot_id, s.user_id = s.bot_id, 1"
                " FROM message_history m JOIN user_sessions s ON s.id = m.session_id WHERE m.role IN (1, 2)"
                f" AND m.created_at >= %(raw{index}_lo)s AND m.created_at < %(raw{index}_hi)s")
        skip = "" if self.automation else " WHERE NOT f.automation"
        return (f"(SELECT f.minute, f.bot_id, b.org_id, f.messages FROM ({' UNION ALL '.join(parts)})"
                f" f (minute, bot_id, automation, messages) JOIN bots b ON b.id = f.bot_id{skip})")

    def sessions(self, plan: Plan) -> str:
        """``(...)``: conversations started in the period, ``t, bot_id, org_id, sessions``: a row per bot
        and rolled-up bucket, or per session of botserver's elsewhere (no channel: it is live)."""
        parts = []
        if plan.covered:
            parts.append(f"SELECT r.bucket AS t, r.bot_id, r.automation, r.sessions FROM {self.s}.session_buckets r"
                         f" WHERE r.bucket >= %(r_lo)s AND r.bucket < %(r_hi)s")
        for index, _ in enumerate(plan.raw):
            parts.append("SELECT s.created_at, s.bot_id, s.user_id = s.bot_id, 1 FROM user_sessions s"
                         f" WHERE s.created_at >= %(raw{index}_lo)s AND s.created_at < %(raw{index}_hi)s")
        skip = "" if self.automation else " WHERE NOT f.automation"
        return (f"(SELECT f.t, f.bot_id, b.org_id, f.sessions FROM ({' UNION ALL '.join(parts)})"
                f" f (t, bot_id, automation, sessions) JOIN bots b ON b.id = f.bot_id{skip})")

    def minute_bounds(self) -> str:
        """``(...)``: per bot and covered bucket, its busiest minute (``bucket, bot_id, org_id,
        busiest``): their sum over a scope's bots bounds every minute of the bucket."""
        skip = "" if self.automation else " AND NOT r.automation"
        return (f"(SELECT r.bucket, r.bot_id, b.org_id, r.busiest_minute AS busiest FROM {self.s}.bot_buckets r"
                f" JOIN bots b ON b.id = r.bot_id WHERE r.bucket >= %(r_lo)s AND r.bucket < %(r_hi)s{skip})")

    def minutes_of(self) -> str:
        """``(...)``: ``minutes`` of the rolled-up buckets listed in ``%(candidates)s``."""
        skip = "" if self.automation else " WHERE NOT r.automation"
        return (f"(SELECT r.minute, r.bot_id, b.org_id, r.messages FROM {self.s}.message_minutes r"
                f" JOIN unnest(%(candidates)s::timestamptz[]) c (bucket) ON r.minute >= c.bucket"
                f" AND r.minute < c.bucket + interval '15 minutes' JOIN bots b ON b.id = r.bot_id{skip})")

    def counted_conversations(self, conversations: str, coverage: Optional[Coverage], sessions: str = "") -> str:
        """``(...)``: ``conversations`` (a relation with ``id``) with each one's messages over all its
        history: ``message_count, messages_in, messages_out, avg_latency``. From the rollups'
        session totals and the rows after them when there are some, else one pass over the
        messages restricted by ``sessions`` (``AND session_id IN (...)``)."""
        if coverage is None:
            counts = ("(SELECT session_id, count(*) FILTER (WHERE role = 1) AS messages_in,"
                      " count(*) FILTER (WHERE role = 2) AS messages_out,"
                      " count(processing_time_ms) FILTER (WHERE role = 2) AS latency_n,"
                      " sum(processing_time_ms) FILTER (WHERE role = 2) AS latency_sum"
                      f" FROM message_history WHERE role IN (1, 2) {sessions} GROUP BY session_id)")
            return (f"(SELECT c.*, coalesce(n.messages_in + n.messages_out, 0) AS message_count,"
                    f" coalesce(n.messages_in, 0) AS messages_in, coalesce(n.messages_out, 0) AS messages_out,"
                    f" n.latency_sum::float8 / nullif(n.latency_n, 0) AS avg_latency"
                    f" FROM {conversations} c LEFT JOIN {counts} n ON n.session_id = c.id)")
        # The few rows since the rollups' watermark, counted per session and added.
        tail = ("(SELECT session_id, count(*) FILTER (WHERE role = 1) AS messages_in,"
                " count(*) FILTER (WHERE role = 2) AS messages_out,"
                " count(processing_time_ms) FILTER (WHERE role = 2) AS latency_n,"
                " coalesce(sum(processing_time_ms) FILTER (WHERE role = 2), 0) AS latency_sum"
                " FROM message_history WHERE role IN (1, 2) AND created_at >= %(covered_until)s GROUP BY session_id)")
        m_in = "coalesce(t.messages_in, 0) + coalesce(x.messages_in, 0)"
        m_out = "coalesce(t.messages_out, 0) + coalesce(x.messages_out, 0)"
        # Views.conversations with its end read from the session totals while resolved_at is the
        # text they worked it out from (the same function of the same text), else worked out here.
        ended = (f"CASE WHEN s.context_data->>'resolved_at' IS NOT DISTINCT FROM t.resolved_at THEN t.ended_at"
                 f" ELSE {ENDED_AT} END")
        skip = "" if self.automation else " AND s.user_id <> s.bot_id"
        return (f"(SELECT s.id, b.org_id, s.bot_id, s.user_id, {self.channel} AS channel, s.created_at AS started_at,"
                f" {ended} AS ended_at, {STATUS} AS status, NULL::int AS satisfaction,"
                f" {m_in} + {m_out} AS message_count, {m_in} AS messages_in, {m_out} AS messages_out,"
                f" (coalesce(t.latency_sum, 0) + coalesce(x.latency_sum, 0))::float8"
                f" / nullif(coalesce(t.latency_n, 0) + coalesce(x.latency_n, 0), 0) AS avg_latency"
                f" FROM user_sessions s JOIN bots b ON b.id = s.bot_id{skip}"
                f" LEFT JOIN {self.s}.session_totals t ON t.session_id = s.id"
                f" LEFT JOIN {tail} x ON x.session_id = s.id)")

    def first_messages(self, coverage: Optional[Coverage], need_channel: bool) -> str:
        """``(...) m``: per session and user, the first incoming message before ``%(end)s``:
        ``user_id, first_in, bot_id, org_id`` (and ``channel``)."""
        if coverage is None:
            inner = ("SELECT m.session_id, m.user_id, s.bot_id, s.user_id = s.bot_id AS automation,"
                     " min(m.created_at) AS first_in FROM message_history m JOIN user_sessions s ON s.id = m.session_id"
                     " WHERE m.role = 1 AND m.created_at < %(end)s GROUP BY 1, 2, 3, 4")
        else:
            inner = (f"SELECT session_id, user_id, bot_id, automation, first_in FROM {self.s}.session_users"
                     " WHERE first_in < %(end)s UNION ALL SELECT m.session_id, m.user_id, s.bot_id,"
                     " s.user_id = s.bot_id, m.created_at FROM message_history m"
                     " JOIN user_sessions s ON s.id = m.session_id WHERE m.role = 1"
                     " AND m.created_at >= %(covered_until)s AND m.created_at < %(end)s")
        channel, join = "", ""
        if need_channel:
            channel, join = f", {self.channel} AS channel", " JOIN user_sessions s ON s.id = f.session_id"
        skip = "" if self.automation else " WHERE NOT f.automation"
        return (f"(SELECT f.user_id, f.first_in, f.bot_id, b.org_id{channel} FROM ({inner}) f"
                f" JOIN bots b ON b.id = f.bot_id{join}{skip})")


class RollupReader:
    """Whether a source may read the rollups, and what they cover now."""

    def __init__(self, settings: RollupSettings):
        self.settings = settings
        self._access: Optional[Tuple[float, bool]] = None
        self._said = False

    def _may_read(self, query) -> bool:
        kept = self._access
        if kept is not None and time.monotonic() - kept[0] < ACCESS_TTL_S:
            return kept[1]
        row = query(
            "SELECT n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE')"
            " AND count(c.oid) = %s AND coalesce(bool_and(has_table_privilege(c.oid, 'SELECT')), false)"
            " FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = %s"
            " LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = ANY(%s) GROUP BY n.oid",
            [len(TABLE_NAMES), self.settings.schema, list(TABLE_NAMES)])
        allowed = bool(row and row[0][0])
        if not allowed and not self._said:
            log.info("rollups not readable in schema %s (absent, or no USAGE and SELECT on it): reports read"
                     " botserver's tables directly; `botreports rollups rebuild` creates them", self.settings.schema)
            self._said = True
        self._access = (time.monotonic(), allowed)
        return allowed

    def coverage(self, query) -> Optional[Coverage]:
        """The rollups' coverage, or None when they are off, absent, unreadable or of another layout."""
        if not self.settings.enabled or not self._may_read(query):
            return None
        rows = query(f"SELECT * FROM {self.settings.quoted}.rollup_state")
        if not rows or rows[0][1] != VERSION:  # another layout: not read until rebuilt
            return None
        state = dict(zip(("id", "version", "covered_until", "rebuilt_at", "refreshed_at", "replies_with_latency",
                          "messages_with_tokens", "last_seconds", "generation"), rows[0]))
        return Coverage(state["covered_until"], state["replies_with_latency"], state["messages_with_tokens"],
                        state["generation"])

    def forget(self) -> None:
        self._access = None
