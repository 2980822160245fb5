"""``Reports``: the facade every mode goes through (embedded, CLI, HTTP, worker).

Every public method takes the ``Principal`` who asks and enforces the
permission table and organisation isolation here, so no adapter can forget to.
"""
from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, List, Mapping, Optional, Tuple

import attrs

from . import jobs, params, schedules, security
from .analytics_schema import validate_event
from .convert import parse_json, text_problems
from .errors import (Conflict, Gone, NotFound, PermissionDenied, PluginError, RateLimited, StorageUnavailable,
                     Unauthorized, ValidationError)
from .models import ApiKey, Principal, Report, RequestInfo, Schedule, Template
from .pipeline import build_document, write_artifact
from .catalog import catalog_view
from .declarations import check_template_references, did_you_mean
from .plugin_manager import build_plugin_manager, check_hooks, collect_registry, plugin_origin
from .scheduling import inclusive_days, parse_instant
from .settings import Settings
from .store import now
from .stores import open_store
from .artifact_stores import open_artifacts
from .token_revocations import TokenRevocations

log = logging.getLogger("botreports")

#: The module holding ``DEFAULT_PLUGINS``; named, not imported, so the core imports no plugin.
DEFAULT_PLUGINS_MODULE = "botreports.plugins"
#: The checks of a template's look (CSS, Jinja, logo); loaded by name when a template is created.
PRESENTATION_CHECKS = "botreports.plugins.templates.validation"
SYSTEM = Principal(id="system", org_id=None, roles={"admin"}, name="local system", via="cli")
LIST_SORTS = ("created_at", "name", "type")
MAX_LIMIT = 100


class ImmediateQueue:
    """Runs each report in the calling thread as soon as it is enqueued (tests, sync embedding)."""

    name = "immediate"
    synchronous = True

    def bind(self, reports: "Reports") -> None:
        self.reports = reports

    def enqueue(self, report_id: str, delay: float = 0) -> None:
        if delay:  # a retry's backoff: this mode is synchronous, so wait here
            time.sleep(delay)
        self.reports.run_report(report_id, worker=f"inline-{os.getpid()}-{threading.get_ident()}")

    def enqueue_delivery(self, report_id: str, delay: float = 0) -> None:
        if delay:
            time.sleep(delay)
        self.reports.deliver(report_id)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


class Reports:
    """A botreports instance: plugins, metadata store, analytics source and queue."""

    def __init__(self, data_dir=None, data_source=None, plugins: Iterable = (), queue="immediate",
                 load_entrypoints: bool = True, disable_plugins: Iterable[str] = (), **settings):
        self.settings = Settings.from_env(data_dir=data_dir, data_url=data_source if isinstance(data_source, str) else None,
                                          **settings)
        self.data_dir = self.settings.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.reports_dir = self.data_dir / "reports"
        self.reports_dir.mkdir(exist_ok=True)
        self.store = open_store(self.settings.store_url, self.data_dir)
        self.artifacts = open_artifacts(self.settings.artifacts_url, self.data_dir)
        default_plugins = importlib.import_module(DEFAULT_PLUGINS_MODULE).DEFAULT_PLUGINS
        self.pm = build_plugin_manager(default_plugins, plugins, load_entrypoints, disable_plugins)
        self._build_registries()
        self._source = data_source if data_source is not None and not isinstance(data_source, str) else None
        self._source_lock = threading.Lock()
        security.check_secret_length("BOTREPORTS_SECRET", self.settings.secret)
        if not self.settings.secret and not (self.store.is_local and self.artifacts.is_local):
            # Every host must sign links alike: one generated per data dir would differ on each.
            self.store.close()
            raise ValueError("BOTREPORTS_SECRET must be set when the metadata store or the report files are "
                             "shared (postgresql://, s3://): a secret generated on each host would differ")
        self.secret = self.settings.secret or self._stored_secret()
        self.revocations = TokenRevocations(self.store)
        #: Downloads served while their audit entry could not be written (the store was full).
        self.unrecorded_audits = 0
        self._fault_lock = threading.Lock()
        self.queue = ImmediateQueue() if queue in (None, "immediate") else queue
        self.queue.bind(self)
        self.pm.hook.startup(reports=self)

    # -- registries -----------------------------------------------------

    def _build_registries(self) -> None:
        self._registries = {
            "report_types": collect_registry(self.pm, "register_report_types", "name"),
            "sections": collect_registry(self.pm, "register_sections", "name"),
            "exporters": collect_registry(self.pm, "register_exporters", "format"),
            "data_sources": collect_registry(self.pm, "register_data_sources", "scheme"),
            "templates": collect_registry(self.pm, "register_templates", "id"),
            "delivery_channels": collect_registry(self.pm, "register_delivery_channels", "name"),
        }
        self.report_types = self._plain("report_types")
        self.sections = self._plain("sections")
        self.exporters = self._plain("exporters")
        self.data_sources = self._plain("data_sources")
        self.builtin_templates = self._plain("templates")
        self.delivery_channels = self._plain("delivery_channels")
        self._check_references()

    def add_plugin(self, plugin, name: Optional[str] = None) -> str:
        """Register one more plugin after start-up and rebuild the registries; returns its name."""
        name = self.pm.register(plugin, name)
        try:
            check_hooks(self.pm)
            self._build_registries()
        except Exception:
            self.pm.unregister(plugin)
            self._build_registries()
            raise
        return name

    def remove_plugin(self, plugin) -> None:
        """Unregister a plugin added with ``add_plugin`` and rebuild the registries."""
        self.pm.unregister(plugin)
        self._build_registries()

    def _plain(self, kind: str) -> dict:
        return {name: item for name, (item, _plugin) in self._registries[kind].items()}

    def registry_origins(self, kind: str) -> dict:
        """``{name: plugin name}`` of one registry (for ``botreports plugins``)."""
        return {name: plugin for name, (_item, plugin) in self._registries[kind].items()}

    def catalog(self, principal: Principal) -> dict:
        """Report types, sections, formats and templates with their options (JSON Schema),
        descriptions and origin: what ``principal`` may ask for (report_viewer)."""
        return catalog_view(self, principal)

    def plugin_list(self) -> List[dict]:
        """Every loaded plugin with where it came from and the hooks it implements."""
        result = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(impl.name for impl in self.pm.get_hookcallers(plugin) or [])
            result.append({"name": name, "origin": plugin_origin(self.pm, plugin), "hooks": hooks})
        return result

    def _check_references(self) -> None:
        origins = self.registry_origins("report_types")
        for report_type in self.report_types.values():
            for name in list(report_type.default_sections) + [report_type.raw_data_section or ""]:
                if name and name not in self.sections:
                    raise PluginError(f"plugin {origins[report_type.name]!r}: report type {report_type.name!r} names "
                                      f"unknown section {name!r}{did_you_mean(name, self.sections)}")
        check_template_references(self._registries["templates"], self.report_types, self.sections, self.exporters)

    def _stored_secret(self) -> str:
        """The signing key of this data dir, created once (mode 0600) on first start."""
        path = self.data_dir / "secret.key"
        try:
            fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # the usual case, and the loser of a first-start race
            return path.read_text().strip()
        value = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value

    # -- data source ----------------------------------------------------

    @property
    def source(self):
        """The analytics data source, opened on first use from its URL's scheme."""
        with self._source_lock:
            if self._source is None:
                self._source = self.open_source(self.settings.analytics_url)
            return self._source

    def open_source(self, url: str):
        scheme = url.split(":", 1)[0].split("+", 1)[0]
        factory = self.data_sources.get(scheme)
        if factory is None:
            raise ValidationError.from_problems(
                [("data", f"no data source for scheme {scheme!r}; known: {', '.join(sorted(self.data_sources))}")])
        return factory.open(url)

    # -- authentication and authorization -------------------------------

    def authenticate(self, request: RequestInfo) -> Principal:
        """Who is asking, through the ``authenticate`` hook; ``Unauthorized`` if nobody says."""
        principal = self.pm.hook.authenticate(request=request, reports=self)
        if principal is None:
            raise Unauthorized("Authentication required: send an X-API-Key header or a Bearer token")
        return principal

    def authorize(self, principal: Principal, action: str, resource: Any = None) -> None:
        """Raise ``NotFound`` for another organisation's object, ``PermissionDenied`` if not allowed."""
        if resource is not None and not principal.is_system:
            owner_org = getattr(resource, "org_id", None)
            builtin = getattr(resource, "builtin", False)
            if owner_org != principal.org_id and not builtin:
                raise NotFound(f"{_kind_of(resource)} {getattr(resource, 'id', '')} not found")
        answers = self.pm.hook.authorize(principal=principal, action=action, resource=resource, reports=self)
        if False in answers:
            allowed = False
        elif True in answers:
            allowed = True
        else:
            allowed = principal.is_system or security.role_allows(principal.roles, action)
        if not allowed:
            self.audit(principal, action, resource, result="denied")
            needed = security.PERMISSIONS.get(action, "admin")
            raise PermissionDenied(f"{action} requires the role {needed} or higher")

    def allows(self, principal: Principal, action: str, resource: Any = None) -> bool:
        """Whether ``authorize`` would let ``principal`` do ``action`` (nothing is audited): what an
        interface offers. ``authorize`` still decides when the action is asked for."""
        answers = self.pm.hook.authorize(principal=principal, action=action, resource=resource, reports=self)
        if False in answers:
            return False
        return True in answers or principal.is_system or security.role_allows(principal.roles, action)

    def audit(self, principal: Principal, action: str, resource: Any = None, *, result: str = "allowed",
              ip: str = "", details: Optional[dict] = None, resource_id: Optional[str] = None) -> None:
        """Write one entry to the framework's audit log."""
        self.store.audit(
            org_id=getattr(resource, "org_id", None) or principal.org_id, actor=principal.id,
            action=action, resource_type=_kind_of(resource) if resource is not None else action.split(".")[0],
            resource_id=resource_id or getattr(resource, "id", None), result=result, ip=ip, details=details)

    # -- reports --------------------------------------------------------

    def validate(self, body: Any, now_: Optional[dt.datetime] = None) -> params.ReportSpec:
        """Validate a generation request body into a ``ReportSpec`` (``ValidationError`` otherwise)."""
        return params.validate(body, report_types=self.report_types, sections=self.sections,
                               exporters=self.exporters, settings=self.settings, now=now_)

    def generate(self, principal: Principal, body: Any, *, schedule_id: Optional[str] = None) -> Report:
        """Validate, store a ``pending`` report and enqueue it; returns the stored report."""
        self.authorize(principal, "report.generate")
        body, template = self.apply_template(principal, body)
        spec = self.validate(body)
        report = Report(
            id=security.new_id("rpt"), org_id=principal.org_id or "system", owner_id=principal.id,
            type=spec.type, format=spec.format, title=spec.title, parameters=spec.parameters(),
            created_at=now(), template_id=spec.template_id, schedule_id=schedule_id,
            template_version=template.version if template is not None else None)
        self._insert_report(principal, report)
        self.audit(principal, "report.generate", report)
        accepted = self.store.get_report(report.id)
        self.queue.enqueue(report.id)
        # A synchronous queue has finished the report by now; a real one answers as accepted (pending),
        # whatever a fast worker has done meanwhile.
        return self.store.get_report(report.id) if getattr(self.queue, "synchronous", False) else accepted

    def _insert_report(self, principal: Principal, report: Report) -> None:
        """Store a new report; ``RateLimited`` when an organisation's own request (not a schedule's
        run, not the local system) finds ``max_unfinished`` reports already in flight."""
        cap = self.settings.max_unfinished
        if report.schedule_id is not None or principal.is_system or cap <= 0:
            self.store.insert_report(report)
            return
        unfinished = self.store.insert_report_capped(report, cap)
        if unfinished >= cap:
            raise RateLimited(f"organisation {principal.org_id} already has {unfinished} unfinished reports "
                              f"(limit {cap}); retry when some have completed", retry_after=10)

    def run_report(self, report_id: str, worker: str = "worker",
                   lease_seconds: Optional[float] = None) -> Optional[Report]:
        """Claim a pending report, build and store its artifact, mark it completed or failed.

        The claim is a conditional update with a lease renewed while the report
        runs; transient errors are retried with backoff (``max_attempts``); a
        report running past ``report_timeout`` fails. None if it was not pending.
        """
        return jobs.run_report(self, report_id, worker, lease_seconds)

    def reconcile(self, at: Optional[dt.datetime] = None) -> dict:
        """Retry or fail running reports whose worker stopped renewing its lease, and enqueue again
        reports pending too long (start-up and periodic)."""
        return jobs.reconcile(self, at)

    def sweep_expired(self, at: Optional[dt.datetime] = None) -> int:
        """Delete the files of reports older than ``retention_days`` and mark them expired."""
        return jobs.sweep_expired(self, at)

    def run_due_schedules(self, at: Optional[dt.datetime] = None) -> dict:
        """One scheduler tick: enqueue every schedule due at ``at`` (default now) once."""
        return schedules.run_due(self, at)

    def deliver(self, report_id: str) -> dict:
        """Send a completed scheduled report to the recipients that have not had it yet."""
        from .deliveries import deliver_report
        return deliver_report(self, report_id)

    def render(self, principal: Principal, body: Any, out: Path) -> Path:
        """Generate one report synchronously straight into ``out`` (the CLI's ``generate``)."""
        self.authorize(principal, "report.generate")
        body, _template = self.apply_template(principal, body)
        spec = self.validate(body)
        document = build_document(spec, sections=self.sections, report_types=self.report_types,
                                  source=self.source, principal=principal, reports=self,
                                  settings=self.settings)
        write_artifact(document, self.exporters[spec.format], Path(out), spec.options)
        self.audit(principal, "report.generate", None, resource_id=str(out), details={"type": spec.type})
        return Path(out)

    def apply_template(self, principal: Principal, body: Any) -> Tuple[Any, Optional[Template]]:
        """Merge a request with the template it names: the request's own values win.

        Explicit dates in the request replace the template's relative period, and
        a request for another format keeps only the template's default options
        that format takes. Without a title of its own (or a default one in the
        template) the report is titled with the template's name. An unknown or
        foreign ``template_id`` is a 400 naming that field.
        """
        if not isinstance(body, dict) or body.get("template_id") is None:
            return body, None
        template_id = body["template_id"]
        if not isinstance(template_id, str):
            raise ValidationError.from_problems([("template_id", "must be a string")])
        try:
            template = self.get_template(principal, template_id)
        except (NotFound, PermissionDenied):
            raise ValidationError.from_problems([("template_id", f"unknown template {template_id!r}")]) from None
        merged = {"type": template.type, "format": template.format, **template.defaults}
        if template.sections:
            merged["sections"] = [dict(section) for section in template.sections]
        if "start_date" in body or "end_date" in body:
            merged.pop("period", None)
        fmt = body.get("format")
        exporter = self.exporters.get(fmt) if isinstance(fmt, str) else None
        if exporter is not None and isinstance(merged.get("options"), dict):
            declared = params.exporter_options(exporter)
            merged["options"] = {k: v for k, v in merged["options"].items() if k in declared}
        merged.update(body)
        if merged.get("title") is None:
            # "Board pack" says more than the type's generic "Custom report".
            merged["title"] = template.name
        return merged, template

    def presentation_of(self, template_id: Optional[str]) -> dict:
        """The look of a template (empty for none or a template without one)."""
        if not template_id:
            return {}
        template = self.builtin_templates.get(template_id) or self.store.get_template(template_id)
        return dict(template.presentation) if template is not None else {}

    def _report(self, principal: Principal, report_id: str, action: str) -> Report:
        report = self.store.get_report(report_id) if isinstance(report_id, str) else None
        if report is None:
            raise NotFound(f"report {report_id} not found")
        self.authorize(principal, action, report)
        return report

    def get(self, principal: Principal, report_id: str) -> Report:
        return self._as_seen(self._report(principal, report_id, "report.view"))

    def status(self, principal: Principal, report_id: str) -> dict:
        """``{report_id, state, progress, stage, error, created_at, started_at, completed_at}``;
        pollers of this instance may see a state up to ``recent_reports.FRESH_FOR`` seconds old."""
        from .views import status_view
        report = self.store.recent_report(report_id) if isinstance(report_id, str) else None
        if report is None:
            raise NotFound(f"report {report_id} not found")
        self.authorize(principal, "report.view", report)
        return status_view(self._as_seen(report))

    def _as_seen(self, report: Report) -> Report:
        """``report`` as a reader should see it: a running report whose lease lapsed (its worker
        crashed or was killed) is shown as such at once, not as still running at its last
        progress. With a queue of workers the retry is also started here, by the conditional
        update the reconciler would make a minute later (one caller wins)."""
        at = now()
        if report.state != "running" or report.lease_expires_at is None or report.lease_expires_at >= at:
            return report
        if not getattr(self.queue, "synchronous", False):
            row = self.store.report_row(report.id)
            if row is not None and jobs.release_lapsed(self, row, at) is not None:
                return self.store.get_report(report.id) or report
        return attrs.evolve(report, stage=jobs.lost_worker_stage(report.attempts or 1, self.settings.max_attempts))

    def list(self, principal: Principal, **filters) -> Tuple[List[Report], int]:
        """One page of the organisation's reports and the total; filters as in the seed."""
        self.authorize(principal, "report.list")
        query = list_query(filters, self.report_types)
        return self.store.list_reports(None if principal.is_system else principal.org_id, **query)

    def change_token(self) -> tuple:
        """Differs after any write to the metadata store since this thread last asked: an answer
        computed from the store may be reused while it stays the same (``Store.change_token``)."""
        return self.store.change_token()

    def download(self, principal: Principal, report_id: str):
        """The completed report's artifact (``DownloadFile``); ``Conflict`` if not completed,
        ``Gone`` once past its ``expires_at``."""
        report = self._report(principal, report_id, "report.download")
        file = self.artifact_of(report)
        self._audit_download(lambda: self.audit(principal, "report.download", report), report.id)
        return file

    def _audit_download(self, write, report_id: str) -> None:
        """Write a download's audit entry; a store that cannot write (a full disk) must not keep
        a finished report from its reader, so the miss is logged and counted instead."""
        try:
            write()
        except StorageUnavailable as exc:
            with self._fault_lock:
                self.unrecorded_audits += 1
            log.warning("download of %s served without its audit entry (%d so far): %s", report_id,
                        self.unrecorded_audits, exc.message)

    def verify(self, principal: Principal, report_id: str) -> dict:
        """Compute a completed report again from its parameters over the data as it is now, and
        say whether every number is the same or which differ (``core.verification``); whoever may
        read the report may verify it."""
        from .verification import verify
        return verify(self, principal, report_id)

    def artifact_of(self, report: Report) -> "DownloadFile":
        expired = report.expires_at is not None and report.expires_at <= now()
        if report.state == "expired" or (report.state == "completed" and expired):
            # Enforced here, not only by the hourly sweep: a file past its time is never served.
            when = report.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if report.expires_at else "its retention"
            raise Gone(f"report {report.id} expired at {when}; generate it again")
        if report.state != "completed" or not report.artifact_path:
            raise Conflict(f"report {report.id} is {report.state}; only completed reports can be downloaded")
        # The key comes from the store, never from the request; a local one stays under the data dir.
        key, artifacts = report.artifact_path, self.artifacts
        path = artifacts.path_of(key) if artifacts.is_local else None
        if path is None if artifacts.is_local else not artifacts.exists(key):
            raise Conflict(f"the file of report {report.id} is no longer available")
        return DownloadFile(path=path, media_type=report.media_type, filename=report.filename,
                            size=report.artifact_size, sha256=report.artifact_sha256, title=report.title,
                            opener=None if path is not None else (lambda: artifacts.open(key)))

    def delete(self, principal: Principal, report_id: str) -> None:
        report = self._report(principal, report_id, "report.delete")
        self.store.delete_report(report.id)
        if report.artifact_path:
            self.artifacts.delete(report.artifact_path)
        self.audit(principal, "report.delete", report)

    # -- schedules (thin store operations; the scheduler arrives with Huey) --

    def create_schedule(self, principal: Principal, body: Any) -> Schedule:
        self.authorize(principal, "schedule.create")
        values = validate_schedule(body, self, principal)
        stamp = now()
        # The owner's roles and sign-in kind are kept to rebuild and re-check them at each run.
        schedule = Schedule(id=security.new_id("sch"), org_id=principal.org_id or "system",
                            owner_id=principal.id, created_at=stamp, updated_at=stamp,
                            owner_roles=sorted(principal.roles), owner_via=principal.via or None, **values)
        self.store.insert_schedule(schedule)
        self.audit(principal, "schedule.create", schedule)
        return self.store.get_schedule(schedule.id)

    def _schedule(self, principal: Principal, schedule_id: str, action: str) -> Schedule:
        schedule = self.store.get_schedule(schedule_id) if isinstance(schedule_id, str) else None
        if schedule is None:
            raise NotFound(f"schedule {schedule_id} not found")
        self.authorize(principal, action, schedule)
        return schedule

    def get_schedule(self, principal: Principal, schedule_id: str) -> Schedule:
        return self._schedule(principal, schedule_id, "schedule.view")

    def list_schedules(self, principal: Principal, limit: int = 20, offset: int = 0):
        self.authorize(principal, "schedule.list")
        query = list_query({"limit": limit, "offset": offset}, self.report_types)
        return self.store.list_schedules(None if principal.is_system else principal.org_id,
                                         query["limit"], query["offset"])

    def update_schedule(self, principal: Principal, schedule_id: str, body: Any) -> Schedule:
        current = self._schedule(principal, schedule_id, "schedule.update")
        if not isinstance(body, dict):
            raise ValidationError.from_problems([("body", "must be a JSON object")])
        merged = schedules.updated_body(self, principal, current, body)
        values = validate_schedule(merged, self, principal)
        self.store.update_schedule(current.id, updated_at=now(), **values)
        self.audit(principal, "schedule.update", current)
        return self.store.get_schedule(current.id)

    def schedule_runs(self, schedule: Schedule, limit: int = 10) -> List[dict]:
        """The last runs of a schedule (fire time, state, report id, detail), newest first, each with
        its report's state and error and its delivery attempts (``deliveries``)."""
        runs = self.store.runs_of(schedule.id, limit)
        attempts = self.store.deliveries_of_reports([run["report_id"] for run in runs if run["report_id"]])
        return [{**run, "deliveries": attempts.get(run["report_id"], [])} for run in runs]

    def schedule_info(self, principal: Principal, schedule_id: str) -> dict:
        """A schedule as the API shows it: next run in UTC and local time, and its last runs."""
        from .views import schedule_view
        schedule = self._schedule(principal, schedule_id, "schedule.view")
        return schedule_view(schedule, self.schedule_runs(schedule))

    def delete_schedule(self, principal: Principal, schedule_id: str) -> None:
        schedule = self._schedule(principal, schedule_id, "schedule.delete")
        self.store.delete_schedule(schedule.id)
        self.audit(principal, "schedule.delete", schedule)

    # -- templates ------------------------------------------------------

    def list_templates(self, principal: Principal) -> List[Template]:
        """Built-in templates and the organisation's own."""
        self.authorize(principal, "template.list")
        own = self.store.list_templates(None if principal.is_system else principal.org_id)
        return sorted(self.builtin_templates.values(), key=lambda t: t.id) + own

    def page_templates(self, principal: Principal, limit=None, offset=None) -> Tuple[List[Template], int]:
        """One page of ``list_templates`` (built-ins first) and the total."""
        query = list_query({"limit": limit, "offset": offset}, self.report_types)
        templates = self.list_templates(principal)
        return templates[query["offset"]:query["offset"] + query["limit"]], len(templates)

    def get_template(self, principal: Principal, template_id: str) -> Template:
        template = self.builtin_templates.get(template_id) or (
            self.store.get_template(template_id) if isinstance(template_id, str) else None)
        if template is None:
            raise NotFound(f"template {template_id} not found")
        self.authorize(principal, "template.view", template)
        return template

    def create_template(self, principal: Principal, body: Any) -> Template:
        self.authorize(principal, "template.create")
        values = validate_template(body, self)
        stamp = now()
        template = Template(id=security.new_id("tpl"), org_id=principal.org_id or "system",
                            owner_id=principal.id, created_at=stamp, updated_at=stamp, **values)
        self.store.insert_template(template)
        self.audit(principal, "template.create", template)
        return self.store.get_template(template.id)

    # -- analytics events -----------------------------------------------

    def ingest(self, principal: Principal, lines: Iterable, batch_size: int = 5000) -> dict:
        """Load NDJSON events (one object a line with its ``table``) into the analytics source.

        Each batch is validated whole before anything of it is written, and
        written in one transaction; a bad line is reported with its number and
        its batch is left out entirely. Events of another organisation are refused.
        A row the caller may not write (an id in use elsewhere, a conversation that
        is not one of its organisation's) is refused alone, the rest of its batch
        written, when the source can tell (``write_owned_events``).
        """
        self.authorize(principal, "events.ingest")
        write = getattr(self.source, "write_events", None)
        if write is None:
            raise ValidationError.from_problems([("data", "this data source is read-only")])
        write_owned = getattr(self.source, "write_owned_events", None)
        inserted: dict = {}
        errors: list = []
        batch: list = []
        batch_bad = False

        def flush():
            nonlocal batch, batch_bad
            if batch and not batch_bad:
                events = [event for _, event in batch]
                if write_owned is not None:
                    counts, refused = write_owned(None if principal.is_system else principal.org_id, events)
                else:
                    counts, refused = write(events), {}
                for position, problem in sorted(refused.items()):
                    errors.append({"line": batch[position][0], "problem": problem})
                for table, count in counts.items():
                    inserted[table] = inserted.get(table, 0) + count
            batch, batch_bad = [], False

        for number, line in enumerate(lines, start=1):
            if isinstance(line, bytes):
                line = line.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            try:
                event = parse_json(line)
                if isinstance(event, dict) and not principal.is_system:
                    event.setdefault("org_id", principal.org_id)
                table, row = validate_event(event)
                if not principal.is_system and row["org_id"] != principal.org_id:
                    raise ValueError("org_id must be your own organisation")
            except ValueError as exc:
                errors.append({"line": number, "problem": str(exc)})
                batch_bad = True
                batch.append((number, None))
            else:
                batch.append((number, (table, row)))
            if len(batch) >= batch_size:
                flush()
        flush()
        self.audit(principal, "events.ingest", None, details={"inserted": inserted, "errors": len(errors)})
        return {"inserted": inserted, "errors": sorted(errors, key=lambda error: error["line"])}

    # -- API keys -------------------------------------------------------

    def create_api_key(self, org_id: str, role: str, name: str = "") -> Tuple[str, ApiKey]:
        """A new API key for ``org_id`` with ``role``; the plain key is returned once, only its hash is kept."""
        problems = []
        if role not in security.ROLES:
            problems.append(("role", f"must be one of {', '.join(security.ROLES)}"))
        if not isinstance(org_id, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", org_id or ""):
            problems.append(("org", "must be 1-100 letters, digits, '.', '_', ':' or '-'"))
        if problems:
            raise ValidationError.from_problems(problems)
        plain = security.new_api_key()
        key = ApiKey(id=security.new_id("key"), org_id=org_id, role=role, name=name or role,
                     prefix=plain[:8], created_at=now())
        self.store.insert_api_key(key, security.hash_secret(plain))
        self.store.audit(org_id=org_id, actor="system", action="keys.create", resource_type="api_key",
                         resource_id=key.id, details={"role": role})
        return plain, key

    def list_api_keys(self, org_id: Optional[str] = None) -> List[dict]:
        """The API keys (of ``org_id``, or all): id, organisation, role, name, the key's first
        characters, creation time and whether revoked. Keys themselves are never stored."""
        return [{**row, "revoked": bool(row["revoked"])} for row in self.store.list_api_keys(org_id)]

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke a key: requests made with it are refused from now on. ``NotFound`` if unknown."""
        org_id = self.store.revoke_api_key(key_id)
        if org_id is None:
            raise NotFound(f"no API key {key_id}")
        self.store.audit(org_id=org_id, actor="system", action="keys.revoke", resource_type="api_key",
                         resource_id=key_id)

    # -- bearer token revocation ------------------------------------------

    def revoke_tokens(self, kind: str, value: str, issued_before: Optional[dt.datetime] = None,
                      reason: str = "") -> dict:
        """Revoke bearer tokens: ``kind`` ``jti`` (one token), ``session`` (every token of a
        ``session_id``) or ``subject`` (every token of a ``sub`` issued before ``issued_before``,
        default now). Enforced by every process within ``token_revocations.FRESH_FOR`` seconds."""
        row = self.revocations.revoke(kind, value, issued_before, reason)
        self.store.audit(org_id=None, actor="system", action="tokens.revoke", resource_type="token",
                         resource_id=f"{kind}:{value}", details={"reason": reason} if reason else None)
        return row

    def list_token_revocations(self) -> List[dict]:
        """Every token revocation, oldest first: kind, value, issued_before (subjects), reason, created_at."""
        return self.revocations.list()

    def token_revoked(self, claims) -> Optional[str]:
        """Why a bearer token with ``claims`` is revoked, or None (asked by the bearer plugin)."""
        return self.revocations.revoked(claims)

    # -- browser sessions (the web console) -------------------------------

    def sign_in(self, request: RequestInfo) -> Tuple[str, Principal]:
        """Authenticate ``request`` and open a browser session: ``(session token, principal)``."""
        from .browser_sessions import open_session
        return open_session(self, request)

    def session_principal(self, token: str) -> Principal:
        """Who a session token belongs to, with its key or token checked again; ``InvalidCredentials``."""
        from .browser_sessions import session_principal
        return session_principal(self, token)

    def sign_out(self, token: str) -> None:
        """End a browser session in every process."""
        from .browser_sessions import close_session
        close_session(self, token)

    def form_token(self, session: Optional[str] = None, nonce: str = "") -> str:
        """The CSRF token of a session's forms, or (no session) of the sign-in form bound to ``nonce``;
        ``InvalidCredentials`` for a session that is not valid."""
        from .browser_sessions import anonymous_form_token, form_token
        return form_token(self, session) if session else anonymous_form_token(self, nonce)

    def organisation_directory(self, principal: Principal) -> dict:
        """``{"bots": [(id, name)], "channels": [...]}`` of the principal's organisation (for forms)."""
        self.authorize(principal, "report.list")
        from .org_directory import directory
        return directory(self, principal.org_id)

    # -- signed download links and the HTTP app ---------------------------

    def download_link(self, principal: Principal, report_id: str, ttl: Optional[int] = None) -> Tuple[int, str]:
        """``(expires, signature)`` of a link that downloads a completed report without credentials."""
        report = self._report(principal, report_id, "report.download")
        self.artifact_of(report)  # a link to a file that does not exist yet would only disappoint
        self.audit(principal, "report.link", report)
        ttl = ttl or self.settings.link_ttl
        if report.expires_at is not None:  # a link never outlives the file it opens
            ttl = max(1, min(ttl, int((report.expires_at - now()).total_seconds())))
        return security.signed_query(self.secret, download_resource(report.id), ttl)

    def download_link_valid(self, report_id: str, expires, signature: str) -> bool:
        """Whether ``expires`` and ``signature`` make a valid, unexpired link to ``report_id``
        (an HMAC computed in memory: nothing is read or written)."""
        return security.check_signature(self.secret, download_resource(report_id), expires, signature)

    def download_signed(self, report_id: str, expires, signature: str) -> "DownloadFile":
        """The artifact behind a signed link; the signature names the report, so no principal is needed."""
        if not security.check_signature(self.secret, download_resource(report_id), expires, signature):
            raise PermissionDenied("the download link is not valid or has expired")
        report = self.store.get_report(report_id)
        if report is None:
            raise NotFound(f"report {report_id} not found")
        file = self.artifact_of(report)
        self._audit_download(lambda: self.store.audit(
            org_id=report.org_id, actor="signed-link", action="report.download", resource_type="report",
            resource_id=report.id), report.id)
        return file

    def wsgi_app(self, base_path: str = "/api/v1"):
        """The HTTP API as a ``bottle.Bottle`` WSGI app (routes under ``{base_path}/reports``)."""
        from ..adapters.http import build_app  # core imports no adapter at module level
        return build_app(self, base_path=base_path)

    def close(self) -> None:
        self.queue.stop()
        close = getattr(self._source, "close", None)
        if close:
            close()
        self.store.close()


@attrs.frozen
class DownloadFile:
    """What a download serves: a stored file with its media type and name."""

    path: Optional[Path]
    media_type: str
    filename: str
    size: int
    sha256: str
    #: The report's title as given, for a friendlier (RFC 6266 ``filename*``) name.
    title: str = ""
    #: For a file in object storage (``path`` None): opens a stream of it.
    opener: Optional[Callable[[], BinaryIO]] = None

    def open(self) -> BinaryIO:
        """The file's bytes as a stream, wherever it is stored."""
        return open(self.path, "rb") if self.path is not None else self.opener()

    @contextmanager
    def local_path(self) -> Iterator[Path]:
        """A path to the file on this host (a temporary copy of an object, removed afterwards),
        for what needs a file, such as a mail attachment."""
        if self.path is not None:
            yield self.path
            return
        with tempfile.TemporaryDirectory(prefix="botreports-") as folder:
            copy = Path(folder) / (self.filename or "report")
            with self.open() as source, open(copy, "wb") as target:
                shutil.copyfileobj(source, target, 1024 * 1024)
            yield copy


def download_resource(report_id: str) -> str:
    """What a download link signs: the report id and the purpose, so a link opens nothing else."""
    return f"report:{report_id}:download"


def _kind_of(resource: Any) -> str:
    return type(resource).__name__.lower() if resource is not None else ""


def download_name(title: str, period, extension: str) -> str:
    """``monthly-executive-summary_2025-01-01_2025-01-31.pdf``: readable, ASCII, safe anywhere."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "report"
    first, last = inclusive_days(period)
    return f"{slug}_{first.isoformat()}_{last.isoformat()}{extension}"


def _parse_time(field: str, value, problems) -> Optional[dt.datetime]:
    """A list filter's instant (a date is its UTC midnight, a naive time is UTC), in the
    years the store can compare (an instant it cannot convert to UTC would be a 500)."""
    if value in (None, ""):
        return None
    try:
        return parse_instant(str(value), "UTC", end=False)
    except ValueError as exc:
        problems.append((field, str(exc)))
        return None


def _int_param(field: str, value, default: int, low: int, high: int, problems) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
    except (TypeError, ValueError):
        problems.append((field, "must be an integer"))
        return default
    if not low <= number <= high:
        problems.append((field, f"must be between {low} and {high}"))
        return default
    return number


def list_query(filters: Mapping[str, Any], report_types: Mapping) -> dict:
    """Validate the seed's list parameters (filters, sort, order, limit, offset)."""
    problems: list = []
    known = {"type", "status", "created_after", "created_before", "limit", "offset", "sort", "order"}
    for name in filters:
        if name not in known:
            problems.append((name, f"unknown parameter; accepted: {', '.join(sorted(known))}"))
    type_ = filters.get("type") or None
    if type_ is not None and type_ not in report_types:
        problems.append(("type", f"unknown report type {type_!r}; valid: {', '.join(sorted(report_types))}"))
    state = filters.get("status") or None
    from .models import REPORT_STATES
    if state is not None and state not in REPORT_STATES:
        problems.append(("status", f"must be one of {', '.join(REPORT_STATES)}"))
    sort = filters.get("sort") or "created_at"
    if sort not in LIST_SORTS:
        problems.append(("sort", f"must be one of {', '.join(LIST_SORTS)}"))
    order = (filters.get("order") or "desc")
    if order not in ("asc", "desc"):
        problems.append(("order", "must be asc or desc"))
    query = {
        "type": type_, "state": state, "sort": sort, "order": order,
        "created_after": _parse_time("created_after", filters.get("created_after"), problems),
        "created_before": _parse_time("created_before", filters.get("created_before"), problems),
        "limit": _int_param("limit", filters.get("limit"), 20, 1, MAX_LIMIT, problems),
        "offset": _int_param("offset", filters.get("offset"), 0, 0, 10**9, problems),
    }
    after, before = query["created_after"], query["created_before"]
    if after is not None and before is not None and before <= after:
        # Both bounds are exclusive: such a window holds nothing, and is surely a mistake.
        problems.append(("created_before", "must be after created_after"))
    if problems:
        raise ValidationError.from_problems(problems)
    return query


#: What a template may preset; a request's own values override these.
TEMPLATE_DEFAULTS = ("period", "timezone", "bot_id", "channel", "include_charts", "title", "options")
# Schedule bodies are checked in ``schedules``; the names stay importable from here.
schedule_body = schedules.schedule_body
validate_schedule = schedules.validate_schedule


def validate_template(body: Any, reports: Reports) -> dict:
    """Check a template body: a name, a report definition valid as a generation request,
    defaults limited to report parameters, and an optional look that passes the template checks."""
    if not isinstance(body, dict):
        raise ValidationError.from_problems([("body", "must be a JSON object")])
    problems = list(text_problems(body))
    allowed = {"name", "description", "type", "sections", "defaults", "format", "presentation",
               "intro_markdown", "css", "layout", "logo"}
    for key in body:
        if key not in allowed:
            problems.append((key, f"unknown field; accepted: {', '.join(sorted(allowed))}"))
    name = body.get("name")
    name_issue = "is required, 1 to 200 characters" if name is None else params.title_problem(name)
    if name_issue:
        problems.append(("name", name_issue))
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        problems.append(("description", "must be text of at most 2000 characters"))
    defaults = body.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(("defaults", "must be an object"))
        defaults = {}
    for key in defaults:
        if key not in TEMPLATE_DEFAULTS:
            problems.append((f"defaults.{key}", f"unknown default; accepted: {', '.join(TEMPLATE_DEFAULTS)}"))
    defaults = {k: v for k, v in defaults.items() if k in TEMPLATE_DEFAULTS}
    probe = {"type": body.get("type", "custom"), "format": body.get("format", "pdf"),
             "period": "last_7_days", **defaults}
    if "sections" in body:
        probe["sections"] = body["sections"]
    try:
        spec = reports.validate(probe)
    except ValidationError as exc:
        for detail in exc.details:
            field = detail["field"]
            if field not in ("type", "format") and not field.startswith("sections"):
                field = f"defaults.{field}"
            if (field, detail["problem"]) not in problems:  # text problems are found on the whole body too
                problems.append((field, detail["problem"]))
        spec = None
    # The look may come flat (as the seed's flat JSON bodies do) or under "presentation".
    look = dict(body.get("presentation") or {}) if isinstance(body.get("presentation", {}), dict) else None
    if look is None:
        problems.append(("presentation", "must be an object"))
        look = {}
    look.update({k: body[k] for k in ("intro_markdown", "css", "layout", "logo") if k in body})
    checks = importlib.import_module(PRESENTATION_CHECKS)
    presentation, look_problems = checks.check_presentation(look)
    problems += look_problems
    if problems:
        raise ValidationError.from_problems(problems)
    return {"name": name.strip(), "description": description, "type": spec.type,
            "sections": [{"type": s.name, **s.options} for s in spec.sections] if "sections" in body else [],
            "defaults": defaults, "format": spec.format, "presentation": presentation}