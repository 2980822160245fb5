"""The flat JSON shapes of stored records, as the API and the CLI show them."""
from __future__ import annotations

from typing import Optional

from .convert import utc_text
from .models import Report, Schedule, Template
from .schedules import describe


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
    }


def report_view(report: Report) -> dict:
    """A report's metadata: status, definition and file facts."""
    params = report.parameters or {}
    return {
        **status_view(report),
        "type": report.type,
        "title": report.title,
        "name": report.title,
        "format": report.format,
        "start_date": params.get("start_date"),
        "end_date": params.get("end_date"),
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
        "sha256": report.artifact_sha256,
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
