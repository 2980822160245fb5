"""A real botserver database for tests and benchmarks, and what botreports must read from it.

``create_botserver_database`` applies botserver's own migrations (from a template
database built once per set of migrations); ``load_botserver`` fills its tables
from a canonical analytics file the way botserver's code writes them, through
real columns only; ``expected_canonical`` writes, from the same inputs and in
plain Python, the canonical SQLite file the botserver source must present for
those rows. A test comparing the two sources therefore checks the source's SQL
against an independent reading of botserver's data.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

#: Where botserver's migrations are when not beside the checkout.
MIGRATIONS_ENV = "BOTREPORTS_BOTSERVER_MIGRATIONS"
#: The namespace of every UUID made from a canonical id.
NAMESPACE = uuid.UUID("6b1c1c52-8d0e-5b6c-9f3e-0b0d1e2a3c4d")
#: botserver's placeholder organisation in ``compliance_audit_log`` (``Uuid::nil()``).
NIL_UUID = "00000000-0000-0000-0000-000000000000"
#: The organisation and bot botserver's first migration inserts (6.0.0-01-core).
DEFAULT_ORG = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
DEFAULT_BOT = "f47ac10b-58cc-4372-a567-0e02b2c3d480"
#: What the canonical file holds as the organisation of a bot botserver gives none: the
#: canonical schema requires one, and no organisation has this one, so such a bot
#: shows in system-wide reports only, as on botserver.
NO_ORG = "no-organisation"
#: Stands in for the encrypted message text: reports never read it.
PLACEHOLDER_TEXT = "enc:v1:synthetic"
#: botserver's message roles (src/core/session/mod.rs).
USER, BOT, SYSTEM, SUMMARY = 1, 2, 3, 9
#: An episodic summary (role 9) after every this many messages of a session.
SUMMARY_EVERY = 10
#: Automation runs a day, at this UTC hour, for the first ``AUTOMATION_BOTS`` bots with an organisation.
AUTOMATION_HOUR = 5
AUTOMATION_BOTS = 2
#: Held while a template database is built, so two processes never build it twice.
TEMPLATE_LOCK = 0x626F747365727600  # "botserv\0"
_NAMESPACE_BYTES = NAMESPACE.bytes
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
DAY_MS = 86_400_000


def uuid_for(kind: str, value: Optional[str]) -> Optional[str]:
    """The UUID (as text) that canonical id ``value`` of ``kind`` (org, bot, user, ...) maps to."""
    if value is None:
        return None
    # uuid.uuid5 spelled out: three times faster, which ten million messages notice.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{kind}:{value}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def instant(ms: Optional[int]) -> Optional[dt.datetime]:
    """Epoch milliseconds -> an aware UTC datetime, exactly (no float rounding)."""
    return None if ms is None else EPOCH + dt.timedelta(milliseconds=ms)


# -- botserver's schema ---------------------------------------------------------


def migrations_dir() -> Optional[Path]:
    """The folder holding ``migration-order.txt`` and ``migrations/``, or None when absent.

    ``$BOTREPORTS_BOTSERVER_MIGRATIONS``, else ``../shared/botserver`` beside the checkout.
    """
    configured = os.environ.get(MIGRATIONS_ENV)
    folder = Path(configured) if configured else Path(__file__).resolve().parents[4] / "shared" / "botserver"
    return folder if (folder / "migration-order.txt").is_file() and (folder / "migrations").is_dir() else None


def migration_files(root: Path) -> List[Path]:
    """The ``up.sql`` files in the order diesel applies them (``migration-order.txt``)."""
    names = [line.strip() for line in (Path(root) / "migration-order.txt").read_text().splitlines()]
    return [Path(root) / "migrations" / name / "up.sql" for name in names if name and not name.startswith("#")]


def template_name(root: Path) -> str:
    """``botserver_tpl_<hash12>``: one template per content of the migrations."""
    digest = hashlib.sha256()
    for path in migration_files(root):
        digest.update(path.parent.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"botserver_tpl_{digest.hexdigest()[:12]}"


def database_url(url: str, name: str) -> str:
    """``url`` (postgresql://...) naming database ``name`` instead of its own."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def _admin(admin_url: str):
    import psycopg

    return psycopg.connect(admin_url, autocommit=True, connect_timeout=10)


def _exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def _ensure_template(admin_url: str, root: Path) -> str:
    """The template database with every migration applied, built now if absent."""
    import psycopg
    from psycopg import sql

    name = template_name(root)
    with _admin(admin_url) as conn:
        if _exists(conn, name):
            return name
        conn.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK])
        try:
            if _exists(conn, name):  # another process built it while we waited
                return name
            # Built under another name and renamed at the end: a build cut short never
            # leaves a half-migrated database under the template's name.
            building = f"{name}_build"
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(building)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
            with psycopg.connect(database_url(admin_url, building)) as target:
                for path in migration_files(root):
                    with target.transaction():  # as diesel runs each migration
                        target.execute(path.read_text())
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(building), sql.Identifier(name)))
            return name
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", [TEMPLATE_LOCK])


def create_botserver_database(admin_url: str, name: Optional[str] = None) -> str:
    """A new database with botserver's migrations applied, in diesel's order; returns its URL.

    ``admin_url`` is a ``postgresql://`` URL of any database on the server, for a
    role that may create databases. The first call builds a template database
    (``template_name``) that later calls copy, which takes a second instead of
    applying every migration again.
    """
    import psycopg
    from psycopg import sql

    root = migrations_dir()
    if root is None:
        raise FileNotFoundError(f"botserver's migrations are not found (set {MIGRATIONS_ENV})")
    template = _ensure_template(admin_url, root)
    name = name or f"botserver_{secrets.token_hex(5)}"
    with _admin(admin_url) as conn:
        for attempt in range(50):
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)))
                break
            except psycopg.errors.ObjectInUse:  # another process copies the template right now
                if attempt == 49:
                    raise
                time.sleep(0.2)
    return database_url(admin_url, name)


def drop_botserver_database(admin_url: str, url: str) -> None:
    """Drop the database ``url`` names (made by ``create_botserver_database``), closing its sessions."""
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    with _admin(admin_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- what botserver's code would have written -----------------------------------


class Session(NamedTuple):
    """One ``user_sessions`` row: botserver's long-lived thread of a user with a bot."""

    id: str
    user_id: str
    bot_id: str
    title: str
    context_data: dict
    created_at: int
    updated_at: int


class Message(NamedTuple):
    """One ``message_history`` row (role 1 user, 2 bot, 3 system, 9 summary)."""

    id: str
    session_id: str
    user_id: str
    role: int
    message_type: int
    message_index: int
    created_at: int


class AuditRow(NamedTuple):
    """One ``compliance_audit_log`` row."""

    id: str
    org_id: str
    bot_id: str
    event_type: str
    user_id: Optional[str]
    resource_type: str
    resource_id: str
    action: str
    result: str
    ip_address: Optional[str]
    created_at: int


#: Canonical audit actions and botserver's event types (src/compliance/types.rs).
EVENT_TYPES = {"login": "authentication", "role": "authorization", "user": "admin", "api_key": "security",
               "export": "access", "bot": "modification", "settings": "modification", "kb": "modification"}


def rfc3339(ms: int, nanos: bool = False) -> str:
    """``Utc::now().to_rfc3339()`` as chrono prints it: only the sub-second digits needed.

    ``nanos`` adds one nanosecond, so the text carries nine digits as most of
    botserver's clock readings do, while PostgreSQL (microseconds) reads the same millisecond.
    """
    moment = instant(ms)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = ms % 1000
    if nanos:
        text += f".{fraction * 1_000_000 + 1:09d}"
    elif fraction:
        text += f".{fraction:03d}"
    return text + "+00:00"


def _stable(text: str) -> int:
    """A number from ``text`` that is the same in every run (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def _handoff(key: int, at: int) -> dict:
    """What botserver's hand-off code leaves in ``context_data`` (several writers, several shapes)."""
    variant = key % 6
    if variant in (0, 1, 2):  # TRANSFER TO HUMAN (src/basic/keywords/transfer_to_human.rs)
        assigned = variant != 2
        return {"transfer_requested_at": rfc3339(at), "transfer_priority": 1, "transfer_reason": "customer asked",
                "transfer_context": "", "transfer_to_name": None, "transfer_to_department": None,
                "needs_human": True, "assigned_to": "att-1" if assigned else None,
                "assigned_to_name": "Attendant" if assigned else None,
                "status": "assigned" if assigned else "queued"}
    if variant == 3:  # assigned from the queue (src/attendance/queue.rs)
        return {"assigned_to": str(uuid.UUID(int=key)), "assigned_at": rfc3339(at, nanos=True), "status": "assigned"}
    if variant == 4:  # moved to another attendant (src/attendance/queue.rs)
        return {"assigned_to": str(uuid.UUID(int=key)), "transferred_at": rfc3339(at), "transfer_reason": "",
                "status": "transferred"}
    return {"status": "pending_transfer"}  # suggested by the attendant's assistant (llm_assist_commands.rs)


def _context(key: int, first_channel: str, phone: str, status: str, ended: Optional[int], at: int) -> dict:
    """A session's ``context_data`` after its last conversation ended as ``status``."""
    context: dict = {}
    if first_channel == "whatsapp":  # the only channel botserver writes (src/whatsapp/mod.rs)
        context.update(channel="whatsapp", phone=phone, name=phone)
    if status == "resolved":
        if key % 2:  # resolved by the attendant it was handed to
            context.update(_handoff(key, at))
        end = ended if ended is not None else at
        context.update(status="resolved", resolved_at=rfc3339(end, nanos=key % 3 == 0), resolved=True)
    elif status == "handed_off":
        context.update(_handoff(key, at))
    elif status == "abandoned" and key % 2 == 0:  # the rest read as open: botserver rarely says so
        context["status"] = "abandoned"
    return context


class _Canonical:
    """The canonical file, read for what botserver would hold."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        bots = self.conn.execute("SELECT id, org_id, name, created_at FROM bots ORDER BY id").fetchall()
        self.orgs = sorted({org for _, org, _, _ in bots}
                           | {org for (org,) in self.conn.execute("SELECT DISTINCT org_id FROM audit_events")})
        # The last bot whose organisation keeps another one loses its organisation, as a bot
        # botserver never backfilled has none.
        per_org: Dict[str, int] = {}
        for _, org, _, _ in bots:
            per_org[org] = per_org.get(org, 0) + 1
        orphan = next((b for b, org, _, _ in reversed(bots) if per_org[org] > 1), bots[-1][0] if bots else None)
        self.bots = [(b, None if b == orphan else org, name, created) for b, org, name, created in bots]
        self.bot_org = {b: org for b, org, _, _ in self.bots}
        with_org = [b for b, org, _, _ in self.bots if org is not None]
        self.automation_bots = with_org[:AUTOMATION_BOTS]
        first, last = self.conn.execute("SELECT min(created_at), max(created_at) FROM messages").fetchone()
        self.first_day = None if first is None else first - first % DAY_MS
        self.last_ms = last

    def close(self):
        self.conn.close()

    def users(self) -> Iterator[Tuple[str, str, str, str]]:
        """``users`` rows (id, username, email, password_hash): end users, then automation bots."""
        for (user,) in self.conn.execute("SELECT DISTINCT user_id FROM conversations ORDER BY user_id"):
            yield uuid_for("user", user), user, f"{user}@users.example", "argon2:synthetic"
        for bot in self.automation_bots:
            yield uuid_for("bot", bot), f"automation:{bot}", f"{bot}@automation.example", "automation"

    def sessions(self) -> Iterator[Session]:
        """One session per (user, bot), reused by every conversation the pair had, then automation's."""
        rows = self.conn.execute(
            "SELECT user_id, bot_id, started_at, channel, status, ended_at FROM conversations"
            " ORDER BY user_id, bot_id, started_at, id")
        pair, first = None, None
        for user, bot, started, channel, status, ended in rows:
            if (user, bot) != pair:
                if pair is not None:
                    yield self._session(pair, *first, *last)
                pair, first, latest = (user, bot), (started, channel), started
            latest = max(latest, started if ended is None else ended)
            last = (status, ended, latest)
        if pair is not None:
            yield self._session(pair, *first, *last)
        for bot, runs in self._automation_runs().items():
            yield Session(uuid_for("session", f"automation|{bot}"), uuid_for("bot", bot), uuid_for("bot", bot),
                          "Automation", {}, runs[0], runs[-1])

    @staticmethod
    def _session(pair, started, channel, status, ended, latest) -> Session:
        user, bot = pair
        key = _stable(f"{user}|{bot}")
        context = _context(key, channel, f"+5511{key % 100_000_000:08d}", status, ended, latest)
        return Session(uuid_for("session", f"{user}|{bot}"), uuid_for("user", user), uuid_for("bot", bot),
                       "New Conversation", context, started, latest)

    def _automation_runs(self) -> Dict[str, List[int]]:
        """Per automation bot: when its daily script ran (the days the canonical messages cover)."""
        if self.first_day is None:
            return {}
        runs = {}
        for index, bot in enumerate(self.automation_bots):
            times = range(self.first_day + AUTOMATION_HOUR * 3_600_000 + index * 1000, self.last_ms + 1, DAY_MS)
            if times:
                runs[bot] = list(times)
        return runs

    def messages(self) -> Iterator[Message]:
        """``message_history`` in time order, as ``save_message`` appends it.

        Each session counts its rows for ``message_index``; a system prompt
        (role 3) opens one session in four and an episodic summary (role 9)
        follows every ``SUMMARY_EVERY`` messages; both stand at the time of a
        real message, so a report that counted them would show it.
        """
        counters: Dict[Tuple[str, str], list] = {}
        automation = [(at, bot, run) for bot, runs in self._automation_runs().items()
                      for run, at in enumerate(runs)]
        automation.sort()
        pending = iter(automation)
        next_run = next(pending, None)
        rows = self.conn.execute(
            "SELECT m.id, c.user_id, c.bot_id, m.direction, m.created_at FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id ORDER BY m.created_at, m.id")
        for canonical_id, user, bot, direction, created in rows:
            while next_run is not None and next_run[0] <= created:
                yield from self._automation_messages(counters, *next_run)
                next_run = next(pending, None)
            yield from self._session_messages(counters, (user, bot), canonical_id,
                                              USER if direction == "in" else BOT, created)
        while next_run is not None:
            yield from self._automation_messages(counters, *next_run)
            next_run = next(pending, None)

    def _session_messages(self, counters, pair, canonical_id, role, created) -> Iterator[Message]:
        user, bot = pair
        state = counters.get(pair)
        if state is None:
            session = uuid_for("session", f"{user}|{bot}")
            state = counters[pair] = [session, 0, uuid_for("user", user)]
            if _stable(session) % 4 == 0:
                yield Message(uuid_for("system", session), session, state[2], SYSTEM, 0, 0, created)
                state[1] = 1
        session, index, user_id = state
        yield Message(uuid_for("message", canonical_id), session, user_id, role, 0, index, created)
        state[1] = index = index + 1
        if index % SUMMARY_EVERY == SUMMARY_EVERY - 1:
            yield Message(uuid_for("summary", f"{session}:{index}"), session, user_id, SUMMARY, 0, index, created)
            state[1] = index + 1

    def _automation_messages(self, counters, at, bot, run) -> Iterator[Message]:
        """An automation run: the bot's TALK output (role 2), and on one run in four the input it read first."""
        pair = ("automation", bot)
        state = counters.setdefault(pair, [uuid_for("session", f"automation|{bot}"), 0, uuid_for("bot", bot)])
        roles = (USER, BOT) if run % 4 == 0 else (BOT,)
        for offset, role in enumerate(roles):
            session, index, user_id = state
            yield Message(uuid_for("automation", f"{bot}:{run}:{role}"), session, user_id, role, 0, index,
                          at + 2000 * offset)
            state[1] = index + 1

    def audit(self) -> Iterator[AuditRow]:
        """``compliance_audit_log`` as botserver writes it: the nil organisation, the bot named."""
        rows = self.conn.execute(
            "SELECT id, org_id, bot_id, created_at, actor, action, resource_type, resource_id, result, ip"
            " FROM audit_events ORDER BY created_at, id")
        for n, (id_, org, bot, created, actor, action, rtype, rid, result, ip) in enumerate(rows):
            if bot is None:  # bot_id is NOT NULL: name none, and the organisation itself
                org_id, bot_id = uuid_for("org", org), NIL_UUID
            else:
                org_id, bot_id = NIL_UUID, uuid_for("bot", bot)
            if result == "allowed":
                written = "success"
            elif result == "denied":
                written = "denied"
            else:
                written = "failure" if n % 2 else "error"
            user_id = None if n % 10 == 0 else uuid_for("user", actor)  # some events have no user: "system"
            yield AuditRow(uuid_for("audit", id_), org_id, bot_id, EVENT_TYPES.get(action.split(".")[0], "admin"),
                           user_id, rtype or "", rid or "", action, written, ip, created)


# -- loading botserver's tables ---------------------------------------------------


def _copy(cur, table: str, columns: str, rows) -> int:
    count = 0
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


class _TimestampText:
    """Epoch milliseconds -> timestamptz text for COPY; the text of the last second is kept,
    since rows come in time order (cheaper than a datetime per row)."""

    def __init__(self):
        self.second, self.prefix = None, ""

    def __call__(self, ms: int) -> str:
        second, milli = divmod(ms, 1000)
        if second != self.second:
            self.second, self.prefix = second, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
        return f"{self.prefix}.{milli:03d}+00"


def _copy_messages(cur, messages) -> int:
    """``message_history`` by COPY in text lines: the one table of millions of rows."""
    stamp = _TimestampText()
    count = 0
    with cur.copy("COPY message_history (id, session_id, user_id, role, content_encrypted, message_type,"
                  " message_index, created_at) FROM STDIN") as copy:
        lines = []
        for m in messages:
            lines.append(f"{m.id}\t{m.session_id}\t{m.user_id}\t{m.role}\t{PLACEHOLDER_TEXT}\t{m.message_type}"
                         f"\t{m.message_index}\t{stamp(m.created_at)}\n")
            if len(lines) == 10_000:
                copy.write("".join(lines))
                count += len(lines)
                lines = []
        copy.write("".join(lines))
        count += len(lines)
    return count


class _IndexesSetAside:
    """A table's keys and indexes dropped for a bulk load and made again after it, as they were.

    Building an index over ten million rows once is many times faster than
    inserting into it row by row, and the foreign keys, added back, check every
    row in one join: the table ends as the migrations made it.
    """

    def __init__(self, cur, table: str):
        self.cur, self.table = cur, table

    def __enter__(self):
        from psycopg import sql

        cur, table = self.cur, self.table
        self.constraints = cur.execute(
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype IN ('p', 'f', 'u') ORDER BY contype DESC, conname",
            [table]).fetchall()  # keys (p, u) before the foreign keys (f) when made again
        self.indexes = cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
            [table, table]).fetchall()
        for name, _ in self.indexes:
            cur.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        for name, _, _ in reversed(self.constraints):
            cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), sql.Identifier(name)))
        return self

    def __exit__(self, kind, value, traceback):
        from psycopg import sql

        if kind is not None:
            return False  # the transaction is rolled back: nothing to make again
        self.cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for name, definition, _ in self.constraints:
            self.cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                sql.Identifier(self.table), sql.Identifier(name)) + sql.SQL(definition))
        for _, definition in self.indexes:
            self.cur.execute(sql.SQL(definition))
        return False


def load_botserver(url: str, canonical_file: Path) -> Dict[str, int]:
    """Fill botserver's tables at ``url`` from a canonical analytics file; returns rows per table.

    Only columns botserver's code writes are given (users first: sessions and
    messages reference them); the rest keep their defaults: ``token_count``,
    ``processing_time_ms``, ``llm_model`` and ``user_sessions.message_count``
    are never written, and ``llm_metrics`` gets no row. Channel, hand-off and
    resolution go to ``user_sessions.context_data``; audit rows carry the nil
    organisation. Ids are ``uuid_for`` of the canonical ones.
    """
    import psycopg
    from psycopg.types.json import Jsonb

    source = _Canonical(canonical_file)
    counts: Dict[str, int] = {}
    try:
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            counts["organizations"] = _copy(cur, "organizations", "org_id, name, slug", (
                (uuid_for("org", org), org.split("-", 1)[-1].title(), org)
                for org in source.orgs))
            counts["users"] = _copy(cur, "users", "id, username, email, password_hash", source.users())
            counts["bots"] = _copy(cur, "bots", "id, name, llm_provider, context_provider, org_id, created_at", (
                (uuid_for("bot", b), name, "openai", "none", uuid_for("org", org), instant(created))
                for b, org, name, created in source.bots))
            counts["user_sessions"] = _copy(
                cur, "user_sessions", "id, user_id, bot_id, title, context_data, created_at, updated_at, last_activity", (
                    (s.id, s.user_id, s.bot_id, s.title, Jsonb(s.context_data), instant(s.created_at),
                     instant(s.updated_at), instant(s.updated_at))
                    for s in source.sessions()))
            with _IndexesSetAside(cur, "message_history"):
                counts["message_history"] = _copy_messages(cur, source.messages())
            counts["compliance_audit_log"] = _copy(
                cur, "compliance_audit_log",
                "id, org_id, bot_id, event_type, user_id, resource_type, resource_id, action, result, ip_address,"
                " created_at", ((*a[:-1], instant(a.created_at)) for a in source.audit()))
            conn.commit()
            conn.autocommit = True
            cur.execute("ANALYZE")
    finally:
        source.close()
    return counts


# -- what the botserver source must present ---------------------------------------

#: The mapping's test for a timestamp (docs/data_sources.md), and the parts of an RFC 3339 text.
LOOKS_LIKE_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")
HANDED_OFF_STATUSES = ("assigned", "queued", "transferred", "pending_transfer", "waiting", "active")
AUDIT_RESULTS = {"success": "allowed", "denied": "denied"}


def _text(context: dict, key: str) -> Optional[str]:
    """``context_data->>key``: JSON text of the value, None for a missing key or a JSON null."""
    value = context.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def session_status(context: dict) -> str:
    """The canonical status of a session, from its ``context_data`` (first rule that holds)."""
    status = _text(context, "status")
    if status == "resolved" or _text(context, "resolved") == "true" or _text(context, "resolved_at") is not None:
        return "resolved"
    if status == "abandoned":
        return "abandoned"
    if status in HANDED_OFF_STATUSES or _text(context, "needs_human") == "true":
        return "handed_off"
    return "open"


def ended_at_ms(context: dict) -> Optional[int]:
    """A resolved session's end (``resolved_at``) in epoch milliseconds, read to the microsecond as PostgreSQL does."""
    text = _text(context, "resolved_at")
    if session_status(context) != "resolved" or text is None or not LOOKS_LIKE_TIMESTAMP.match(text):
        return None
    parts = RFC3339.match(text)
    if parts is None:
        raise ValueError(f"resolved_at the fixture cannot read: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = parts.groups()
    micros = round(int((fraction or "0")[:10].ljust(10, "0")) / 10_000)  # to the microsecond, as timestamptz
    offset = dt.timedelta(0) if zone == "Z" else (1 if zone[0] == "+" else -1) * dt.timedelta(
        hours=int(zone[1:3]), minutes=int(zone[4:6]))
    moment = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                         tzinfo=dt.timezone(offset)) + dt.timedelta(microseconds=micros)
    whole = (moment - EPOCH) // dt.timedelta(microseconds=1)
    if whole % 1000:
        raise ValueError(f"resolved_at {text!r} is not on a millisecond: the canonical file cannot hold it")
    return whole // 1000


def expected_canonical(canonical_file: Path, target: Path, *, automation: bool = True) -> Path:
    """Write at ``target`` the canonical file the botserver source must present after ``load_botserver``.

    Computed here in Python from the rows ``load_botserver`` writes, by the
    mapping of docs/data_sources.md, never by the source's SQL: one
    conversation per session (channel, status and end from ``context_data``,
    no satisfaction, messages counted over the session's role 1 and 2 rows);
    messages of role 1 and 2 only, with no latency, tokens, intent or error
    flag; no LLM calls and no system samples; audit events in their bot's
    organisation. Bots botserver gives no organisation get ``NO_ORG``.
    ``automation`` False leaves automation sessions out, as ``automation=exclude``.
    """
    from .sqlite import create_database, create_indexes, insert_rows

    target = Path(target)
    for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    source = _Canonical(canonical_file)
    lite = create_database(target)
    # A new file, of no use until finished: no journal, and pages of random (UUID) keys kept in memory.
    lite.execute("PRAGMA journal_mode = OFF")
    lite.execute("PRAGMA synchronous = OFF")
    lite.execute("PRAGMA cache_size = -1000000")
    try:
        lite.execute("BEGIN")
        bot_org = {uuid_for("bot", b): uuid_for("org", org) or NO_ORG for b, org, _, _ in source.bots}
        bot_org[DEFAULT_BOT] = DEFAULT_ORG
        insert_rows(lite, "bots", [(uuid_for("bot", b), bot_org[uuid_for("bot", b)], name, created)
                                   for b, _, name, created in source.bots])
        # The migrations' own bot: its created_at is the template's build time, which no report reads.
        insert_rows(lite, "bots", [(DEFAULT_BOT, DEFAULT_ORG, "default", source.first_day or 0)])

        sessions: Dict[str, Tuple[str, str, str]] = {}
        conversations = {}
        for s in source.sessions():
            if not automation and s.user_id == s.bot_id:
                continue
            channel = _text(s.context_data, "channel") or "web"
            org = bot_org[s.bot_id]
            sessions[s.id] = (org, s.bot_id, channel)
            conversations[s.id] = [s.id, org, s.bot_id, s.user_id, channel, s.created_at,
                                   ended_at_ms(s.context_data), session_status(s.context_data), None, 0]

        batch = []
        for m in source.messages():
            known = sessions.get(m.session_id)
            if m.role not in (USER, BOT) or known is None:
                continue
            org, bot, channel = known
            conversations[m.session_id][9] += 1  # message_count: the session's role 1 and 2 rows, all time
            batch.append((m.id, org, m.session_id, bot, channel, m.user_id, "in" if m.role == USER else "out",
                          m.created_at, None, None, None, None))
            if len(batch) >= 50_000:
                insert_rows(lite, "messages", batch)
                batch = []
        insert_rows(lite, "messages", batch)
        insert_rows(lite, "conversations", conversations.values())

        events = []
        for a in source.audit():
            org = bot_org.get(a.bot_id, NO_ORG) if a.org_id == NIL_UUID else a.org_id
            events.append((a.id, org, a.bot_id, a.created_at, a.user_id or "system", a.action, a.resource_type,
                           a.resource_id, AUDIT_RESULTS.get(a.result, "error"), a.ip_address))
        insert_rows(lite, "audit_events", events)
        lite.execute("COMMIT")
        create_indexes(lite)
        lite.execute("PRAGMA journal_mode = WAL")
    finally:
        lite.close()
        source.close()
    return target
