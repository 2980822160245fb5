"""Running one report as a job: claim with a lease, renew it while working,
retry transient failures with backoff, time out, and the two sweeps that keep
the table honest (the reconciler for lost workers, retention for old files).

Everything here works on the store with conditional updates, so any number of
workers, threads and schedulers on any number of hosts can share a store.
No queue library is imported: retries go back through ``reports.queue``.
"""
from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Optional

from .errors import BotReportsError, ExportFailed
from .models import Principal, Report
from .pipeline import build_document, write_artifact
from .report_records import document_record, save_record, trace_tables
from .store import now

log = logging.getLogger("botreports.jobs")

#: Exception class names that mean "try again later" without importing the drivers that define them.
TRANSIENT_NAMES = {"OperationalError", "InterfaceError", "ConnectionError", "TimeoutError",
                   "ConnectionFailure", "ServiceUnavailable"}


class ReportTimedOut(BotReportsError):
    """The report ran longer than its timeout."""

    code = "report_timed_out"


def is_transient(exc: BaseException) -> bool:
    """Errors worth a retry: lost connections, busy databases, timeouts of a dependency.

    A plugin can mark its own exception with ``transient = True``.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:  # the pipeline wraps a section's error: look inside
        seen.add(id(exc))
        if getattr(exc, "transient", False):
            return True
        if isinstance(exc, (ConnectionError, TimeoutError, sqlite3.OperationalError)):
            return True
        if any(cls.__name__ in TRANSIENT_NAMES for cls in type(exc).__mro__):
            return True
        exc = exc.__cause__
    return False


def backoff(settings, attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: doubling from ``retry_backoff``, at most an hour."""
    return min(settings.retry_backoff * (2 ** max(attempt - 1, 0)), 3600.0)


class LeaseKeeper:
    """Renews a report's lease in the background until stopped or until the report's deadline.

    Renewal stops at the deadline on purpose: a report stuck past its timeout
    lets its lease lapse, and the reconciler fails it even if the thread that
    runs it can never be interrupted.
    """

    def __init__(self, store, report_id: str, worker: str, lease_seconds: float, deadline: float):
        self.store, self.report_id, self.worker = store, report_id, worker
        self.lease_seconds, self.deadline = lease_seconds, deadline
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{report_id}", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = max(self.lease_seconds / 3, 0.05)
        while not self._stop.wait(interval):
            if time.monotonic() >= self.deadline:
                return
            try:
                if not self.store.renew_lease(self.report_id, self.worker, self.lease_seconds):
                    self.lost = True  # the reconciler gave the report to someone else
                    return
            except Exception:  # a busy database now is no reason to stop renewing
                log.warning("could not renew the lease of %s", self.report_id, exc_info=True)


def owner_of(report: Report) -> Principal:
    """The principal a worker runs a report as: its owner, inside the report's organisation.

    Permission was checked when the report was requested (or, for a schedule,
    just before it was enqueued); the worker only needs the scope.
    """
    org = None if report.org_id == "system" else report.org_id
    return Principal(id=report.owner_id, org_id=org, roles={"admin"}, via="worker")


def run_report(reports, report_id: str, worker: str, lease_seconds: Optional[float] = None) -> Optional[Report]:
    """Claim ``report_id`` and run it; None if another worker has it or it is not pending."""
    settings, store = reports.settings, reports.store
    lease = float(lease_seconds or settings.lease_seconds)
    if not store.claim_report(report_id, worker, lease):
        return None
    store.finish_report(report_id, worker, worker=worker, retry_at=None)
    report = store.get_report(report_id)
    timeout = float(settings.report_timeout)
    deadline = time.monotonic() + timeout

    def progress(percent: int, stage: str) -> None:
        if time.monotonic() > deadline:
            raise ReportTimedOut(f"timed out after {timeout:g} s (stage: {stage})")
        store.set_progress(report_id, percent, stage)

    path = None
    with LeaseKeeper(store, report_id, worker, lease, deadline) as keeper:
        try:
            spec = reports.validate(report.parameters)
            document = build_document(
                spec, sections=reports.sections, report_types=reports.report_types, source=reports.source,
                principal=owner_of(report), report_id=report.id, reports=reports, settings=settings,
                progress=progress)
            exporter = reports.exporters[spec.format]
            path = reports.reports_dir / f"{report.id}{exporter.extension}"
            document = trace_tables(document)  # streamed tables hashed as the exporter reads them
            artifact = write_artifact(document, exporter, path, spec.options, progress,
                                      plugin=reports.registry_origins("exporters").get(spec.format, ""))
            save_record(store, report.id, document_record(document))  # kept to verify the report later
            key = str(artifact.path.relative_to(reports.data_dir))
            # durable where it is served from (uploaded and acknowledged) before it is called completed
            reports.artifacts.save(key, artifact.path)
            if time.monotonic() > deadline:
                raise ReportTimedOut(f"timed out after {timeout:g} s (stage: writing)")
        except Exception as exc:  # the reason goes to the report, never a traceback to a client
            _failed(reports, report, worker, exc, path)
        else:
            from .service import download_name  # the facade module names files; imported late (cycle)
            finished = now()
            done = store.finish_report(
                report_id, worker, state="completed", progress=100, stage="completed", completed_at=finished,
                error=None, expires_at=finished + dt.timedelta(days=settings.retention_days),
                artifact_path=key, artifact_size=artifact.size,
                artifact_sha256=artifact.sha256, media_type=artifact.media_type,
                filename=download_name(spec.title, spec.period, exporter.extension),
                lease_owner=None, lease_expires_at=None)
            if not done:
                # The reconciler decided first (timeout or lost lease): our file must not be served.
                log.warning("report %s finished after its lease was taken (%s)", report_id,
                            "renewal lost" if keeper.lost else "expired")
                _remove_unless_completed(reports, report_id, key)
                return store.get_report(report_id)
    final = store.get_report(report_id)
    if final.state in ("completed", "failed"):
        notify_finished(reports, final)
    return final


def _failed(reports, report: Report, worker: str, exc: BaseException, path: Optional[Path]) -> None:
    settings, store = reports.settings, reports.store
    reason = exc.message if isinstance(exc, BotReportsError) else f"{type(exc).__name__}: {exc}"
    # One line a status can show: drivers' messages carry newlines, tabs and advice lines.
    reason = " ".join(reason.split())[:1000]
    attempts = (store.report_row(report.id) or {}).get("attempts") or 1
    if is_transient(exc) and attempts < settings.max_attempts:
        delay = backoff(settings, attempts)
        log.warning("report %s: transient error on attempt %d, retrying in %.1f s: %s",
                    report.id, attempts, delay, reason)
        if store.finish_report(report.id, worker, state="pending", stage="waiting to retry", progress=0,
                               error=f"attempt {attempts} failed ({reason}); retrying",
                               retry_at=now() + dt.timedelta(seconds=delay), lease_owner=None,
                               lease_expires_at=None):
            reports.queue.enqueue(report.id, delay=delay)
        return
    # An exporter's exception is a plugin's bug: its traceback goes to the log.
    log.error("report %s failed on attempt %d: %s", report.id, attempts, reason,
              exc_info=not isinstance(exc, BotReportsError) or isinstance(exc, ExportFailed))
    if is_transient(exc):
        reason = f"{reason} (gave up after {attempts} attempts)"
    finished = now()
    store.finish_report(report.id, worker, state="failed", stage="failed", error=reason, completed_at=finished,
                        expires_at=finished + dt.timedelta(days=settings.retention_days),
                        lease_owner=None, lease_expires_at=None)


def _remove_unless_completed(reports, report_id: str, key: str) -> None:
    current = reports.store.get_report(report_id)
    if current is None or current.state != "completed":
        reports.artifacts.delete(key)


def notify_finished(reports, report: Report) -> None:
    """Tell plugins a report reached a final state, then deliver a scheduled one."""
    try:
        reports.pm.hook.report_finished(report=report, reports=reports)
    except Exception:  # a plugin's notification must not change the report's outcome
        log.exception("report_finished hook failed for %s", report.id)
    if report.schedule_id and report.state == "completed":
        from .deliveries import deliver_report
        try:
            deliver_report(reports, report.id)
        except Exception:
            log.exception("delivery of %s failed", report.id)


def reconcile(reports, at: Optional[dt.datetime] = None) -> dict:
    """Retry or fail every running report whose lease expired, enqueue again pending reports whose
    queue message was lost, and remove abandoned temporary files.

    Safe to run anywhere and often: each row is taken with a conditional update.
    """
    settings, store = reports.settings, reports.store
    at = at or now()
    counts = {"retried": 0, "failed": 0}
    for row in store.expired_leases(at):
        outcome = release_lapsed(reports, row, at)
        if outcome is not None:
            counts[outcome] += 1
    # A pending report nobody claimed for a long time lost its queue message (a queue flushed or
    # restarted without persistence): enqueue it again. A duplicate message is harmless, since
    # claiming a report is a conditional update that only one worker wins.
    counts["requeued"] = 0
    for row in store.stale_pending(at - dt.timedelta(seconds=settings.requeue_after)):
        if store.mark_requeued(row["id"], row.get("retry_at"), at):
            counts["requeued"] += 1
            reports.queue.enqueue(row["id"])
            log.warning("report %s: pending since %s with no worker; enqueued again",
                        row["id"], row.get("retry_at") or row.get("created_at"))
    counts["partial_files"] = _remove_abandoned_partials(reports, settings.report_timeout + settings.lease_seconds)
    return counts


def lost_worker_stage(attempts: int, max_attempts: int) -> str:
    """The stage a report shows once its worker stopped renewing its lease."""
    if attempts < max_attempts:
        return f"worker lost, will retry (attempt {attempts + 1} of {max_attempts})"
    return "worker lost, failed"


def release_lapsed(reports, row: dict, at: dt.datetime) -> Optional[str]:
    """Retry (``"retried"``) or fail (``"failed"``) one running report whose lease expired before
    ``at``; None if it was renewed meanwhile or another caller took it. A retry starts again at
    progress 0: progress only grows within an attempt."""
    settings, store = reports.settings, reports.store
    attempts = row.get("attempts") or 1
    started = _parse(row.get("started_at"))
    who = row.get("lease_owner") or "a worker"
    timed_out = started is not None and (at - started).total_seconds() >= settings.report_timeout
    if timed_out:
        fields = {"state": "failed", "stage": "failed", "error": f"timed out after {settings.report_timeout:g} s"}
    elif attempts < settings.max_attempts:
        fields = {"state": "pending", "stage": lost_worker_stage(attempts, settings.max_attempts),
                  "retry_at": at, "progress": 0,
                  "error": f"attempt {attempts} was lost: {who} stopped renewing its lease; retrying"}
    else:
        fields = {"state": "failed", "stage": "failed",
                  "error": f"{who} stopped renewing its lease during attempt {attempts} of "
                           f"{settings.max_attempts} (the worker crashed or was killed)"}
    if fields["state"] == "failed":
        fields.update(completed_at=at, expires_at=at + dt.timedelta(days=settings.retention_days))
    if not store.release_expired_lease(row["id"], at, lease_owner=None, lease_expires_at=None, **fields):
        return None
    log.warning("report %s: %s", row["id"], fields["error"])
    if fields["state"] == "pending":
        reports.queue.enqueue(row["id"])
        return "retried"
    notify_finished(reports, store.get_report(row["id"]))
    return "failed"


def _remove_abandoned_partials(reports, older_than: float) -> int:
    """Temporary files of writes that died with their worker (never served: they have no report row)."""
    removed = 0
    limit = time.time() - older_than
    for path in reports.reports_dir.glob(".partial-*"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def sweep_expired(reports, at: Optional[dt.datetime] = None) -> int:
    """Delete the files of reports past ``expires_at`` in batches and mark them ``expired``."""
    at = at or now()
    total = 0
    batch = max(int(reports.settings.retention_batch), 1)
    while True:
        rows = reports.store.reports_to_expire(at, batch)
        for row in rows:
            if reports.store.mark_expired(row["id"]):
                total += 1
                if row["artifact_path"]:
                    reports.artifacts.delete(row["artifact_path"])
        if len(rows) < batch:
            return total


def _parse(value) -> Optional[dt.datetime]:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
