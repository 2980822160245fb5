"""Huey wiring: where generation jobs wait and who runs them.

Tasks carry only a report id, serialized as JSON (never pickle), so nothing a
user sent can be unpickled by a worker. Modes: ``immediate`` (run in the
caller's thread), Huey on SQLite (``<data-dir>/queue.db``, the standalone
default) and Huey on Redis (``redis://host:6379/0``) for workers on many
machines. Every consumer also runs the periodic jobs: the scheduler tick and
the reconciler each minute, the retention sweep each hour, and the refresh of
the analytics source's rollups (botserver's PostgreSQL: botserver_rollups.py)
every few minutes. Running them in several consumers at once is safe: each one
works by conditional updates, the rollup refresh under an advisory lock.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from ..core.storage_faults import storage_fault

log = logging.getLogger("botreports.queue")

#: ``BOTREPORTS_QUEUE_NAME``: the Huey name, i.e. the queue's key prefix in Redis.
DEFAULT_NAME = "botreports"
#: ``BOTREPORTS_ROLLUP_REFRESH_MINUTES``: how often the analytics source's rollups are brought up to date.
DEFAULT_ROLLUP_MINUTES = 5


def rollup_minutes() -> int:
    """The rollup refresh period in minutes (1 to 59), from the environment."""
    text = os.environ.get("BOTREPORTS_ROLLUP_REFRESH_MINUTES") or str(DEFAULT_ROLLUP_MINUTES)
    try:
        minutes = int(text)
    except ValueError:
        raise ValueError(f"BOTREPORTS_ROLLUP_REFRESH_MINUTES must be minutes (1 to 59), not {text!r}") from None
    if not 1 <= minutes <= 59:
        raise ValueError(f"BOTREPORTS_ROLLUP_REFRESH_MINUTES must be 1 to 59, not {minutes}")
    return minutes


def refresh_rollups(reports) -> None:
    """The periodic rollup job: a no-op for sources without rollups to keep (the SQLite file keeps
    its own by triggers); the refresh logs what it did, or once why it may not."""
    refresh = getattr(reports.source, "refresh_rollups", None)
    if refresh is None:
        return
    try:
        refresh()
    except Exception:  # the next tick tries again; reports meanwhile read what the rollups cover
        log.exception("rollup refresh failed")


class StorageWait:
    """Keeps a queue that cannot write to its storage (a full disk) quiet and patient.

    Huey's worker logs a traceback and polls again within half a second each time
    taking a message fails, which a full disk turned into five tracebacks a second.
    Wrapped here, a failed read waits longer each time (1 s, doubling to 30 s) and
    returns "nothing to do", and one warning a minute says why; the first read of
    the same kind that works again says so, and polling resumes at its usual pace.
    """

    FIRST_WAIT, LONGEST_WAIT, LOG_EVERY = 1.0, 30.0, 60.0

    def __init__(self):
        self.stop = threading.Event()
        self.failures = 0  # in all, for monitoring and tests
        self._streaks: dict = {}  # failures in a row, per kind of read
        self._lock = threading.Lock()
        self._logged_at = None

    def read(self, method, empty):
        """``method`` (a read of the queue) that answers ``empty`` while the storage is full."""
        kind = method.__name__

        def guarded(*args, **kwargs):
            try:
                value = method(*args, **kwargs)
            except Exception as exc:
                reason = storage_fault(exc)
                if reason is None:
                    raise
                self.stop.wait(self.failed(f"the queue cannot take its next message ({reason})", kind))
                return empty
            if self._streaks.get(kind):
                with self._lock:
                    streak, self._streaks[kind], self._logged_at = self._streaks.get(kind, 0), 0, None
                if streak:
                    log.warning("queue storage writable again after %d failed attempt(s)", streak)
            return value
        return guarded

    def job(self, name, function):
        """A periodic or report job that logs one line instead of a traceback when the store is full
        (what it would have done is done by a later run: the next tick, the reconciler)."""
        def guarded(*args):
            try:
                return function(*args)
            except Exception as exc:
                reason = storage_fault(exc)
                if reason is None:
                    raise
                self.failed(f"{name} could not write ({reason})", name)
        return guarded

    def failed(self, what: str, kind: str) -> float:
        """Count one failure, log at most once a minute; the seconds to wait before the next read."""
        now_ = time.monotonic()
        with self._lock:
            self.failures += 1
            streak = self._streaks[kind] = self._streaks.get(kind, 0) + 1
            quiet = self._logged_at is not None and now_ - self._logged_at < self.LOG_EVERY
            if not quiet:
                self._logged_at = now_
        if not quiet:
            log.warning("%s; waiting for space, %d failure(s) so far", what, self.failures)
        return min(self.FIRST_WAIT * 2 ** (streak - 1), self.LONGEST_WAIT)


def _json_serializer():
    from huey.registry import Message
    from huey.serializer import Serializer

    def encode(value):
        if isinstance(value, Message):
            return {"__message__": [encode(item) for item in value]}
        if isinstance(value, dt.datetime):
            return {"__datetime__": value.isoformat()}
        if isinstance(value, (list, tuple)):
            return [encode(item) for item in value]
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                raise TypeError("queue messages may only have string keys")
            return {key: encode(item) for key, item in value.items()}
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        raise TypeError(f"queue messages carry JSON values only, not {type(value).__name__}")

    def decode(value):
        if isinstance(value, dict):
            if "__message__" in value:
                return Message(*[decode(item) for item in value["__message__"]])
            if "__datetime__" in value:
                return dt.datetime.fromisoformat(value["__datetime__"])
            return {key: decode(item) for key, item in value.items()}
        if isinstance(value, list):
            return [decode(item) for item in value]
        return value

    class JSONSerializer(Serializer):
        """Huey messages as JSON: ids and numbers in, ids and numbers out."""

        def _serialize(self, data):
            return json.dumps(encode(data), separators=(",", ":")).encode("utf-8")

        def _deserialize(self, data):
            return decode(json.loads(data.decode("utf-8") if isinstance(data, bytes) else data))

    return JSONSerializer()


def seconds_to_next_minute(wall: Optional[float] = None) -> float:
    """Seconds from ``wall`` (Unix time, default now) to the next whole minute, plus a hair so
    the periodic check lands inside that minute, never at its last instant before."""
    wall = time.time() if wall is None else wall
    return 60.0 - wall % 60.0 + 0.01


def _consumer_class():
    from huey.consumer import Consumer, Scheduler

    class MinuteScheduler(Scheduler):
        """Huey's scheduler with the periodic check at the start of each wall-clock minute.

        Huey checks periodic tasks every 60 s counted from the consumer's start, so a
        consumer started at :42 ran a schedule due at :00 only at :42, up to a minute
        late. Here each check is set for the next :00 (the scheduler wakes every second,
        so it runs within a second of it), from the wall clock each time, so it never drifts.
        """

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._next_periodic = time.monotonic() + seconds_to_next_minute()

        def enqueue_periodic_tasks(self, now):
            self._next_periodic = time.monotonic() + seconds_to_next_minute()
            wait = getattr(self.huey, "storage_wait", None)
            for task in self.huey.read_periodic(now):
                try:
                    self.huey.enqueue(task)
                except Exception as exc:
                    reason = storage_fault(exc)
                    if wait is None or reason is None:
                        self._logger.exception("Error enqueueing periodic task %s.", task)
                    else:  # a full disk: one line a minute, the next minute tries again
                        wait.failed(f"the periodic task {task.name} could not be queued ({reason})", task.name)

    class EmbeddedConsumer(Consumer):
        """A consumer that leaves the host's signal handlers alone (it may run in any thread)."""

        scheduler_class = MinuteScheduler

        def _set_signal_handlers(self):
            return None

    return EmbeddedConsumer


class HueyQueue:
    """Generation jobs on a Huey instance; optionally runs a consumer with worker threads in-process."""

    def __init__(self, huey, workers: int = 2):
        self.huey = huey
        self.workers = max(int(workers), 1)
        self.consumer = None
        self.reports = None
        # Reads of the queue wait quietly while its storage is full; enqueue is left alone, so a
        # request that cannot be queued fails (503) instead of being lost.
        self.storage_wait = StorageWait()
        huey.storage_wait = self.storage_wait  # for the scheduler's periodic enqueues
        huey.dequeue = self.storage_wait.read(huey.dequeue, None)
        huey.read_schedule = self.storage_wait.read(huey.read_schedule, [])

    @property
    def name(self) -> str:
        return type(self.huey.storage).__name__

    def bind(self, reports) -> None:
        """Define the tasks on this Huey instance, bound to ``reports``."""
        from huey import crontab

        self.reports = reports
        host = f"{socket.gethostname()}-{os.getpid()}"

        def run_report(report_id: str) -> None:
            reports.run_report(str(report_id), worker=f"{host}-{threading.get_ident()}")

        def deliver(report_id: str) -> None:
            reports.deliver(str(report_id))

        def tick() -> None:
            counts = reports.run_due_schedules()
            if any(counts.values()):
                log.info("scheduler: %s", counts)

        def reconcile() -> None:
            counts = reports.reconcile()
            if counts.get("retried") or counts.get("failed"):
                log.warning("reconciler: %s", counts)

        def sweep() -> None:
            expired = reports.sweep_expired()
            if expired:
                log.info("retention: %d reports expired", expired)

        def rollups() -> None:
            refresh_rollups(reports)

        quiet = self.storage_wait.job
        self._run_report = self.huey.task(name="botreports.run_report")(quiet("a report", run_report))
        self._deliver = self.huey.task(name="botreports.deliver")(quiet("a delivery", deliver))
        self.huey.periodic_task(crontab(minute="*"), name="botreports.scheduler")(quiet("the scheduler", tick))
        self.huey.periodic_task(crontab(minute="*"), name="botreports.reconciler")(
            quiet("the reconciler", reconcile))
        self.huey.periodic_task(crontab(minute="17"), name="botreports.retention")(quiet("the retention sweep", sweep))
        self.huey.periodic_task(crontab(minute=f"*/{rollup_minutes()}"), name="botreports.rollups")(rollups)

    def enqueue(self, report_id: str, delay: float = 0) -> None:
        if delay:
            self._run_report.schedule(args=(report_id,), delay=delay)
        else:
            self._run_report(report_id)

    def enqueue_delivery(self, report_id: str, delay: float = 0) -> None:
        if delay:
            self._deliver.schedule(args=(report_id,), delay=delay)
        else:
            self._deliver(report_id)

    def pending(self) -> int:
        """Messages waiting in the queue (for monitoring)."""
        return self.huey.pending_count()

    def start(self) -> None:
        """Start a consumer with ``workers`` threads in this process (``serve`` and ``worker``).

        The reconciler runs once first, so reports left running by a crash are
        retried (or failed) before new work starts.
        """
        if self.consumer is not None:
            return
        try:
            counts = self.reports.reconcile()
            if counts.get("retried") or counts.get("failed"):
                log.warning("start-up reconciler: %s", counts)
        except Exception:  # a busy store at start-up must not keep workers from starting
            log.exception("start-up reconciliation failed; the periodic one will retry")
        # Idle workers poll at most every half second: a report a user waits for should start at once.
        self.consumer = _consumer_class()(self.huey, workers=self.workers, worker_type="thread",
                                          periodic=True, check_worker_health=True,
                                          initial_delay=0.05, backoff=1.15, max_delay=0.5)
        self.consumer.start()

    def stop(self) -> None:
        """Stop the consumer, letting running reports finish (their leases keep them safe if not)."""
        self.storage_wait.stop.set()  # a worker waiting out a full disk stops waiting
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
            self.consumer = None


def make_queue(url: Optional[str], data_dir: Path, workers: int = 2, name: Optional[str] = None):
    """A queue from its URL: ``immediate``, ``sqlite`` (default) or ``redis://...``."""
    name = name or os.environ.get("BOTREPORTS_QUEUE_NAME") or DEFAULT_NAME
    if url == "immediate":
        from ..core.service import ImmediateQueue
        return ImmediateQueue()
    if url is None or url in ("sqlite", "") or url.startswith("sqlite:"):
        from huey import SqliteHuey
        path = Path(data_dir) / "queue.db" if url in (None, "", "sqlite") else Path(urlparse(url).path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return HueyQueue(SqliteHuey(name, filename=str(path), results=False, serializer=_json_serializer()),
                         workers)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from huey import RedisHuey
        return HueyQueue(RedisHuey(name, url=url, results=False, serializer=_json_serializer()), workers)
    raise ValueError(f"unknown queue {url!r}: use immediate, sqlite or redis://host:6379/0")
