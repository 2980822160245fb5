"""Reports read lately, kept for a moment for the clients that poll their status.

A bot script or a dashboard asks for a report's status many times a second while
it is generated. Each ask would read the store, and under load every read costs a
round of the interpreter lock between the server's threads. A report read within
the last ``fresh_for`` seconds is answered from memory instead: a poller may see a
state up to that long after it changed (progress still only grows, since every
entry is newer than the one it replaces), and a deletion through this instance
forgets the report at once.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, Optional, Tuple

from .models import Report

#: Seconds a report read from the store answers status requests without a new read.
FRESH_FOR = 1.0
#: Reports kept at most; a scan of many different ids must not grow memory.
KEPT = 10_000


class RecentReports:
    """Report id -> the report as read from the store less than ``fresh_for`` seconds ago."""

    def __init__(self, read: Callable[[str], Optional[Report]], fresh_for: float = FRESH_FOR):
        self.read, self.fresh_for = read, fresh_for
        self._entries: Dict[str, Tuple[float, Report]] = {}
        self._lock = threading.Lock()

    def get(self, report_id: str) -> Optional[Report]:
        """The report, from memory while fresh, else from the store (None if there is none)."""
        now = time.monotonic()
        entry = self._entries.get(report_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        report = self.read(report_id)
        with self._lock:
            if report is None:
                self._entries.pop(report_id, None)
            else:
                if len(self._entries) >= KEPT:
                    self._entries.clear()
                self._entries[report_id] = (now + self.fresh_for, report)
        return report

    def forget(self, report_id: str) -> None:
        with self._lock:
            self._entries.pop(report_id, None)
