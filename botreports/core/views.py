"""The flat JSON shapes of stored records, as the API and the CLI show them."""
from __future__ import annotations

import datetime as dt
from typing import Optional

from .convert import utc_text
from .models import Period, Report, Schedule, Template
from .schedules import describe
from .scheduling import inclusive_days


def _time(value) -> Optional[str]:
    # Straight to the formatter: status polling shows three instants a request.
    return utc_text(value) if value is not None else None


def status_view(report: Report) -> dict:
    """``{report_id, state, progress, stage, error, created_at, started_at, completed_at}``."""
    return {
        "report_id": report.id,
        "state": report.state,
        "progress": report.progress,
        "stage": report.stage,
        "error": report.error,
        "created_at": _time(report.created_at),
        "started_at": _time(report.started_at),
        "completed_at": _time(report.completed_at),
        # The artifact's SHA-256 (hex) once completed: the file cannot hold its own hash.
        "sha256": report.artifact_sha256,
    }


def _instant(text) -> Optional[dt.datetime]:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def period_view(params: dict) -> dict:
    """The period of stored parameters as a user reads it: ``start_date`` and ``end_date`` the first
    and last local day (inclusive, as requests and the OpenAPI document spell them), and
    ``period_start``/``period_end`` the exact UTC instants ``[start, end)`` the report covers.

    The parameters keep the instants (a worker re-validates them, and a period such as
    ``month_to_date`` ends mid-day), so the dates are derived here rather than stored.
    """
    start, end = _instant(params.get("start_date")), _instant(params.get("end_date"))
    timezone = params.get("timezone") or "UTC"
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        return {"start_date": None, "end_date": None, "period_start": None, "period_end": None}
    first, last = inclusive_days(Period(start, end, timezone))
    return {"start_date": first.isoformat(), "end_date": last.isoformat(),
            "period_start": utc_text(start), "period_end": utc_text(end)}


def report_view(report: Report) -> dict:
    """A report's metadata: status, definition and file facts."""
    params = report.parameters or {}
    return {
        **status_view(report),
        "type": report.type,
        "title": report.title,
        "name": report.title,
        "format": report.format,
        **period_view(params),
        "timezone": params.get("timezone"),
        "parameters": params,
        "organization_id": report.org_id,
        "owner_id": report.owner_id,
        "template_id": report.template_id,
        "template_version": report.template_version,
        "schedule_id": report.schedule_id,
        "expires_at": _time(report.expires_at),
        "file_name": report.filename,
        "file_size": report.artifact_size,
        "media_type": report.media_type,
        "attempts": report.attempts,
    }


def schedule_view(schedule: Schedule, runs=()) -> dict:
    return {
        "schedule_id": schedule.id,
        "name": schedule.name,
        "type": schedule.definition.get("type"),
        "template_id": schedule.definition.get("template_id"),
        "format": schedule.format,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "period": schedule.period,
        "recipients": list(schedule.recipients),
        "enabled": schedule.enabled,
        "definition": schedule.definition,
        "organization_id": schedule.org_id,
        "owner_id": schedule.owner_id,
        "created_at": _time(schedule.created_at),
        "updated_at": _time(schedule.updated_at),
        "next_run_at": _time(schedule.next_run_at),
        "subject": schedule.subject,
        "message": schedule.message,
        "webhooks": list(schedule.webhooks or []),
        **describe(schedule, runs),
    }


def template_view(template: Template) -> dict:
    return {
        "template_id": template.id,
        "name": template.name,
        "description": template.description,
        "type": template.type,
        "sections": list(template.sections),
        "defaults": dict(template.defaults),
        "format": template.format,
        "builtin": template.builtin,
        "organization_id": template.org_id,
        "owner_id": template.owner_id,
        "version": template.version,
        "presentation": dict(template.presentation),
        "created_at": _time(template.created_at),
        "updated_at": _time(template.updated_at),
    }
