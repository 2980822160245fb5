"""Rollups of botserver's messages in a PostgreSQL schema botreports owns
(``botreports`` by default): facts per session and UTC 15-minute bucket, per bot
and minute, and per session all time, kept current by ``refresh``.

botserver's ``message_history`` is indexed on ``created_at`` and ``session_id``
only, so a month of messages means reading every one of them. The rollups hold
only facts that never change once written (counts, latency sums, first and last
times per session and bucket); what botserver rewrites in place (a session's
channel and status in ``context_data``, a bot's organisation) is never copied:
queries join it live from ``user_sessions`` and ``bots``. A refresh re-aggregates
the buckets of a lateness window behind its watermark (``covered_until``) from the
raw rows, and the buckets of sessions whose history was cleared or deleted since;
``rebuild`` starts over. Report queries read the rollups for ``[.., covered_until)``
and the raw rows for the rest (botserver_rollup_reads.py, docs/botserver_rollups.md).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import time
from typing import Dict, List, Mapping, Optional, Tuple

import attrs

from ...core.errors import ValidationError
from .botserver_views import ENDED_AT

log = logging.getLogger("botreports.botserver.rollups")

BUCKET = dt.timedelta(minutes=15)
DEFAULT_SCHEMA = "botreports"
DEFAULT_LATENESS = dt.timedelta(hours=2)
DEFAULT_REBUILD_AFTER = dt.timedelta(hours=24)
#: A message is rolled up only once this old: the transaction writing it has surely committed.
SETTLE = dt.timedelta(minutes=1)
#: The layout of the tables below; a schema holding another one is rebuilt.
VERSION = 3
#: Options of a ``postgresql://`` URL that configure the rollups.
URL_OPTIONS = ("rollups", "rollup_schema", "rollup_lateness", "rollup_rebuild")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def parse_interval(name: str, text: str) -> dt.timedelta:
    """``90s``, ``30min``, ``2h`` or ``1d`` -> a timedelta (a unit is required)."""
    match = re.fullmatch(r"\s*(\d+)\s*(s|min|h|d)\s*", str(text))
    if not match:
        raise ValidationError.from_problems(
            [(name, f"must be a duration with a unit (90s, 30min, 2h, 1d), not {text!r}")])
    value, unit = int(match.group(1)), match.group(2)
    return dt.timedelta(seconds=value * {"s": 1, "min": 60, "h": 3600, "d": 86400}[unit])


@attrs.frozen
class RollupSettings:
    """Where the rollups live and how a refresh treats late rows.

    ``lateness``: how far behind the watermark each refresh re-reads, for rows
    committed late (a clock ahead, a long transaction). ``rebuild_after``: the
    periodic job rebuilds everything when the last rebuild is older (None:
    never), which also picks up rows later than the lateness window.
    """

    schema: str = DEFAULT_SCHEMA
    enabled: bool = True
    lateness: dt.timedelta = DEFAULT_LATENESS
    rebuild_after: Optional[dt.timedelta] = DEFAULT_REBUILD_AFTER

    @classmethod
    def from_options(cls, options: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> "RollupSettings":
        """The settings of a source URL's options, else ``BOTREPORTS_PG_ROLLUP*`` variables, else defaults."""
        def pick(option, variable):
            value = options.get(option)
            return value if value not in (None, "") else environ.get(variable) or None

        schema = pick("rollup_schema", "BOTREPORTS_PG_ROLLUP_SCHEMA") or DEFAULT_SCHEMA
        if not IDENTIFIER.match(schema):
            raise ValidationError.from_problems(
                [("rollup_schema", f"must be a plain PostgreSQL identifier, not {schema!r}")])
        switch = (pick("rollups", "BOTREPORTS_PG_ROLLUPS") or "on").strip().lower()
        if switch not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
            raise ValidationError.from_problems([("rollups", f"must be on or off, not {switch!r}")])
        lateness = pick("rollup_lateness", "BOTREPORTS_PG_ROLLUP_LATENESS")
        rebuild = pick("rollup_rebuild", "BOTREPORTS_PG_ROLLUP_REBUILD")
        return cls(schema=schema, enabled=switch in ("on", "true", "1", "yes"),
                   lateness=DEFAULT_LATENESS if lateness is None else parse_interval("rollup_lateness", lateness),
                   rebuild_after=(DEFAULT_REBUILD_AFTER if rebuild is None else None if rebuild.strip() == "never"
                                  else parse_interval("rollup_rebuild", rebuild)))

    @property
    def quoted(self) -> str:
        return f'"{self.schema}"'

    @property
    def lock_key(self) -> int:
        """The advisory lock that lets one refresh or rebuild at a time work on this schema."""
        digest = hashlib.sha256(f"botreports-rollups:{self.schema}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


# -- tables -----------------------------------------------------------------------

def _tables(s: str, suffix: str = "") -> Dict[str, str]:
    """``{name: CREATE TABLE ...}`` of the rollup tables in schema ``s`` (quoted), named with ``suffix``."""
    return {
        # Messages of users (role 1) and of the bot (role 2) per UTC 15-minute bucket, session and
        # the message's own user_id (a session has one, but the rollup must not assume it), with the
        # session's bot and automation flag, which botserver never changes (channel and status it does).
        "message_buckets": (
            f"CREATE TABLE {s}.message_buckets{suffix} (bucket timestamptz NOT NULL, session_id uuid NOT NULL,"
            f" user_id uuid NOT NULL, bot_id uuid NOT NULL, automation boolean NOT NULL,"
            f" messages_in int NOT NULL, messages_out int NOT NULL,"
            f" latency_n int NOT NULL, latency_sum bigint NOT NULL, latency_max int, tokens_n int NOT NULL,"
            f" first_in timestamptz, last_in timestamptz,"
            f" CONSTRAINT message_buckets{suffix}_pkey PRIMARY KEY (bucket, session_id, user_id))"),
        # The same per bucket and bot only: counts over a period read a row per bot and quarter hour,
        # whatever the traffic; ``busiest_minute`` bounds the minutes of the bucket (peak minutes).
        "bot_buckets": (
            f"CREATE TABLE {s}.bot_buckets{suffix} (bucket timestamptz NOT NULL, bot_id uuid NOT NULL,"
            f" automation boolean NOT NULL, messages_in int NOT NULL, messages_out int NOT NULL,"
            f" latency_n int NOT NULL, latency_sum bigint NOT NULL, latency_max int, busiest_minute int NOT NULL,"
            f" CONSTRAINT bot_buckets{suffix}_pkey PRIMARY KEY (bucket, bot_id, automation))"),
        # Sessions per bucket of their start and bot: conversation counts (no channel: botserver
        # rewrites it). Small, so every refresh counts it again whole (deleted sessions drop out).
        "session_buckets": (
            f"CREATE TABLE {s}.session_buckets{suffix} (bucket timestamptz NOT NULL, bot_id uuid NOT NULL,"
            f" automation boolean NOT NULL, sessions int NOT NULL,"
            f" CONSTRAINT session_buckets{suffix}_pkey PRIMARY KEY (bucket, bot_id, automation))"),
        # Messages per minute and bot: peak minutes.
        "message_minutes": (
            f"CREATE TABLE {s}.message_minutes{suffix} (minute timestamptz NOT NULL, bot_id uuid NOT NULL,"
            f" automation boolean NOT NULL, messages int NOT NULL,"
            f" CONSTRAINT message_minutes{suffix}_pkey PRIMARY KEY (minute, bot_id, automation))"),
        # Per session, all time: messages per conversation, and the highest message_index seen
        # (botserver numbers a session's rows from 0 again after clearing its history); and the
        # end worked out from its context_data's resolved_at text, with that text (a cache:
        # readers use it only while the text is still the same).
        "session_totals": (
            f"CREATE TABLE {s}.session_totals{suffix} (session_id uuid NOT NULL, messages_in int NOT NULL,"
            f" messages_out int NOT NULL, latency_n int NOT NULL, latency_sum bigint NOT NULL, max_index int,"
            f" resolved_at text, ended_at timestamptz,"
            f" CONSTRAINT session_totals{suffix}_pkey PRIMARY KEY (session_id))"),
        # Per session and user who wrote in it: the first incoming message (new users).
        "session_users": (
            f"CREATE TABLE {s}.session_users{suffix} (session_id uuid NOT NULL, user_id uuid NOT NULL,"
            f" bot_id uuid NOT NULL, automation boolean NOT NULL, first_in timestamptz NOT NULL,"
            f" CONSTRAINT session_users{suffix}_pkey PRIMARY KEY (session_id, user_id))"),
    }


def _indexes(s: str, suffix: str = "") -> List[str]:
    """Indexes of the tables (named with ``suffix`` while they are built): a session's buckets (a
    refresh redoes those of a cleared session), first messages in time order (a period without any)."""
    return [f"CREATE INDEX message_buckets{suffix}_session ON {s}.message_buckets{suffix} (session_id)",
            f"CREATE INDEX session_users{suffix}_first ON {s}.session_users{suffix} (first_in)"]


def _state_table(s: str) -> str:
    """The rollups' one-row state: layout, watermark, times, how many messages hold a reply time or
    tokens (``unrecorded``), and a generation that every write moves on (answers kept by readers)."""
    return (f"CREATE TABLE {s}.rollup_state (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL,"
            f" covered_until timestamptz NOT NULL, rebuilt_at timestamptz NOT NULL, refreshed_at timestamptz NOT NULL,"
            f" replies_with_latency bigint NOT NULL, messages_with_tokens bigint NOT NULL,"
            f" last_seconds float8 NOT NULL, generation bigint NOT NULL)")


# -- aggregation from botserver's rows ------------------------------------------------

#: A message's UTC 15-minute bucket.
BUCKET_OF = "date_bin('15 minutes', m.created_at, timestamptz '1970-01-01 00:00:00+00')"

#: Per bucket, session and user: the facts of ``message_buckets`` over every role (so a
#: session's highest message_index counts its system rows too), and the lowest index of
#: the rows not seen by the previous refresh (``%(seen_until)s``), to notice a cleared history.
AGGREGATE = (
    f"SELECT {BUCKET_OF} AS bucket, m.session_id, m.user_id, s.bot_id, s.user_id = s.bot_id AS automation,"
    " count(*) FILTER (WHERE m.role = 1)::int AS messages_in, count(*) FILTER (WHERE m.role = 2)::int AS messages_out,"
    " count(m.processing_time_ms) FILTER (WHERE m.role = 2)::int AS latency_n,"
    " coalesce(sum(m.processing_time_ms) FILTER (WHERE m.role = 2), 0)::bigint AS latency_sum,"
    " max(m.processing_time_ms) FILTER (WHERE m.role = 2) AS latency_max,"
    " count(*) FILTER (WHERE m.role IN (1, 2) AND m.token_count <> 0)::int AS tokens_n,"
    " min(m.created_at) FILTER (WHERE m.role = 1) AS first_in, max(m.created_at) FILTER (WHERE m.role = 1) AS last_in,"
    " max(m.message_index) AS max_index,"
    " min(m.message_index) FILTER (WHERE m.created_at >= %(seen_until)s) AS new_min_index"
    " FROM {source} JOIN user_sessions s ON s.id = m.session_id WHERE {where} GROUP BY 1, 2, 3, 4, 5")

MINUTES = (
    "SELECT date_trunc('minute', m.created_at) AS minute, s.bot_id, s.user_id = s.bot_id AS automation,"
    " count(*)::int AS messages FROM {source} JOIN user_sessions s ON s.id = m.session_id"
    " WHERE m.role IN (1, 2) AND {where} GROUP BY 1, 2, 3")
RAW = "message_history m"


def ends(s: str, suffix: str = "") -> str:
    """The cached ends of ``session_totals`` brought in line with the sessions' context_data."""
    return (f"UPDATE {s}.session_totals{suffix} t SET resolved_at = s.context_data->>'resolved_at',"
            f" ended_at = {ENDED_AT} FROM user_sessions s WHERE s.id = t.session_id"
            f" AND t.resolved_at IS DISTINCT FROM s.context_data->>'resolved_at'")



SESSIONS = ("SELECT date_bin('15 minutes', s.created_at, timestamptz '1970-01-01 00:00:00+00'), s.bot_id,"
            " s.user_id = s.bot_id, count(*) FROM user_sessions s WHERE s.created_at < %(until)s GROUP BY 1, 2, 3")
#: The rows of a set of whole buckets (temp ``rollup_dirty``).
DIRTY = ("rollup_dirty d JOIN message_history m ON m.created_at >= d.bucket"
         " AND m.created_at < d.bucket + interval '15 minutes'")

BUCKET_COLUMNS = ("bucket, session_id, user_id, bot_id, automation, messages_in, messages_out, latency_n,"
                  " latency_sum, latency_max, tokens_n, first_in, last_in")
#: ``session_totals`` and ``session_users`` of the aggregate rows of ``{rows}`` (grouped).
TOTALS_OF = ("SELECT session_id, sum(messages_in), sum(messages_out), sum(latency_n), sum(latency_sum),"
             " max(max_index) FROM {rows} GROUP BY session_id")
USERS_OF = ("SELECT session_id, user_id, bot_id, automation, min(first_in) FROM {rows} WHERE first_in IS NOT NULL"
            " GROUP BY session_id, user_id, bot_id, automation")
TOTALS_COLUMNS = "session_id, messages_in, messages_out, latency_n, latency_sum, max_index"
USERS_COLUMNS = "session_id, user_id, bot_id, automation, first_in"
#: ``bot_buckets`` of the buckets ``{buckets}`` selects in ``message_buckets`` and ``message_minutes`` (``{s}``).
BOT_BUCKETS_OF = (
    "SELECT b.bucket, b.bot_id, b.automation, b.messages_in, b.messages_out, b.latency_n, b.latency_sum,"
    " b.latency_max, coalesce(k.busiest, 0) FROM (SELECT bucket, bot_id, automation, sum(messages_in) AS messages_in,"
    " sum(messages_out) AS messages_out, sum(latency_n) AS latency_n, sum(latency_sum) AS latency_sum,"
    " max(latency_max) AS latency_max FROM {s}.message_buckets{suffix} WHERE {buckets} GROUP BY 1, 2, 3) b"
    " LEFT JOIN (SELECT date_bin('15 minutes', mm.minute, timestamptz '1970-01-01 00:00:00+00') AS bucket,"
    " mm.bot_id, mm.automation, max(mm.messages) AS busiest FROM {s}.message_minutes{suffix} mm {minutes}"
    " GROUP BY 1, 2, 3) k USING (bucket, bot_id, automation)")
#: The minutes of the buckets of temp ``rollup_dirty``.
DIRTY_MINUTES = "JOIN rollup_dirty d ON mm.minute >= d.bucket AND mm.minute < d.bucket + interval '15 minutes'"


@attrs.frozen
class RefreshResult:
    """What a rebuild or refresh did."""

    action: str  # rebuilt, refreshed, busy, off
    covered_until: Optional[dt.datetime] = None
    seconds: float = 0.0
    rows: int = 0  # bucket rows written
    reason: str = ""

    def describe(self) -> str:
        if self.action in ("busy", "off"):
            return f"rollups {self.action}: {self.reason}"
        return (f"rollups {self.action} in {self.seconds:.1f} s: {self.rows:,} bucket rows written,"
                f" covered until {self.covered_until.isoformat() if self.covered_until else '-'}")


def floor_bucket(instant: dt.datetime) -> dt.datetime:
    seconds = int((instant - EPOCH).total_seconds() // BUCKET.total_seconds())
    return EPOCH + seconds * BUCKET


def ceil_bucket(instant: dt.datetime) -> dt.datetime:
    low = floor_bucket(instant)
    return low if low == instant else low + BUCKET


#: Warned once per process and schema when the role may not keep rollups.
_WARNED: set = set()


class RollupWriter:
    """Builds and refreshes the rollups over its own (not read-only) connection.

    ``conninfo`` is the source's (``search_path`` finds botserver's tables);
    nothing is written outside ``settings.schema``.
    """

    def __init__(self, conninfo: str, settings: RollupSettings, *, search_path: Optional[str] = None):
        self.conninfo = conninfo
        self.settings = settings
        self.search_path = search_path
        self._now: Optional[dt.datetime] = None

    def connect(self):
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.conninfo).get("options") or ""
        # A rebuild reads every message: no statement timeout; the report's read-only default is not ours.
        ours = ["-c statement_timeout=0", "-c default_transaction_read_only=off", "-c TimeZone=UTC",
                "-c application_name=botreports-rollups", "-c work_mem=64MB"]
        if self.search_path:
            ours.append(f"-c search_path={self.search_path}")
        return psycopg.connect(self.conninfo, options=" ".join([given] + ours).strip(), connect_timeout=15)

    # -- privileges ------------------------------------------------------------

    def why_not(self, conn) -> Optional[str]:
        """None when this role may keep the rollups, else the reason in a sentence."""
        schema = self.settings.schema
        row = conn.execute(
            "SELECT n.oid IS NOT NULL, coalesce(has_schema_privilege(n.oid, 'CREATE'), false),"
            " coalesce(has_schema_privilege(n.oid, 'USAGE'), false),"
            " has_database_privilege(current_database(), 'CREATE'), current_user"
            " FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = %s", [schema]).fetchone()
        exists, may_create, may_use, may_create_schema, role = row
        if exists and not (may_create and may_use):
            return f"role {role} lacks CREATE and USAGE on schema {schema}"
        if not exists and not may_create_schema:
            return f"schema {schema} does not exist and role {role} may not create it"
        for table in ("message_history", "user_sessions", "bots"):
            allowed = conn.execute("SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, 'SELECT')",
                                   [table, table]).fetchone()[0]
            if not allowed:
                return f"role {role} may not read botserver's {table}"
        return None

    # -- entry points ------------------------------------------------------------

    def rebuild(self, now: Optional[dt.datetime] = None) -> RefreshResult:
        """Every rollup table built anew from botserver's rows (after a running refresh ends).

        ``now`` stands for the database's clock (tests move time with it)."""
        with self.connect() as conn:
            reason = self.why_not(conn)
            if reason:
                return self._off(reason)
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [self.settings.lock_key])
            self._now = now
            return self._rebuild(conn)

    def refresh(self, now: Optional[dt.datetime] = None) -> RefreshResult:
        """The rollups brought up to now: incrementally, or rebuilt when missing, of another layout,
        or older than ``rebuild_after``. ``busy`` at once if another refresh holds the lock."""
        self._now = now
        with self.connect() as conn:
            reason = self.why_not(conn)
            if reason:
                return self._off(reason)
            if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", [self.settings.lock_key]).fetchone()[0]:
                return RefreshResult("busy", reason="another refresh or rebuild is running")
            state = self._state(conn)
            if state is None or state["version"] != VERSION:
                return self._rebuild(conn)
            after = self.settings.rebuild_after
            if after is not None and (self._now or state["now"]) - state["rebuilt_at"] >= after:
                return self._rebuild(conn)
            return self._refresh(conn, state)

    def _off(self, reason: str) -> RefreshResult:
        key = (self.conninfo, self.settings.schema)
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning("rollups off: %s; reports read botserver's tables directly", reason)
        return RefreshResult("off", reason=reason)

    def _state(self, conn) -> Optional[dict]:
        s = self.settings.quoted
        for table in ("rollup_state",) + tuple(_tables(s)):
            if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{s}.{table}"]).fetchone()[0]:
                return None
        row = conn.execute(f"SELECT version, covered_until, rebuilt_at, statement_timestamp() FROM {s}.rollup_state"
                           ).fetchone()
        return None if row is None else dict(zip(("version", "covered_until", "rebuilt_at", "now"), row))

    def _until(self, conn) -> Tuple[dt.datetime, dt.datetime]:
        now = self._now or conn.execute("SELECT statement_timestamp()").fetchone()[0]
        return now, floor_bucket(now - SETTLE)

    # -- rebuild -----------------------------------------------------------------

    def _rebuild(self, conn) -> RefreshResult:
        """New tables filled beside the old ones, then swapped in (readers wait only for the swap)."""
        started = time.perf_counter()
        s = self.settings.quoted
        # CREATE SCHEMA asks for CREATE on the database even when the schema exists (IF NOT EXISTS
        # included): a role that owns its schema and may create nothing else must not run it.
        if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.settings.schema]).fetchone():
            conn.execute(f"CREATE SCHEMA {s}")
        generation = 0
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{s}.rollup_state"]).fetchone()[0]:
            try:
                with conn.transaction():
                    generation = conn.execute(f"SELECT max(generation) FROM {s}.rollup_state").fetchone()[0] or 0
            except Exception:  # a state table of an earlier layout: it goes with the rest
                generation = 0
            conn.execute(f"DROP TABLE {s}.rollup_state")
        conn.execute(_state_table(s))
        now, until = self._until(conn)
        for name, ddl in _tables(s, "_next").items():
            conn.execute(f"DROP TABLE IF EXISTS {s}.{name}_next")
            conn.execute(ddl)
        params = {"until": until, "seen_until": until}
        conn.execute("CREATE TEMP TABLE rollup_all ON COMMIT DROP AS "
                     + AGGREGATE.format(source=RAW, where="m.created_at < %(until)s"), params)
        rows = conn.execute(f"INSERT INTO {s}.message_buckets_next ({BUCKET_COLUMNS}) SELECT {BUCKET_COLUMNS}"
                            f" FROM rollup_all WHERE messages_in + messages_out > 0").rowcount
        conn.execute(f"INSERT INTO {s}.session_totals_next ({TOTALS_COLUMNS}) {TOTALS_OF.format(rows='rollup_all')}")
        conn.execute(f"INSERT INTO {s}.session_users_next ({USERS_COLUMNS}) {USERS_OF.format(rows='rollup_all')}")
        conn.execute(f"INSERT INTO {s}.message_minutes_next (minute, bot_id, automation, messages) "
                     + MINUTES.format(source=RAW, where="m.created_at < %(until)s"), params)
        conn.execute(f"INSERT INTO {s}.bot_buckets_next "
                     + BOT_BUCKETS_OF.format(s=s, suffix="_next", buckets="TRUE", minutes=""))
        conn.execute(f"INSERT INTO {s}.session_buckets_next {SESSIONS}", params)
        conn.execute(ends(s, "_next"))
        for statement in _indexes(s, "_next"):
            conn.execute(statement)
        latency, tokens = conn.execute(
            "SELECT coalesce(sum(latency_n), 0), coalesce(sum(tokens_n), 0) FROM rollup_all").fetchone()
        # The swap is quick but waits for reports still reading the old tables.
        conn.execute("SET LOCAL lock_timeout = '60s'")
        for name in _tables(s):
            conn.execute(f"DROP TABLE IF EXISTS {s}.{name}")
            conn.execute(f"ALTER TABLE {s}.{name}_next RENAME TO {name}")
            conn.execute(f"ALTER INDEX {s}.{name}_next_pkey RENAME TO {name}_pkey")
        conn.execute(f"ALTER INDEX {s}.message_buckets_next_session RENAME TO message_buckets_session")
        conn.execute(f"ALTER INDEX {s}.session_users_next_first RENAME TO session_users_first")
        seconds = time.perf_counter() - started
        conn.execute(
            f"INSERT INTO {s}.rollup_state (id, version, covered_until, rebuilt_at, refreshed_at,"
            f" replies_with_latency, messages_with_tokens, last_seconds, generation)"
            f" VALUES (1, %s, %s, %s, %s, %s, %s, %s, %s)",
            [VERSION, until, now, now, latency, tokens, seconds, generation + 1])
        conn.commit()
        for name in _tables(s):
            conn.execute(f"ANALYZE {s}.{name}")
        conn.commit()
        result = RefreshResult("rebuilt", until, time.perf_counter() - started, rows)
        log.info("%s", result.describe())
        return result

    # -- incremental refresh ---------------------------------------------------------

    def _refresh(self, conn, state: dict) -> RefreshResult:
        """Re-aggregate the lateness window and the buckets of cleared or deleted sessions.

        ``W`` (temp ``rollup_new``) is the raw aggregate of the buckets redone, ``O``
        (``rollup_old``) the rollup rows they replace; session totals move by ``W - O``,
        exact while rows are only added. A session whose history shrank (cleared: its
        new rows are numbered from 0 again; deleted: gone from user_sessions) has its
        old buckets redone too and its totals recomputed from its remaining rows.
        """
        started = time.perf_counter()
        s = self.settings.quoted
        seen_until = state["covered_until"]
        now, until = self._until(conn)
        until = max(until, seen_until)
        since = floor_bucket(seen_until - self.settings.lateness)
        params = {"since": since, "until": until, "seen_until": seen_until}
        conn.execute("CREATE TEMP TABLE rollup_new ON COMMIT DROP AS "
                     + AGGREGATE.format(source=RAW, where="m.created_at >= %(since)s AND m.created_at < %(until)s"),
                     params)
        conn.execute(
            f"CREATE TEMP TABLE rollup_shrunk ON COMMIT DROP AS"
            f" SELECT n.session_id FROM (SELECT session_id, min(new_min_index) AS low FROM rollup_new"
            f" WHERE new_min_index IS NOT NULL GROUP BY session_id) n"
            f" JOIN {s}.session_totals t USING (session_id) WHERE n.low <= t.max_index"
            f" UNION SELECT t.session_id FROM {s}.session_totals t"
            f" WHERE NOT EXISTS (SELECT 1 FROM user_sessions u WHERE u.id = t.session_id)")
        shrunk = conn.execute("SELECT count(*) FROM rollup_shrunk").fetchone()[0]
        conn.execute("CREATE TEMP TABLE rollup_dirty (bucket timestamptz PRIMARY KEY) ON COMMIT DROP")
        if shrunk:
            conn.execute(f"INSERT INTO rollup_dirty SELECT DISTINCT b.bucket FROM {s}.message_buckets b"
                         f" WHERE b.session_id IN (SELECT session_id FROM rollup_shrunk) AND b.bucket < %(since)s",
                         params)
            conn.execute("INSERT INTO rollup_new " + AGGREGATE.format(source=DIRTY, where="TRUE"), params)
        conn.execute(f"CREATE TEMP TABLE rollup_old ON COMMIT DROP AS SELECT * FROM {s}.message_buckets"
                     f" WHERE bucket >= %(since)s OR bucket IN (SELECT bucket FROM rollup_dirty)", params)
        latency, tokens = conn.execute(
            "SELECT coalesce((SELECT sum(latency_n) FROM rollup_new), 0)"
            " - coalesce((SELECT sum(latency_n) FROM rollup_old), 0),"
            " coalesce((SELECT sum(tokens_n) FROM rollup_new), 0)"
            " - coalesce((SELECT sum(tokens_n) FROM rollup_old), 0)").fetchone()
        # Sessions that only grew: totals + (W - O), first messages and highest index kept or lowered/raised.
        conn.execute(
            f"INSERT INTO {s}.session_totals AS t ({TOTALS_COLUMNS}) "
            + TOTALS_OF.format(rows="(SELECT session_id, messages_in, messages_out, latency_n, latency_sum, max_index"
                                    " FROM rollup_new UNION ALL SELECT session_id, -messages_in, -messages_out,"
                                    " -latency_n, -latency_sum, NULL FROM rollup_old) d"
                                    " WHERE session_id NOT IN (SELECT session_id FROM rollup_shrunk)")
            + " ON CONFLICT (session_id) DO UPDATE SET messages_in = t.messages_in + excluded.messages_in,"
            " messages_out = t.messages_out + excluded.messages_out, latency_n = t.latency_n + excluded.latency_n,"
            " latency_sum = t.latency_sum + excluded.latency_sum,"
            " max_index = greatest(t.max_index, excluded.max_index)")
        conn.execute(
            f"INSERT INTO {s}.session_users AS u ({USERS_COLUMNS}) "
            + USERS_OF.format(rows="rollup_new") .replace(
                "WHERE first_in IS NOT NULL",
                "WHERE first_in IS NOT NULL AND session_id NOT IN (SELECT session_id FROM rollup_shrunk)")
            + " ON CONFLICT (session_id, user_id) DO UPDATE SET first_in = least(u.first_in, excluded.first_in)")
        # Sessions that shrank: recomputed from their remaining rows (an index walk each).
        if shrunk:
            conn.execute(f"DELETE FROM {s}.session_totals WHERE session_id IN (SELECT session_id FROM rollup_shrunk)")
            conn.execute(f"DELETE FROM {s}.session_users WHERE session_id IN (SELECT session_id FROM rollup_shrunk)")
            conn.execute("CREATE TEMP TABLE rollup_rest ON COMMIT DROP AS " + AGGREGATE.format(
                source=RAW,
                where="m.session_id IN (SELECT session_id FROM rollup_shrunk) AND m.created_at < %(until)s"),
                params)
            conn.execute(f"INSERT INTO {s}.session_totals ({TOTALS_COLUMNS}) {TOTALS_OF.format(rows='rollup_rest')}")
            conn.execute(f"INSERT INTO {s}.session_users ({USERS_COLUMNS}) {USERS_OF.format(rows='rollup_rest')}")
        # Buckets and minutes: the replaced ones deleted, the new ones written.
        conn.execute(f"DELETE FROM {s}.message_buckets WHERE bucket >= %(since)s"
                     f" OR bucket IN (SELECT bucket FROM rollup_dirty)", params)
        rows = conn.execute(f"INSERT INTO {s}.message_buckets ({BUCKET_COLUMNS}) SELECT {BUCKET_COLUMNS}"
                            f" FROM rollup_new WHERE messages_in + messages_out > 0").rowcount
        conn.execute(f"DELETE FROM {s}.message_minutes WHERE minute >= %(since)s", params)
        conn.execute(f"INSERT INTO {s}.message_minutes (minute, bot_id, automation, messages) "
                     + MINUTES.format(source=RAW, where="m.created_at >= %(since)s AND m.created_at < %(until)s"),
                     params)
        conn.execute(f"DELETE FROM {s}.bot_buckets WHERE bucket >= %(since)s", params)
        conn.execute(f"INSERT INTO {s}.bot_buckets " + BOT_BUCKETS_OF.format(
            s=s, suffix="", buckets="bucket >= %(since)s", minutes="WHERE mm.minute >= %(since)s"), params)
        if shrunk:
            conn.execute(f"DELETE FROM {s}.message_minutes mm USING rollup_dirty d"
                         f" WHERE mm.minute >= d.bucket AND mm.minute < d.bucket + interval '15 minutes'")
            conn.execute(f"INSERT INTO {s}.message_minutes (minute, bot_id, automation, messages) "
                         + MINUTES.format(source=DIRTY, where="TRUE"), params)
            conn.execute(f"DELETE FROM {s}.bot_buckets WHERE bucket IN (SELECT bucket FROM rollup_dirty)")
            conn.execute(f"INSERT INTO {s}.bot_buckets " + BOT_BUCKETS_OF.format(
                s=s, suffix="", buckets="bucket IN (SELECT bucket FROM rollup_dirty)", minutes=DIRTY_MINUTES))
        conn.execute(f"DELETE FROM {s}.session_buckets")
        conn.execute(f"INSERT INTO {s}.session_buckets {SESSIONS}", params)
        conn.execute(ends(s))
        seconds = time.perf_counter() - started
        conn.execute(
            f"UPDATE {s}.rollup_state SET covered_until = %s, refreshed_at = %s,"
            f" replies_with_latency = replies_with_latency + %s, messages_with_tokens = messages_with_tokens + %s,"
            f" last_seconds = %s, generation = generation + 1", [until, now, latency, tokens, seconds])
        conn.commit()
        result = RefreshResult("refreshed", until, time.perf_counter() - started, rows)
        if shrunk:
            log.info("rollups: %d session(s) cleared or deleted since the last refresh, recounted", shrunk)
        log.info("%s", result.describe())
        return result
