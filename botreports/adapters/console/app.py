"""The web console's routes: server-rendered pages over the ``Reports`` facade, signed in by a
browser session. Who may do what is the facade's to decide, as for the JSON API; this module
turns forms into request bodies, answers into pages and errors into the fields they name."""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional
from urllib.parse import quote, urlencode

from ...core.errors import (BotReportsError, InvalidCredentials, NotFound, PayloadTooLarge, Unauthorized,
                            ValidationError)
from ...core.models import RequestInfo
from ...core.rate_limit import TokenBuckets
from ...core.views import report_view, schedule_view, template_view
from ..http import content_disposition, display_filename
from ..log_escaping import EscapeControlCharacters
from . import forms

log = logging.getLogger("botreports.console")
log.addFilter(EscapeControlCharacters())

SESSION_COOKIE = "botreports_session"
SIGNIN_COOKIE = "botreports_signin"
STATIC_DIR = Path(__file__).with_name("static")
#: No inline script or style, nothing from elsewhere; the report frame is our own page.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: An HTML report shown in its frame: its own inline styles, no script at all, nothing fetched.
REPORT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
              "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox")
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin", "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
REPORT_STATES = ("pending", "running", "completed", "failed", "expired")
SORTS = ("created_at", "name", "type")
#: Largest form body read (forms are small; the API's body cap applies too).
MAX_FORM_BYTES = 256 * 1024


class SignInNeeded(Exception):
    """No valid session: the browser is sent to the sign-in page."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class FormRefused(BotReportsError):
    """A form post without this session's CSRF token."""

    status = 403
    code = "csrf_token_invalid"


class Console:
    """The console's pages bound to one ``Reports`` instance."""

    def __init__(self, reports):
        import bottle
        import jinja2

        self.bottle = bottle
        self.reports = reports
        self.limiter = TokenBuckets(reports.settings.rate_limit)
        self.failures = TokenBuckets(reports.settings.auth_failure_limit)
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("botreports.adapters.console", "templates"),
                                      autoescape=True, trim_blocks=True, lstrip_blocks=True)
        self.env.globals.update(field_id=forms.field_id, states=REPORT_STATES)
        self.env.filters["when"] = _when
        self.static = {path.name: (path.read_bytes(), STATIC_TYPES.get(path.suffix, "application/octet-stream"))
                       for path in STATIC_DIR.iterdir() if path.is_file()}
        self.static_version = str(abs(hash(tuple(sorted((k, len(v[0])) for k, v in self.static.items())))))[:8]
        self.timezones = _timezones()
        self.app = bottle.Bottle()
        self.app.default_error_handler = self._router_error
        self._routes()

    # -- routing --------------------------------------------------------

    def _routes(self) -> None:
        routes = [
            ("GET", "/", self.home, {"public": True}),
            ("GET", "/signin", self.signin_form, {"public": True}),
            ("POST", "/signin", self.signin, {"public": True}),
            ("POST", "/signout", self.signout, {}),
            ("GET", "/reports", self.report_list, {}),
            ("GET", "/reports/new", self.new_report_form, {}),
            ("POST", "/reports/new", self.new_report, {}),
            ("GET", "/reports/status.json", self.statuses, {"json": True}),
            ("GET", "/reports/<report_id>", self.report_page, {}),
            ("GET", "/reports/<report_id>/download", self.download, {}),
            ("GET", "/reports/<report_id>/view", self.view_html, {}),
            ("POST", "/reports/<report_id>/delete", self.delete_report, {}),
            ("GET", "/schedules", self.schedule_list, {}),
            ("GET", "/schedules/new", self.new_schedule_form, {}),
            ("POST", "/schedules/new", self.new_schedule, {}),
            ("GET", "/schedules/<schedule_id>", self.edit_schedule_form, {}),
            ("POST", "/schedules/<schedule_id>", self.edit_schedule, {}),
            ("POST", "/schedules/<schedule_id>/enabled", self.toggle_schedule, {}),
            ("POST", "/schedules/<schedule_id>/delete", self.delete_schedule, {}),
            ("GET", "/templates", self.template_list, {}),
            ("GET", "/templates/new", self.new_template_form, {}),
            ("POST", "/templates/new", self.new_template, {}),
            ("GET", "/templates/<template_id>", self.template_page, {}),
            ("GET", "/static/<name>", self.static_file, {"public": True, "raw": True}),
        ]
        for method, path, handler, options in routes:
            self.app.route(path, method, self._page(handler, **options))

    def _page(self, handler: Callable, public: bool = False, json: bool = False, raw: bool = False) -> Callable:
        """Wrap a handler: the session, the CSRF check of posts, error pages and headers."""

        def page(**kwargs):
            started = time.perf_counter()
            request = self.bottle.request
            principal = None
            try:
                if not public:
                    principal = self.principal(request)
                if request.method == "POST":
                    self.check_form(request, principal)
                response = handler(principal, **kwargs)
            except SignInNeeded as exc:
                response = self.json_page({"error": "signed_out", "message": exc.reason or "sign in again"}, 401) \
                    if json else self.to_signin(request, exc.reason)
            except BotReportsError as exc:
                response = self.json_page(exc.to_dict(), exc.status) if json else self.error_page(principal, exc)
            except Exception:  # never a traceback to a browser; the log keeps it
                log.exception("unhandled error on %s %s", request.method, request.path)
                response = self.error_page(principal, BotReportsError("Something went wrong on our side; "
                                                                      "the service log says what."))
            if not raw:
                for name, value in PAGE_HEADERS.items():
                    if name not in response.headers:
                        response.set_header(name, value)
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %s %s %.1fms by=%s", request.environ.get("REMOTE_ADDR") or "-", request.method,
                         request.path, response.status_code, (time.perf_counter() - started) * 1000,
                         principal.id if principal else "-")
            return response

        page.__name__ = handler.__name__
        return page

    def _router_error(self, error):
        request = self.bottle.request
        principal = None
        try:
            principal = self.principal(request)
        except (SignInNeeded, BotReportsError):
            pass
        status = error.status_code
        exc = NotFound("There is no such page.") if status == 404 else BotReportsError(
            f"{request.method} is not allowed here." if status == 405 else "Bad request.")
        exc.status = status
        response = self.error_page(principal, exc)
        for name, value in PAGE_HEADERS.items():
            response.set_header(name, value)
        if log.isEnabledFor(logging.INFO):  # one line a request, as for every page
            log.info("%s %s %s %s - by=%s", request.environ.get("REMOTE_ADDR") or "-", request.method, request.path,
                     status, principal.id if principal else "-")
        self.bottle.response.status = status
        self.bottle.response.headers.update(dict(response.headers))
        return response.body

    # -- sessions and forms ---------------------------------------------

    def principal(self, request):
        token = request.get_cookie(SESSION_COOKIE)
        if not token:
            raise SignInNeeded()
        try:
            principal = self.reports.session_principal(token)
        except InvalidCredentials as exc:
            raise SignInNeeded(exc.message) from None
        self.limiter.take(f"{principal.via}:{principal.id}")
        request.environ["botreports.session"] = token
        return principal

    def form(self, request) -> Dict[str, List[str]]:
        """The posted form as ``{name: [values]}`` (413 above ``MAX_FORM_BYTES``)."""
        cached = request.environ.get("botreports.form")
        if cached is not None:
            return cached
        try:
            length = int(request.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = MAX_FORM_BYTES + 1
        if length > min(MAX_FORM_BYTES, self.reports.settings.max_body_bytes):
            raise PayloadTooLarge(f"the form is {length:,} bytes; the limit is {MAX_FORM_BYTES:,}")
        values: Dict[str, List[str]] = {}
        problems = []
        # bottle hands over form fields as Latin-1 text: back to bytes, then read as UTF-8 here,
        # where a field that is not UTF-8 is a 400 naming it rather than an exception.
        for raw_name, raw_value in request.forms.allitems():
            try:
                name = raw_name.encode("latin1").decode("utf-8")
                value = raw_value.encode("latin1").decode("utf-8")
            except UnicodeError:
                problems.append((raw_name.encode("latin1").decode("utf-8", "replace"), "is not UTF-8 text"))
                continue
            values.setdefault(name, []).append(value)
        if problems:
            raise ValidationError.from_problems(problems)
        request.environ["botreports.form"] = values
        return values

    def check_form(self, request, principal) -> None:
        """Every post carries the CSRF token of its session (of the sign-in cookie when signing in)."""
        given = forms.first(self.form(request).get("csrf_token"))
        if principal is not None:
            expected = self.reports.form_token(request.environ["botreports.session"])
        else:
            nonce = request.get_cookie(SIGNIN_COOKIE) or ""
            expected = self.reports.form_token(nonce=nonce) if nonce else None
        if not expected or not given or not secrets.compare_digest(expected, given):
            raise FormRefused("This form did not come from this console or has expired: reload the page and "
                              "send it again.")

    def root(self) -> str:
        """Where the console is mounted (``SCRIPT_NAME``; empty at ``/``): every link starts with it."""
        return self.bottle.request.environ.get("SCRIPT_NAME", "").rstrip("/")

    def cookie(self, response, name: str, value: str, max_age: int) -> None:
        secure = self.bottle.request.environ.get("wsgi.url_scheme") == "https"
        response.set_cookie(name, value, path=self.root() or "/", httponly=True, samesite="strict", secure=secure,
                            max_age=max_age)

    # -- responses ------------------------------------------------------

    def render(self, principal, page_name: str, status: int = 200, **context):
        context.setdefault("principal", principal)
        if principal is not None:
            context.setdefault("csrf_token", self.reports.form_token(self.bottle.request.environ["botreports.session"]))
            context.setdefault("can", lambda action: self.reports.allows(principal, action))
        else:
            context.setdefault("can", lambda action: False)
        context.setdefault("static_version", self.static_version)
        context.setdefault("path", self.bottle.request.path)
        context.setdefault("root", self.root())
        body = self.env.get_template(page_name).render(**context)
        response = self.bottle.HTTPResponse(body=body.encode("utf-8"), status=status)
        response.content_type = "text/html; charset=utf-8"
        return response

    def error_page(self, principal, exc: BotReportsError):
        titles = {400: "Bad request", 401: "Sign in needed", 403: "Not allowed", 404: "Not found", 409: "Not ready",
                  410: "Expired", 413: "Too large", 429: "Too many requests", 503: "Unavailable"}
        if principal is not None and "botreports.session" not in self.bottle.request.environ:
            principal = None
        response = self.render(principal, "error.html", exc.status, title=titles.get(exc.status, "Error"),
                               message=exc.message, details=exc.details)
        if getattr(exc, "retry_after", None) is not None:
            response.set_header("Retry-After", str(int(max(1, exc.retry_after))))
        return response

    def json_page(self, data, status: int = 200):
        response = self.bottle.HTTPResponse(body=json.dumps(data, default=str).encode("utf-8"), status=status)
        response.content_type = "application/json"
        return response

    def redirect(self, location: str, message: str = ""):
        response = self.bottle.HTTPResponse(status=303)
        location = self.root() + location if location.startswith("/") else location
        response.set_header("Location", location + (("&" if "?" in location else "?") +
                                                    urlencode({"done": message}) if message else ""))
        return response

    def to_signin(self, request, reason: str = ""):
        target = request.path if request.method == "GET" else "/reports"
        query = {"next": target}
        if reason:
            query["reason"] = reason
        response = self.redirect(f"/signin?{urlencode(query)}")
        if request.get_cookie(SESSION_COOKIE):
            self.cookie(response, SESSION_COOKIE, "", 0)
        return response

    # -- pages: signing in ------------------------------------------------

    def home(self, _principal):
        request = self.bottle.request
        try:
            self.principal(request)
        except SignInNeeded:
            return self.redirect("/signin")
        return self.redirect("/reports")

    def signin_form(self, _principal, error: str = "", status: int = 200):
        request = self.bottle.request
        nonce = request.get_cookie(SIGNIN_COOKIE) or secrets.token_urlsafe(16)
        next_path = _local_path(request.query.getunicode("next") or "/reports")
        response = self.render(None, "signin.html", status, title="Sign in", error=error,
                               reason=request.query.getunicode("reason") or "", next_path=next_path,
                               csrf_token=self.reports.form_token(nonce=nonce))
        self.cookie(response, SIGNIN_COOKIE, nonce, 3600)
        return response

    def signin(self, _principal):
        request = self.bottle.request
        form = self.form(request)
        credential = forms.first(form.get("credential")).strip()
        client = f"auth:{request.environ.get('REMOTE_ADDR') or '-'}"
        self.failures.check(client, "too many failed sign-ins from this address; wait a minute and try again")
        if not credential:
            return self.signin_form(None, "Enter an API key or a token.", 400)
        headers = {"Authorization": f"Bearer {credential}"} if credential.count(".") == 2 and \
            not credential.startswith("brk_") else {"X-API-Key": credential}
        info = RequestInfo(method="POST", path=request.path, headers=headers, query={},
                           remote_addr=request.remote_addr or "")
        try:
            token, principal = self.reports.sign_in(info)
        except Unauthorized as exc:
            self.failures.spend(client)
            return self.signin_form(None, f"Not signed in: {exc.message}.", 401)
        response = self.redirect(_local_path(forms.first(form.get("next")) or "/reports"))
        self.cookie(response, SESSION_COOKIE, token, 8 * 3600)
        self.cookie(response, SIGNIN_COOKIE, "", 0)
        log.info("console sign-in by %s (%s)", principal.id, principal.via)
        return response

    def signout(self, _principal):
        self.reports.sign_out(self.bottle.request.environ["botreports.session"])
        response = self.redirect("/signin?" + urlencode({"reason": "You have signed out."}))
        self.cookie(response, SESSION_COOKIE, "", 0)
        return response

    # -- pages: reports -------------------------------------------------

    def report_list(self, principal):
        request = self.bottle.request
        names = ("type", "status", "created_after", "created_before", "sort", "order", "limit", "offset")
        filters = {name: request.query.getunicode(name) for name in names if request.query.getunicode(name)}
        errors: Dict[str, List[str]] = {}
        try:
            items, total = self.reports.list(principal, **filters)
        except ValidationError as exc:
            errors = forms.field_errors(exc.details)
            items, total = [], 0
        limit = _int(filters.get("limit"), 20)
        offset = _int(filters.get("offset"), 0)
        kept = {k: v for k, v in filters.items() if k not in ("offset",)}

        def page_link(at):
            return f"{self.root()}/reports?" + urlencode({**kept, "offset": max(0, at)})

        paging = {"first": offset + 1 if total else 0, "last": min(offset + limit, total), "total": total,
                  "prev": page_link(offset - limit) if offset > 0 else None,
                  "next": page_link(offset + limit) if offset + limit < total else None}
        return self.render(principal, "reports.html", 400 if errors else 200, title="Reports",
                           reports=[report_view(item) for item in items], filters=filters, errors=errors,
                           types=sorted(self.reports.report_types), sorts=SORTS, paging=paging,
                           done=request.query.getunicode("done") or "")

    def statuses(self, principal):
        """The status of up to 100 reports at once, for the pages' progress bars."""
        ids = [item for item in (self.bottle.request.query.getunicode("ids") or "").split(",") if item][:100]
        found = []
        for report_id in ids:
            try:
                found.append(self.reports.status(principal, report_id))
            except NotFound:
                found.append({"report_id": report_id, "state": "missing"})
        return self.json_page(found)

    def report_page(self, principal, report_id):
        report = self.reports.get(principal, report_id)
        return self.render(principal, "report.html", title=report.title, report=report_view(report),
                           done=self.bottle.request.query.getunicode("done") or "")

    def download(self, principal, report_id):
        file = self.reports.download(principal, report_id)
        response = self.bottle.HTTPResponse(body=_stream(file), status=200)
        response.content_type = file.media_type or "application/octet-stream"
        response.set_header("Content-Length", str(file.size))
        response.set_header("Content-Disposition",
                            content_disposition(file.filename, display_filename(file.title, file.filename)))
        if file.sha256:
            response.set_header("X-Checksum-SHA256", file.sha256)
        return response

    def view_html(self, principal, report_id):
        """An HTML report inside the report's page: no script runs in it, nothing is fetched."""
        report = self.reports.get(principal, report_id)
        if report.format != "html":
            raise NotFound(f"report {report_id} is not an HTML report")
        file = self.reports.download(principal, report_id)
        response = self.bottle.HTTPResponse(body=_stream(file), status=200)
        response.content_type = "text/html; charset=utf-8"
        for name, value in {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
                            "Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN",
                            "Referrer-Policy": "same-origin"}.items():
            response.set_header(name, value)
        return response

    def delete_report(self, principal, report_id):
        report = self.reports.get(principal, report_id)
        self.reports.delete(principal, report_id)
        return self.redirect("/reports", f"Deleted the report {report.title}.")

    def report_form_context(self, principal, values: Dict[str, List[str]], errors=None) -> dict:
        directory = self.reports.organisation_directory(principal)
        templates = [template_view(t) for t in self.reports.list_templates(principal)]
        chosen_type = forms.first(values["type"]) if "type" in values else next(iter(self.reports.report_types))
        report_type = self.reports.report_types.get(chosen_type)
        if "sections" in values:
            chosen_sections = set(values["sections"])
        else:
            chosen_sections = set(report_type.default_sections) if report_type is not None else set()
        return {"types": list(self.reports.report_types.values()), "sections": list(self.reports.sections.values()),
                "exporters": list(self.reports.exporters.values()), "periods": _periods(),
                "timezones": self.timezones, "bots": directory["bots"], "channels": directory["channels"],
                "templates": templates, "values": {k: forms.first(v) for k, v in values.items()},
                "chosen_bots": set(values.get("bot_id", [])), "chosen_sections": chosen_sections,
                "defaults_by_type": json.dumps({t.name: list(t.default_sections)
                                                for t in self.reports.report_types.values()}),
                "errors": errors or {}, "custom_period": forms.CUSTOM_PERIOD}

    def new_report_form(self, principal):
        self.reports.authorize(principal, "report.generate")
        values = {"type": [next(iter(self.reports.report_types))], "format": ["pdf"], "period": ["last_7_days"],
                  "include_charts": ["on"], "timezone": ["UTC"]}
        template_id = self.bottle.request.query.getunicode("template_id")
        if template_id:  # from a template's page: its type, format and period unless changed here
            values.update(template_id=[template_id], type=[""], format=[""], period=[""])
        return self.render(principal, "new_report.html", title="New report",
                           **self.report_form_context(principal, values))

    def new_report(self, principal):
        values = self.form(self.bottle.request)
        flat = {name: forms.first(items) for name, items in values.items()}
        body, names = forms.report_body(flat, values.get("sections", []), values.get("bot_id", []), self.reports)
        try:
            report = self.reports.generate(principal, body)
        except ValidationError as exc:
            errors = forms.field_errors(exc.details, names, body.get("format", ""))
            context = self.report_form_context(principal, values, errors)
            return self.render(principal, "new_report.html", 400, title="New report", **context)
        return self.redirect(f"/reports/{quote(report.id, safe='')}")

    # -- pages: schedules -------------------------------------------------

    def schedule_list(self, principal):
        request = self.bottle.request
        offset = _int(request.query.getunicode("offset"), 0)
        items, total = self.reports.list_schedules(principal, limit=50, offset=offset)
        views = [schedule_view(item, self.reports.schedule_runs(item, limit=3)) for item in items]
        return self.render(principal, "schedules.html", title="Schedules", schedules=views, total=total,
                           offset=offset, done=request.query.getunicode("done") or "")

    def schedule_form_context(self, principal, values: Dict[str, str], errors=None, schedule_id=None) -> dict:
        templates = [template_view(t) for t in self.reports.list_templates(principal)]
        return {"types": list(self.reports.report_types.values()),
                "exporters": list(self.reports.exporters.values()), "periods": _periods(custom=False),
                "timezones": self.timezones, "templates": templates, "values": values, "errors": errors or {},
                "schedule_id": schedule_id}

    def new_schedule_form(self, principal):
        self.reports.authorize(principal, "schedule.create")
        values = {"format": "pdf", "cron": "0 8 * * 1", "timezone": "UTC", "period": "previous_week",
                  "enabled": "on", "type": "usage"}
        return self.render(principal, "schedule_form.html", title="New schedule",
                           **self.schedule_form_context(principal, values))

    def new_schedule(self, principal):
        values = {name: forms.first(items) for name, items in self.form(self.bottle.request).items()}
        try:
            schedule = self.reports.create_schedule(principal, forms.schedule_body(values, creating=True))
        except ValidationError as exc:
            return self.render(principal, "schedule_form.html", 400, title="New schedule",
                               **self.schedule_form_context(principal, values, forms.field_errors(exc.details)))
        return self.redirect("/schedules", f"Created the schedule {schedule.name}.")

    def edit_schedule_form(self, principal, schedule_id):
        view = schedule_view(self.reports.get_schedule(principal, schedule_id))
        values = {name: view.get(name) or "" for name in ("name", "type", "format", "cron", "timezone", "period",
                                                          "template_id", "subject")}
        values["recipients"] = "\n".join(view["recipients"])
        values["enabled"] = "on" if view["enabled"] else ""
        return self.render(principal, "schedule_form.html", title=f"Edit {view['name']}",
                           **self.schedule_form_context(principal, values, schedule_id=schedule_id))

    def edit_schedule(self, principal, schedule_id):
        values = {name: forms.first(items) for name, items in self.form(self.bottle.request).items()}
        try:
            schedule = self.reports.update_schedule(principal, schedule_id,
                                                    forms.schedule_body(values, creating=False))
        except ValidationError as exc:
            return self.render(principal, "schedule_form.html", 400, title="Edit schedule",
                               **self.schedule_form_context(principal, values, forms.field_errors(exc.details),
                                                            schedule_id))
        return self.redirect("/schedules", f"Saved the schedule {schedule.name}.")

    def toggle_schedule(self, principal, schedule_id):
        enabled = forms.first(self.form(self.bottle.request).get("enabled")) == "true"
        schedule = self.reports.update_schedule(principal, schedule_id, {"enabled": enabled})
        state = "Enabled" if schedule.enabled else "Disabled"
        return self.redirect("/schedules", f"{state} the schedule {schedule.name}.")

    def delete_schedule(self, principal, schedule_id):
        schedule = self.reports.get_schedule(principal, schedule_id)
        self.reports.delete_schedule(principal, schedule_id)
        return self.redirect("/schedules", f"Deleted the schedule {schedule.name}.")

    # -- pages: templates -------------------------------------------------

    def template_list(self, principal):
        templates = [template_view(t) for t in self.reports.list_templates(principal)]
        return self.render(principal, "templates.html", title="Templates",
                           builtin=[t for t in templates if t["builtin"]],
                           own=[t for t in templates if not t["builtin"]],
                           done=self.bottle.request.query.getunicode("done") or "")

    def template_page(self, principal, template_id):
        template = template_view(self.reports.get_template(principal, template_id))
        return self.render(principal, "template.html", title=template["name"], template=template,
                           section_titles={s.name: s.title for s in self.reports.sections.values()})

    def template_form_context(self, values: Dict[str, List[str]], errors=None) -> dict:
        return {"types": list(self.reports.report_types.values()), "sections": list(self.reports.sections.values()),
                "exporters": list(self.reports.exporters.values()),
                "values": {k: forms.first(v) for k, v in values.items()},
                "chosen_sections": set(values.get("sections", [])), "errors": errors or {}}

    def new_template_form(self, principal):
        self.reports.authorize(principal, "template.create")
        return self.render(principal, "template_form.html", title="New template",
                           **self.template_form_context({"type": ["custom"], "format": ["pdf"]}))

    def new_template(self, principal):
        values = self.form(self.bottle.request)
        flat = {name: forms.first(items) for name, items in values.items()}
        body = forms.template_body(flat, values.get("sections", []), self.reports)
        try:
            template = self.reports.create_template(principal, body)
        except ValidationError as exc:
            names = [item["type"] for item in body.get("sections", [])]
            return self.render(principal, "template_form.html", 400, title="New template",
                               **self.template_form_context(values, forms.field_errors(exc.details, names)))
        return self.redirect(f"/templates/{quote(template.id, safe='')}")

    # -- static files -----------------------------------------------------

    def static_file(self, _principal, name):
        found = self.static.get(name)
        if found is None:
            raise NotFound("no such file")
        response = self.bottle.HTTPResponse(body=found[0], status=200)
        response.content_type = found[1]
        response.set_header("Cache-Control", "public, max-age=86400")
        response.set_header("X-Content-Type-Options", "nosniff")
        return response


def _stream(file):
    """The bytes of a ``DownloadFile``, wherever it is stored (its own ``open`` when it has one)."""
    opener = getattr(file, "open", None)
    return opener() if opener is not None else open(file.path, "rb")


def _int(text: Optional[str], default: int) -> int:
    try:
        return max(0, int(text)) if text else default
    except ValueError:
        return default


def _local_path(path: str) -> str:
    """A path of this console to go back to after signing in (never another site)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or path.startswith("/signin"):
        return "/reports"
    return path


def _periods(custom: bool = True) -> List[tuple]:
    from ...core.scheduling import RELATIVE_PERIODS

    choices = [(name, name.replace("_", " ").capitalize()) for name in RELATIVE_PERIODS]
    return choices + ([(forms.CUSTOM_PERIOD, "Dates below")] if custom else [])


def _timezones() -> List[str]:
    import zoneinfo

    return sorted(name for name in zoneinfo.available_timezones() if "/" in name or name == "UTC")


def _when(text: Optional[str], zone: bool = True) -> str:
    """``2025-03-01T08:00:00Z`` as ``2025-03-01 08:00 UTC`` (without ``UTC`` when ``zone`` is false)."""
    if not text:
        return "—"
    try:
        instant = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    if instant.utcoffset() == dt.timedelta(0):
        return instant.strftime("%Y-%m-%d %H:%M UTC" if zone else "%Y-%m-%d %H:%M")
    return instant.strftime("%Y-%m-%d %H:%M (UTC%z)")
