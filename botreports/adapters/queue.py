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
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

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


def _consumer_class():
    from huey.consumer import Consumer

    class EmbeddedConsumer(Consumer):
        """A consumer that leaves the host's signal handlers alone (it may run in any thread)."""

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

        self._run_report = self.huey.task(name="botreports.run_report")(run_report)
        self._deliver = self.huey.task(name="botreports.deliver")(deliver)
        self.huey.periodic_task(crontab(minute="*"), name="botreports.scheduler")(tick)
        self.huey.periodic_task(crontab(minute="*"), name="botreports.reconciler")(reconcile)
        self.huey.periodic_task(crontab(minute="17"), name="botreports.retention")(sweep)
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
