"""The default analytics source: an SQLite file with the canonical schema.

Timestamps are epoch milliseconds (UTC). Every section query aggregates in
SQLite (GROUP BY over indexes); Python only shapes the few result rows.
"""
from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import quote, unquote, urlparse

from ... import hookimpl
from ...core.analytics_schema import TABLES
from ...core.models import DataSourceFactory, Scope
from .sql_time import buckets_fit, day_from_number, epoch_ms, local_day_sql
from .sqlite_compliance import ComplianceQueries
from .sqlite_conversation_keys import TABLE as CONVERSATION_KEYS
from .sqlite_conversation_keys import build_conversation_keys
from .sqlite_conversation_rows import TABLE as CONVERSATION_ROWS
from .sqlite_conversation_rows import build_conversation_rows, conversation_rows_current
from .sqlite_conversations import ConversationQueries
from .sqlite_custom_metric import CustomMetricQueries
from .sqlite_ownership import refused_rows
from .sqlite_performance import PerformanceQueries
from .sqlite_recorded_values import TABLE as RECORDED_VALUES
from .sqlite_recorded_values import build_recorded_values, unrecorded_in
from .sqlite_rollups import (BUCKET_MS, CONVERSATIONS_ROLLUP, ROLLUP_NAMES, build_rollups, has_rollups,
                             rollups_current)
from .sqlite_usage import UsageQueries, fold_llm
from .sqlite_watermark import TABLE as WATERMARK
from .sqlite_watermark import build_watermark, read_watermark
from .sqlite_write import has_tables, write_transaction

_SQL_TYPES = {"text": "TEXT", "integer": "INTEGER", "number": "REAL", "boolean": "INTEGER",
              "timestamp": "INTEGER"}

#: Indexes that cover the section queries; created after a bulk load. Each query
#: reads one of them without touching the table, and grouping by value
#: (percentiles, per-user counts) follows the index order instead of sorting.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS messages_org_time ON messages"
    " (org_id, created_at, direction, user_id, bot_id, channel, is_error)",
    "CREATE INDEX IF NOT EXISTS messages_org_user ON messages (org_id, direction, user_id, created_at)",
    "CREATE INDEX IF NOT EXISTS messages_bot_time ON messages (bot_id, created_at)",
    "CREATE INDEX IF NOT EXISTS messages_latency ON messages"
    " (direction, latency_ms, created_at, org_id, bot_id, channel)",
    # Replies of a period in time order, for exact percentiles per local day or bot.
    "CREATE INDEX IF NOT EXISTS messages_reply_time ON messages"
    " (direction, created_at, latency_ms, org_id, bot_id, channel)",
    "CREATE INDEX IF NOT EXISTS messages_conversation ON messages"
    " (conversation_id, direction, is_error, latency_ms)",
    # Incoming messages with an intent, in time order, with what top intents count (distinct
    # conversations and users): a period is one range of a small index.
    "CREATE INDEX IF NOT EXISTS messages_intents ON messages"
    " (direction, created_at, intent, org_id, bot_id, channel, conversation_id, user_id)"
    " WHERE intent IS NOT NULL",
    # The same messages in intent order, once per thing top intents count distinct: grouping by
    # (intent, conversation) or (intent, user) follows the index instead of sorting the period.
    "CREATE INDEX IF NOT EXISTS messages_intent_conversations ON messages"
    " (direction, intent, conversation_id, created_at, org_id, bot_id, channel) WHERE intent IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS messages_intent_users ON messages"
    " (direction, intent, user_id, created_at, org_id, bot_id, channel) WHERE intent IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS conversations_org_time ON conversations (org_id, started_at)",
    "CREATE INDEX IF NOT EXISTS conversations_bot_time ON conversations (bot_id, started_at)",
    # Every column the conversation sections read, in start order (then id, the raw rows' order):
    # a period is one index range, and the raw rows need no sort.
    "CREATE INDEX IF NOT EXISTS conversations_started ON conversations"
    " (started_at, id, org_id, bot_id, channel, status, satisfaction, message_count, ended_at, user_id)",
    # Conversations in length order, and ended ones in duration order: the two histograms of
    # a period holding much of the file are counted along them instead of sorted.
    "CREATE INDEX IF NOT EXISTS conversations_length ON conversations"
    " (message_count, started_at, org_id, bot_id, channel)",
    "CREATE INDEX IF NOT EXISTS conversations_duration ON conversations"
    " (ended_at - started_at, started_at, ended_at, org_id, bot_id, channel) WHERE ended_at IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS llm_calls_org_time ON llm_calls (org_id, created_at)",
    "CREATE INDEX IF NOT EXISTS llm_calls_model_latency ON llm_calls"
    " (model, latency_ms, created_at, org_id, bot_id)",
    "CREATE INDEX IF NOT EXISTS system_samples_org_time ON system_samples (org_id, created_at)",
    "CREATE INDEX IF NOT EXISTS audit_events_org_time ON audit_events (org_id, created_at)",
)

#: Indexes of earlier files that one of ``INDEXES`` now covers.
SUPERSEDED_INDEXES = ("conversations_time",)

#: Per table: its time column, whether it has ``bot_id``, and how a channel filter reaches it
#: (its own column, through its conversation, or not at all).
TABLE_SCOPES = {
    "messages": ("created_at", True, "column"),
    "conversations": ("started_at", True, "column"),
    "llm_calls": ("created_at", True, "conversation"),
    "system_samples": ("created_at", False, None),
    "audit_events": ("created_at", True, None),
}


def schema_sql() -> List[str]:
    """CREATE TABLE statements of the canonical schema."""
    statements = []
    for table, columns in TABLES.items():
        defs = []
        for spec in columns.values():
            text = f"{spec.name} {_SQL_TYPES[spec.kind]}"
            if spec.name == "id":
                text += " PRIMARY KEY"
            elif spec.required:
                text += " NOT NULL"
            defs.append(text)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(defs)})")
    return statements


def create_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) an analytics file with the canonical schema."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    # A replaced row (INSERT OR REPLACE) must leave the rollups through their delete triggers.
    conn.execute("PRAGMA recursive_triggers = ON")
    for statement in schema_sql():
        conn.execute(statement)
    return conn


def create_indexes(conn: sqlite3.Connection) -> None:
    """Create the covering indexes and (re)build the rollup tables after a bulk load."""
    for name in SUPERSEDED_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    for statement in INDEXES:
        conn.execute(statement)
    build_rollups(conn)
    build_conversation_rows(conn)
    build_conversation_keys(conn)
    build_recorded_values(conn)
    build_watermark(conn)
    conn.execute("ANALYZE")


def missing_indexes(conn: sqlite3.Connection) -> List[str]:
    """The statements of ``INDEXES`` whose index the file lacks."""
    present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    return [statement for statement in INDEXES if statement.split()[5] not in present]


def insert_rows(conn: sqlite3.Connection, table: str, rows: Iterable[Sequence]) -> int:
    """Insert tuples in the column order of ``TABLES[table]`` (inside the caller's transaction)."""
    columns = list(TABLES[table])
    marks = ", ".join("?" for _ in columns)
    cursor = conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
    return cursor.rowcount


def path_of(url: str) -> Path:
    """``sqlite:///abs/path.db`` or ``sqlite:relative.db`` -> a Path."""
    parsed = urlparse(url)
    if parsed.scheme != "sqlite":
        raise ValueError(f"not an sqlite URL: {url}")
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"an sqlite URL names a local file: sqlite:///abs/path.db, not {url}")
    raw = unquote(parsed.path)
    # sqlite:////abs/path (SQLAlchemy style) and sqlite:///abs/path both mean /abs/path
    return Path("/" + raw.lstrip("/")) if raw.startswith("/") else Path(raw)


#: Walking an index over the whole file wins when the period holds at least 1/HISTORY_SHARE
#: of its incoming messages: an index walk costs a few times less per row than a sort.
HISTORY_SHARE = 4
#: Answers a source keeps (``SqliteAnalytics.kept``): a few questions about the two scopes of a report.
KEPT_ANSWERS = 16


class SqliteAnalytics(UsageQueries, ConversationQueries, PerformanceQueries, ComplianceQueries,
                      CustomMetricQueries):
    """Answers the section queries (``core.datasource.AnalyticsSource``) from one SQLite
    analytics file, read-only."""

    name = "sqlite"
    #: Sections may query at the same time: each thread reads through its own connection.
    concurrent_queries = True

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._kept: Dict[tuple, Tuple[int, Future]] = {}
        self._kept_lock = threading.Lock()
        self._version_conn: Optional[sqlite3.Connection] = None
        self._unrecorded: Optional[Tuple[int, FrozenSet[str]]] = None  # (data version, answer)
        self._unrecorded_lock = threading.Lock()
        if not self.path.exists():
            create_database(self.path).close()

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    def connect(self) -> sqlite3.Connection:
        """A new read-only connection to the file (the caller closes it): a report can never
        change the analytics data."""
        conn = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro", uri=True, timeout=30,
                               check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        return conn

    def _data_version(self) -> int:
        """A number that changes whenever data is committed to the file: ``PRAGMA data_version``
        of a connection of its own, which never writes, so every commit is another's."""
        with self._kept_lock:
            if self._version_conn is None:
                self._version_conn = self.connect()
            return self._version_conn.execute("PRAGMA data_version").fetchone()[0]

    def unrecorded(self) -> FrozenSet[str]:
        """The measures (``core.datasource.MEASURES``) no row of the file holds a value for,
        read from the file's counts of them (``sqlite_recorded_values``) and kept while the
        file stays the same: the first value written makes its measure count."""
        version = self._data_version()
        with self._unrecorded_lock:  # the sections of a report ask at once: one reads, the others wait
            kept = self._unrecorded
            if kept is None or kept[0] != version:
                kept = self._unrecorded = (version, unrecorded_in(self.conn, self.has_table(RECORDED_VALUES)))
            return kept[1]

    @property
    def rollups(self) -> bool:
        """Whether the file has rollup tables; files written before they existed are read
        from the base tables (slower, same numbers)."""
        found = getattr(self, "_rollups", None)
        if found is None:
            found = self._rollups = has_rollups(self.conn)
        return found

    def counted_conversations(self, scope: Scope) -> Tuple[str, str, str, str, list]:
        """``(table, start, count, where, params)``: where to count a scope's conversations. The
        conversations rollup (``start`` its cells' start, ``count`` the sum of their counts) when
        it can answer the scope exactly, else the conversations themselves (``count(*)``)."""
        rolled = self.rolled(scope)
        if rolled and self.has_table(CONVERSATIONS_ROLLUP):
            return CONVERSATIONS_ROLLUP, f"(bucket * {BUCKET_MS})", "sum(conversations)", rolled[0], rolled[1]
        where, params = self.scoped("conversations", scope)
        return "conversations", "started_at", "count(*)", where, params

    def _forget_schema(self) -> None:
        """Forget what was learnt of the file's tables, columns and indexes (after it gained some)."""
        self._rollups = None
        for kept in ("_tables", "_columns", "_indexes", "_conversation_rows_current"):
            self.__dict__.pop(kept, None)

    def has_table(self, name: str) -> bool:
        """Whether the file has the table ``name`` (files written before it existed do not)."""
        return self._in_schema("_tables", "table", name)

    def _in_schema(self, cache: str, kind: str, name: str) -> bool:
        """Whether the file has the ``kind`` (table, index) ``name``, asked once per name."""
        found = self.__dict__.setdefault(cache, {})
        if name not in found:
            found[name] = bool(self.query("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", [kind, name]))
        return found[name]

    def kept(self, name: str, scope: Scope, compute: Callable[[], Any]) -> Any:
        """``compute()``'s answer for ``scope``, shared by the threads of this source while the
        file stays the same: a report's sections ask some questions several times, from the
        threads that collect them. A thread asking while another computes the same answer
        waits for it rather than computing it again."""
        # Bot ids may come as a list: the key spells the scope in hashable parts.
        key = (name, scope.org_id, scope.period, tuple(scope.bot_ids or ()), scope.channel)
        version = self._data_version()  # before computing: a commit meanwhile makes it stale
        with self._kept_lock:
            entry = self._kept.get(key)
            if entry is not None and entry[0] == version:
                future, owner = entry[1], False
            else:
                if len(self._kept) >= KEPT_ANSWERS:
                    self._kept.pop(next(iter(self._kept)))
                future, owner = Future(), True
                self._kept[key] = (version, future)
        if not owner:
            return future.result()
        try:
            answer = compute()
        except BaseException as error:
            with self._kept_lock:
                if self._kept.get(key, (None, None))[1] is future:
                    del self._kept[key]
            future.set_exception(error)
            raise
        future.set_result(answer)
        return answer

    def walks_history(self, scope: Scope, *indexes: str) -> bool:
        """Whether to answer ``scope`` by walking ``indexes`` over the whole file (every entry
        ever, already in the order a grouping wants, the period a filter) rather than sorting
        the period's rows: walking wins unless the period holds a small share of the history.
        The share of incoming messages, read from the rollups, decides."""
        if not (self.rollups and all(self.has_index(name) for name in indexes)):
            return False
        return self.kept("history_share", scope, lambda: self._holds_much_of_history(scope))

    def _holds_much_of_history(self, scope: Scope) -> bool:
        start, end = epoch_ms(scope.period.start) // BUCKET_MS, epoch_ms(scope.period.end) // BUCKET_MS + 1
        period, every = self.query(
            "SELECT coalesce(sum(CASE WHEN bucket >= ? AND bucket < ? THEN messages_in END), 0),"
            " coalesce(sum(messages_in), 0) FROM rollup_messages", [start, end])[0]
        return period * HISTORY_SHARE >= every

    def distinct_users_sql(self, scope: Scope, where: str, key: Optional[str] = None) -> str:
        """SQL counting the distinct users of the users rollup's cells matching ``where``, in
        total or per ``key`` (``bot_id`` or ``channel``): ``SELECT [key,] count``."""
        if key is None:
            if self.walks_history(scope, "rollup_users_user"):
                return (f"SELECT count(*) FROM (SELECT user_id FROM rollup_users INDEXED BY rollup_users_user"
                        f" WHERE {where} GROUP BY user_id)")
            return f"SELECT count(DISTINCT user_id) FROM rollup_users WHERE {where}"
        index = {"bot_id": "rollup_users_bot", "channel": "rollup_users_channel"}[key]
        if self.walks_history(scope, index):
            return (f"SELECT {key}, count(*) FROM (SELECT {key}, user_id FROM rollup_users INDEXED BY {index}"
                    f" WHERE {where} GROUP BY {key}, user_id) GROUP BY 1")
        return f"SELECT {key}, count(DISTINCT user_id) FROM rollup_users WHERE {where} GROUP BY 1"

    def watermark(self, scope: Scope) -> dict:
        """What identifies the data the scope's organisation reads (``sqlite_watermark``): counts
        of its rows ever written per table, and the newest instants written."""
        return read_watermark(self.conn, scope.org_id)

    def has_column(self, table: str, column: str) -> bool:
        """Whether ``table`` has ``column``, generated columns included (older files may not)."""
        found = self.__dict__.setdefault("_columns", {})
        if table not in found:
            found[table] = {row[1] for row in self.query(f"PRAGMA table_xinfo({table})")}
        return column in found[table]

    def has_index(self, name: str) -> bool:
        """Whether the file has the index ``name`` (files written before it existed do not)."""
        return self._in_schema("_indexes", "index", name)

    def query(self, sql: str, params: Sequence = ()) -> List[tuple]:
        return self.conn.execute(sql, list(params)).fetchall()

    def at_once(self, *statements: Tuple[str, Sequence]) -> List[List[tuple]]:
        """The rows of each ``(sql, params)``, the statements run at the same time: the first on
        this thread, the others on threads (and connections) of their own. Worth it for long
        reads: the database releases the interpreter lock while it works."""
        (first, *others) = statements
        with ThreadPoolExecutor(max_workers=max(1, len(others)), thread_name_prefix="botreports-query") as pool:
            futures = [pool.submit(self.query, sql, params) for sql, params in others]
            return [self.query(*first)] + [future.result() for future in futures]

    def close(self) -> None:
        with self._kept_lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None
            self._kept.clear()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def write_events(self, events: Sequence[Tuple[str, dict]]) -> Dict[str, int]:
        """Write validated ``(table, row)`` events in one transaction: all of them or none.

        Rows with an ``id`` replace an earlier row with the same id, so re-sending
        a batch is harmless.
        """
        return self._write(events, None, checked=False)[0]

    def write_owned_events(self, org_id: Optional[str],
                           events: Sequence[Tuple[str, dict]]) -> Tuple[Dict[str, int], Dict[int, str]]:
        """``write_events`` for an ingest by ``org_id`` (None: the local system), leaving out the
        rows it may not write (``sqlite_ownership.refused_rows``), found inside the same write
        transaction; returns the counts written and ``{position: problem}`` of the rows left out."""
        return self._write(events, org_id, checked=True)

    def _write(self, events, org_id, checked):
        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            # A replaced row must leave the rollup tables (their delete triggers) before its
            # successor enters them; SQLite fires delete triggers on REPLACE only with this on.
            conn.execute("PRAGMA recursive_triggers = ON")
            # A file written before the rollups (or the later ones), the conversation rows, the
            # keys catalog or the counts of recorded values existed gains them once; a file fed only by ingest gains the covering
            # indexes once too, as after a bulk load. SQLite keeps them all current from then on.
            # Rollups or conversation rows built by an earlier definition are rebuilt once too.
            for tables, build, current in ((ROLLUP_NAMES, build_rollups, rollups_current),
                                           ((CONVERSATION_ROWS,), build_conversation_rows, conversation_rows_current),
                                           ((CONVERSATION_KEYS,), build_conversation_keys, None),
                                           ((RECORDED_VALUES,), build_recorded_values, None)):
                if not has_tables(conn, *tables) or (current is not None and not current(conn)):
                    build(conn)
                    self._forget_schema()
            if not has_tables(conn, WATERMARK):  # counted from now on (sqlite_watermark)
                build_watermark(conn)
            missing = missing_indexes(conn)
            for statement in missing:
                conn.execute(statement)
            if missing:
                self._forget_schema()
            counts: Dict[str, int] = {}
            with write_transaction(conn):
                refused = refused_rows(conn, org_id, events) if checked else {}
                for position, (table, row) in enumerate(events):
                    if position in refused:
                        continue
                    columns = list(TABLES[table])
                    verb = "INSERT OR REPLACE" if "id" in columns else "INSERT"
                    conn.execute(f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                                 [row[c] for c in columns])
                    counts[table] = counts.get(table, 0) + 1
            return counts, refused
        finally:
            conn.close()

    # -- scope filters --------------------------------------------------

    def where(self, scope: Scope, time_column: str, *, period: bool = True, alias: str = "",
              has_channel: bool = True, time_index: bool = True) -> Tuple[str, list]:
        """The WHERE clause restricting a table to a scope (org, bots, channel, period).

        ``time_index=False`` keeps the planner from reading the period through a time index
        (the unary ``+``), so that it walks an index in the order of what is grouped (a
        percentile's ``(group, value, created_at)``) and skips to the period in each group.
        """
        p = f"{alias}." if alias else ""
        clauses, params = [], []
        if scope.org_id is not None:
            clauses.append(f"{p}org_id = ?"); params.append(scope.org_id)
        if period:
            hint = "" if time_index else "+"
            clauses.append(f"{hint}{p}{time_column} >= ? AND {p}{time_column} < ?")
            params += [epoch_ms(scope.period.start), epoch_ms(scope.period.end)]
        if scope.bot_ids:
            clauses.append(f"{p}bot_id IN ({', '.join('?' for _ in scope.bot_ids)})")
            params += list(scope.bot_ids)
        if scope.channel:
            if has_channel:
                clauses.append(f"{p}channel = ?")
            else:
                clauses.append(f"{p}conversation_id IN (SELECT id FROM conversations WHERE channel = ?)")
            params.append(scope.channel)
        return " AND ".join(clauses) or "1 = 1", params

    def rolled(self, scope: Scope, *, channel: bool = True, alias: str = "") -> Optional[Tuple[str, list]]:
        """The WHERE clause restricting a bucketed rollup table to a scope, or None when the rollups
        cannot answer it exactly: no rollup tables, or a period (or an offset change of its zone)
        that does not fall on a 15-minute boundary."""
        if not self.rollups or not buckets_fit(scope.period):
            return None
        p = f"{alias}." if alias else ""
        start, end = epoch_ms(scope.period.start), epoch_ms(scope.period.end)
        clauses, params = [f"{p}bucket >= ? AND {p}bucket < ?"], [start // BUCKET_MS, end // BUCKET_MS]
        if scope.org_id is not None:
            clauses.append(f"{p}org_id = ?"); params.append(scope.org_id)
        if scope.bot_ids:
            clauses.append(f"{p}bot_id IN ({', '.join('?' for _ in scope.bot_ids)})")
            params += list(scope.bot_ids)
        if scope.channel and channel:
            clauses.append(f"{p}channel = ?"); params.append(scope.channel)
        return " AND ".join(clauses), params

    def scoped(self, table: str, scope: Scope, *, alias: str = "", period: bool = True,
               time_index: bool = True) -> Tuple[str, list]:
        """The WHERE clause restricting ``table`` to a scope, with the filters the table can take."""
        time_column, has_bot, channel = TABLE_SCOPES[table]
        if not has_bot or channel is None:
            scope = Scope(org_id=scope.org_id, period=scope.period,
                          bot_ids=scope.bot_ids if has_bot else (), channel=None)
        return self.where(scope, time_column, period=period, alias=alias, has_channel=channel == "column",
                          time_index=time_index)

    # -- usage ----------------------------------------------------------

    def usage_totals(self, scope: Scope) -> Dict[str, float]:
        """Conversations, messages in/out, active and new users, tokens and cost of a scope."""
        table, _, count, conv_where, conv_params = self.counted_conversations(scope)
        conversations = self.query(f"SELECT coalesce({count}, 0) FROM {table} WHERE {conv_where}",
                                   conv_params)[0][0]
        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            messages_in, messages_out = self.query(
                f"SELECT coalesce(sum(messages_in), 0), coalesce(sum(messages_out), 0) FROM rollup_messages"
                f" WHERE {where}", params)[0]
            active = self.query(self.distinct_users_sql(scope, where), params)[0][0]
            [calls, tokens, cost] = fold_llm(self.llm_cells(scope, rolled), lambda cell: None,
                                             ("calls", "tokens", "cost_usd")).get(None, [0, 0, 0.0])
            calls, tokens, cost = calls or 0, tokens or 0, cost or 0
        else:
            msg_where, msg_params = self.where(scope, "created_at")
            llm_where, llm_params = self.where(scope, "created_at", has_channel=False)
            messages_in, messages_out, active = self.query(
                f"SELECT coalesce(sum(direction = 'in'), 0), coalesce(sum(direction = 'out'), 0),"
                f" count(DISTINCT CASE WHEN direction = 'in' THEN user_id END)"
                f" FROM messages WHERE {msg_where}", msg_params)[0]
            calls, tokens, cost = self.query(
                f"SELECT count(*), coalesce(sum(input_tokens + output_tokens), 0), coalesce(sum(cost_usd), 0)"
                f" FROM llm_calls WHERE {llm_where}", llm_params)[0]
        return {
            "conversations": conversations,
            "messages_in": messages_in,
            "messages_out": messages_out,
            "active_users": active,
            "new_users": sum(count for _, count in self._first_seen(scope)),
            "llm_calls": calls,
            "tokens": tokens,
            "cost_usd": round(cost, 6),
        }

    def _first_seen(self, scope: Scope) -> List[Tuple[int, int]]:
        """``[(local day number, users first seen that day)]`` for users new in the period."""
        where, params = self.where(scope, "created_at", period=False)
        day_sql, day_params = local_day_sql("first", scope.period)
        if self.rollups:
            # Each user's first message per bot and channel; the earliest of those in scope is theirs.
            inner = (f"SELECT min(first_at) AS first FROM rollup_first_seen WHERE {where} AND first_at < ?"
                     f" GROUP BY user_id")
        else:
            inner = (f"SELECT min(created_at) AS first FROM messages"
                     f" WHERE {where} AND direction = 'in' AND created_at < ? GROUP BY user_id")
        return self.query(
            f"SELECT {day_sql} AS day, count(*) FROM ({inner}) WHERE first >= ? GROUP BY day",
            day_params + params + [epoch_ms(scope.period.end), epoch_ms(scope.period.start)])

    def daily_usage(self, scope: Scope) -> List[dict]:
        """Per local day: conversations, messages in/out, active users and new users."""
        days: Dict[int, dict] = {}

        def day(number):
            return days.setdefault(number, {"conversations": 0, "messages_in": 0, "messages_out": 0,
                                            "active_users": 0, "new_users": 0})

        table, start, count, conv_where, conv_params = self.counted_conversations(scope)
        day_sql, day_params = local_day_sql(start, scope.period)
        for number, count in self.query(
                f"SELECT {day_sql} AS day, {count} FROM {table} WHERE {conv_where} GROUP BY day",
                day_params + conv_params):
            day(number)["conversations"] = count
        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            day_sql, day_params = local_day_sql(f"(bucket * {BUCKET_MS})", scope.period)
            for number, messages_in, messages_out in self.query(
                    f"SELECT {day_sql} AS day, sum(messages_in), sum(messages_out) FROM rollup_messages"
                    f" WHERE {where} GROUP BY day", day_params + params):
                day(number).update(messages_in=messages_in, messages_out=messages_out)
            for number, active in self.query(
                    f"SELECT {day_sql} AS day, count(DISTINCT user_id) FROM rollup_users WHERE {where}"
                    f" GROUP BY day", day_params + params):
                day(number)["active_users"] = active
        else:
            msg_where, msg_params = self.where(scope, "created_at")
            day_sql, day_params = local_day_sql("created_at", scope.period)
            for number, messages_in, messages_out, active in self.query(
                    f"SELECT {day_sql} AS day, sum(direction = 'in'), sum(direction = 'out'),"
                    f" count(DISTINCT CASE WHEN direction = 'in' THEN user_id END)"
                    f" FROM messages WHERE {msg_where} GROUP BY day", day_params + msg_params):
                row = day(number)
                row.update(messages_in=messages_in, messages_out=messages_out, active_users=active)
        for number, count in self._first_seen(scope):
            day(number)["new_users"] = count
        return [{"day": day_from_number(number), **values} for number, values in sorted(days.items())]


def open_sqlite(url: str) -> SqliteAnalytics:
    return SqliteAnalytics(path_of(url))


@hookimpl
def register_data_sources():
    return DataSourceFactory(scheme="sqlite", open=open_sqlite,
                             description="SQLite file with the canonical analytics schema")
