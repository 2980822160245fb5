"""The metadata store on sqlite-utils: reports, schedules, schedule runs,
templates, API keys (hashed) and the audit log.

One SQLite file in WAL mode, one connection per thread, ``BEGIN IMMEDIATE`` for
every write that spans statements, so several threads and processes on one
host can share it. The schema is versioned with ``PRAGMA user_version``.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

import attrs
import sqlite_utils

from .errors import StorageUnavailable
from .models import ApiKey, Report, Schedule, Template
from .recent_reports import RecentReports
from .storage_faults import storage_fault

UTC = dt.timezone.utc


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def to_db(value: Any) -> Any:
    """Python value -> SQLite value: datetimes as sortable UTC ISO text, containers as JSON."""
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, bool):
        return int(value)
    return value


def from_db_datetime(value: Optional[str]) -> Optional[dt.datetime]:
    if value is None:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _from_db_json(value: Optional[str]) -> Any:
    return None if value is None else json.loads(value)


@functools.lru_cache(maxsize=None)
def _decoders(cls: Type) -> Tuple[Tuple[str, Optional[Callable[[Any], Any]]], ...]:
    """``(field name, decoder or None)`` for each field of ``cls``, worked out once per class:
    a page of a list decodes twenty rows, and clients ask for pages many times a second."""
    decoders = []
    for field in attrs.fields(cls):
        kind = str(field.type)
        if "datetime" in kind:
            decoder = from_db_datetime
        elif kind in ("dict", "list"):
            decoder = _from_db_json
        elif kind == "bool":
            decoder = bool
        else:
            decoder = None
        decoders.append((field.name, decoder))
    return tuple(decoders)


def _record(cls: Type, row: Optional[Dict[str, Any]]):
    """A stored row -> attrs record, decoding by field type."""
    if row is None:
        return None
    values = {}
    for name, decoder in _decoders(cls):
        if name in row:
            values[name] = row[name] if decoder is None else decoder(row[name])
    return cls(**values)


def _migration_1(db: sqlite_utils.Database) -> None:
    db["reports"].create(
        {
            "id": str, "org_id": str, "owner_id": str, "type": str, "format": str, "title": str,
            "parameters": str, "state": str, "progress": int, "stage": str, "error": str,
            "created_at": str, "started_at": str, "completed_at": str, "expires_at": str,
            "template_id": str, "template_version": int, "schedule_id": str,
            "artifact_path": str, "artifact_size": int, "artifact_sha256": str,
            "media_type": str, "filename": str, "attempts": int,
            "lease_owner": str, "lease_expires_at": str,
        },
        pk="id",
        not_null={"org_id", "owner_id", "type", "format", "state", "created_at"},
        defaults={"progress": 0, "attempts": 0, "state": "pending"},
    )
    db["reports"].create_index(["org_id", "created_at"])
    db["reports"].create_index(["state", "lease_expires_at"])
    db["schedules"].create(
        {
            "id": str, "org_id": str, "owner_id": str, "name": str, "definition": str,
            "format": str, "cron": str, "timezone": str, "period": str, "recipients": str,
            "enabled": int, "created_at": str, "updated_at": str, "next_run_at": str,
        },
        pk="id",
        not_null={"org_id", "owner_id", "cron", "timezone"},
    )
    db["schedules"].create_index(["enabled", "next_run_at"])
    db["schedule_runs"].create(
        {"id": int, "schedule_id": str, "fire_time": str, "state": str, "report_id": str,
         "created_at": str, "detail": str},
        pk="id",
        not_null={"schedule_id", "fire_time", "state"},
    )
    db["schedule_runs"].create_index(["schedule_id", "fire_time"], unique=True)
    db["templates"].create(
        {
            "id": str, "org_id": str, "owner_id": str, "name": str, "description": str,
            "type": str, "sections": str, "defaults": str, "format": str, "builtin": int,
            "version": int, "presentation": str, "created_at": str, "updated_at": str,
        },
        pk="id",
    )
    db["templates"].create_index(["org_id", "name"])
    db["api_keys"].create(
        {"id": str, "key_hash": str, "prefix": str, "org_id": str, "role": str, "name": str,
         "created_at": str, "last_used_at": str, "revoked": int},
        pk="id",
        not_null={"key_hash", "org_id", "role"},
        defaults={"revoked": 0},
    )
    db["api_keys"].create_index(["key_hash"], unique=True)
    db["audit_log"].create(
        {"id": int, "created_at": str, "org_id": str, "actor": str, "action": str,
         "resource_type": str, "resource_id": str, "result": str, "ip": str, "details": str},
        pk="id",
    )
    db["audit_log"].create_index(["org_id", "created_at"])
    db["deliveries"].create(
        {"id": int, "report_id": str, "schedule_id": str, "channel": str, "recipient": str,
         "state": str, "attempt": int, "detail": str, "created_at": str},
        pk="id",
    )
    db["deliveries"].create_index(["report_id", "recipient"])


def _migration_2(db: sqlite_utils.Database) -> None:
    """Schedules remember how to rebuild their owner and what to send; reports remember their worker."""
    schedules = db["schedules"]
    for column, kind in (("owner_roles", str), ("owner_via", str), ("subject", str), ("message", str),
                         ("webhooks", str)):
        schedules.add_column(column, kind)
    db["reports"].add_column("worker", str)
    db["reports"].add_column("retry_at", str)
    db["deliveries"].create_index(["report_id", "channel", "recipient", "state"])


def _migration_3(db: sqlite_utils.Database) -> None:
    """Each report's record (``report_records``): its document, kept to verify it later."""
    db["report_records"].create({"report_id": str, "record": bytes, "created_at": str}, pk="report_id",
                                not_null={"record"})


def _migration_4(db: sqlite_utils.Database) -> None:
    """Revoked bearer tokens (``token_revocations``): by ``jti``, by ``session_id``, or every token
    of a subject issued before a time."""
    db["token_revocations"].create(
        {"id": int, "kind": str, "value": str, "issued_before": str, "reason": str, "created_at": str},
        pk="id", not_null={"kind", "value", "created_at"})
    db["token_revocations"].create_index(["kind", "value"])


#: Each migration brings the schema from version i to i+1; never edit a released one.
MIGRATIONS = (_migration_1, _migration_2, _migration_3, _migration_4)

REPORT_SORTS = {"created_at": "created_at", "name": "title", "type": "type"}


class Store:
    """The metadata store of one data directory."""

    #: Whether the store lives on this host only (a file), not shared by several hosts.
    is_local = True

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._recent_reports = RecentReports(self.get_report)
        self.migrate()

    # -- connections and transactions -----------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, wrapped by sqlite-utils."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite_utils.Database(self._connect())
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction taken with ``BEGIN IMMEDIATE`` (no lock upgrade deadlocks)."""
        db = self.db
        if db.conn.in_transaction:  # nested: the outer transaction commits
            yield db
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.conn.in_transaction:  # SQLite may have rolled back itself (a full disk)
                    db.execute("ROLLBACK")
                raise
            else:
                db.execute("COMMIT")
        except StorageUnavailable:
            raise
        except Exception as exc:
            reason = storage_fault(exc)
            if reason is None:
                raise
            if db.conn.in_transaction:  # a COMMIT refused for want of space leaves it open
                db.conn.rollback()
            raise StorageUnavailable(
                f"the report store cannot save changes right now ({reason}); nothing was changed, "
                "try again later") from exc

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def migrate(self) -> int:
        """Apply the migrations this file lacks; returns the schema version."""
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(db)
                db.execute(f"PRAGMA user_version = {number}")
            return len(MIGRATIONS)

    def schema_version(self) -> int:
        """The number of migrations applied to this store."""
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def table_names(self) -> List[str]:
        return self.db.table_names()

    # -- generic helpers ------------------------------------------------

    def _insert(self, table: str, record) -> None:
        row = {key: to_db(value) for key, value in attrs.asdict(record, recurse=False).items()}
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as db:
            db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))

    def _update(self, table: str, record_id: str, where: str = "", where_args=(), **fields) -> int:
        sets = ", ".join(f"{name} = ?" for name in fields)
        args = [to_db(value) for value in fields.values()] + [record_id, *where_args]
        with self.transaction() as db:
            changed = db.execute(f"UPDATE {table} SET {sets} WHERE id = ? {where}", args).rowcount
        if table == "reports":
            self._recent_reports.forget(record_id)
        return changed

    def change_token(self) -> Tuple[int, int]:
        """A value that differs after any commit to this store, by any connection or process, since
        it was last read in this thread: ``PRAGMA data_version`` changes with other connections'
        commits, ``total_changes`` with this connection's own. Cheap (no table is read), so a
        reader can keep an answer for as long as the token stays the same."""
        conn = self.db.conn
        return conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes

    def rows(self, sql: str, params=()) -> List[dict]:
        """Rows of a read as dicts, in one statement.

        sqlite-utils' ``query`` wraps every read in a savepoint and ``rows_where``
        first lists the tables and views: seven statements for a status request
        instead of two, each releasing and taking back the GIL, which made
        concurrent requests queue behind each other.
        """
        cursor = self.db.execute(sql, list(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _get(self, table: str, cls: Type, record_id: str):
        rows = self.rows(f"SELECT * FROM {table} WHERE id = ?", [record_id])
        return _record(cls, rows[0] if rows else None)

    # -- reports --------------------------------------------------------

    def insert_report(self, report: Report) -> None:
        self._insert("reports", report)

    def insert_report_capped(self, report: Report, cap: int) -> int:
        """Insert ``report`` only if its organisation has fewer than ``cap`` pending or running
        reports; returns how many it had. Count and insert are one write transaction, so
        concurrent requests cannot all pass the count before any of them inserts."""
        with self.transaction() as db:
            unfinished = db.execute(
                "SELECT count(*) FROM reports WHERE org_id = ? AND state IN ('pending', 'running')",
                [report.org_id]).fetchone()[0]
            if unfinished < cap:
                self._insert("reports", report)
        return unfinished

    def get_report(self, report_id: str) -> Optional[Report]:
        return self._get("reports", Report, report_id)

    def recent_report(self, report_id: str) -> Optional[Report]:
        """The report as read at most ``recent_reports.FRESH_FOR`` seconds ago (for status polling);
        every write to it through this store forgets the copy at once."""
        return self._recent_reports.get(report_id)

    def update_report(self, report_id: str, **fields) -> int:
        return self._update("reports", report_id, **fields)

    def report_row(self, report_id: str) -> Optional[dict]:
        """The raw row, lease columns included (for the worker and reconciler)."""
        rows = self.rows("SELECT * FROM reports WHERE id = ?", [report_id])
        return rows[0] if rows else None

    def claim_report(self, report_id: str, worker: str, lease_seconds: float) -> bool:
        """Take a pending report for ``worker`` with a lease; False if someone else has it."""
        stamp = now()
        return self._update(
            "reports", report_id, "AND state = 'pending'",
            state="running", stage="starting", progress=0, started_at=stamp, lease_owner=worker,
            lease_expires_at=stamp + dt.timedelta(seconds=lease_seconds),
            attempts=(self.report_row(report_id) or {}).get("attempts", 0) + 1,
        ) == 1

    def renew_lease(self, report_id: str, worker: str, lease_seconds: float) -> bool:
        return self._update(
            "reports", report_id, "AND state = 'running' AND lease_owner = ?", (worker,),
            lease_expires_at=now() + dt.timedelta(seconds=lease_seconds),
        ) == 1

    def set_progress(self, report_id: str, progress: int, stage: str) -> None:
        """Move progress forward only (it never goes back) and name the stage."""
        with self.transaction() as db:
            db.execute(
                "UPDATE reports SET progress = max(progress, ?), stage = ? WHERE id = ? AND state = 'running'",
                [int(progress), stage, report_id],
            )
        self._recent_reports.forget(report_id)

    def list_reports(self, org_id: Optional[str], *, type=None, state=None, created_after=None,
                     created_before=None, sort="created_at", order="desc", limit=20,
                     offset=0) -> Tuple[List[Report], int]:
        """One page of an organisation's reports and the total matching the filters."""
        where, args = [], []
        if org_id is not None:
            where.append("org_id = ?"); args.append(org_id)
        if type:
            where.append("type = ?"); args.append(type)
        if state:
            where.append("state = ?"); args.append(state)
        if created_after:
            where.append("created_at > ?"); args.append(to_db(created_after))
        if created_before:
            where.append("created_at < ?"); args.append(to_db(created_before))
        clause = " AND ".join(where) or "1 = 1"
        total = self.db.execute(f"SELECT count(*) FROM reports WHERE {clause}", args).fetchone()[0]
        column = REPORT_SORTS[sort]
        direction = "ASC" if order == "asc" else "DESC"
        rows = self.rows(
            f"SELECT * FROM reports WHERE {clause} ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?",
            args + [int(limit), int(offset)],
        )
        return [_record(Report, row) for row in rows], total

    def delete_report(self, report_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM reports WHERE id = ?", [report_id])
            db.execute("DELETE FROM report_records WHERE report_id = ?", [report_id])
        self._recent_reports.forget(report_id)

    def expired_leases(self, at: dt.datetime) -> List[dict]:
        return self.rows("SELECT * FROM reports WHERE state = 'running' AND lease_expires_at < ?", [to_db(at)])

    def finish_report(self, report_id: str, holder: str, **fields) -> bool:
        """Update a running report only while ``holder`` still holds its lease (False otherwise)."""
        return self._update("reports", report_id, "AND state = 'running' AND lease_owner = ?", (holder,),
                            **fields) == 1

    def stale_pending(self, before: dt.datetime) -> List[dict]:
        """Pending reports not started, nor enqueued again, since ``before``."""
        return self.rows("SELECT * FROM reports WHERE state = 'pending' AND coalesce(retry_at, created_at) < ?",
                         [to_db(before)])

    def mark_requeued(self, report_id: str, seen: Optional[str], at: dt.datetime) -> bool:
        """Record that a stale pending report is enqueued again (one reconciler wins)."""
        return self._update("reports", report_id, "AND state = 'pending' AND retry_at IS ?", (seen,),
                            retry_at=at) == 1

    def release_expired_lease(self, report_id: str, at: dt.datetime, **fields) -> bool:
        """Update a running report whose lease expired before ``at`` (one reconciler wins)."""
        return self._update("reports", report_id, "AND state = 'running' AND lease_expires_at < ?",
                            (to_db(at),), **fields) == 1

    def reports_to_expire(self, at: dt.datetime, limit: int) -> List[dict]:
        """Finished reports whose ``expires_at`` is before ``at``, oldest first."""
        return self.rows(
            "SELECT id, artifact_path FROM reports WHERE state IN ('completed', 'failed')"
            " AND expires_at < ? ORDER BY expires_at LIMIT ?", [to_db(at), int(limit)])

    def mark_expired(self, report_id: str) -> bool:
        return self._update("reports", report_id, "AND state IN ('completed', 'failed')", (),
                            state="expired", stage="expired", artifact_path=None) == 1

    # -- schedules, runs and deliveries ----------------------------------

    def insert_schedule(self, schedule: Schedule) -> None:
        self._insert("schedules", schedule)

    def get_schedule(self, schedule_id: str) -> Optional[Schedule]:
        return self._get("schedules", Schedule, schedule_id)

    def update_schedule(self, schedule_id: str, **fields) -> int:
        return self._update("schedules", schedule_id, **fields)

    def delete_schedule(self, schedule_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", [schedule_id])
            db.execute("DELETE FROM schedules WHERE id = ?", [schedule_id])

    def list_schedules(self, org_id: Optional[str], limit=20, offset=0) -> Tuple[List[Schedule], int]:
        clause, args = ("org_id = ?", [org_id]) if org_id is not None else ("1 = 1", [])
        total = self.db.execute(f"SELECT count(*) FROM schedules WHERE {clause}", args).fetchone()[0]
        rows = self.rows(
            f"SELECT * FROM schedules WHERE {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            args + [int(limit), int(offset)])
        return [_record(Schedule, row) for row in rows], total

    def record_run(self, schedule_id: str, fire_time: dt.datetime, state: str,
                   report_id: Optional[str] = None, detail: str = "") -> bool:
        """Insert one run per (schedule, fire time); False if that run already exists."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO schedule_runs (schedule_id, fire_time, state, report_id, created_at, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [schedule_id, to_db(fire_time), state, report_id, to_db(now()), detail])
            return cursor.rowcount == 1

    def runs_of(self, schedule_id: str, limit: int = 10) -> List[dict]:
        """A schedule's last runs, newest first, each with the state and error of its report as it
        is now (None once the report is deleted): a run's own row stops at ``enqueued``."""
        return self.rows(
            "SELECT r.fire_time, r.state, r.report_id, r.detail, p.state AS report_state,"
            " p.error AS report_error FROM schedule_runs r LEFT JOIN reports p ON p.id = r.report_id"
            " WHERE r.schedule_id = ? ORDER BY r.fire_time DESC LIMIT ?", [schedule_id, limit])

    def record_delivery(self, report_id, schedule_id, channel, recipient, state, attempt, detail="") -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO deliveries (report_id, schedule_id, channel, recipient, state, attempt, detail, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [report_id, schedule_id, channel, recipient, state, attempt, detail, to_db(now())])

    def deliveries_of(self, report_id: str) -> List[dict]:
        return self.rows("SELECT * FROM deliveries WHERE report_id = ? ORDER BY id", [report_id])

    def deliveries_of_reports(self, report_ids: List[str]) -> Dict[str, List[dict]]:
        """``{report_id: [delivery attempt, ...]}`` in the order they were made (one query)."""
        found: Dict[str, List[dict]] = {report_id: [] for report_id in report_ids}
        if not report_ids:
            return found
        marks = ", ".join("?" * len(report_ids))
        for row in self.rows(f"SELECT * FROM deliveries WHERE report_id IN ({marks}) ORDER BY id",
                             list(report_ids)):
            found[row["report_id"]].append(row)
        return found

    def due_schedules(self, at: dt.datetime, limit: int = 500) -> List[Schedule]:
        """Enabled schedules whose next run is at or before ``at``."""
        rows = self.rows(
            "SELECT * FROM schedules WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ?"
            " ORDER BY next_run_at LIMIT ?", [to_db(at), int(limit)])
        return [_record(Schedule, row) for row in rows]

    def advance_schedule(self, schedule_id: str, seen: Optional[dt.datetime],
                         next_run_at: Optional[dt.datetime]) -> bool:
        """Move ``next_run_at`` on from ``seen`` (compare-and-set: one scheduler moves it)."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE schedules SET next_run_at = ? WHERE id = ? AND next_run_at IS ?",
                [to_db(next_run_at), schedule_id, to_db(seen)])
            return cursor.rowcount == 1

    def claim_fire_times(self, schedule_id: str, seen: Optional[dt.datetime], next_run_at: Optional[dt.datetime],
                         runs: List[Tuple[dt.datetime, str, str]]) -> bool:
        """In one write transaction: move ``next_run_at`` on from ``seen`` (compare-and-set: one
        scheduler wins) and record ``runs``, each ``(fire time, state, detail)``. A crash after
        this leaves the fire times recorded (a ``starting`` run is picked up again by
        ``orphan_runs``), never moved past without a trace. False if another scheduler won."""
        with self.transaction() as db:
            moved = db.execute(
                "UPDATE schedules SET next_run_at = ? WHERE id = ? AND next_run_at IS ?",
                [to_db(next_run_at), schedule_id, to_db(seen)]).rowcount == 1
            if moved:
                stamp = to_db(now())
                db.conn.executemany(
                    "INSERT OR IGNORE INTO schedule_runs (schedule_id, fire_time, state, report_id, created_at, detail)"
                    " VALUES (?, ?, ?, NULL, ?, ?)",
                    [[schedule_id, to_db(fire_time), state, stamp, detail] for fire_time, state, detail in runs])
            return moved

    def orphan_runs(self, older_than: dt.timedelta, limit: int = 100) -> List[dict]:
        """Runs claimed (``starting``) more than ``older_than`` ago that never got their report:
        the scheduler that claimed them stopped between the claim and the report."""
        return self.rows(
            "SELECT schedule_id, fire_time, created_at FROM schedule_runs WHERE state = 'starting'"
            " AND report_id IS NULL AND created_at < ? ORDER BY created_at LIMIT ?",
            [to_db(now() - older_than), int(limit)])

    def reclaim_run(self, schedule_id: str, fire_time: str, seen_created_at: str) -> bool:
        """Take over an orphaned ``starting`` run (compare-and-set on its claim time: one scheduler wins)."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE schedule_runs SET created_at = ? WHERE schedule_id = ? AND fire_time = ?"
                " AND state = 'starting' AND report_id IS NULL AND created_at = ?",
                [to_db(now()), schedule_id, fire_time, seen_created_at]).rowcount == 1

    def unlinked_report_of(self, schedule_id: str, since: str) -> Optional[str]:
        """A report of ``schedule_id`` created at or after ``since`` that no run names (a run's
        report made just before its scheduler stopped)."""
        rows = self.rows(
            "SELECT id FROM reports p WHERE schedule_id = ? AND created_at >= ? AND NOT EXISTS"
            " (SELECT 1 FROM schedule_runs r WHERE r.report_id = p.id) ORDER BY created_at LIMIT 1",
            [schedule_id, since])
        return rows[0]["id"] if rows else None

    def update_run(self, schedule_id: str, fire_time: dt.datetime, **fields) -> None:
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE schedule_runs SET {sets} WHERE schedule_id = ? AND fire_time = ?",
                       [to_db(v) for v in fields.values()] + [schedule_id, to_db(fire_time)])

    def delivery_attempts(self, report_id: str, channel: str, recipient: str) -> Tuple[bool, int]:
        """Whether ``recipient`` is done with (sent, or refused for good) and how many tries were made."""
        sent, tries = self.db.execute(
            "SELECT coalesce(max(state IN ('sent', 'refused')), 0), count(*) FROM deliveries"
            " WHERE report_id = ? AND channel = ? AND recipient = ?", [report_id, channel, recipient]).fetchone()
        return bool(sent), tries

    # -- templates ------------------------------------------------------

    def insert_template(self, template: Template) -> None:
        self._insert("templates", template)

    def get_template(self, template_id: str) -> Optional[Template]:
        return self._get("templates", Template, template_id)

    def list_templates(self, org_id: Optional[str]) -> List[Template]:
        clause, args = ("org_id = ?", [org_id]) if org_id is not None else ("1 = 1", [])
        return [_record(Template, row) for row in self.rows(
            f"SELECT * FROM templates WHERE {clause} ORDER BY created_at DESC, id", args)]

    # -- API keys -------------------------------------------------------

    def insert_api_key(self, key: ApiKey, key_hash: str) -> None:
        row = {**attrs.asdict(key), "key_hash": key_hash}
        with self.transaction() as db:
            db.execute(
                "INSERT INTO api_keys (id, key_hash, prefix, org_id, role, name, created_at, revoked)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                [row["id"], key_hash, row["prefix"], row["org_id"], row["role"], row["name"],
                 to_db(row["created_at"])])

    def find_api_key(self, key_hash: str) -> Optional[ApiKey]:
        rows = self.rows(
            "SELECT id, org_id, role, name, prefix, created_at FROM api_keys WHERE key_hash = ? AND revoked = 0",
            [key_hash])
        return _record(ApiKey, rows[0]) if rows else None

    def list_api_keys(self, org_id: Optional[str] = None) -> List[dict]:
        """Every key (of one organisation, or all), oldest first, without its hash."""
        where, args = ("WHERE org_id = ?", [org_id]) if org_id is not None else ("", [])
        return self.rows(f"SELECT id, org_id, role, name, prefix, created_at, revoked FROM api_keys {where}"
                         f" ORDER BY created_at, id", args)

    def revoke_api_key(self, key_id: str) -> Optional[str]:
        """Revoke a key from now on (its row stays, for the audit log); its organisation, or None
        if there is no such key."""
        with self.transaction() as db:
            row = db.execute("UPDATE api_keys SET revoked = 1 WHERE id = ? RETURNING org_id", [key_id]).fetchone()
        return row[0] if row else None

    # -- revoked bearer tokens ------------------------------------------

    def insert_token_revocation(self, kind: str, value: str, issued_before: Optional[dt.datetime] = None,
                                reason: str = "") -> dict:
        """Record a revocation (``kind`` jti, session or subject) and return it."""
        stamp = now()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO token_revocations (kind, value, issued_before, reason, created_at) VALUES (?, ?, ?, ?, ?)",
                [kind, value, to_db(issued_before), reason, to_db(stamp)])
        return {"id": cursor.lastrowid, "kind": kind, "value": value, "issued_before": to_db(issued_before),
                "reason": reason, "created_at": to_db(stamp)}

    def token_revocations(self) -> List[dict]:
        """Every revocation, oldest first."""
        return self.rows("SELECT id, kind, value, issued_before, reason, created_at FROM token_revocations ORDER BY id")

    # -- audit log ------------------------------------------------------

    def audit(self, *, org_id, actor, action, resource_type, resource_id=None, result="allowed",
              ip="", details=None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit_log (created_at, org_id, actor, action, resource_type, resource_id, result, ip, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [to_db(now()), org_id, actor, action, resource_type, resource_id, result, ip,
                 json.dumps(details or {}, sort_keys=True)])

    def audit_events(self, org_id: Optional[str], start=None, end=None, actions=None) -> List[dict]:
        where, args = [], []
        if org_id is not None:
            where.append("org_id = ?"); args.append(org_id)
        if start is not None:
            where.append("created_at >= ?"); args.append(to_db(start))
        if end is not None:
            where.append("created_at < ?"); args.append(to_db(end))
        if actions:
            where.append(f"action IN ({', '.join('?' for _ in actions)})"); args.extend(actions)
        clause = " AND ".join(where) or "1 = 1"
        return self.rows(f"SELECT * FROM audit_log WHERE {clause} ORDER BY id", args)
