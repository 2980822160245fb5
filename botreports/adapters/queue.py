"""Huey wiring: where generation jobs wait and who runs them.

Tasks carry only a report id. Modes: ``immediate`` (run in the caller's
thread), Huey on SQLite (``<data-dir>/queue.db``, the standalone default) and
Huey on Redis (``redis://host:6379/0``) for workers on many machines.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

log = logging.getLogger("botreports.queue")


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
        self.workers = workers
        self.consumer = None
        self.reports = None

    @property
    def name(self) -> str:
        return type(self.huey.storage).__name__

    def bind(self, reports) -> None:
        """Define the tasks on this Huey instance, bound to ``reports``."""
        self.reports = reports
        worker = f"{socket.gethostname()}-{os.getpid()}"

        def run_report(report_id: str) -> None:
            reports.run_report(report_id, worker=f"{worker}-{threading.get_ident()}")

        self._run_report = self.huey.task(name="botreports.run_report")(run_report)

    def enqueue(self, report_id: str) -> None:
        self._run_report(report_id)

    def start(self) -> None:
        """Start a consumer with ``workers`` threads in this process (``serve`` and ``worker``)."""
        if self.consumer is not None:
            return
        self.consumer = _consumer_class()(self.huey, workers=self.workers, worker_type="thread",
                                          periodic=True, check_worker_health=True)
        self.consumer.start()

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
            self.consumer = None


def make_queue(url: Optional[str], data_dir: Path, workers: int = 2):
    """A queue from its URL: ``immediate``, ``sqlite`` (default) or ``redis://...``."""
    if url == "immediate":
        from ..core.service import ImmediateQueue
        return ImmediateQueue()
    if url is None or url in ("sqlite", "") or url.startswith("sqlite:"):
        from huey import SqliteHuey
        path = Path(data_dir) / "queue.db" if url in (None, "", "sqlite") else Path(urlparse(url).path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return HueyQueue(SqliteHuey("botreports", filename=str(path)), workers)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from huey import RedisHuey
        return HueyQueue(RedisHuey("botreports", url=url), workers)
    raise ValueError(f"unknown queue {url!r}: use immediate, sqlite or redis://host:6379/0")
