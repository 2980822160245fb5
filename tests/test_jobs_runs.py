"""One report as a job: progress, transient retries with backoff, timeouts,
the reconciler for lost workers, retention, and JSON-only queue messages."""
import datetime as dt
import json
import os
import time

import pytest

from botreports import Reports
from botreports.adapters.queue import _json_serializer
from botreports.core.errors import Conflict, Gone
from botreports.core.jobs import backoff, is_transient
from jobs_plugins import JobSections

UTC = dt.timezone.utc


def custom(*sections, fmt="json"):
    return {"type": "custom", "format": fmt, "start_date": "2025-01-20", "end_date": "2025-01-21",
            "sections": list(sections)}


@pytest.fixture
def jobs(tmp_path, botreports_demo_db):
    import shutil
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, plugins=[JobSections(tmp_path / "flaky.count")],
                 retry_backoff=0.01, max_unfinished=0)
    yield rk
    rk.close()


def test_progress_only_grows_and_names_each_stage(jobs, system_principal):
    seen = []
    original = jobs.store.set_progress

    def spy(report_id, progress, stage):
        original(report_id, progress, stage)
        row = jobs.store.report_row(report_id)
        seen.append((row["progress"], row["stage"], row["state"]))

    jobs.store.set_progress = spy
    report = jobs.generate(system_principal, custom({"type": "slow_steps", "steps": 1, "delay": 0},
                                                     {"type": "usage_summary"}))
    assert report.state == "completed" and report.progress == 100
    progress = [p for p, _, _ in seen]
    assert progress == sorted(progress) and progress[0] > 0 and len(set(progress)) >= 4
    stages = [s for _, s, _ in seen]
    # Each collecting stage names the sections still being collected (side by side on a source that
    # allows it, else one at a time): slow_steps first, and every section is named at some point.
    named = [set(s[len("collecting "):].split(", ")) for s in stages if s.startswith("collecting ")]
    assert "slow_steps" in named[0] and set().union(*named) == {"slow_steps", "usage_summary"}
    assert "collected" in stages
    assert "rendering json" in stages and stages[-1] == "writing"
    assert {state for _, _, state in seen} == {"running"}


def test_transient_error_is_retried_with_backoff(jobs, system_principal):
    report = jobs.generate(system_principal, custom({"type": "flaky", "failures": 2}))
    assert (report.state, report.attempts, report.error) == ("completed", 3, None)


def test_transient_error_gives_up_after_max_attempts(jobs, system_principal):
    report = jobs.generate(system_principal, custom({"type": "flaky", "failures": 5}))
    assert (report.state, report.attempts) == ("failed", 3)
    assert "unreachable" in report.error and "gave up after 3 attempts" in report.error


def test_permanent_error_fails_at_once_with_the_reason(jobs, system_principal):
    report = jobs.generate(system_principal, custom({"type": "broken"}))
    assert (report.state, report.attempts) == ("failed", 1)
    assert report.error == "section 'broken' failed: the metric definition is wrong"
    assert not [p for p in jobs.reports_dir.iterdir()]


def test_report_running_past_its_timeout_fails(jobs, system_principal):
    jobs.settings.report_timeout = 0.2
    report = jobs.generate(system_principal, custom({"type": "slow_steps", "steps": 3, "delay": 0.1},
                                                    {"type": "usage_summary"}))
    assert report.state == "failed" and report.error.startswith("timed out after 0.2 s")
    with pytest.raises(Conflict):
        jobs.download(system_principal, report.id)


def test_lease_is_renewed_while_a_report_runs(jobs, system_principal):
    jobs.settings.lease_seconds = 0.3
    expiries = []
    original = jobs.store.set_progress

    def spy(report_id, progress, stage):
        original(report_id, progress, stage)
        expiries.append(jobs.store.report_row(report_id)["lease_expires_at"])

    jobs.store.set_progress = spy
    report = jobs.generate(system_principal, custom({"type": "slow_steps", "steps": 1, "delay": 1.0},
                                                    {"type": "usage_summary"}))
    assert report.state == "completed"
    assert expiries[-1] > expiries[0]  # renewed during the one-second section, though the lease is 0.3 s
    assert jobs.reconcile()["retried"] == 0


def _stuck(jobs, attempts, minutes_ago=5):
    """A report left ``running`` by a worker that died (its lease ran out)."""
    report = jobs.generate(jobs_principal(), custom({"type": "usage_summary"}))
    past = dt.datetime.now(UTC) - dt.timedelta(minutes=minutes_ago)
    jobs.store.update_report(report.id, state="running", progress=40, stage="collecting usage_summary",
                             lease_owner="host-1-99", lease_expires_at=past, started_at=past,
                             attempts=attempts, artifact_path=None, completed_at=None)
    return report.id


def jobs_principal():
    from botreports.core.service import SYSTEM
    return SYSTEM


def test_reconciler_retries_a_report_whose_worker_died(jobs):
    report_id = _stuck(jobs, attempts=1)
    assert jobs.reconcile() == {"retried": 1, "failed": 0, "requeued": 0, "partial_files": 0}
    report = jobs.store.get_report(report_id)
    assert (report.state, report.attempts, report.error) == ("completed", 2, None)


def test_reconciler_fails_with_the_reason_after_the_last_attempt(jobs):
    report_id = _stuck(jobs, attempts=3)
    assert jobs.reconcile()["failed"] == 1
    report = jobs.store.get_report(report_id)
    assert report.state == "failed" and "host-1-99 stopped renewing its lease during attempt 3 of 3" in report.error
    assert jobs.reconcile()["failed"] == 0  # nothing left running


def test_reconciler_fails_a_report_past_its_timeout(jobs):
    jobs.settings.report_timeout = 60
    report_id = _stuck(jobs, attempts=1, minutes_ago=2)
    jobs.reconcile()
    assert jobs.store.get_report(report_id).error == "timed out after 60 s"


def test_reconciler_removes_abandoned_partial_files(jobs):
    partial = jobs.reports_dir / ".partial-abc.json"
    partial.write_text("{")
    old = time.time() - 3600
    os.utime(partial, (old, old))
    fresh = jobs.reports_dir / ".partial-def.json"
    fresh.write_text("{")
    jobs.settings.report_timeout, jobs.settings.lease_seconds = 60, 10
    assert jobs.reconcile()["partial_files"] == 1
    assert not partial.exists() and fresh.exists()


def test_retention_sweep_deletes_files_in_batches_and_marks_reports_expired(jobs, system_principal):
    jobs.settings.retention_batch = 2
    made = [jobs.generate(system_principal, custom({"type": "usage_summary"})) for _ in range(5)]
    keep = made[-1]
    jobs.store.update_report(keep.id, expires_at=dt.datetime.now(UTC) + dt.timedelta(days=90))
    files = {r.id: jobs.data_dir / r.artifact_path for r in made}
    assert jobs.sweep_expired(dt.datetime.now(UTC) + dt.timedelta(days=jobs.settings.retention_days, hours=1)) == 4
    for report in made[:-1]:
        stored = jobs.store.get_report(report.id)
        assert (stored.state, stored.artifact_path) == ("expired", None) and not files[report.id].exists()
        with pytest.raises(Gone):
            jobs.download(system_principal, report.id)
    assert jobs.store.get_report(keep.id).state == "completed" and files[keep.id].exists()


def test_queue_messages_are_json_and_refuse_other_objects():
    from huey import SqliteHuey

    serializer = _json_serializer()
    huey = SqliteHuey("t", filename=":memory:", results=False, serializer=serializer)
    task = huey.task(name="botreports.run_report")(lambda report_id: report_id)
    message = task.s("rpt-abc")
    data = huey.serialize_task(message)
    assert json.loads(data)["__message__"][1].endswith("botreports.run_report")
    assert b"rpt-abc" in data and huey.deserialize_task(data).args == ["rpt-abc"]
    delayed = task.s("rpt-x")
    delayed.eta = dt.datetime(2025, 1, 1, 12)
    assert huey.deserialize_task(huey.serialize_task(delayed)).eta == dt.datetime(2025, 1, 1, 12)
    with pytest.raises(TypeError):
        huey.serialize_task(task.s(object()))


def test_transient_errors_and_backoff():
    import sqlite3

    assert is_transient(ConnectionResetError()) and is_transient(sqlite3.OperationalError("database is locked"))
    assert not is_transient(ValueError("bad")) and not is_transient(KeyError("x"))

    class Settings:
        retry_backoff = 5

    assert [backoff(Settings, n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]


def test_reconciler_enqueues_again_a_pending_report_whose_message_was_lost(tmp_path, botreports_demo_db,
                                                                          system_principal):
    import datetime as dt
    import shutil

    class LosingQueue:
        """Accepts messages and loses them, as a queue flushed without persistence would."""
        name, synchronous = "losing", False

        def bind(self, reports):
            self.reports, self.sent = reports, []

        def enqueue(self, report_id, delay=None):
            self.sent.append(report_id)

        def start(self):
            return None

        def stop(self):
            return None

    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    queue = LosingQueue()
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, queue=queue, requeue_after=300)
    report = rk.generate(system_principal, {"type": "usage", "format": "json", "start_date": "2025-01-20",
                                            "end_date": "2025-01-21"})
    assert queue.sent == [report.id] and rk.reconcile()["requeued"] == 0  # not stale yet
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=301)
    assert rk.reconcile(later)["requeued"] == 1 and queue.sent == [report.id, report.id]
    assert rk.reconcile(later)["requeued"] == 0  # once per interval, whichever reconciler ran
    assert rk.reconcile(later + dt.timedelta(seconds=301))["requeued"] == 1
    rk.run_report(report.id, worker="w")  # the message arrives at last: one worker does it once
    assert rk.store.get_report(report.id).state == "completed"
    assert rk.reconcile(later + dt.timedelta(seconds=1000))["requeued"] == 0
    rk.close()


def test_schedule_run_shows_its_report_failed_with_the_reason(jobs):
    from botreports import Principal
    admin = Principal(id="ops", org_id="org-acme", roles={"admin"}, via="test")
    schedule = jobs.create_schedule(admin, {"type": "custom", "format": "json", "cron": "0 8 * * 1",
                                            "sections": [{"type": "broken"}], "recipients": ["ana@example.com"]})
    jobs.run_due_schedules(schedule.next_run_at + dt.timedelta(seconds=5))
    assert jobs.store.runs_of(schedule.id)[0]["state"] == "enqueued"  # the run's own row is not rewritten
    (run,) = jobs.schedule_info(admin, schedule.id)["last_runs"]
    assert (run["state"], run["report_state"]) == ("failed", "failed")
    assert run["detail"] == "section 'broken' failed: the metric definition is wrong"
    assert run["delivery"] == {"delivered": 0, "failed": 0, "recipients": []}  # nothing to send
    jobs.delete(admin, run["report_id"])
    (gone,) = jobs.schedule_info(admin, schedule.id)["last_runs"]
    assert (gone["state"], gone["report_state"]) == ("enqueued", None)


def test_lost_queue_message_is_enqueued_again_within_about_two_minutes_by_default(tmp_path, botreports_demo_db,
                                                                                 system_principal):
    # The fault: with the queue flushed, a report stayed pending for ten minutes by default.
    import shutil

    class FlushedQueue:
        name, synchronous = "flushed", False

        def bind(self, reports):
            self.sent = []

        def enqueue(self, report_id, delay=None):
            self.sent.append(report_id)

        def start(self):
            return None

        def stop(self):
            return None

    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    queue = FlushedQueue()
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, queue=queue)
    try:
        assert rk.settings.requeue_after == 120
        report = rk.generate(system_principal, custom({"type": "usage_summary"}))
        created = rk.store.get_report(report.id).created_at
        assert rk.reconcile(created + dt.timedelta(seconds=100))["requeued"] == 0
        assert rk.reconcile(created + dt.timedelta(seconds=121))["requeued"] == 1
        assert queue.sent == [report.id, report.id]
    finally:
        rk.close()
