"""Rollup tables of the SQLite analytics file: counts and sums per organisation,
bot, channel and UTC 15-minute bucket (and a few narrower shapes), so report
queries read thousands of rollup rows instead of millions of events.

Every IANA offset is a multiple of 15 minutes, so a 15-minute bucket lies in
one local day and one local hour of any zone: folding buckets into local days
is exact. Rollups are built in bulk (``build_rollups``) and then kept up to
date by triggers: an insert adds the new row's contribution, a delete or an
update recomputes the few cells it touched from the base table (so minima,
maxima and first-seen times stay exact).
"""
from __future__ import annotations

import sqlite3
from typing import List, Sequence, Tuple

import attrs

from .sqlite_write import drop_triggers, has_tables, triggers_current, write_transaction

#: Milliseconds in a rollup bucket.
BUCKET_MS = 900_000


@attrs.frozen
class Rollup:
    """One rollup table: aggregates of ``base`` grouped by ``keys``.

    Expressions are templates over ``{t}``, the row they read (the base
    table's alias in a bulk build, ``NEW`` or ``OLD`` in a trigger).
    ``cell`` selects, in the base table, every row of the cell of row ``{r}``
    (sargable, for recomputing it); ``cell_keys`` are the keys it fixes.
    """

    name: str
    base: str
    keys: Sequence[Tuple[str, str]]  # (column, expression)
    values: Sequence[Tuple[str, str, str]]  # (column, aggregate, merge: sum, min or max)
    cell: str
    where: str = "1 = 1"
    cell_keys: Sequence[str] = ()

    @property
    def key_names(self) -> List[str]:
        return [name for name, _ in self.keys]

    def select(self, alias: str, condition: str) -> str:
        """The aggregate SELECT of the rows of ``alias`` matching ``condition``."""
        keys = ", ".join(expr.format(t=alias) for _, expr in self.keys)
        values = ", ".join(agg.format(t=alias) for _, agg, _ in self.values)
        where = self.where.format(t=alias)
        return (f"SELECT {keys}, {values} FROM {self.base} {alias} WHERE {where} AND ({condition})"
                f" GROUP BY {', '.join(str(i + 1) for i in range(len(self.keys)))}")

    def columns(self) -> str:
        return ", ".join(self.key_names + [name for name, _, _ in self.values])


def _bucketed(prefix_keys: Sequence[Tuple[str, str]]) -> Sequence[Tuple[str, str]]:
    return [("bucket", f"{{t}}.created_at / {BUCKET_MS}")] + list(prefix_keys)


def _in_bucket(extra: str) -> str:
    return ("{t}.org_id = {r}.org_id AND {t}.created_at >= {r}.created_at / 900000 * 900000"
            " AND {t}.created_at < ({r}.created_at / 900000 + 1) * 900000 AND " + extra)


_OUT = "CASE WHEN {t}.direction = 'out' THEN {t}.%s END"
#: Over the messages table, unaliased: errored replies (an incoming message's error flag is no
#: reply's) and the latency of replies, as the error rates and reply latency sections count them.
REPLY_ERRORS = "coalesce(sum(CASE WHEN direction = 'out' THEN is_error END), 0)"
REPLY_LATENCY = "CASE WHEN direction = 'out' THEN latency_ms END"

ROLLUPS = (
    # Messages per cell: volumes, errored replies and reply latency sums (an incoming message's
    # error flag or latency is no reply's: error rates and latency count bot replies only).
    Rollup("rollup_messages", "messages",
           _bucketed([("org_id", "{t}.org_id"), ("bot_id", "{t}.bot_id"), ("channel", "{t}.channel")]),
           [("messages_in", "sum({t}.direction = 'in')", "sum"),
            ("messages_out", "sum({t}.direction = 'out')", "sum"),
            ("reply_errors", f"coalesce(sum({_OUT % 'is_error'}), 0)", "sum"),
            ("reply_latency_n", f"count({_OUT % 'latency_ms'})", "sum"),
            ("reply_latency_sum", f"coalesce(sum({_OUT % 'latency_ms'}), 0)", "sum"),
            ("reply_latency_min", f"min({_OUT % 'latency_ms'})", "min"),
            ("reply_latency_max", f"max({_OUT % 'latency_ms'})", "max")],
           _in_bucket("{t}.bot_id = {r}.bot_id AND {t}.channel = {r}.channel")),
    # Incoming messages per user and cell: distinct (active) users, top users.
    Rollup("rollup_users", "messages",
           _bucketed([("org_id", "{t}.org_id"), ("bot_id", "{t}.bot_id"), ("channel", "{t}.channel"),
                      ("user_id", "{t}.user_id")]),
           [("messages_in", "count(*)", "sum"), ("first_at", "min({t}.created_at)", "min"),
            ("last_at", "max({t}.created_at)", "max")],
           _in_bucket("{t}.direction = 'in' AND {t}.user_id = {r}.user_id AND {t}.bot_id = {r}.bot_id"
                      " AND {t}.channel = {r}.channel"),
           where="{t}.direction = 'in'"),
    # A user's first incoming message per bot and channel, whenever it was: new users.
    Rollup("rollup_first_seen", "messages",
           [("org_id", "{t}.org_id"), ("user_id", "{t}.user_id"), ("bot_id", "{t}.bot_id"),
            ("channel", "{t}.channel")],
           [("first_at", "min({t}.created_at)", "min")],
           "{t}.org_id = {r}.org_id AND {t}.direction = 'in' AND {t}.user_id = {r}.user_id"
           " AND {t}.bot_id = {r}.bot_id AND {t}.channel = {r}.channel",
           where="{t}.direction = 'in'"),
    # Messages per conversation, whenever they were: the conversation raw rows (errored replies
    # and reply latency, bot replies only).
    Rollup("rollup_conversation_messages", "messages", [("conversation_id", "{t}.conversation_id")],
           [("messages_in", "sum({t}.direction = 'in')", "sum"),
            ("messages_out", "sum({t}.direction = 'out')", "sum"),
            ("errors", f"coalesce(sum({_OUT % 'is_error'}), 0)", "sum"),
            ("latency_n", f"count({_OUT % 'latency_ms'})", "sum"),
            ("latency_sum", f"coalesce(sum({_OUT % 'latency_ms'}), 0)", "sum")],
           "{t}.conversation_id = {r}.conversation_id"),
    # Messages per organisation and minute: the peak minute of a scope without bot or channel filter.
    Rollup("rollup_minutes", "messages", [("minute", "{t}.created_at / 60000"), ("org_id", "{t}.org_id")],
           [("messages", "count(*)", "sum")],
           "{t}.org_id = {r}.org_id AND {t}.created_at >= {r}.created_at / 60000 * 60000"
           " AND {t}.created_at < ({r}.created_at / 60000 + 1) * 60000"),
    # Conversations per cell of their start: conversation counts per local day, hour, bot and channel.
    Rollup("rollup_conversations", "conversations",
           [("bucket", f"{{t}}.started_at / {BUCKET_MS}"), ("org_id", "{t}.org_id"), ("bot_id", "{t}.bot_id"),
            ("channel", "{t}.channel")],
           [("conversations", "count(*)", "sum")],
           "{t}.org_id = {r}.org_id AND {t}.started_at >= {r}.started_at / 900000 * 900000"
           " AND {t}.started_at < ({r}.started_at / 900000 + 1) * 900000 AND {t}.bot_id = {r}.bot_id"
           " AND {t}.channel = {r}.channel"),
    # LLM calls per cell and model; the channel is the one of the call's conversation.
    Rollup("rollup_llm", "llm_calls",
           _bucketed([("org_id", "{t}.org_id"), ("bot_id", "{t}.bot_id"),
                      ("channel", "(SELECT c.channel FROM conversations c WHERE c.id = {t}.conversation_id)"),
                      ("model", "{t}.model")]),
           [("calls", "count(*)", "sum"), ("failures", "coalesce(sum({t}.success = 0), 0)", "sum"),
            ("input_tokens", "sum({t}.input_tokens)", "sum"), ("output_tokens", "sum({t}.output_tokens)", "sum"),
            ("tokens", "sum({t}.input_tokens + {t}.output_tokens)", "sum"),
            ("cost_usd", "sum({t}.cost_usd)", "sum"),
            ("latency_n", "count({t}.latency_ms)", "sum"), ("latency_sum", "sum({t}.latency_ms)", "sum")],
           _in_bucket("{t}.bot_id = {r}.bot_id AND {t}.model = {r}.model"),
           cell_keys=("bucket", "org_id", "bot_id", "model")),
)

ROLLUP_NAMES = tuple(r.name for r in ROLLUPS)
#: Rollups added after files with the others were written: such a file reads its other rollups
#: until its next load rebuilds them all, and these questions from the base tables meanwhile.
CONVERSATIONS_ROLLUP = "rollup_conversations"
LATER_ROLLUPS = (CONVERSATIONS_ROLLUP,)

#: Indexes the triggers need to find a cell's rows in the base tables.
TRIGGER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS llm_calls_conversation ON llm_calls (conversation_id)",
)


#: The users rollup again in user order, whole and per bot and per channel: distinct users of
#: a period that holds much of the file follow an index (each user's cells side by side)
#: instead of sorting every cell of the period by user.
USER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS rollup_users_user ON rollup_users"
    " (user_id, bucket, org_id, bot_id, channel, messages_in, first_at, last_at)",
    "CREATE INDEX IF NOT EXISTS rollup_users_bot ON rollup_users (bot_id, user_id, bucket, org_id, channel)",
    "CREATE INDEX IF NOT EXISTS rollup_users_channel ON rollup_users (channel, user_id, bucket, org_id, bot_id)",
)


def _merge(column: str, how: str) -> str:
    """``column`` combined with ``excluded.column`` the way the aggregate would (NULLs ignored)."""
    new = f"excluded.{column}"
    combined = {"sum": f"{column} + {new}", "min": f"min({column}, {new})", "max": f"max({column}, {new})"}[how]
    return f"{column} = CASE WHEN {column} IS NULL THEN {new} WHEN {new} IS NULL THEN {column} ELSE {combined} END"


def _table_sql(rollup: Rollup) -> str:
    columns = [f"{name} NOT NULL" if name != "channel" else name for name in rollup.key_names]
    columns += [name for name, _, _ in rollup.values]
    # A rollup llm row may have no channel (a call without a known conversation), so only
    # tables whose keys are all NOT NULL can be WITHOUT ROWID.
    if "channel" in rollup.key_names and rollup.base == "llm_calls":
        return (f"CREATE TABLE IF NOT EXISTS {rollup.name} ({', '.join(columns)});"
                f" CREATE UNIQUE INDEX IF NOT EXISTS {rollup.name}_key ON {rollup.name}"
                f" ({', '.join(rollup.key_names)})")
    return (f"CREATE TABLE IF NOT EXISTS {rollup.name} ({', '.join(columns)},"
            f" PRIMARY KEY ({', '.join(rollup.key_names)})) WITHOUT ROWID")


def _recompute(rollup: Rollup, row: str) -> str:
    """Statements that rebuild the cell of ``row`` (OLD or NEW) from the base table."""
    fixed = rollup.cell_keys or rollup.key_names
    exprs = dict(rollup.keys)
    match = " AND ".join(f"{name} IS {exprs[name].format(t=row)}" for name in fixed)
    return (f"DELETE FROM {rollup.name} WHERE {match};"
            f" INSERT INTO {rollup.name} ({rollup.columns()})"
            f" {rollup.select('b', rollup.cell.format(t='b', r=row))};")


def _trigger_sql(rollup: Rollup) -> List[str]:
    merges = ", ".join(_merge(name, how) for name, _, how in rollup.values)
    conflict = f"ON CONFLICT ({', '.join(rollup.key_names)}) DO UPDATE SET {merges}"
    if rollup.base == "llm_calls":
        # The unique index treats NULL channels as distinct: recompute the cell instead of merging.
        on_insert = _recompute(rollup, "NEW")
    else:
        on_insert = (f"INSERT INTO {rollup.name} ({rollup.columns()})"
                     f" {rollup.select('b', 'b.rowid = NEW.rowid')} {conflict};")
    name, base = rollup.name, rollup.base
    statements = [
        f"CREATE TRIGGER IF NOT EXISTS {name}_insert AFTER INSERT ON {base} BEGIN {on_insert} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_delete AFTER DELETE ON {base} BEGIN {_recompute(rollup, 'OLD')} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_update AFTER UPDATE ON {base} BEGIN"
        f" {_recompute(rollup, 'OLD')} {_recompute(rollup, 'NEW')} END",
    ]
    if rollup.base == "llm_calls":
        # A call's channel comes from its conversation, which may arrive, change or go later.
        for event, row in (("insert", "NEW"), ("delete", "OLD"), ("update", "NEW")):
            timing = {"insert": "AFTER INSERT", "delete": "AFTER DELETE", "update": "AFTER UPDATE OF channel, id"}
            rebuild = []
            for each in ("OLD", "NEW") if event == "update" else (row,):
                calls_of = (f"SELECT b2.rowid FROM llm_calls k JOIN llm_calls b2 ON {rollup.cell.format(t='b2', r='k')}"
                            f" WHERE k.conversation_id = {each}.id")
                rebuild.append(
                    f"DELETE FROM {name} WHERE rowid IN (SELECT r.rowid FROM llm_calls k JOIN {name} r"
                    f" ON r.bucket = k.created_at / {BUCKET_MS} AND r.org_id = k.org_id AND r.bot_id = k.bot_id"
                    f" AND r.model = k.model WHERE k.conversation_id = {each}.id);"
                    f" INSERT INTO {name} ({rollup.columns()})"
                    f" {rollup.select('b', f'b.rowid IN ({calls_of})')};")
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {name}_conversation_{event} {timing[event]} ON conversations"
                f" WHEN EXISTS (SELECT 1 FROM llm_calls k WHERE k.conversation_id = {row}.id"
                f"{' OR k.conversation_id = OLD.id' if event == 'update' else ''})"
                f" BEGIN {' '.join(rebuild)} END")
    return statements


def has_rollups(conn: sqlite3.Connection) -> bool:
    """Whether the file holds the rollup tables but the later ones (files written before they
    existed do not), kept by the triggers of today's definitions (``rollups_current``)."""
    return has_tables(conn, *(name for name in ROLLUP_NAMES if name not in LATER_ROLLUPS)) and rollups_current(conn)


def rollups_current(conn: sqlite3.Connection) -> bool:
    """Whether the rollups the file holds were built by today's definitions: a file whose
    rollups counted otherwise (an incoming message's error flag as an errored reply, before
    they counted replies only) is read from the base tables until its next write rebuilds them."""
    present = [rollup for rollup in ROLLUPS if has_tables(conn, rollup.name)]
    return triggers_current(conn, [statement for rollup in present for statement in _trigger_sql(rollup)])


def build_rollups(conn: sqlite3.Connection) -> None:
    """(Re)build every rollup table from the base tables and install the triggers that keep
    them current. Runs in one transaction of its own (the caller must not hold one)."""
    with write_transaction(conn):
        for statement in TRIGGER_INDEXES:
            conn.execute(statement)
        for rollup in ROLLUPS:
            if not triggers_current(conn, _trigger_sql(rollup)):
                # Built by another definition: its table may hold columns no longer kept.
                drop_triggers(conn, _trigger_sql(rollup))
                conn.execute(f"DROP TABLE IF EXISTS {rollup.name}")
            for statement in _table_sql(rollup).split("; "):
                conn.execute(statement)
            conn.execute(f"DELETE FROM {rollup.name}")
            conn.execute(f"INSERT INTO {rollup.name} ({rollup.columns()}) {rollup.select('b', '1 = 1')}")
            for statement in _trigger_sql(rollup):
                conn.execute(statement)
        for statement in USER_INDEXES:
            conn.execute(statement)
