"""The botserver data source: the section queries answered from botserver's
own PostgreSQL tables (``postgresql://...`` URLs), aggregated in PostgreSQL.

Read-only transactions on a connection pool, a statement timeout, named
parameters only. Messages are read through rollups kept in a schema of
botreports' own where they cover a period (botserver_rollups.py), from
botserver's rows elsewhere, with the same queries either way. What botserver does not record is reported by
``unrecorded()``, decided from its tables, so a measure shows "not recorded by
this source" until botserver starts filling it, and its numbers from then on.
See docs/data_sources.md for the mapping.
"""
from __future__ import annotations

import datetime as dt
import decimal
import logging
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Dict, FrozenSet, Iterator, List, Optional, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from ... import hookimpl
from ...core.datasource import PERCENTILES
from ...core.errors import ReportFailed
from ...core.models import DataSourceFactory, Scope
from .botserver_conversation_table import BotserverConversationTable, table_cells
from .botserver_custom import compile_metric, order_groups
from .botserver_rollup_reads import Coverage, Plan, RollupReader, RollupSQL, plan_period
from .botserver_rollups import URL_OPTIONS as ROLLUP_OPTIONS
from .botserver_rollups import RollupSettings, RollupWriter
from .botserver_views import (CHANNEL, READABLE_END, Views, local, local_day, local_hour_start,
                              scope_params, scope_where)

log = logging.getLogger("botreports.botserver")

#: Measures botserver's schema has no place for: never recorded, whatever its rows hold.
NO_COLUMN = frozenset({"messages.intent", "messages.is_error", "conversations.satisfaction", "system_samples"})
#: How long the answer of ``unrecorded()`` is kept before botserver's tables are asked again.
UNRECORDED_TTL_S = 300.0
#: Options of a ``postgresql://`` URL read by botreports, not by libpq.
URL_OPTIONS = ("statement_timeout", "schema", "pool_min", "pool_max", "automation", "work_mem") + ROLLUP_OPTIONS
#: Memory a report query may sort and hash in before spilling to disk (distinct users over a month
#: of rollup rows sort a few hundred thousand values); ``work_mem=`` in the URL, BOTREPORTS_PG_WORK_MEM.
DEFAULT_WORK_MEM = "64MB"
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_POOL_MAX = 4
#: Seconds a query waits for a pooled connection (all lent, or botserver not answering).
POOL_WAIT_S = 15.0
#: percentile_disc picks row ceil(f * n); a hair under p/100 keeps that the exact
#: nearest rank ceil(p * n / 100) whatever the float rounding of p/100 * n.
FRACTIONS = [p / 100 - 1e-9 for p in PERCENTILES]
#: Where p90 is in an array of ``FRACTIONS``' picks (PostgreSQL arrays count from 1).
P90 = PERCENTILES.index(90) + 1
#: Text sorts by code point, as in SQLite and Python, whatever the database's collation.
BINARY = 'COLLATE "C"'
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def parse_duration_ms(text) -> int:
    """``30000``, ``30s``, ``500ms`` or ``2min`` -> milliseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|min)?\s*", str(text))
    if not match:
        raise ValueError(f"statement_timeout must be milliseconds or a duration like 30s, not {text!r}")
    value, unit = int(match.group(1)), match.group(2) or "ms"
    return value * {"ms": 1, "s": 1000, "min": 60_000}[unit]


class BotserverUnavailable(ReportFailed):
    """botserver's database could not be used for now (connection lost or refused); retried."""

    code = "source_unavailable"
    transient = True

    def __init__(self, message, lost: bool = False):
        super().__init__(message)
        #: The connection broke under a query (rather than none could be opened).
        self.lost = lost


#: SQLSTATEs of a session the server ended: terminated by an administrator, a crash, a shutdown.
SESSION_ENDED = {"57P01": "terminated by the server's administrator", "57P02": "the server crashed",
                 "57P03": "the server is not accepting connections"}


def connection_lost(exc) -> bool:
    """Whether a psycopg ``OperationalError`` means the connection is gone (no SQLSTATE: the
    socket closed; class 08: connection exceptions; 57P0x: the server ended the session)."""
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in SESSION_ENDED


def lost_reason(exc) -> str:
    """libpq's words in one short line, without the server's address or its advice lines."""
    state = getattr(exc, "sqlstate", None)
    if state in SESSION_ENDED:
        return SESSION_ENDED[state]
    first = (str(exc).strip().splitlines() or [""])[0]
    first = re.sub(r'connection to server (at|on) "[^"]*"( \([^)]*\))?(, port \d+)? failed: ', "", first)
    first = re.sub(r"^(consuming input|sending query( and params)?) failed: ", "", first)
    return " ".join(first.split())[:200] or type(exc).__name__


def split_url(url: str):
    """``(libpq URL, our options)``: the scheme's ``+suffix`` and our query options removed."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    ours, theirs = {}, []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in URL_OPTIONS:
            ours[name] = value
        else:
            theirs.append((name, value))
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment)), ours


def _plain(value):
    """Database values as the other sources give them: text ids, ints, floats, UTC datetimes."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc)
    return value


def _stats(value: str) -> str:
    """count, average, min, max and the percentiles of ``value`` (one array column)."""
    return (f"count({value}), sum({value})::float8 / nullif(count({value}), 0), min({value}), max({value}),"
            f" percentile_disc(%(fractions)s::float8[]) WITHIN GROUP (ORDER BY {value})")


def _stats_row(count, avg, low, high, picks, suffix: str = "_ms") -> dict:
    picks = picks or [None] * len(PERCENTILES)
    row = {f"avg{suffix}": avg, f"min{suffix}": low, f"max{suffix}": high}
    row.update({f"p{p}{suffix}": _plain(v) for p, v in zip(PERCENTILES, picks)})
    return row


DURATION = "(extract(epoch FROM (ended_at - started_at)) * 1000)::bigint"
#: Messages in and out and the distinct users who wrote, over message facts (botserver_rollups.RollupSQL).
IN_OUT_USERS = ("coalesce(sum(messages_in), 0), coalesce(sum(messages_out), 0),"
                " count(DISTINCT user_id) FILTER (WHERE messages_in > 0)")
STATUSES = ("resolved", "abandoned", "handed_off", "open")


#: How long an answer over the rollups is kept (``_first_seen``).
KEPT_S = 30.0


@attrs.define
class Kept:
    """An answer kept, and the lock its first asker holds while computing it."""

    rows: Optional[list] = None
    at: float = 0.0
    lock: threading.Lock = attrs.Factory(threading.Lock)


@attrs.frozen
class Started:
    """Conversations to count: a relation (with the scope applied), its start column and the count."""

    relation: str
    time: str
    count: str


def once(relation: str, scope: Scope, columns: str, alias: str = "c") -> str:
    """``relation``'s conversations in ``scope`` with ``columns`` computed once a row, as ``alias``.

    ``OFFSET 0`` keeps PostgreSQL from folding the subquery into the query around it, which
    would work a session's status out of its context_data again for every aggregate using it.
    """
    return (f"(SELECT {columns} FROM {relation} c WHERE {scope_where(scope, 'started_at', alias='c')}"
            f" OFFSET 0) {alias}")


class BotserverAnalytics:
    """Answers the section queries from botserver's PostgreSQL database (read-only)."""

    name = "botserver_pg"

    def __init__(self, url: str, *, statement_timeout_ms: Optional[int] = None, schema: Optional[str] = None,
                 pool_min: int = 1, pool_max: Optional[int] = None, automation: Optional[str] = None):
        self.conninfo, options = split_url(url)
        timeout = statement_timeout_ms if statement_timeout_ms is not None else options.get(
            "statement_timeout", os.environ.get("BOTREPORTS_PG_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT_MS))
        self.statement_timeout_ms = parse_duration_ms(timeout)
        self.schema = schema or options.get("schema") or os.environ.get("BOTREPORTS_PG_SCHEMA") or None
        if self.schema is not None and not IDENTIFIER.match(self.schema):
            raise ValueError(f"schema must be a plain PostgreSQL identifier, not {self.schema!r}")
        self.pool_min = int(options.get("pool_min", pool_min))
        self.pool_max = int(options.get("pool_max", pool_max or os.environ.get("BOTREPORTS_PG_POOL_SIZE")
                                        or DEFAULT_POOL_MAX))
        self.work_mem = options.get("work_mem") or os.environ.get("BOTREPORTS_PG_WORK_MEM") or DEFAULT_WORK_MEM
        if not re.fullmatch(r"[1-9][0-9]{0,6}(kB|MB|GB)", self.work_mem):
            raise ValueError(f"work_mem must be a size like 64MB, not {self.work_mem!r}")
        automation = automation or options.get("automation") or os.environ.get("BOTREPORTS_PG_AUTOMATION") or "include"
        if automation not in ("include", "exclude"):
            raise ValueError(f"automation must be include or exclude, not {automation!r}")
        #: The canonical tables over botserver's; automation sessions left out when asked.
        self.views = Views(automation=automation == "include")
        #: Rollups in a schema of botreports' own (botserver_rollups.py), read when present and readable.
        self.rollup_settings = RollupSettings.from_options(options)
        self.rollups = RollupReader(self.rollup_settings)
        self.sql = RollupSQL(self.rollup_settings.schema, self.views.automation, CHANNEL)
        self._pool = None
        self._lock = threading.Lock()
        self._unrecorded: Optional[tuple] = None  # (monotonic time read, answer)
        self._kept: Dict[tuple, Kept] = {}  # answers kept a little while (``_first_seen``)

    @property
    def concurrent_queries(self) -> bool:
        """Sections may query at the same time when the pool can lend each its own connection."""
        return self.pool_max > 1

    # -- connections ----------------------------------------------------

    def _connect_options(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.conninfo).get("options") or ""
        # Every transaction is read-only: a report can never change botserver's data.
        # A wait for a lock (a migration, VACUUM FULL) is cut at the same bound by lock_timeout as well.
        ours = [f"-c statement_timeout={self.statement_timeout_ms}", f"-c lock_timeout={self.statement_timeout_ms}",
                "-c default_transaction_read_only=on",
                "-c TimeZone=UTC", "-c application_name=botreports", f"-c work_mem={self.work_mem}"]
        if self.schema:
            ours.append(f"-c search_path={self.schema}")
        return " ".join([given] + ours).strip()

    @property
    def pool(self):
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                def configure(conn):
                    conn.read_only = True

                # check: a pooled connection is tested (an empty query) before it is lent, so one
                # that botserver's side closed (pg_terminate_backend, a restart) is replaced instead
                # of failing the report that gets it.
                self._pool = ConnectionPool(
                    self.conninfo, min_size=min(self.pool_min, self.pool_max), max_size=self.pool_max,
                    kwargs={"options": self._connect_options()}, configure=configure, timeout=POOL_WAIT_S,
                    check=ConnectionPool.check_connection, name="botreports-botserver", open=True)
            return self._pool

    @contextmanager
    def _connection(self):
        """A pooled connection, with its failures said in one clean line: a query past the
        statement or lock timeout fails for good (``_timed_out``); a connection lost or not
        to be had is ``BotserverUnavailable``, which the worker retries."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            raise self._timed_out(exc) from None  # final: a retry would be as slow
        except PoolTimeout as exc:
            log.warning("no connection to botserver's database: %s", exc)
            raise BotserverUnavailable(
                f"no connection to botserver's database could be opened within {POOL_WAIT_S:g} s") from None
        except psycopg.OperationalError as exc:
            if not connection_lost(exc):
                raise
            log.warning("connection to botserver's database lost: %r", str(exc))
            raise BotserverUnavailable(f"the connection to botserver's database was lost ({lost_reason(exc)})",
                                       lost=True) from None

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def _timed_out(self, exc) -> ReportFailed:
        log.warning("botserver query cancelled after %d ms: %r", self.statement_timeout_ms, str(exc))
        return ReportFailed(
            f"an analytics query on botserver's database ran longer than the statement timeout of "
            f"{self.statement_timeout_ms / 1000:g} s and was cancelled; choose a shorter period or fewer "
            f"sections, or raise statement_timeout (BOTREPORTS_PG_STATEMENT_TIMEOUT)")

    def query(self, sql: str, params=None) -> List[tuple]:
        """Rows of one read-only query with named or positional parameters. A connection lost
        before the rows arrived (botserver restarted, the session terminated) is replaced and the
        query run once more: it only reads, and nothing of it was used."""
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    with conn.cursor() as cur:
                        cur.execute(sql, params)
                        rows = cur.fetchall() if cur.description else []
                break
            except BotserverUnavailable as exc:
                if attempt == 2 or not exc.lost:
                    raise
                log.warning("running a botserver query again on a new connection: %s", exc.message)
        return [tuple(_plain(v) for v in row) for row in rows]

    def stream(self, sql: str, params=None, size: int = 2000) -> Iterator[tuple]:
        """Rows of one query through a server-side cursor, ``size`` at a time (raw-data tables)."""
        import psycopg

        try:
            with self._connection() as conn:
                with conn.cursor(name=f"botreports_{uuid.uuid4().hex[:12]}") as cur:
                    cur.itersize = size
                    cur.execute(sql, params)
                    for row in cur:
                        yield tuple(_plain(v) for v in row)
        except psycopg.errors.QueryCanceled as exc:
            raise self._timed_out(exc) from None  # final: a retry would be as slow

    def copy_batches(self, sql: str, params, types: Sequence[str], size: int = 5000) -> Iterator[list]:
        """Rows of one query, ``size`` a list, through ``COPY (query) TO STDOUT``: the rows stream
        as the query makes them, in one plan (a server-side cursor would take a slower one) and
        without holding them all. ``types`` are the columns' PostgreSQL types, for parsing."""
        import psycopg
        from psycopg import sql as pgsql

        try:
            with self._connection() as conn:
                with psycopg.ClientCursor(conn) as client:
                    text = client.mogrify(sql, params)  # parameters quoted by psycopg, into the COPY
                with conn.cursor() as cur:
                    with cur.copy(pgsql.SQL("COPY ({}) TO STDOUT").format(pgsql.SQL(text))) as copy:
                        copy.set_types(list(types))
                        batch = []
                        for row in copy.rows():
                            batch.append(row)
                            if len(batch) >= size:
                                yield batch
                                batch = []
                        if batch:
                            yield batch
        except psycopg.errors.QueryCanceled as exc:
            raise self._timed_out(exc) from None  # final: a retry would be as slow

    def text_batches(self, sql: str, params, size: int = 2000) -> Iterator[list]:
        """Rows of one query, ``size`` a list of tuples, as the server makes them (libpq's chunked
        rows: a plain query, so PostgreSQL may plan it in parallel, which it never does for a
        server-side cursor), with floats written to their shortest exact digits
        (``extra_float_digits`` 1, whatever the role's setting): for rows PostgreSQL writes as
        text, such as a raw table's JSON. Nothing holds them all."""
        import itertools

        import psycopg

        chunk = size if psycopg.pq.version() >= 170000 else 1  # chunked rows came with libpq 17
        with self._connection() as conn:
            with conn.transaction():
                conn.execute("SET LOCAL extra_float_digits = 1")
                rows = conn.cursor().stream(sql, params, size=chunk)
                while True:
                    batch = list(itertools.islice(rows, size))
                    if not batch:
                        return
                    yield batch

    def _params(self, scope: Scope, **extra) -> dict:
        return {**scope_params(scope), "fractions": FRACTIONS, **extra}

    # -- rollups --------------------------------------------------------

    def coverage(self) -> Optional[Coverage]:
        """What the rollups cover now; None when they are off, absent or unreadable (every
        query then reads botserver's rows)."""
        return self.rollups.coverage(self.query)

    def watermark(self, scope: Scope) -> dict:
        """The newest instant botserver wrote in each table the scope's organisation reads, and the
        rollups' generation (``botserver_watermark``)."""
        from .botserver_watermark import read_watermark

        coverage = self.coverage()
        state = {"generation": coverage.generation, "covered_until": coverage.covered_until} if coverage else None
        return read_watermark(self.query, scope.org_id, state)

    def _plan(self, scope: Scope, **extra):
        """``(plan, params)``: how the scope's messages are read, and the query parameters."""
        plan = plan_period(scope.period.start, scope.period.end, scope.period.timezone, self.coverage())
        return plan, self._params(scope, **plan.params(), **extra)

    def _facts(self, scope: Scope, plan: Plan, need_channel: bool = False) -> str:
        """Message facts per session of the scope's period (``botserver_rollups.RollupSQL.facts``)."""
        return self.sql.facts(plan, need_channel or bool(scope.channel))

    def _started(self, scope: Scope, plan: Plan, need_channel: bool = False) -> "Started":
        """The conversations started in the scope, to count: per bot and rolled-up bucket unless a
        channel is asked for (botserver rewrites it: read live from each session)."""
        if need_channel or scope.channel:
            return Started(f"(SELECT * FROM {self.views.conversations} c"
                           f" WHERE {scope_where(scope, 'started_at', alias='c')})", "started_at", "count(*)")
        where = scope_where(scope, None, alias="c", period=False)
        return Started(f"(SELECT * FROM {self.sql.sessions(plan)} c WHERE {where})", "t", "coalesce(sum(sessions), 0)")

    def _counts(self, scope: Scope, plan: Plan, need_channel: bool = False) -> str:
        """Message counts of the scope's period, per bot where no channel is asked for."""
        return self.sql.counts(plan, need_channel or bool(scope.channel))

    def rollup_writer(self) -> RollupWriter:
        """A writer of this database's rollups, over a connection of its own (not read-only)."""
        return RollupWriter(self.conninfo, self.rollup_settings, search_path=self.schema)

    def refresh_rollups(self, now: Optional[dt.datetime] = None):
        """Bring the rollups up to date (the periodic job); see ``RollupWriter.refresh``."""
        result = self.rollup_writer().refresh(now)
        self.rollups.forget()
        self.forget()
        return result

    def rebuild_rollups(self, now: Optional[dt.datetime] = None):
        """Build the rollups anew from botserver's rows; see ``RollupWriter.rebuild``."""
        result = self.rollup_writer().rebuild(now)
        self.rollups.forget()
        self.forget()
        return result

    # -- what botserver records -----------------------------------------

    def unrecorded(self) -> FrozenSet[str]:
        """The measures no row of botserver's tables holds a value for (see core/datasource.py).

        Asked of the tables themselves rather than assumed: botserver has the columns
        for reply times, message tokens and LLM calls but its code does not fill them
        yet; the day it does, they count. Kept for ``UNRECORDED_TTL_S`` seconds.
        """
        kept = self._unrecorded
        if kept is not None and time.monotonic() - kept[0] < UNRECORDED_TTL_S:
            return kept[1]
        v = self.views
        coverage = self.coverage()
        probes = {
            "messages.latency_ms": self._recorded_probe(
                coverage, "latency_n > 0", coverage and coverage.replies_with_latency,
                "role = 2 AND processing_time_ms IS NOT NULL"),
            "messages.tokens": self._recorded_probe(
                coverage, "tokens_n > 0", coverage and coverage.messages_with_tokens,
                "role IN (1, 2) AND token_count <> 0"),
            "conversations.ended_at": (f"SELECT 1 FROM user_sessions s JOIN bots b ON b.id = s.bot_id"
                                       f" WHERE {READABLE_END}"
                                       + ("" if v.automation else " AND s.user_id <> s.bot_id")),
            "llm_calls": f"SELECT 1 FROM {v.llm_calls} l",
        }
        params = {"covered_until": coverage.covered_until} if coverage else None
        found = self.query("SELECT " + ", ".join(f"EXISTS ({sql})" for sql in probes.values()), params)[0]
        answer = NO_COLUMN | {name for name, present in zip(probes, found) if not present}
        self._unrecorded = (time.monotonic(), frozenset(answer))
        return self._unrecorded[1]

    def _recorded_probe(self, coverage: Optional[Coverage], bucket_test: str, counted: Optional[int],
                        row_test: str) -> str:
        """A query with a row when some message holds the measure: the rollups' count of them
        before ``covered_until`` and botserver's rows after it, else every row (no index helps)."""
        v = self.views
        raw = (f"SELECT 1 FROM message_history m JOIN user_sessions s ON s.id = m.session_id WHERE m.{row_test}"
               + ("" if v.automation else " AND s.user_id <> s.bot_id"))
        if coverage is None:
            return raw
        tail = f"{raw} AND m.created_at >= %(covered_until)s"
        if not counted:
            return tail
        if v.automation:
            return "SELECT 1"
        # The count includes automation sessions, which this source leaves out: look at the buckets.
        return (f"SELECT 1 FROM {self.sql.s}.message_buckets r WHERE r.{bucket_test} AND NOT r.automation"
                f" UNION ALL {tail}")

    def forget(self) -> None:
        """Ask botserver's tables again at the next ``unrecorded()`` (after a change one knows of)."""
        self._unrecorded = None

    # -- usage ----------------------------------------------------------

    def usage_totals(self, scope: Scope) -> Dict[str, float]:
        """Conversations, messages in/out, active and new users, tokens and cost of a scope."""
        plan, p = self._plan(scope)
        started = self._started(scope, plan)
        row = self.query(
            f"SELECT (SELECT {started.count} FROM {started.relation} c),"
            f" m.*, l.* FROM (SELECT {IN_OUT_USERS} FROM {self._facts(scope, plan)} m"
            f" WHERE {scope_where(scope, None, alias='m', period=False)}) m,"
            f" (SELECT count(*), coalesce(sum(input_tokens + output_tokens), 0), coalesce(sum(cost_usd), 0)"
            f" FROM {self.views.llm_calls} l WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')}) l", p)[0]
        conversations, messages_in, messages_out, active, calls, tokens, cost = row
        return {"conversations": conversations, "messages_in": messages_in, "messages_out": messages_out,
                "active_users": active, "new_users": sum(n for _, n in self._first_seen(scope)),
                "llm_calls": calls, "tokens": tokens, "cost_usd": round(cost, 6)}

    def _first_seen(self, scope: Scope) -> List[tuple]:
        """``[(local day, users first seen that day)]`` for users new in the period.

        Every user's first message is looked at, so the answer is kept a little while for a
        period the rollups hold whole (usage totals and the daily table both ask): while the
        rollups do not change (their generation), for ``KEPT_S`` seconds at most, since the
        organisations and channels it is joined with are botserver's own, read live.
        """
        where = scope_where(scope, None, alias="m", period=False)
        coverage = self.coverage()
        params = self._params(scope, covered_until=coverage.covered_until if coverage else None)
        sql = (f"SELECT {local_day('first')} AS day, count(*) FROM (SELECT min(first_in) AS first"
               f" FROM {self.sql.first_messages(coverage, bool(scope.channel))} m WHERE {where}"
               f" GROUP BY user_id) f WHERE first >= %(start)s GROUP BY day")
        if coverage is None or scope.period.end > coverage.covered_until:
            return self.query(sql, params)
        with self._lock:
            now = time.monotonic()
            for key in [k for k, v in self._kept.items() if v.rows is not None and now - v.at > KEPT_S]:
                del self._kept[key]
            kept = self._kept.setdefault((scope, coverage.generation), Kept())
        with kept.lock:
            if kept.rows is None or time.monotonic() - kept.at > KEPT_S:
                kept.rows, kept.at = self.query(sql, params), time.monotonic()
            return kept.rows

    def daily_usage(self, scope: Scope) -> List[dict]:
        """Per local day: conversations, messages in/out, active users and new users."""
        plan, p = self._plan(scope)
        days: Dict[dt.date, dict] = {}

        def day(d):
            return days.setdefault(d, {"conversations": 0, "messages_in": 0, "messages_out": 0,
                                       "active_users": 0, "new_users": 0})

        started = self._started(scope, plan)
        for d, count in self.query(
                f"SELECT {local_day(started.time)} AS day, {started.count} FROM {started.relation} c GROUP BY day", p):
            day(d)["conversations"] = count
        for d, messages_in, messages_out, active in self.query(
                f"SELECT {local_day('t')} AS day, {IN_OUT_USERS} FROM {self._facts(scope, plan)} m"
                f" WHERE {scope_where(scope, None, alias='m', period=False)} GROUP BY day", p):
            day(d).update(messages_in=messages_in, messages_out=messages_out, active_users=active)
        for d, count in self._first_seen(scope):
            day(d)["new_users"] = count
        return [{"day": d, **values} for d, values in sorted(days.items())]

    def activity_grid(self, scope: Scope) -> List[dict]:
        """Per local weekday (0 = Monday) and hour: messages in/out and conversations started."""
        plan, p = self._plan(scope)
        cells: Dict[tuple, dict] = {}

        def cell(key):
            return cells.setdefault(key, {"messages_in": 0, "messages_out": 0, "conversations": 0})

        weekday = "(extract(isodow FROM {t})::int - 1)"
        hour = "extract(hour FROM {t})::int"
        t = local("t")
        for wd, hr, messages_in, messages_out in self.query(
                f"SELECT {weekday.format(t=t)} AS wd, {hour.format(t=t)} AS hr, sum(messages_in), sum(messages_out)"
                f" FROM {self._counts(scope, plan)} m WHERE {scope_where(scope, None, alias='m', period=False)}"
                f" GROUP BY wd, hr", p):
            cell((wd, hr)).update(messages_in=messages_in, messages_out=messages_out)
        started = self._started(scope, plan)
        t = local(started.time)
        for wd, hr, count in self.query(
                f"SELECT {weekday.format(t=t)} AS wd, {hour.format(t=t)} AS hr, {started.count}"
                f" FROM {started.relation} c GROUP BY wd, hr", p):
            cell((wd, hr))["conversations"] = count
        return [{"weekday": wd, "hour": hr, **values} for (wd, hr), values in sorted(cells.items())]

    def usage_breakdown(self, scope: Scope, dimension: str) -> List[dict]:
        """Per bot or channel: conversations, messages, active users, tokens and cost; busiest first."""
        if dimension not in ("bot", "channel"):
            raise ValueError(f"dimension must be bot or channel, not {dimension!r}")
        key = "bot_id" if dimension == "bot" else "channel"
        plan, p = self._plan(scope)
        rows: Dict[str, dict] = {}

        def row(k):
            return rows.setdefault(k, {"key": k, "conversations": 0, "messages_in": 0, "messages_out": 0,
                                       "active_users": 0, "tokens": 0, "cost_usd": 0.0})

        started = self._started(scope, plan, need_channel=dimension == "channel")
        for k, count in self.query(f"SELECT {key}, {started.count} FROM {started.relation} c GROUP BY {key}", p):
            row(k)["conversations"] = count
        for k, messages_in, messages_out, active in self.query(
                f"SELECT {key}, {IN_OUT_USERS} FROM {self._facts(scope, plan, need_channel=dimension == 'channel')} m"
                f" WHERE {scope_where(scope, None, alias='m', period=False)} GROUP BY {key}", p):
            row(k).update(messages_in=messages_in, messages_out=messages_out, active_users=active)
        if dimension == "bot":
            llm = (f"SELECT l.bot_id, coalesce(sum(l.input_tokens + l.output_tokens), 0), coalesce(sum(l.cost_usd), 0)"
                   f" FROM {self.views.llm_calls} l WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')}"
                   f" GROUP BY l.bot_id")
        else:
            llm = (f"SELECT c.channel, coalesce(sum(l.input_tokens + l.output_tokens), 0), coalesce(sum(l.cost_usd), 0)"
                   f" FROM {self.views.llm_calls} l LEFT JOIN {self.views.conversations} c ON c.id = l.conversation_id"
                   f" WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')} GROUP BY c.channel")
        for k, tokens, cost in self.query(llm, p):
            row(k).update(tokens=tokens, cost_usd=round(cost, 6))
        return sorted(rows.values(), key=lambda r: (-r["messages_in"], -r["conversations"], str(r["key"])))

    def top_users(self, scope: Scope, limit: int) -> List[dict]:
        """The ``limit`` users with most incoming messages."""
        plan, p = self._plan(scope, limit=int(limit))
        rows = self.query(
            f"SELECT t.user_id, t.n, (SELECT count(*) FROM {self.views.conversations} c"
            f" WHERE {scope_where(scope, 'started_at', alias='c')} AND c.user_id = t.user_id), t.first, t.last"
            f" FROM (SELECT user_id, sum(messages_in) AS n, min(first_in) AS first, max(last_in) AS last"
            f" FROM {self._facts(scope, plan)} m WHERE {scope_where(scope, None, alias='m', period=False)}"
            f" AND messages_in > 0 GROUP BY user_id ORDER BY n DESC, user_id LIMIT %(limit)s) t"
            f" ORDER BY t.n DESC, t.user_id", p)
        return [{"user_id": u, "messages_in": n, "conversations": c, "first_at": first, "last_at": last}
                for u, n, c, first, last in rows]

    def bot_names(self, scope: Scope) -> Dict[str, str]:
        """``{bot_id: name}`` of the scope's organisation (every bot for the system scope)."""
        where = "org_id = %(org)s::uuid" if scope.org_id is not None else "TRUE"
        return dict(self.query(f"SELECT id, name FROM bots WHERE {where} ORDER BY id", self._params(scope)))

    def usage_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per bot per local day, ordered by day then bot."""
        plan, p = self._plan(scope)
        rows: Dict[tuple, dict] = {}

        def row(d, bot):
            return rows.setdefault((d, bot), {"day": d, "bot_id": bot, "conversations": 0, "messages_in": 0,
                                              "messages_out": 0, "active_users": 0, "errors": None,
                                              "tokens": 0, "cost_usd": 0.0})

        started = self._started(scope, plan)
        for d, bot, count in self.query(
                f"SELECT {local_day(started.time)} AS day, bot_id, {started.count} FROM {started.relation} c"
                f" GROUP BY day, bot_id", p):
            row(d, bot)["conversations"] = count
        for d, bot, messages_in, messages_out, active in self.query(
                f"SELECT {local_day('t')} AS day, bot_id, {IN_OUT_USERS} FROM {self._facts(scope, plan)} m"
                f" WHERE {scope_where(scope, None, alias='m', period=False)} GROUP BY day, bot_id", p):
            row(d, bot).update(messages_in=messages_in, messages_out=messages_out, active_users=active)
        for d, bot, tokens, cost in self.query(
                f"SELECT {local_day('created_at')} AS day, bot_id, coalesce(sum(input_tokens + output_tokens), 0),"
                f" coalesce(sum(cost_usd), 0) FROM {self.views.llm_calls} l"
                f" WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')} GROUP BY day, bot_id", p):
            row(d, bot).update(tokens=tokens, cost_usd=round(cost, 6))
        return iter([rows[key] for key in sorted(rows)])

    # -- conversations --------------------------------------------------

    def _counted(self, scope: Scope, **extra):
        """``(relation, params)``: conversations with their message counts over all their history,
        from the rollups' session totals when there are some, else counting only the sessions
        started in the period."""
        coverage = self.coverage()
        relation = self.sql.counted_conversations(
            self.views.conversations, coverage,
            "AND session_id IN (SELECT s.id FROM user_sessions s WHERE s.created_at >= %(start)s"
            " AND s.created_at < %(end)s)")
        return relation, self._params(scope, covered_until=coverage.covered_until if coverage else None, **extra)

    def conversation_summary(self, scope: Scope) -> dict:
        """Outcomes, message counts and durations of the conversations started in the scope."""
        counted, p = self._counted(scope)
        counts = ", ".join(f"count(*) FILTER (WHERE status = '{s}')" for s in STATUSES)
        row = self.query(
            f"SELECT count(*), {counts}, sum(message_count)::float8 / nullif(count(message_count), 0),"
            f" percentile_cont(0.5) WITHIN GROUP (ORDER BY message_count),"
            f" (percentile_disc(%(fractions)s::float8[]) WITHIN GROUP (ORDER BY message_count))[{P90}],"
            f" count(ended_at), percentile_cont(0.5) WITHIN GROUP (ORDER BY duration),"
            f" (percentile_disc(%(fractions)s::float8[]) WITHIN GROUP (ORDER BY duration))[{P90}]"
            f" FROM {once(counted, scope, f'status, message_count, ended_at, {DURATION} AS duration')}", p)[0]
        (total, resolved, abandoned, handed_off, open_, avg_messages, messages_median, messages_p90, ended,
         duration_median, duration_p90) = row
        return {"conversations": total, "resolved": resolved, "abandoned": abandoned, "handed_off": handed_off,
                "open": open_, "avg_messages": avg_messages, "messages_median": messages_median,
                "messages_p90": messages_p90, "ended": ended, "duration_median_ms": duration_median,
                "duration_p90_ms": duration_p90}

    def conversation_outcomes(self, scope: Scope) -> List[dict]:
        """Per local day of start: conversations by outcome."""
        counts = ", ".join(f"count(*) FILTER (WHERE status = '{s}')" for s in STATUSES)
        rows = self.query(
            f"SELECT {local_day('started_at')} AS day, {counts}"
            f" FROM {once(self.views.conversations, scope, 'started_at, status')} GROUP BY day ORDER BY day",
            self._params(scope))
        return [{"day": r[0], **dict(zip(STATUSES, r[1:]))} for r in rows]

    def top_conversations(self, scope: Scope, order_by: str, limit: int) -> List[dict]:
        """The longest conversations (``duration``) or those with most messages (``messages``)."""
        if order_by not in ("duration", "messages"):
            raise ValueError(f"order_by must be duration or messages, not {order_by!r}")
        counted, p = self._counted(scope, limit=int(limit))
        # Ranked by what they are ranked by alone (a session's end only for durations), then the
        # other columns worked out for the few kept.
        if order_by == "duration":
            ranked, key = f"id, started_at, message_count, {DURATION} AS duration_ms", "coalesce(t.duration_ms, -1)"
        else:
            ranked, key = "id, started_at, message_count", "coalesce(t.message_count, 0)"
        rows = self.query(
            f"SELECT c.id, c.bot_id, c.channel, c.user_id, c.started_at,"
            f" {DURATION.replace('ended_at', 'c.ended_at').replace('started_at', 'c.started_at')}, t.message_count,"
            f" c.status, c.satisfaction FROM (SELECT * FROM {once(counted, scope, ranked, alias='t')}"
            f" ORDER BY {key} DESC, t.started_at, t.id LIMIT %(limit)s) t"
            f" JOIN {self.views.conversations} c ON c.id = t.id ORDER BY {key} DESC, c.started_at, c.id", p)
        names = ("id", "bot_id", "channel", "user_id", "started_at", "duration_ms", "message_count", "status",
                 "satisfaction")
        return [dict(zip(names, r)) for r in rows]

    def top_intents(self, scope: Scope, limit: int) -> Optional[dict]:
        """None: botserver's message_history has no intent column (``unrecorded`` says so)."""
        return None

    def satisfaction(self, scope: Scope) -> dict:
        """Closed and rated conversations, the average rating and its distribution."""
        picks = ", ".join(f"count(*) FILTER (WHERE satisfaction = {n})" for n in range(1, 6))
        row = self.query(
            f"SELECT count(*) FILTER (WHERE status <> 'open'), count(satisfaction),"
            f" count(satisfaction) FILTER (WHERE status <> 'open'),"
            f" sum(satisfaction)::float8 / nullif(count(satisfaction), 0), {picks}"
            f" FROM {self.views.conversations} c WHERE {scope_where(scope, 'started_at', alias='c')}", self._params(scope))[0]
        closed, rated, rated_closed, average, *distribution = row
        return {"closed": closed, "rated": rated, "rated_closed": rated_closed, "average": average,
                "distribution": {n: count for n, count in zip(range(1, 6), distribution)}}

    def daily_satisfaction(self, scope: Scope) -> List[dict]:
        """Per local day of start with ratings: how many and their average."""
        rows = self.query(
            f"SELECT {local_day('started_at')} AS day, count(satisfaction),"
            f" sum(satisfaction)::float8 / nullif(count(satisfaction), 0) FROM {self.views.conversations} c"
            f" WHERE {scope_where(scope, 'started_at', alias='c')} GROUP BY day ORDER BY day", self._params(scope))
        return [{"day": d, "rated": n, "average": avg} for d, n, avg in rows]

    def handoffs(self, scope: Scope, dimension: str) -> List[dict]:
        """Per bot or channel: conversations and hand-offs to a human, most hand-offs first."""
        if dimension not in ("bot", "channel"):
            raise ValueError(f"dimension must be bot or channel, not {dimension!r}")
        key = "bot_id" if dimension == "bot" else "channel"
        rows = self.query(
            f"SELECT {key}, count(*), count(*) FILTER (WHERE status <> 'open'),"
            f" count(*) FILTER (WHERE status = 'handed_off') FROM {self.views.conversations} c"
            f" WHERE {scope_where(scope, 'started_at', alias='c')} GROUP BY {key}", self._params(scope))
        result = [{"key": k, "conversations": n, "closed": closed, "handed_off": h} for k, n, closed, h in rows]
        return sorted(result, key=lambda r: (-r["handed_off"], r["key"] is not None, str(r["key"])))

    def conversation_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per conversation started in the scope, ordered by start."""
        names = ("id", "bot_id", "channel", "user_id", "started_at", "ended_at", "duration_ms", "message_count",
                 "status", "satisfaction", "messages_in", "messages_out", "errors", "avg_latency_ms")
        counted, p = self._counted(scope)
        sql = (f"SELECT c.id, c.bot_id, c.channel, c.user_id, c.started_at, c.ended_at, {DURATION},"
               f" c.message_count, c.status, c.satisfaction, c.messages_in, c.messages_out, NULL::int, c.avg_latency"
               f" FROM {counted} c WHERE {scope_where(scope, 'started_at', alias='c')}"
               f" ORDER BY c.started_at, c.id")
        for row in self.stream(sql, p):
            record = dict(zip(names, row))
            if record["avg_latency_ms"] is not None:
                record["avg_latency_ms"] = round(record["avg_latency_ms"], 3)
            yield record

    def conversation_table_rows(self, scope: Scope, user_label) -> BotserverConversationTable:
        """The rows of ``conversation_rows`` as lists in the conversations raw table's column order
        (id, bot_id, channel, ``user_label`` of the user, started_at, ended_at, duration in seconds,
        message_count, messages_in, messages_out, errors, avg_latency_ms, status, satisfaction),
        or as the JSON export's text of them, spelled by PostgreSQL (``json_text``)."""
        counted, p = self._counted(scope)
        return BotserverConversationTable(
            self, table_cells(DURATION), f"FROM {counted} c WHERE {scope_where(scope, 'started_at', alias='c')}",
            p, user_label)

    # -- performance ----------------------------------------------------

    def _group_key(self, group: Optional[str], time_column: str) -> str:
        return {None: "NULL::text", "day": local_day(time_column), "bot": "bot_id", "channel": "channel"}[group]

    def reply_latency(self, scope: Scope, group: Optional[str] = None) -> List[dict]:
        """Latency of bot replies per group: count, average, min, max and percentiles."""
        if group not in (None, "day", "bot", "channel"):
            raise ValueError(f"group must be day, bot or channel, not {group!r}")
        plan, p = self._plan(scope)
        if plan.covered and not self.query(
                f"SELECT EXISTS (SELECT 1 FROM {self._counts(scope, plan)} m"
                f" WHERE {scope_where(scope, None, alias='m', period=False)} AND latency_n > 0)", p)[0][0]:
            return []  # the rollups say so at once; percentiles need each reply, so botserver's rows otherwise
        rows = self.query(
            f"SELECT {self._group_key(group, 'created_at')} AS k, {_stats('latency_ms')}"
            f" FROM {self.views.messages} m"
            f" WHERE {scope_where(scope, 'created_at', alias='m')} AND direction = 'out' AND latency_ms IS NOT NULL"
            f" GROUP BY k", self._params(scope))
        result = [{"key": k, "replies": n, **_stats_row(n, avg, low, high, picks)}
                  for k, n, avg, low, high, picks in rows]
        return sorted(result, key=lambda r: (r["key"] is None, r["key"] if group == "day" else str(r["key"])))

    def error_counts(self, scope: Scope, group: Optional[str] = None) -> List[dict]:
        """Per group: replies and LLM calls with their failures; reply errors are not recorded (None)."""
        if group not in (None, "day", "bot", "channel"):
            raise ValueError(f"group must be day, bot or channel, not {group!r}")
        plan, p = self._plan(scope)
        rows: Dict = {}

        def row(k):
            return rows.setdefault(k, {"key": k, "replies": 0, "errors": None, "llm_calls": 0, "llm_failures": 0})

        for k, replies in self.query(
                f"SELECT {self._group_key(group, 't')} AS k, sum(messages_out)"
                f" FROM {self._counts(scope, plan, need_channel=group == 'channel')} m"
                f" WHERE {scope_where(scope, None, alias='m', period=False)} AND messages_out > 0 GROUP BY k", p):
            row(k)["replies"] = replies
        if group == "channel":
            llm = (f"SELECT c.channel AS k, count(*), count(*) FILTER (WHERE NOT l.success) FROM {self.views.llm_calls} l"
                   f" LEFT JOIN {self.views.conversations} c ON c.id = l.conversation_id"
                   f" WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')} GROUP BY k")
        else:
            llm = (f"SELECT {self._group_key(group, 'created_at')} AS k, count(*), count(*) FILTER (WHERE NOT success)"
                   f" FROM {self.views.llm_calls} l WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')}"
                   f" GROUP BY k")
        for k, calls, failures in self.query(llm, p):
            row(k).update(llm_calls=calls, llm_failures=failures)
        return sorted(rows.values(), key=lambda r: (r["key"] is None, str(r["key"])))

    def llm_performance(self, scope: Scope) -> List[dict]:
        """Per model: calls, failures, tokens, cost and latency percentiles; most calls first."""
        rows = self.query(
            f"SELECT model, count(*), count(*) FILTER (WHERE NOT success), coalesce(sum(input_tokens), 0),"
            f" coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0), {_stats('latency_ms')}"
            f" FROM {self.views.llm_calls} l WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')}"
            f" GROUP BY model ORDER BY count(*) DESC, model {BINARY}", self._params(scope))
        result = []
        for model, calls, failures, tokens_in, tokens_out, cost, _n, avg, low, high, picks in rows:
            stats = _stats_row(_n, avg, low, high, picks)
            stats.pop("min_ms"), stats.pop("max_ms")
            result.append({"model": model, "calls": calls, "failures": failures, "input_tokens": tokens_in,
                           "output_tokens": tokens_out, "cost_usd": round(cost, 6), **stats})
        return result

    def throughput(self, scope: Scope) -> dict:
        """Messages, the busiest minute and local hour (earliest on a tie), and active hours."""
        plan, p = self._plan(scope)
        facts, where = self._counts(scope, plan), scope_where(scope, None, alias="m", period=False)
        total, active = self.query(
            f"SELECT coalesce(sum(messages_in + messages_out), 0), count(DISTINCT {local_hour_start('t')})"
            f" FROM {facts} m WHERE {where}", p)[0]
        if scope.channel:  # minutes are rolled up per bot, not per channel (which botserver rewrites)
            minute = self.query(
                f"SELECT date_trunc('minute', created_at) AS k, count(*) FROM {self.views.messages} m"
                f" WHERE {scope_where(scope, 'created_at', alias='m')} GROUP BY k ORDER BY count(*) DESC, k LIMIT 1", p)
        else:
            minute = self._peak_minute(plan, p, where)
        hour = self.query(
            f"SELECT {local_hour_start('t')} AS k, sum(messages_in + messages_out) FROM {facts} m WHERE {where}"
            f" GROUP BY k ORDER BY sum(messages_in + messages_out) DESC, k LIMIT 1", p)
        minute_at, minute_n = minute[0] if minute else (None, 0)
        hour_at, hour_n = hour[0] if hour else (None, 0)
        return {"messages": total, "peak_minute_at": minute_at, "peak_minute_messages": minute_n,
                "peak_hour_at": hour_at, "peak_hour_messages": hour_n, "active_hours": active}

    def _peak_minute(self, plan: Plan, p: dict, where: str) -> List[tuple]:
        """``[(minute, messages)]`` of the busiest minute (earliest on a tie), or ``[]``.

        The raw stretches are counted minute by minute. Over the rolled-up buckets, each
        bucket's busiest minute per bot bounds its minutes: buckets are read by falling
        bound, a few then twice as many, until the bound falls below the best minute found.
        """
        best: Optional[tuple] = None

        def consider(rows):
            nonlocal best
            for at, count in rows:
                if best is None or count > best[1] or (count == best[1] and at < best[0]):
                    best = (at, count)

        if plan.raw:
            consider(self.query(
                f"SELECT minute AS k, sum(messages) FROM {self.sql.minutes(Plan(None, plan.raw, plan.covered_until))} m"
                f" WHERE {where} GROUP BY k ORDER BY sum(messages) DESC, k LIMIT 1", p))
        if plan.covered:
            bounds = self.query(f"SELECT bucket, sum(busiest) FROM {self.sql.minute_bounds()} m WHERE {where}"
                                f" GROUP BY bucket HAVING sum(busiest) > 0 ORDER BY sum(busiest) DESC, bucket", p)
            index, size = 0, 4
            while index < len(bounds) and (best is None or bounds[index][1] >= best[1]):
                candidates = [bucket for bucket, _ in bounds[index:index + size]]
                index, size = index + size, size * 2
                consider(self.query(
                    f"SELECT minute AS k, sum(messages) FROM {self.sql.minutes_of()} m WHERE {where}"
                    f" GROUP BY k ORDER BY sum(messages) DESC, k LIMIT 1", {**p, "candidates": candidates}))
        return [best] if best else []

    def system_health(self, scope: Scope) -> Optional[List[dict]]:
        """None: botserver writes system metrics to InfluxDB, not PostgreSQL."""
        return None

    def daily_system_health(self, scope: Scope) -> Optional[List[dict]]:
        """None: botserver writes system metrics to InfluxDB, not PostgreSQL."""
        return None

    def performance_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per bot per local hour, ordered by hour then bot."""
        plan, p = self._plan(scope)
        rows: Dict[tuple, dict] = {}

        def row(hour, bot):
            return rows.setdefault((hour, bot), {
                "hour_start": hour, "bot_id": bot, "messages_in": 0, "replies": 0, "errors": None,
                "avg_latency_ms": None, "max_latency_ms": None, "llm_calls": 0, "llm_failures": 0, "tokens": 0})

        for hour, bot, messages_in, replies, avg, high in self.query(
                f"SELECT {local_hour_start('t')} AS h, bot_id, sum(messages_in), sum(messages_out),"
                f" sum(latency_sum)::float8 / nullif(sum(latency_n), 0), max(latency_max)"
                f" FROM {self._counts(scope, plan)} m WHERE {scope_where(scope, None, alias='m', period=False)}"
                f" GROUP BY h, bot_id", p):
            row(hour, bot).update(messages_in=messages_in, replies=replies,
                                  avg_latency_ms=None if avg is None else round(avg, 3), max_latency_ms=high)
        for hour, bot, calls, failures, tokens in self.query(
                f"SELECT {local_hour_start('created_at')} AS h, bot_id, count(*), count(*) FILTER (WHERE NOT success),"
                f" coalesce(sum(input_tokens + output_tokens), 0) FROM {self.views.llm_calls} l"
                f" WHERE {scope_where(scope, 'created_at', alias='l', channel='conversation')} GROUP BY h, bot_id", p):
            row(hour, bot).update(llm_calls=calls, llm_failures=failures, tokens=tokens)
        return iter([rows[key] for key in sorted(rows)])

    # -- compliance -----------------------------------------------------

    def _audit_where(self, scope: Scope, period: bool = True) -> str:
        return scope_where(scope, "created_at", alias="a", channel="none", period=period)

    def audit_summary(self, scope: Scope) -> List[dict]:
        """Events per action and result, most first."""
        rows = self.query(
            f"SELECT action, result, count(*) FROM {self.views.audit_events} a WHERE {self._audit_where(scope)}"
            f" GROUP BY action, result ORDER BY count(*) DESC, action {BINARY}, result {BINARY}",
            self._params(scope))
        return [{"action": a, "result": r, "events": n} for a, r, n in rows]

    def audit_denials(self, scope: Scope, limit: int) -> List[dict]:
        """Per actor with denied events: denials, the actions denied (sorted), the last denial; most first."""
        rows = self.query(
            f"SELECT actor, count(*), array_agg(DISTINCT action), max(created_at) FROM {self.views.audit_events} a"
            f" WHERE {self._audit_where(scope)} AND result = 'denied' GROUP BY actor"
            f" ORDER BY count(*) DESC, actor {BINARY} LIMIT %(limit)s", self._params(scope, limit=int(limit)))
        return [{"actor": a, "denials": n, "actions": sorted(k), "last_at": last} for a, n, k, last in rows]

    AUDIT_COLUMNS = ("created_at", "actor", "action", "resource_type", "resource_id", "result", "bot_id", "ip")

    def audit_events(self, scope: Scope, *, actions: Optional[Sequence[str]] = None,
                     results: Optional[Sequence[str]] = None, limit: int = 100) -> List[dict]:
        """The latest events first, optionally only some actions or results."""
        where = self._audit_where(scope)
        if actions:
            where += " AND action = ANY(%(actions)s::text[])"
        if results:
            where += " AND result = ANY(%(results)s::text[])"
        rows = self.query(
            f"SELECT {', '.join(self.AUDIT_COLUMNS)} FROM {self.views.audit_events} a WHERE {where}"
            f" ORDER BY created_at DESC, id DESC LIMIT %(limit)s",
            self._params(scope, actions=list(actions or []), results=list(results or []), limit=int(limit)))
        return [dict(zip(self.AUDIT_COLUMNS, r)) for r in rows]

    def retention_overview(self, scope: Scope, cutoff: dt.datetime) -> List[dict]:
        """Per bot, conversations started before ``cutoff`` (whatever the period)."""
        rows = self.query(
            f"SELECT bot_id, count(*), min(started_at) FROM {self.views.conversations} c"
            f" WHERE {scope_where(scope, None, alias='c', period=False)} AND started_at < %(cutoff)s"
            f" GROUP BY bot_id ORDER BY count(*) DESC, bot_id", self._params(scope, cutoff=cutoff))
        return [{"bot_id": b, "conversations": n, "oldest_at": oldest} for b, n, oldest in rows]

    def audit_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per audit event in the scope, oldest first."""
        sql = (f"SELECT {', '.join(self.AUDIT_COLUMNS)} FROM {self.views.audit_events} a WHERE {self._audit_where(scope)}"
               f" ORDER BY created_at, id")
        return (dict(zip(self.AUDIT_COLUMNS, row)) for row in self.stream(sql, self._params(scope)))

    # -- custom metrics -------------------------------------------------

    def custom_metric(self, scope: Scope, metric) -> Optional[List[dict]]:
        """A validated ``MetricQuery`` compiled to SQL; None when it needs what botserver does not record."""
        compiled = compile_metric(scope, metric, self.views, self.unrecorded())
        if compiled is None:
            return None
        sql, extra = compiled
        rows = order_groups(metric, self.query(sql, self._params(scope, **extra)))
        return [{"group": g, "value": round(v, 6) if isinstance(v, float) else v} for g, v in rows]


def open_botserver(url: str) -> BotserverAnalytics:
    return BotserverAnalytics(url)


@hookimpl
def register_data_sources():
    description = "botserver's PostgreSQL database (read-only; needs the postgres extra)"
    return [DataSourceFactory(scheme="postgresql", open=open_botserver, description=description),
            DataSourceFactory(scheme="postgres", open=open_botserver, description=description)]
