"""The guarantees every metadata store keeps, on SQLite and on PostgreSQL: the per-organisation cap
under concurrency, a lease won by exactly one worker, one run per schedule fire time, revoked keys
refused, and a store that cannot write answering ``StorageUnavailable`` (a 503) without changing anything."""
import datetime as dt
import shutil
import threading
from collections import Counter

import pytest

from botreports.core import report_records
from botreports.core.errors import StorageUnavailable
from botreports.core.models import ApiKey, Report, Schedule
from botreports.core.security import hash_secret, new_id
from botreports.core.store import now
from botreports.core.stores import open_store as open_store_at
from store_support import open_store, postgres_store_url, store_location  # noqa: F401 (fixtures)


def make_report(org="org-acme", **fields):
    values = dict(owner_id="someone", type="usage", format="json", title="T", parameters={"n": 1},
                  created_at=now())
    return Report(id=new_id("rpt"), org_id=org, **{**values, **fields})


def race(count, work):
    """Run ``work(i)`` on ``count`` threads released together; their results in order."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(i):
        try:
            barrier.wait(10)
            results[i] = work(i)
        except Exception as exc:  # pragma: no cover - shown by the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return results


def test_cap_on_unfinished_reports_holds_under_concurrent_requests(open_store):
    stores = [open_store() for _ in range(3)]  # as three API processes
    cap = 5

    def request(i):
        report = make_report()
        stores[i % 3].insert_report_capped(report, cap)
        return report.id

    ids = race(12, request)
    stored = [stores[0].get_report(report_id) for report_id in ids]
    assert sum(report is not None for report in stored) == cap
    # another organisation has its own cap, and a finished report frees a place
    assert stores[0].insert_report_capped(make_report("org-other"), cap) == 0
    done = next(report for report in stored if report is not None)
    stores[1].update_report(done.id, state="completed")
    assert stores[2].insert_report_capped(make_report(), cap) == cap - 1
    assert stores[0].insert_report_capped(make_report(), cap) == cap


def test_a_lease_is_won_by_exactly_one_worker(open_store):
    stores = [open_store() for _ in range(4)]  # as four worker processes
    reports = [make_report() for _ in range(15)]
    for report in reports:
        stores[0].insert_report(report)

    def worker(i):
        return [report.id for report in reports if stores[i % 4].claim_report(report.id, f"w{i}", 30)]

    won = race(6, worker)
    claims = Counter(report_id for ids in won for report_id in ids)
    assert sorted(claims) == sorted(report.id for report in reports)
    assert set(claims.values()) == {1}
    for i, ids in enumerate(won):
        for report_id in ids:
            row = stores[1].report_row(report_id)
            assert (row["state"], row["lease_owner"], row["attempts"]) == ("running", f"w{i}", 1)
            assert not stores[1].renew_lease(report_id, "someone-else", 30)
            assert stores[2].renew_lease(report_id, f"w{i}", 30)
    # a lease that ran out is released by exactly one reconciler
    stores[0].update_report(reports[0].id, lease_expires_at=now() - dt.timedelta(seconds=1))
    released = race(4, lambda i: stores[i].release_expired_lease(reports[0].id, now(), state="pending",
                                                                 lease_owner=None))
    assert released.count(True) == 1
    assert stores[3].get_report(reports[0].id).state == "pending"


def make_schedule(next_run_at):
    return Schedule(id=new_id("sch"), org_id="org-acme", owner_id="someone", name="daily",
                    definition={"type": "usage"}, format="pdf", cron="* * * * *", created_at=now(),
                    next_run_at=next_run_at)


def test_each_fire_time_is_claimed_once_by_concurrent_schedulers(open_store):
    stores = [open_store() for _ in range(3)]
    first = now().replace(second=0, microsecond=0) - dt.timedelta(minutes=3)
    schedule = make_schedule(first)
    stores[0].insert_schedule(schedule)
    for step in range(3):  # three fire times, each raced by five schedulers
        seen = first + dt.timedelta(minutes=step)
        due = stores[0].get_schedule(schedule.id).next_run_at
        assert due == seen
        won = race(5, lambda i: stores[i % 3].claim_fire_times(
            schedule.id, seen, seen + dt.timedelta(minutes=1), [(seen, "starting", "")]))
        assert won.count(True) == 1
    runs = stores[1].runs_of(schedule.id)
    assert len(runs) == 3 and {run["state"] for run in runs} == {"starting"}
    assert stores[2].get_schedule(schedule.id).next_run_at == first + dt.timedelta(minutes=3)
    # a run already recorded is not recorded again
    assert not stores[0].record_run(schedule.id, first, "done")
    assert stores[0].record_run(schedule.id, first - dt.timedelta(minutes=1), "skipped")
    # advancing from a stale value changes nothing
    assert not stores[0].advance_schedule(schedule.id, first, first)
    assert stores[0].advance_schedule(schedule.id, first + dt.timedelta(minutes=3), None)
    assert stores[0].advance_schedule(schedule.id, None, first)  # from "none due" too


def test_revoked_keys_are_refused_by_every_process(open_store):
    one, other = open_store(), open_store()
    key = ApiKey(id=new_id("key"), org_id="org-acme", role="report_viewer", name="dash", prefix="brk_abc",
                 created_at=now().replace(microsecond=0))
    one.insert_api_key(key, hash_secret("secret-1"))
    assert other.find_api_key(hash_secret("secret-1")) == key
    assert other.find_api_key(hash_secret("secret-2")) is None
    assert one.revoke_api_key(key.id) == "org-acme"
    assert other.find_api_key(hash_secret("secret-1")) is None
    assert one.revoke_api_key("key-nobody") is None
    assert [(row["id"], row["revoked"]) for row in other.list_api_keys("org-acme")] == [(key.id, 1)]
    assert other.list_api_keys("org-other") == []


def test_token_revocations_audit_and_records_round_trip(open_store):
    store = open_store()
    first = store.insert_token_revocation("jti", "abc", reason="lost phone")
    second = store.insert_token_revocation("subject", "user-1", issued_before=now())
    assert second["id"] > first["id"]
    assert [row["value"] for row in open_store().token_revocations()] == ["abc", "user-1"]
    store.audit(org_id="org-acme", actor="a", action="report.generate", resource_type="report",
                resource_id="rpt-1", details={"x": 1})
    events = store.audit_events("org-acme", actions=["report.generate"])
    assert [(e["actor"], e["resource_id"], e["details"]) for e in events] == [("a", "rpt-1", '{"x": 1}')]
    report = make_report()
    store.insert_report(report)
    report_records.save_record(store, report.id, {"numbers": [1, 2.5]})
    report_records.save_record(store, report.id, {"numbers": [3]})  # a retried report replaces it
    assert report_records.load_record(store, report.id) == {"numbers": [3]}
    assert report_records.record_size(store, report.id) == len(report_records.pack({"numbers": [3]}))
    store.delete_report(report.id)
    assert report_records.load_record(store, report.id) is None


def test_deliveries_and_requeue_compare_and_set(open_store):
    store = open_store()
    report = make_report()
    store.insert_report(report)
    store.record_delivery(report.id, None, "email", "a@example.com", "failed", 1, "timeout")
    assert store.delivery_attempts(report.id, "email", "a@example.com") == (False, 1)
    store.record_delivery(report.id, None, "email", "a@example.com", "sent", 2)
    assert store.delivery_attempts(report.id, "email", "a@example.com") == (True, 2)
    assert store.delivery_attempts(report.id, "email", "b@example.com") == (False, 0)
    at = now()
    assert store.mark_requeued(report.id, None, at)
    assert not store.mark_requeued(report.id, None, at)  # another reconciler saw it first
    seen = store.report_row(report.id)["retry_at"]
    assert store.mark_requeued(report.id, seen, at + dt.timedelta(seconds=1))


def test_list_filters_sorts_and_pages_alike(open_store):
    store = open_store()
    base = now()
    made = []
    for i in range(7):
        report = make_report(type="usage" if i % 2 else "performance")
        report.created_at = base - dt.timedelta(minutes=i)
        report.title = f"T{i}"
        store.insert_report(report)
        made.append(report)
    page, total = store.list_reports("org-acme", type="usage", sort="created_at", order="asc", limit=2)
    usage = sorted((r for r in made if r.type == "usage"), key=lambda r: r.created_at)
    assert total == len(usage) == 3
    assert [r.id for r in page] == [r.id for r in usage[:2]]
    page, total = store.list_reports("org-acme", sort="name", order="desc", limit=3, offset=1)
    assert total == 7 and [r.title for r in page] == ["T5", "T4", "T3"]
    assert store.list_reports("org-other")[1] == 0


@pytest.mark.postgres
def test_a_read_only_postgresql_database_answers_storage_unavailable(postgres_store_url, tmp_path):
    from botserver_support import connect

    store_location = postgres_store_url
    opened = []

    def open_store():
        opened.append(open_store_at(store_location, tmp_path))
        return opened[-1]

    writer = open_store()
    report = make_report()
    writer.insert_report(report)
    before = writer.list_reports("org-acme")[1]
    name = store_location.rpartition("/")[2]
    with connect() as admin:
        admin.autocommit = True
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        try:
            standby = open_store()  # its connections open read-only, like a standby's
            assert standby.get_report(report.id).id == report.id  # reads still work
            with pytest.raises(StorageUnavailable, match="read-only"):
                standby.insert_report(make_report())
            with pytest.raises(StorageUnavailable):
                standby.set_progress(report.id, 10, "x")
        finally:
            admin.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
    assert writer.list_reports("org-acme")[1] == before  # nothing was written
    for store in opened:
        store.close()


def test_the_service_runs_on_either_store(store_location, tmp_path, botreports_demo_db, principal_factory):
    from botreports import Reports

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    shared = dict(store_url=store_location, load_entrypoints=False, queue="immediate")
    if store_location.startswith("postgresql"):
        with pytest.raises(ValueError, match="BOTREPORTS_SECRET must be set"):
            Reports(data_dir=tmp_path / "elsewhere", **shared)
        shared["secret"] = "s" * 40
    reports = Reports(data_dir=data_dir, **shared)
    try:
        creator = principal_factory("report_creator")
        report = reports.generate(creator, {"type": "usage", "format": "csv", "start_date": "2025-01-20",
                                            "end_date": "2025-01-21"})
        assert report.state == "completed", report.error
        file = reports.download(principal_factory("report_viewer"), report.id)
        assert file.size == file.path.stat().st_size > 0
        actions = [e["action"] for e in reports.store.audit_events("org-acme")]
        assert actions.count("report.generate") == 1 and actions.count("report.download") == 1
        reports.delete(principal_factory("report_admin"), report.id)
        assert reports.store.get_report(report.id) is None
    finally:
        reports.close()
