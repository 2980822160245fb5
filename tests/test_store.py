"""The metadata store: schema versions, hashed keys, and writes from many threads and processes,
on SQLite and on PostgreSQL (``store_support``)."""
import multiprocessing
import sqlite3
import threading

from botreports.core.models import Report
from botreports.core.security import hash_secret, new_id
from botreports.core.store import MIGRATIONS, now
from botreports.core.stores import open_store as open_store_at
from botreports.core.stores import postgresql
from store_support import open_store, postgres_store_url, store_location  # noqa: F401 (fixtures)


def make_report(org="org-acme"):
    return Report(id=new_id("rpt"), org_id=org, owner_id="someone", type="usage", format="json",
                  title="T", parameters={"a": [1, 2]}, created_at=now())


def test_schema_is_versioned_and_migrations_are_idempotent(open_store, store_location):
    store = open_store()
    version = store.schema_version()
    assert version == len(MIGRATIONS) == len(postgresql.MIGRATIONS) >= 1  # one numbering for both
    assert store.migrate() == version  # a second start applies nothing
    assert open_store().schema_version() == version
    tables = set(store.table_names())
    assert {"reports", "schedules", "schedule_runs", "templates", "api_keys", "audit_log", "deliveries",
            "report_records", "token_revocations"} <= tables
    if not store_location.startswith("postgresql"):
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_report_round_trip(open_store):
    store = open_store()
    report = make_report()
    store.insert_report(report)
    loaded = store.get_report(report.id)
    assert loaded.parameters == {"a": [1, 2]}
    assert loaded.created_at == report.created_at
    assert loaded.state == "pending" and loaded.progress == 0


def test_progress_never_goes_back(open_store):
    store = open_store()
    report = make_report()
    store.insert_report(report)
    assert store.claim_report(report.id, "w1", 60)
    assert not store.claim_report(report.id, "w2", 60)  # a second worker cannot take it
    store.set_progress(report.id, 40, "collecting")
    store.set_progress(report.id, 10, "late update")
    assert store.get_report(report.id).progress == 40


def test_api_keys_are_stored_hashed(reports):
    plain, key = reports.create_api_key("org-acme", "report_viewer", "dashboard")
    raw = sqlite3.connect(reports.data_dir / "botreports.db")
    dumped = "\n".join(raw.iterdump())
    assert plain not in dumped
    assert hash_secret(plain) in dumped
    assert reports.store.find_api_key(hash_secret(plain)).id == key.id


def test_many_threads_write_without_losing_rows(open_store):
    store = open_store()
    errors = []

    def work():
        try:
            for _ in range(40):
                report = make_report()
                store.insert_report(report)
                store.audit(org_id="org-acme", actor="t", action="report.generate", resource_type="report",
                            resource_id=report.id)
        except Exception as exc:  # pragma: no cover - shown by the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 320
    assert store.db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 320


def _process_writer(location, count):
    store = open_store_at(location, None)
    for _ in range(count):
        store.insert_report(make_report())
        store.record_run("sch-1", now().replace(microsecond=0, second=0), "done")


def test_processes_share_the_store_and_runs_stay_unique(open_store, store_location):
    open_store()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(store_location, 30)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = open_store()
    assert store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 90
    # one run per (schedule, fire time), however many writers tried
    runs = store.db.execute("SELECT fire_time, count(*) FROM schedule_runs GROUP BY fire_time").fetchall()
    assert all(count == 1 for _, count in runs)


def test_crash_in_export_leaves_no_file_and_a_failed_report(reports, principal_factory):
    from botreports import Exporter, hookimpl
    from botreports.testing import registered

    class Exploding:
        @hookimpl
        def register_exporters(self):
            def export(document, stream, options):
                stream.write(b"half a file")
                raise RuntimeError("disk on fire")
            return Exporter("boom", ".boom", "application/octet-stream", export)

    with registered(reports, Exploding()):
        report = reports.generate(principal_factory("report_creator"),
                                  {"type": "usage", "format": "boom", "start_date": "2025-01-20",
                                   "end_date": "2025-01-21"})
    assert report.state == "failed"
    assert "disk on fire" in report.error
    assert list(reports.reports_dir.iterdir()) == []
    import pytest
    from botreports import Conflict
    with pytest.raises(Conflict):
        reports.download(principal_factory("report_viewer"), report.id)


def test_status_copy_is_forgotten_by_every_write_through_the_store(open_store):
    store = open_store()
    report = make_report()
    store.insert_report(report)
    assert store.recent_report(report.id).state == "pending"  # now held for pollers
    assert store.claim_report(report.id, "w1", 60)
    assert store.recent_report(report.id).state == "running"
    store.set_progress(report.id, 40, "collecting")
    assert store.recent_report(report.id).progress == 40
    assert store.finish_report(report.id, "w1", state="completed", progress=100)
    assert store.recent_report(report.id).state == "completed"
    store.delete_report(report.id)
    assert store.recent_report(report.id) is None


def test_status_copy_sees_another_process_write_within_its_freshness(open_store):
    import time

    from botreports.core import recent_reports

    poller, worker = open_store(), open_store()
    report = make_report()
    poller.insert_report(report)
    started = time.monotonic()
    assert poller.recent_report(report.id).state == "pending"
    worker.update_report(report.id, state="failed", error="boom")  # a write the poller cannot see
    while poller.recent_report(report.id).state == "pending":
        assert time.monotonic() - started < recent_reports.FRESH_FOR + 0.5
        time.sleep(0.02)
    assert poller.recent_report(report.id).error == "boom"
    assert time.monotonic() - started >= recent_reports.FRESH_FOR * 0.9  # it was held, not re-read
