"""Schedules: validation of their bodies, their next run, and the scheduler
tick that turns due fire times into reports (at most one run per schedule and
fire time, however many schedulers are running).

After downtime only the latest missed fire time still runs, and only within
the grace period; the older ones are recorded as ``skipped``.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, List, Optional
from urllib.parse import urlsplit

from .convert import text_problems
from .cron import Cron, CronError, fire_times_between, next_fire_time
from .deliveries import private_host_problem
from .errors import BotReportsError, ValidationError
from .models import Principal, Schedule
from .params import UNSAFE_TITLE_CHARACTERS, title_problem
from .scheduling import RELATIVE_PERIODS, relative_period, zone
from .storage_faults import storage_fault
from .store import now

log = logging.getLogger("botreports.scheduler")

EMAIL = re.compile(r"^[^@\s<>,;\"()\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,63}$")
SCHEDULE_KEYS = ("name", "cron", "timezone", "period", "recipients", "enabled", "format", "subject", "message",
                 "webhooks")
MAX_SUBJECT, MAX_MESSAGE = 200, 10_000
#: Skipped fire times recorded per catch-up (a schedule down for a year needs no 100,000 rows).
MAX_SKIPPED_RECORDED = 100


def schedule_body(schedule: Schedule) -> dict:
    """A stored schedule as the request body that would create it (for PUT merges)."""
    return {"name": schedule.name, "cron": schedule.cron, "timezone": schedule.timezone,
            "period": schedule.period, "recipients": list(schedule.recipients or []), "enabled": schedule.enabled,
            "format": schedule.format, "subject": schedule.subject, "message": schedule.message,
            "webhooks": list(schedule.webhooks or []),
            **{k: v for k, v in schedule.definition.items() if k != "format"}}


def updated_body(reports, principal: Principal, current: Schedule, changes: dict) -> dict:
    """The body a schedule update validates: the stored schedule with ``changes`` over it.

    A name nobody chose (it is the title the stored definition gives) is left
    out, so it follows a new ``title``, template or ``type``; a chosen name stays.
    The store keeps no flag for this: a chosen name equal to the default title
    behaves the same either way until the title changes.
    """
    body = schedule_body(current)
    if "name" not in changes and current.name == default_name(reports, principal, body):
        del body["name"]
    return {**body, **changes}


def default_name(reports, principal: Principal, body: dict) -> Optional[str]:
    """The name ``body`` gives a schedule without one of its own (its report's title), or None
    when the body no longer validates (a deleted template, a stricter minimum interval)."""
    try:
        return validate_schedule({**body, "name": None}, reports, principal)["name"]
    except ValidationError:
        return None


def _check_cron(cron, settings, problems) -> Optional[Cron]:
    try:
        parsed = Cron.parse(cron)
    except CronError as exc:
        problems.append(("cron", f"{exc} (example: '0 8 * * MON')"))
        return None
    shortest = parsed.shortest_interval()
    minimum = dt.timedelta(minutes=settings.schedule_min_interval)
    if shortest < minimum:
        problems.append(("cron", f"runs every {int(shortest.total_seconds() // 60)} minute(s); "
                                 f"the minimum interval is {settings.schedule_min_interval} minutes"))
    return parsed


def _check_webhook(url, problems, index, allow_private: bool) -> None:
    """An http(s) URL with a host and no credentials; unless private webhooks are allowed, not
    to an address written into it that delivery would refuse (names are resolved at delivery)."""
    field = f"webhooks[{index}]"
    if not isinstance(url, str) or len(url) > 2000:
        problems.append((field, "must be an http(s) URL"))
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too large
    except ValueError:  # an unbalanced "[" in the host, a port such as ":99999"
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append((field, f"{url!r} is not an http:// or https:// URL with a host and a valid port"))
        return
    if parts.username or parts.password:
        problems.append((field, "must not carry a user name or password"))
        return
    refused = None if allow_private else private_host_problem(parts.hostname)
    if refused:
        problems.append((field, refused))


def validate_schedule(body: Any, reports, principal: Principal) -> dict:
    """Check a schedule body for ``principal``; the report part is validated like a generation
    request, its ``template_id`` included (it must be a template ``principal`` may use)."""
    if not isinstance(body, dict):
        raise ValidationError.from_problems([("body", "must be a JSON object")])
    settings = reports.settings
    problems: list = list(text_problems(body))
    cron = _check_cron(body.get("cron"), settings, problems)
    timezone = body.get("timezone", "UTC")
    try:
        zone(timezone)
    except ValueError as exc:
        problems.append(("timezone", f"{exc}; use an IANA name such as America/New_York"))
        timezone = "UTC"
    # Without a period, a weekly schedule reports on the previous week, a monthly one on the previous month.
    period = body.get("period") or (cron.natural_period() if cron is not None else "previous_day")
    if period not in RELATIVE_PERIODS:
        problems.append(("period", f"must be one of {', '.join(RELATIVE_PERIODS)}"))
        period = "previous_day"
    recipients = body.get("recipients", [])
    if not isinstance(recipients, list):
        problems.append(("recipients", "must be a list of e-mail addresses"))
        recipients = []
    for index, address in enumerate(recipients):
        if not isinstance(address, str) or len(address) > 254 or not EMAIL.match(address):
            problems.append(("recipients", f"item {index}: {address!r} is not a valid e-mail address"))
    webhooks = body.get("webhooks", []) or []
    if not isinstance(webhooks, list):
        problems.append(("webhooks", "must be a list of URLs"))
        webhooks = []
    for index, url in enumerate(webhooks):
        _check_webhook(url, problems, index, settings.webhook_allow_private)
    if len(recipients) + len(webhooks) > settings.schedule_max_recipients:
        problems.append(("recipients", f"at most {settings.schedule_max_recipients} recipients and webhooks "
                                       "together"))
    # Only text can be a recipient: anything else is already a problem, and a JSON object could not be
    # de-duplicated (it is unhashable).
    recipients = list(dict.fromkeys(r.strip().lower() for r in recipients if isinstance(r, str)))
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(("enabled", "must be true or false"))
    name = body.get("name")
    name_issue = title_problem(name) if name is not None else None
    if name_issue:
        problems.append(("name", name_issue))
    subject, message = body.get("subject"), body.get("message")
    if subject is not None and (not isinstance(subject, str) or len(subject) > MAX_SUBJECT
                                or UNSAFE_TITLE_CHARACTERS.search(subject)):
        problems.append(("subject", f"must be one line of at most {MAX_SUBJECT} characters, without control "
                                    "or bidirectional-override characters"))
    if message is not None and (not isinstance(message, str) or len(message) > MAX_MESSAGE):
        problems.append(("message", f"must be text of at most {MAX_MESSAGE} characters"))
    definition = {k: v for k, v in body.items() if k not in SCHEDULE_KEYS}
    for key in ("start_date", "end_date"):
        if key in definition:
            problems.append((key, "a schedule reports over its relative period; give period instead"))
    if "type" not in definition and "template_id" not in definition:
        problems.append(("type", "give a report type or a template_id"))
    spec = None
    request = {**{k: v for k, v in definition.items() if k not in ("start_date", "end_date")},
               "format": body.get("format", "pdf"), "period": period, "timezone": timezone}
    try:
        # Validated as its runs will be: merged with its template, which must exist and be visible.
        request, _template = reports.apply_template(principal, request)
        spec = reports.validate(request)
    except ValidationError as exc:
        problems += [(d["field"], d["problem"]) for d in exc.details if (d["field"], d["problem"]) not in problems]
    if problems:
        raise ValidationError.from_problems(problems)
    return {"name": (name or spec.title).strip(), "definition": {**definition, "format": spec.format},
            "format": spec.format, "cron": cron.text, "timezone": timezone, "period": period,
            "recipients": recipients, "enabled": enabled, "subject": subject, "message": message,
            "webhooks": list(dict.fromkeys(webhooks)),
            "next_run_at": next_fire_time(cron, timezone, now()) if enabled else None}


def next_run(schedule: Schedule, after: dt.datetime) -> Optional[dt.datetime]:
    return next_fire_time(Cron.parse(schedule.cron), schedule.timezone, after)


def describe(schedule: Schedule, runs=()) -> dict:
    """Extra facts for a schedule's view: the next run in UTC and in its timezone, and the last runs."""
    local = schedule.next_run_at.astimezone(zone(schedule.timezone)).isoformat() if schedule.next_run_at else None
    return {"next_run_at_local": local, "last_runs": [run_view(run) for run in runs]}


def run_view(run: dict) -> dict:
    """One run as the API shows it, with its outcome.

    A run's row stops at ``enqueued`` once its report is handed over; from then
    on the report and its delivery attempts tell what happened, so ``state`` is
    the report's state (``pending`` ... ``completed``, ``failed``) and
    ``delivery`` sums up the attempts. Read from those records rather than
    written back to the run, so the run cannot disagree with them.
    """
    report_state = run.get("report_state")
    state = report_state if run["state"] == "enqueued" and report_state else run["state"]
    detail = run["detail"] or (run.get("report_error") if report_state == "failed" else None)
    return {"fire_time": run["fire_time"], "state": state, "report_id": run["report_id"],
            "detail": detail or None, "report_state": report_state,
            "delivery": delivery_summary(run.get("deliveries") or []) if run["report_id"] else None}


def delivery_summary(attempts: List[dict]) -> dict:
    """``{delivered, failed, recipients}`` from a report's delivery attempts (oldest first): each
    recipient with its latest state (``sent``, ``failed`` or ``refused``) and attempt count. A
    failed recipient may still get a retry; ``attempts`` shows how many were made."""
    latest: dict = {}
    for attempt in attempts:
        key = (attempt["channel"], attempt["recipient"])
        if latest.get(key, {}).get("state") != "sent":  # once sent, a later row cannot undo it
            latest[key] = {"channel": attempt["channel"], "recipient": attempt["recipient"],
                           "state": attempt["state"], "attempts": attempt["attempt"],
                           "detail": attempt["detail"] or None}
    recipients = list(latest.values())
    delivered = sum(1 for r in recipients if r["state"] == "sent")
    return {"delivered": delivered, "failed": len(recipients) - delivered, "recipients": recipients}


def owner_principal(reports, schedule: Schedule) -> Optional[Principal]:
    """The schedule's owner as they are now; None when their API key is gone or revoked.

    An owner who signed in with an API key takes that key's current role, so a
    key downgraded or revoked after the schedule was made stops its runs. Other
    owners keep the roles stored with the schedule; the ``authorize`` hook can
    still refuse them.
    """
    org = None if schedule.org_id == "system" else schedule.org_id
    roles = set(schedule.owner_roles or [])
    if schedule.owner_via == "api_key":
        row = reports.store.db.execute(
            "SELECT role, org_id, revoked FROM api_keys WHERE id = ?", [schedule.owner_id]).fetchone()
        if row is None or row[2] or row[1] != schedule.org_id:
            return None
        roles = {row[0]}
    return Principal(id=schedule.owner_id, org_id=org, roles=roles, via="schedule")


#: A run claimed this long ago that still has no report lost its scheduler between the claim and
#: the report (starting a run takes milliseconds; a store busy for its 30 s timeout stays well within).
ORPHAN_AFTER = dt.timedelta(minutes=2)


def run_due(reports, at: Optional[dt.datetime] = None) -> dict:
    """One scheduler tick: run every due schedule once for its latest fire time, skip older ones,
    and start the runs a stopped scheduler claimed but never started."""
    at = at or now()
    grace = dt.timedelta(minutes=reports.settings.schedule_grace)
    counts = {"fired": 0, "skipped": 0, "denied": 0, "failed": 0}
    for schedule in reports.store.due_schedules(at):
        try:
            cron = Cron.parse(schedule.cron)
            seen = schedule.next_run_at
            due = [seen] + fire_times_between(cron, schedule.timezone, seen, at, limit=MAX_SKIPPED_RECORDED)
            following = next_fire_time(cron, schedule.timezone, at)
            latest = due[-1]
            runs = [(missed, "skipped", "missed while no scheduler was running") for missed in due[:-1]]
            late = at - latest > grace
            runs.append((latest, "skipped", f"missed by more than the grace of {grace}") if late
                        else (latest, "starting", ""))
            # Compare-and-set and the runs in one transaction: of several schedulers that read the
            # same row, one moves it on, and the fire times it moves past are recorded with it.
            if not reports.store.claim_fire_times(schedule.id, seen, following, runs):
                continue
            counts["skipped"] += len(runs) - (0 if late else 1)
            if late:
                continue
            outcome = fire(reports, schedule, latest, claimed=True)
            counts[outcome] = counts.get(outcome, 0) + 1
        except Exception as exc:  # one broken schedule must not stop the others
            if storage_fault(exc):  # a full disk: said in one line; the fire time waits for space
                log.warning("schedule %s could not run: %s", schedule.id, exc)
            else:
                log.exception("schedule %s could not run", schedule.id)
            counts["failed"] += 1
    for outcome in start_orphans(reports, at, grace):
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def start_orphans(reports, at: dt.datetime, grace: dt.timedelta) -> List[str]:
    """Runs whose scheduler stopped after claiming them: linked to the report it made, started
    now within the grace period, recorded as skipped after it. One outcome per run."""
    store, outcomes = reports.store, []
    for run in store.orphan_runs(ORPHAN_AFTER):
        if not store.reclaim_run(run["schedule_id"], run["fire_time"], run["created_at"]):
            continue  # another scheduler took it
        fire_time = dt.datetime.fromisoformat(run["fire_time"].replace("Z", "+00:00"))
        schedule = store.get_schedule(run["schedule_id"])
        made = store.unlinked_report_of(run["schedule_id"], run["created_at"])
        if made is not None:
            store.update_run(run["schedule_id"], run["fire_time"], state="enqueued", report_id=made)
            outcomes.append("fired")
        elif schedule is None or not schedule.enabled or at - fire_time > grace:
            store.update_run(run["schedule_id"], run["fire_time"], state="skipped",
                             detail="its scheduler stopped before starting it, and the grace period passed")
            outcomes.append("skipped")
        else:
            log.warning("schedule %s: starting the run of %s that a stopped scheduler claimed",
                        schedule.id, run["fire_time"])
            outcomes.append(fire(reports, schedule, fire_time, claimed=True))
    return outcomes


def fire(reports, schedule: Schedule, fire_time: dt.datetime, claimed: bool = False) -> str:
    """Run ``schedule`` for ``fire_time`` unless that run exists (``claimed``: this scheduler
    recorded it as ``starting`` already); re-checks the owner's permission."""
    if not claimed and not reports.store.record_run(schedule.id, fire_time, "starting"):
        return "duplicate"
    owner = owner_principal(reports, schedule)
    period = relative_period(schedule.period, fire_time, schedule.timezone)
    body = {**{k: v for k, v in schedule.definition.items() if k != "period"}, "timezone": schedule.timezone,
            "start_date": period.start.isoformat(), "end_date": period.end.isoformat()}
    try:
        if owner is None:
            from .errors import PermissionDenied
            raise PermissionDenied("the schedule's owner no longer has a valid API key")
        reports.authorize(owner, "schedule.view", schedule)
        report = reports.generate(owner, body, schedule_id=schedule.id)
    except BotReportsError as exc:
        state = "denied" if exc.status in (401, 403, 404) else "failed"
        reports.store.update_run(schedule.id, fire_time, state=state, detail=exc.message)
        reports.store.audit(org_id=schedule.org_id, actor=schedule.owner_id, action="schedule.run",
                            resource_type="schedule", resource_id=schedule.id, result="denied"
                            if state == "denied" else "error", details={"reason": exc.message})
        log.warning("schedule %s at %s: %s", schedule.id, fire_time, exc.message)
        return state
    reports.store.update_run(schedule.id, fire_time, state="enqueued", report_id=report.id)
    return "fired"


def recent_runs(reports, schedule: Schedule, limit: int = 10) -> List[dict]:
    return reports.store.runs_of(schedule.id, limit)
