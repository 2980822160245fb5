"""Schedules with a controllable clock: validation, local fire times across DST,
one run per fire time with two schedulers, catch-up after downtime, and the
owner's permission checked again at run time."""
import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest

from botreports import Reports, ValidationError, hookimpl
from botreports.core import schedules
from botreports.testing import registered

UTC = dt.timezone.utc
WEEKLY = {"type": "usage", "format": "json", "cron": "0 8 * * 1", "timezone": "America/New_York",
          "period": "previous_week", "recipients": []}


class Clock:
    """The scheduler's "now", moved by hand."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock(dt.datetime(2025, 3, 1, tzinfo=UTC))
    monkeypatch.setattr(schedules, "now", clock)
    return clock


def runs(reports, schedule_id):
    return reports.store.db.execute(
        "SELECT fire_time, state, report_id, detail FROM schedule_runs WHERE schedule_id = ? ORDER BY fire_time",
        [schedule_id]).fetchall()


def tick_through(reports, start, end, step):
    at = start
    while at <= end:
        reports.run_due_schedules(at)
        at += step


def test_weekly_schedule_fires_at_8am_new_york_across_dst(reports, principal_factory, clock):
    admin = principal_factory("admin")
    schedule = reports.create_schedule(admin, WEEKLY)
    assert schedule.next_run_at == dt.datetime(2025, 3, 3, 13, tzinfo=UTC)  # 08:00 EST
    tick_through(reports, clock.now, dt.datetime(2025, 3, 18, tzinfo=UTC), dt.timedelta(minutes=30))
    done = runs(reports, schedule.id)
    assert [(r[0], r[1]) for r in done] == [("2025-03-03T13:00:00.000000Z", "enqueued"),
                                            ("2025-03-10T12:00:00.000000Z", "enqueued"),  # 08:00 EDT
                                            ("2025-03-17T12:00:00.000000Z", "enqueued")]
    # Each run reported on the previous local week, Monday to Monday in New York.
    first = reports.get(admin, done[1][2])
    assert first.state == "completed" and first.schedule_id == schedule.id
    ny = ZoneInfo("America/New_York")
    start = dt.datetime.fromisoformat(first.parameters["start_date"].replace("Z", "+00:00")).astimezone(ny)
    end = dt.datetime.fromisoformat(first.parameters["end_date"].replace("Z", "+00:00")).astimezone(ny)
    assert (start.date(), end.date(), start.hour, end.hour) == (dt.date(2025, 3, 3), dt.date(2025, 3, 10), 0, 0)
    view = reports.schedule_info(admin, schedule.id)
    assert view["next_run_at"] == "2025-03-24T12:00:00Z"
    assert view["next_run_at_local"] == "2025-03-24T08:00:00-04:00"
    # the runs' rows stop at "enqueued"; the view shows what became of their reports
    assert [run["state"] for run in view["last_runs"]] == ["completed"] * 3
    assert view["last_runs"][0]["delivery"] == {"delivered": 0, "failed": 0, "recipients": []}


def test_time_skipped_by_dst_fires_once_at_three_local(reports, principal_factory, clock):
    clock.now = dt.datetime(2025, 3, 28, 12, tzinfo=UTC)
    schedule = reports.create_schedule(principal_factory("admin"), {
        **WEEKLY, "cron": "30 2 * * *", "timezone": "Europe/Berlin", "period": "previous_day"})
    tick_through(reports, clock.now, dt.datetime(2025, 3, 31, 12, tzinfo=UTC), dt.timedelta(minutes=10))
    berlin = ZoneInfo("Europe/Berlin")
    fired = [dt.datetime.fromisoformat(r[0].replace("Z", "+00:00")).astimezone(berlin) for r in
             runs(reports, schedule.id)]
    assert [f.strftime("%d %H:%M") for f in fired] == ["29 02:30", "30 03:00", "31 02:30"]
    assert reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 3


def test_two_schedulers_produce_one_run(reports, principal_factory, clock, tmp_path):
    schedule = reports.create_schedule(principal_factory("admin"), WEEKLY)
    other = Reports(data_dir=reports.data_dir, load_entrypoints=False, queue="immediate")
    at = dt.datetime(2025, 3, 3, 13, 0, 20, tzinfo=UTC)
    barrier = threading.Barrier(4)
    instances = [reports, other, reports, other]

    def tick(instance):
        barrier.wait()
        instance.run_due_schedules(at)

    threads = [threading.Thread(target=tick, args=(i,)) for i in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    other.close()
    assert [(r[0], r[1]) for r in runs(reports, schedule.id)] == [("2025-03-03T13:00:00.000000Z", "enqueued")]
    assert reports.store.db.execute("SELECT count(*) FROM reports WHERE schedule_id = ?",
                                    [schedule.id]).fetchone()[0] == 1


def test_downtime_produces_one_catch_up_run_and_records_the_skipped(reports, principal_factory, clock):
    hourly = reports.create_schedule(principal_factory("admin"), {**WEEKLY, "cron": "0 * * * *",
                                                                  "timezone": "UTC"})
    assert hourly.next_run_at == dt.datetime(2025, 3, 1, 1, tzinfo=UTC)
    reports.run_due_schedules(dt.datetime(2025, 3, 1, 6, 20, tzinfo=UTC))  # down from 00:00 to 06:20
    got = runs(reports, hourly.id)
    assert [(r[0][11:16], r[1]) for r in got] == [("01:00", "skipped"), ("02:00", "skipped"),
                                                  ("03:00", "skipped"), ("04:00", "skipped"),
                                                  ("05:00", "skipped"), ("06:00", "enqueued")]
    assert reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 1
    assert reports.store.get_schedule(hourly.id).next_run_at == dt.datetime(2025, 3, 1, 7, tzinfo=UTC)
    # Beyond the grace period even the latest missed run is only recorded as skipped.
    reports.settings.schedule_grace = 10
    reports.run_due_schedules(dt.datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    late = runs(reports, hourly.id)[-3:]
    assert [(r[0][11:16], r[1]) for r in late] == [("07:00", "skipped"), ("08:00", "skipped"),
                                                   ("09:00", "skipped")]
    assert "grace" in late[-1][3]
    assert reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 1


def test_revoked_owner_key_stops_the_runs(reports, clock):
    from botreports import RequestInfo
    plain, key = reports.create_api_key("org-acme", "report_admin")
    owner = reports.authenticate(RequestInfo(headers={"X-API-Key": plain}))
    schedule = reports.create_schedule(owner, WEEKLY)
    reports.store.db.execute("UPDATE api_keys SET revoked = 1 WHERE id = ?", [key.id])
    reports.run_due_schedules(dt.datetime(2025, 3, 3, 13, 1, tzinfo=UTC))
    (fire_time, state, report_id, detail), = runs(reports, schedule.id)
    assert (state, report_id) == ("denied", None)
    assert "API key" in detail
    assert reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 0


def test_permission_is_asked_again_at_run_time(reports, principal_factory, clock):
    asked = []

    class NoMoreReports:
        @hookimpl
        def authorize(self, principal, action, resource):
            asked.append((principal.id, action))
            return False if action == "report.generate" and principal.via == "schedule" else None

    admin = principal_factory("report_admin")
    schedule = reports.create_schedule(admin, WEEKLY)
    with registered(reports, NoMoreReports()):
        reports.run_due_schedules(dt.datetime(2025, 3, 3, 13, 1, tzinfo=UTC))
    assert runs(reports, schedule.id)[0][1] == "denied"
    assert (admin.id, "report.generate") in asked


@pytest.mark.parametrize("change,field,words", [
    ({"cron": "*/2 * * * *"}, "cron", "minimum interval is 5 minutes"),
    ({"cron": "0 8 * * FUNDAY"}, "cron", "day of week field"),
    ({"cron": "0 8 * *"}, "cron", "5 fields"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown timezone"),
    ({"period": "last_year"}, "period", "previous_day"),
    ({"recipients": ["ok@example.com", "nope"]}, "recipients", "item 1"),
    ({"recipients": [f"u{i}@example.com" for i in range(21)]}, "recipients", "at most 20"),
    ({"webhooks": ["ftp://example.com/x"]}, "webhooks[0]", "http"),
    ({"webhooks": ["https://x.example/h", "http://[::1"]}, "webhooks[1]", "http"),
    ({"template_id": "tpl-nope"}, "template_id", "unknown template 'tpl-nope'"),
    ({"name": "Weekly\u202e"}, "name", "bidirectional-override"),
    ({"subject": "two\nlines"}, "subject", "one line"),
    ({"subject": "Report \u202egpj.exe"}, "subject", "bidirectional-override"),
    ({"enabled": "yes"}, "enabled", "true or false"),
    ({"start_date": "2025-01-01"}, "start_date", "relative period"),
    ({"format": "docx"}, "format", "unknown format"),
])
def test_bad_schedule_is_a_400_naming_the_field(reports, principal_factory, change, field, words):
    with pytest.raises(ValidationError) as caught:
        reports.create_schedule(principal_factory("admin"), {**WEEKLY, **change})
    problems = {d["field"]: d["problem"] for d in caught.value.details}
    assert field in problems and words in problems[field], problems


def test_schedule_template_must_exist_and_be_the_organisations_own(reports, principal_factory):
    acme, globex = principal_factory("admin"), principal_factory("admin", "org-globex")
    theirs = reports.create_template(globex, {"name": "Globex pack", "type": "usage"})
    ours = reports.create_template(acme, {"name": "Acme pack", "type": "usage", "format": "json"})
    for template_id in ("tpl-nope", theirs.id):
        with pytest.raises(ValidationError) as caught:
            reports.generate(acme, {"template_id": template_id})
        generate_problem = {d["field"]: d["problem"] for d in caught.value.details}["template_id"]
        with pytest.raises(ValidationError) as caught:
            reports.create_schedule(acme, {"template_id": template_id, "cron": "0 8 * * 1"})
        assert {d["field"]: d["problem"] for d in caught.value.details} == {"template_id": generate_problem}
    made = reports.create_schedule(acme, {"template_id": ours.id, "cron": "0 8 * * 1"})
    assert made.definition["template_id"] == ours.id
    with pytest.raises(ValidationError) as caught:
        reports.update_schedule(acme, made.id, {"template_id": theirs.id})
    assert [d["field"] for d in caught.value.details] == ["template_id"]
    assert reports.get_schedule(acme, made.id).definition["template_id"] == ours.id
    assert reports.store.db.execute("SELECT count(*) FROM schedules").fetchone()[0] == 1


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest", "http://127.0.0.1:9911/hook", "http://10.1.2.3/h",
                                 "https://[::1]/h", "http://[::ffff:192.168.0.1]/h", "http://localhost:8080/h",
                                 "http://LOCALHOST./h", "http://api.localhost/h", "http://0.0.0.0/h"])
def test_webhooks_to_private_addresses_are_refused_when_saved(reports, principal_factory, url):
    admin = principal_factory("admin")
    reports.settings.webhook_allow_private = False
    body = {**WEEKLY, "webhooks": ["https://hooks.example.com/ok", url]}
    with pytest.raises(ValidationError) as caught:
        reports.create_schedule(admin, body)
    problems = {d["field"]: d["problem"] for d in caught.value.details}
    assert list(problems) == ["webhooks[1]"] and "webhooks may only reach public addresses" in problems["webhooks[1]"]
    made = reports.create_schedule(admin, {**WEEKLY, "webhooks": ["https://hooks.example.com/ok"]})
    with pytest.raises(ValidationError):
        reports.update_schedule(admin, made.id, {"webhooks": [url]})
    assert reports.get_schedule(admin, made.id).webhooks == ["https://hooks.example.com/ok"]
    reports.settings.webhook_allow_private = True
    assert reports.update_schedule(admin, made.id, {"webhooks": [url]}).webhooks == [url]


def test_webhook_host_names_are_left_to_delivery(reports, principal_factory):
    # No DNS at request time: a name is checked against what it resolves to when the hook is called.
    reports.settings.webhook_allow_private = False
    made = reports.create_schedule(principal_factory("admin"), {
        **WEEKLY, "webhooks": ["https://hooks.internal.example/h", "http://8.8.8.8/h"]})
    assert made.webhooks == ["https://hooks.internal.example/h", "http://8.8.8.8/h"]


def test_minimum_interval_and_recipient_cap_are_configurable(tmp_path, principal_factory):
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, schedule_min_interval=1, schedule_max_recipients=2)
    try:
        made = rk.create_schedule(principal_factory("admin"), {**WEEKLY, "cron": "*/2 * * JAN-MAR MON-FRI",
                                                               "recipients": ["A@Example.com", "b@example.com"]})
        assert made.cron == "*/2 * * JAN-MAR MON-FRI" and made.recipients == ["a@example.com", "b@example.com"]
        with pytest.raises(ValidationError):
            rk.update_schedule(principal_factory("admin"), made.id,
                               {"recipients": ["a@example.com"], "webhooks": ["https://x.example/h", "https://y.example/h"]})
    finally:
        rk.close()


def test_update_moves_next_run_and_disable_stops_it(reports, principal_factory, clock):
    admin = principal_factory("admin")
    schedule = reports.create_schedule(admin, WEEKLY)
    moved = reports.update_schedule(admin, schedule.id, {"cron": "0 9 1 * *", "timezone": "Asia/Tokyo"})
    assert moved.next_run_at == dt.datetime(2025, 4, 1, 0, tzinfo=UTC)  # 09:00 JST
    assert moved.definition["type"] == "usage" and moved.recipients == []
    off = reports.update_schedule(admin, schedule.id, {"enabled": False})
    assert off.next_run_at is None
    reports.run_due_schedules(dt.datetime(2025, 5, 1, tzinfo=UTC))
    assert runs(reports, schedule.id) == []


@pytest.mark.parametrize("cron,period", [
    ("0 8 * * 1", "previous_week"), ("0 8 * * MON", "previous_week"), ("0 6 1 * *", "previous_month"),
    ("30 2 * * *", "previous_day"), ("0 8 * * 1-5", "previous_day"),
])
def test_period_follows_the_rhythm_when_not_given(reports, principal_factory, cron, period):
    schedule = reports.create_schedule(principal_factory("report_admin"),
                                       {"type": "usage", "format": "json", "cron": cron, "recipients": []})
    assert schedule.period == period
    explicit = reports.create_schedule(principal_factory("report_admin"), {
        "type": "usage", "format": "json", "cron": cron, "recipients": [], "period": "last_7_days"})
    assert explicit.period == "last_7_days"


def test_unnamed_schedule_name_follows_its_title_and_type(reports, principal_factory, clock):
    admin = principal_factory("admin")
    schedule = reports.create_schedule(admin, {**WEEKLY, "type": "conversations"})
    assert schedule.name == "Conversations report"
    assert reports.update_schedule(admin, schedule.id, {"type": "usage"}).name == "Usage report"
    assert reports.update_schedule(admin, schedule.id, {"title": "My weekly"}).name == "My weekly"
    assert reports.update_schedule(admin, schedule.id, {"cron": "0 9 * * 1"}).name == "My weekly"
    titled = reports.create_schedule(admin, {**WEEKLY, "title": "T"})
    assert titled.name == "T"
    assert reports.update_schedule(admin, titled.id, {"title": "U"}).name == "U"


def test_chosen_schedule_name_stays_when_the_title_changes(reports, principal_factory, clock):
    admin = principal_factory("admin")
    schedule = reports.create_schedule(admin, {**WEEKLY, "name": "Ops digest"})
    assert reports.update_schedule(admin, schedule.id, {"title": "My weekly", "type": "conversations"}).name \
        == "Ops digest"
    assert reports.update_schedule(admin, schedule.id, {"name": "Renamed"}).name == "Renamed"
    # giving up the chosen name lets it follow the title again
    assert reports.update_schedule(admin, schedule.id, {"name": None}).name == "My weekly"


class Crash(BaseException):
    """The scheduler's process dying at this point (no ``except Exception`` catches it)."""


def test_scheduler_dying_between_claim_and_report_leaves_the_fire_time_recorded_and_run_later(
        reports, principal_factory, clock, monkeypatch):
    # The fault: run_due moved next_run_at on, then died before recording the run: that fire
    # time was lost without a trace. Now the claim and the run are one transaction.
    schedule = reports.create_schedule(principal_factory("admin"), WEEKLY)
    at = dt.datetime(2025, 3, 3, 13, 0, 20, tzinfo=UTC)
    original = reports.generate
    monkeypatch.setattr(reports, "generate", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        reports.run_due_schedules(at)
    assert runs(reports, schedule.id) == [("2025-03-03T13:00:00.000000Z", "starting", None, "")]
    assert reports.store.get_schedule(schedule.id).next_run_at == dt.datetime(2025, 3, 10, 12, tzinfo=UTC)
    monkeypatch.setattr(reports, "generate", original)
    # A scheduler running meanwhile leaves a run it may still be starting alone ...
    assert reports.run_due_schedules(at + dt.timedelta(seconds=30)) == {"fired": 0, "skipped": 0, "denied": 0,
                                                                        "failed": 0}
    # ... and starts it once the claim is clearly abandoned, within the grace period.
    monkeypatch.setattr(schedules, "ORPHAN_AFTER", dt.timedelta(0))
    assert reports.run_due_schedules(at + dt.timedelta(minutes=3))["fired"] == 1
    ((fire_time, state, report_id, _),) = runs(reports, schedule.id)
    assert (fire_time, state) == ("2025-03-03T13:00:00.000000Z", "enqueued")
    made = reports.store.get_report(report_id)
    assert made.schedule_id == schedule.id and made.state == "completed"
    assert made.parameters["start_date"].startswith("2025-02-24")  # the period of the original fire time
    assert reports.run_due_schedules(at + dt.timedelta(minutes=4))["fired"] == 0  # once


def test_scheduler_dying_after_making_the_report_links_it_instead_of_making_another(
        reports, principal_factory, clock, monkeypatch):
    schedule = reports.create_schedule(principal_factory("admin"), WEEKLY)
    at = dt.datetime(2025, 3, 3, 13, 0, 20, tzinfo=UTC)
    original = reports.store.update_run
    monkeypatch.setattr(reports.store, "update_run", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        reports.run_due_schedules(at)
    monkeypatch.setattr(reports.store, "update_run", original)
    monkeypatch.setattr(schedules, "ORPHAN_AFTER", dt.timedelta(0))
    assert reports.run_due_schedules(at + dt.timedelta(minutes=3))["fired"] == 1
    ((_, state, report_id, _),) = runs(reports, schedule.id)
    made = reports.store.db.execute("SELECT id FROM reports WHERE schedule_id = ?", [schedule.id]).fetchall()
    assert state == "enqueued" and made == [(report_id,)]


def test_orphaned_run_past_the_grace_period_is_recorded_as_skipped(reports, principal_factory, clock, monkeypatch):
    schedule = reports.create_schedule(principal_factory("admin"), WEEKLY)
    at = dt.datetime(2025, 3, 3, 13, 0, 20, tzinfo=UTC)
    monkeypatch.setattr(reports, "generate", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        reports.run_due_schedules(at)
    monkeypatch.undo()
    monkeypatch.setattr(schedules, "ORPHAN_AFTER", dt.timedelta(0))
    reports.run_due_schedules(at + dt.timedelta(minutes=reports.settings.schedule_grace + 1))
    ((_, state, report_id, detail),) = runs(reports, schedule.id)
    assert (state, report_id) == ("skipped", None) and "stopped before starting it" in detail


def test_consumer_checks_periodic_tasks_at_the_start_of_each_minute(monkeypatch):
    # The fault: Huey counted its minute from the consumer's start, so a consumer started at
    # :42 ran the scheduler tick at :42 of each minute, up to a minute after a schedule's time.
    import time as time_module

    from huey import MemoryHuey

    from botreports.adapters.queue import _consumer_class, seconds_to_next_minute

    fake = {"wall": 1_767_225_642.5, "mono": 1000.0}  # 2026-01-01 00:00:42.5 UTC
    monkeypatch.setattr(time_module, "time", lambda: fake["wall"])
    monkeypatch.setattr(time_module, "monotonic", lambda: fake["mono"])
    huey = MemoryHuey("minute-test", utc=True)
    checks = []
    monkeypatch.setattr(huey, "read_periodic", lambda now: checks.append(fake["wall"]) or [])
    stop = threading.Event()
    stop.set()  # the scheduler's sleeps return at once; the fake clock moves instead
    scheduler = _consumer_class().scheduler_class(huey, stop, interval=1, periodic=True)
    for _ in range(200):  # one-second loops from :42.5 for 200 s
        scheduler.loop()
        fake["wall"] += 1.0
        fake["mono"] += 1.0
    # At :00.5 of each minute (the first loop after :00), not at :42.5 as Huey's own count gave.
    assert [at - 1_767_225_642.5 for at in checks] == [18.0, 78.0, 138.0, 198.0]
    assert [at % 60 for at in checks] == [0.5] * 4
    assert seconds_to_next_minute(1_767_225_642.5) == pytest.approx(17.51)
