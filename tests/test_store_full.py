"""A full disk under the data directory, for real (a small tmpfs filled to the last byte):
requests answer 503 with Retry-After instead of a 500, a finished report still downloads,
and the SQLite queue waits quietly instead of logging a traceback every poll."""
import datetime as dt
import errno
import hashlib
import logging
import os
import shutil
import subprocess
import threading
import time
import uuid

import pytest

from botreports import Reports
from botreports.adapters.queue import _consumer_class, make_queue
from botreports.core.errors import StorageUnavailable
from botreports.core.service import SYSTEM
from botreports.core.storage_faults import storage_fault
from http_support import BASE, LiveServer

BODY = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}


class SmallDisk:
    """A tmpfs of a few megabytes, and a file that takes every byte left on it."""

    def __init__(self, path, megabytes=8):
        self.path = path
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            if os.environ.get("CI") == "true":
                raise AssertionError(f"cannot mount a tmpfs for the full-disk tests: {done.stderr}")
            pytest.skip(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
        self.filler = path / "filler"

    def fill(self):
        """Write until the filesystem says ENOSPC, in smaller and smaller pieces down to a byte."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self):
        self.filler.unlink()

    def unmount(self):
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def disk(tmp_path):
    small = SmallDisk(tmp_path / f"disk-{uuid.uuid4().hex[:6]}")
    yield small
    small.unmount()


@pytest.fixture
def analytics(tmp_path, botreports_demo_db):
    path = tmp_path / "analytics.db"
    shutil.copy(botreports_demo_db, path)
    return f"sqlite:///{path}"


def test_storage_fault_tells_full_disks_from_other_errors():
    import sqlite3

    assert storage_fault(OSError(errno.ENOSPC, "No space left on device")) == "the disk is full"
    assert storage_fault(sqlite3.OperationalError("database or disk is full")) == "the database or disk is full"
    wrapped = RuntimeError("write failed")
    wrapped.__cause__ = OSError(errno.EROFS, "Read-only file system")
    assert storage_fault(wrapped) == "the filesystem is read-only"

    class DiskFull(Exception):  # what psycopg raises, by SQLSTATE
        sqlstate = "53100"

    assert storage_fault(DiskFull("could not extend file")) == "the database's disk is full"
    for other in (sqlite3.OperationalError("no such table: x"), OSError(errno.ENOENT, "gone"), ValueError("x")):
        assert storage_fault(other) is None


def test_full_disk_answers_503_with_retry_after_and_a_finished_report_still_downloads(disk, analytics):
    rk = Reports(data_dir=disk.path / "data", data_source=analytics, load_entrypoints=False)
    key, _ = rk.create_api_key("org-acme", "report_creator")
    server = LiveServer(rk)
    try:
        made = server.request("POST", f"{BASE}/generate", key, json=BODY)
        assert made.status_code == 202 and made.json()["state"] == "completed"
        report_id = made.json()["report_id"]
        link = server.request("GET", f"{BASE}/{report_id}/download?as=link", key).json()["url"]
        expected = (rk.data_dir / rk.store.get_report(report_id).artifact_path).read_bytes()
        audits_before = len(rk.store.audit_events(None, actions=["report.download"]))

        disk.fill()
        refused = server.request("POST", f"{BASE}/generate", key, json=BODY)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "storage_unavailable"
        assert "full" in refused.json()["message"] and "Traceback" not in refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 300
        # Reading still works, and the finished report is served although its audit entry cannot be written.
        assert server.request("GET", f"{BASE}/{report_id}/status", key).json()["state"] == "completed"
        got = server.request("GET", f"{BASE}/{report_id}/download", key)
        assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(expected).digest()
        by_link = server.session.get(link, timeout=30)
        assert by_link.status_code == 200 and by_link.content == expected
        assert rk.unrecorded_audits == 2
        assert server.request("GET", f"{BASE}/health").status_code == 200

        disk.free()
        again = server.request("POST", f"{BASE}/generate", key, json=BODY)
        assert again.status_code == 202 and again.json()["state"] == "completed"
        assert len(rk.store.audit_events(None, actions=["report.download"])) == audits_before
    finally:
        server.stop()
        rk.close()


def test_worker_on_a_full_disk_waits_quietly_then_runs_the_report(disk, analytics, caplog):
    # The fault: with the queue's SQLite file on a full disk, each worker logged a traceback
    # every half second (121 in 25 s).
    queue = make_queue(None, disk.path / "data", workers=2)
    rk = Reports(data_dir=disk.path / "data", data_source=analytics, queue=queue, load_entrypoints=False)
    report = rk.generate(SYSTEM, BODY)  # queued while there is room
    disk.fill()
    caplog.set_level(logging.INFO)
    queue.start()
    try:
        # The minute's periodic jobs cannot be queued either (the scheduler does this at each :00).
        stop = threading.Event()
        stop.set()
        scheduler = _consumer_class().scheduler_class(queue.huey, stop, interval=1, periodic=True)
        scheduler.enqueue_periodic_tasks(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        time.sleep(6)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert tracebacks == [], [r.getMessage() for r in tracebacks]
        waits = [r.getMessage() for r in caplog.records if "waiting for space" in r.getMessage()]
        assert 1 <= len(waits) <= 6, waits  # one line a minute per kind of job, not one per poll
        assert queue.storage_wait.failures <= 16  # 1, 2, 4 s ... apart, not twice a second
        # Both minute jobs were refused by the full disk, and said so quietly.
        assert {"botreports.scheduler", "botreports.reconciler"} <= set(queue.storage_wait._streaks)
        assert rk.store.get_report(report.id).state == "pending"
        disk.free()
        deadline = time.monotonic() + 60
        while rk.store.get_report(report.id).state != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rk.store.get_report(report.id).state == "completed"
        assert any("writable again" in r.getMessage() for r in caplog.records)
    finally:
        rk.close()


def test_store_refuses_a_write_on_a_full_disk_with_storage_unavailable(disk):
    from botreports.core.store import Store

    store = Store(disk.path / "botreports.db")
    disk.fill()
    with pytest.raises(StorageUnavailable) as caught:
        for _ in range(1000):
            store.audit(org_id="org-acme", actor="ana", action="report.download", resource_type="report")
    assert "full" in caught.value.message and caught.value.status == 503
    assert not store.db.conn.in_transaction  # the failed write left no transaction open
    disk.free()
    store.audit(org_id="org-acme", actor="ana", action="report.download", resource_type="report")
    store.close()
