"""The HTTP API: a Bottle app over the ``Reports`` facade (DESIGN §6).

Routing, request parsing, status codes and headers only. Who may do what, and
every rule about reports, schedules and templates, is decided by the facade;
this module turns its answers and its errors into flat JSON.
"""
from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import logging
import re
import secrets
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl, quote, urlencode

from ..core.convert import parse_json
from ..core.errors import (BotReportsError, InvalidCredentials, PayloadTooLarge, StorageUnavailable,
                           Unauthorized, ValidationError)
from ..core.models import RequestInfo
from ..core.rate_limit import TokenBuckets
from ..core.storage_faults import storage_fault
from ..core.views import report_view, schedule_view, status_view, template_view
from .log_escaping import EscapeControlCharacters
from .page_cache import PageCache

log = logging.getLogger("botreports.http")
# A path, a request id or a token's subject must not start a line of its own in the log.
log.addFilter(EscapeControlCharacters())
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)

#: Path segments that are routes of their own and so never a report id.
RESERVED_SEGMENTS = ("schedule", "templates", "generate", "health", "openapi.json", "catalog")
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines")
#: Query parameters any authenticated route accepts besides its own (the chat-script API key).
AUTH_PARAMS = ("api_key",)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: The headers of every JSON answer (bodies are per-request data: never cached by a proxy).
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
#: One encoder for every response body (``json.dumps`` with options builds one per call).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def build_app(reports, base_path: str = "/api/v1"):
    """A ``bottle.Bottle`` app serving the API of ``reports`` under ``{base_path}/reports``."""
    return HttpApi(reports, base_path).app


def content_disposition(fallback: str, display_name: str) -> str:
    """RFC 6266: an ASCII ``filename`` any client understands, and the real name as ``filename*``.

    Quotes, backslashes, CR/LF and other control characters never reach the
    header: the fallback keeps only a safe ASCII set and the UTF-8 form is
    percent-encoded (RFC 8187), which leaves nothing but attr-chars.
    """
    safe = re.sub(r"[^A-Za-z0-9._ -]", "_", fallback).strip(" .") or "report"
    clean = re.sub(r"[\x00-\x1f\x7f/\\]", " ", display_name)
    clean = re.sub(r"\s+", " ", clean).strip(" .") or safe
    return f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(clean, safe='')}"


def display_filename(title: str, filename: str) -> str:
    """``Relatório "Q1"_2025-01-01_2025-01-31.pdf``: the title in place of the stored file's slug."""
    suffix = filename[filename.index("_"):] if "_" in filename else ""
    if not suffix:
        return filename
    return f"{title.strip()[:120]}{suffix}" if title.strip() else filename


def headers_of(environ: dict) -> Dict[str, str]:
    """The request headers of a WSGI environ as ``{"X-Api-Key": value}`` (what bottle's header
    dict spells), read straight from the environ: it is asked on every request."""
    headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items()
               if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").title()] = environ[key]
    return headers


#: The WSGI environ key under which a host's own middleware may leave who signed in (any object: a
#: user record, a session); ``authenticate`` hooks read it as ``RequestInfo.identity``.
IDENTITY_ENVIRON_KEY = "botreports.identity"


def mount_prefix(environ: dict) -> str:
    """Where a host mounted the app (WSGI ``SCRIPT_NAME``, ``/analytics``), percent-encoded as a
    URL path and without its trailing slash; ``""`` when it answers at the server's root."""
    return quote(environ.get("SCRIPT_NAME", "").rstrip("/"), safe="/")


#: The answer to an address that sent too many wrong credentials lately.
TOO_MANY_FAILURES = "too many failed authentication attempts from this address; wait before trying again"


def client_address(environ: dict) -> str:
    """The address of the connection (the server's own notion, which a trusted proxy setting of
    the server may rewrite), never a forwarding header the client wrote itself."""
    return environ.get("REMOTE_ADDR") or "-"


#: A ``Host`` header as RFC 9110 spells it: a name or an IPv4 address, or a bracketed IPv6 one, and a port.
HOST_HEADER = re.compile(r"^(?:(?P<name>[a-z0-9](?:[a-z0-9.-]{0,252}))|\[(?P<ip6>[0-9a-f:.]{2,45})\])"
                         r"(?::[0-9]{1,5})?$")


def host_allowed(host: str, allowed: str) -> bool:
    """Whether the ``Host`` header ``host`` (``name``, ``name:port``, ``[v6]:port``) is well formed
    and names one of the comma-separated ``allowed`` hosts (``*``: any well-formed host)."""
    found = HOST_HEADER.match(host.lower())
    if found is None:
        return False
    names = {name.strip().lower().strip("[]") for name in allowed.split(",") if name.strip()}
    return "*" in names or (found.group("name") or found.group("ip6")) in names


def _media_type(value: str) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class HttpApi:
    """The routes of the API bound to one ``Reports`` instance."""

    def __init__(self, reports, base_path: str = "/api/v1"):
        import bottle  # heavy-ish and only needed by the HTTP service

        self.bottle = bottle
        self.reports = reports
        self.base = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.root = f"{self.base}/reports"
        self.limiter = TokenBuckets(reports.settings.rate_limit)
        #: Failed credentials per client address (keys, tokens and link signatures alike).
        self.failures = TokenBuckets(reports.settings.auth_failure_limit)
        self._openapi_cache: Tuple[Any, bytes] = (None, b"")
        self.pages = PageCache(reports.change_token)
        self.app = bottle.Bottle()
        self.app.default_error_handler = self._router_error
        self._routes()

    # -- routes ---------------------------------------------------------

    def _routes(self) -> None:
        r, app = self.root, self.app
        report_id = "<report_id:re:(?!(?:%s)$)[^/]+>" % "|".join(re.escape(s) for s in RESERVED_SEGMENTS)
        routes: List[Tuple[str, str, Callable, dict]] = [
            ("GET", "/openapi.json", self.openapi, {"public": True}),
            # Also under the API's own path, so a host routing only that path still serves its contract.
            ("GET", f"{r}/openapi.json", self.openapi, {"public": True}),
            ("GET", f"{r}/health", self.health, {"public": True}),
            ("POST", f"{r}/generate", self.generate, {}),
            ("GET", f"{r}/catalog", self.catalog, {}),
            ("GET", r, self.list_reports, {}),
            ("GET", f"{r}/schedule", self.list_schedules, {}),
            ("POST", f"{r}/schedule", self.create_schedule, {}),
            ("PUT", f"{r}/schedule/<schedule_id>", self.update_schedule, {}),
            ("DELETE", f"{r}/schedule/<schedule_id>", self.delete_schedule, {}),
            ("GET", f"{r}/templates", self.list_templates, {}),
            ("POST", f"{r}/templates", self.create_template, {}),
            ("GET", f"{r}/templates/<template_id>", self.get_template, {}),
            ("GET", f"{r}/{report_id}/status", self.status, {}),
            ("GET", f"{r}/{report_id}/download", self.download, {"public": True}),
            ("POST", f"{r}/{report_id}/verify", self.verify_report, {}),
            ("GET", f"{r}/{report_id}", self.get_report, {}),
            ("DELETE", f"{r}/{report_id}", self.delete_report, {}),
            ("POST", f"{self.base}/events", self.ingest, {}),
        ]
        for method, path, handler, options in routes:
            app.route(path, method, self._endpoint(handler, **options))

    def _endpoint(self, handler: Callable, public: bool = False) -> Callable:
        """Wrap a handler: authentication, the rate limit, error bodies and the request log line."""

        def endpoint(**kwargs):
            started = time.perf_counter()
            request = self.bottle.request
            request_id = self._request_id(request)
            try:
                principal = self.principal(request) if not public else None
                response = handler(principal, **kwargs)
            except BotReportsError as exc:
                response = self.error_response(exc)
            except Exception as exc:  # never a traceback to a client; the log keeps it
                reason = storage_fault(exc)
                if reason is not None:  # a full disk is the operator's to fix, not a bug: one line
                    log.warning("storage fault on %s %s [%s]: %s", request.method, request.path, request_id, exc)
                    response = self.error_response(StorageUnavailable(
                        f"the service cannot use its storage right now ({reason}); try again later"))
                else:
                    log.exception("unhandled error on %s %s [%s]", request.method, request.path, request_id)
                    response = self.error_response(BotReportsError(
                        f"Internal server error; quote request id {request_id} when reporting it"))
            response.set_header("X-Request-Id", request_id)
            self._log(request, response.status_code, started, request.environ.get("botreports.principal", "-"),
                      request_id)
            return response

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    # -- request parsing ------------------------------------------------

    def request_info(self, request) -> RequestInfo:
        environ = request.environ
        # REMOTE_USER and the identity key are set by the server or a host's middleware, never from
        # a header (a header arrives as HTTP_*), so a hook may trust them as far as it trusts the host.
        return RequestInfo(method=request.method, path=request.path, headers=headers_of(environ),
                           query=dict(self.query_pairs(request)), remote_addr=request.remote_addr or "",
                           remote_user=environ.get("REMOTE_USER") or None,
                           identity=environ.get(IDENTITY_ENVIRON_KEY))

    def principal(self, request):
        """Who is asking (401 otherwise), after spending one token of their request budget.

        An address that sent too many wrong credentials lately is answered 429 before its
        credentials are looked at; each wrong one spends its failure budget."""
        client = client_address(request.environ)
        self.failures.check(f"auth:{client}", TOO_MANY_FAILURES)
        try:
            principal = self.reports.authenticate(self.request_info(request))
        except InvalidCredentials:
            self.failures.spend(f"auth:{client}")
            raise
        request.environ["botreports.principal"] = principal.id  # for the log line
        self.limiter.take(f"{principal.via}:{principal.id}")
        return principal

    @staticmethod
    def query_pairs(request) -> List[Tuple[str, str]]:
        return parse_qsl(request.environ.get("QUERY_STRING", ""), keep_blank_values=True,
                         encoding="utf-8", errors="replace")

    def query(self, request, allowed: Iterable[str]) -> Dict[str, str]:
        """The query parameters, each at most once and each one the route knows (400 otherwise)."""
        allowed = set(allowed)
        values: Dict[str, str] = {}
        problems = []
        for name, value in self.query_pairs(request):
            if name in AUTH_PARAMS:
                continue
            if name not in allowed:
                accepted = ", ".join(sorted(allowed)) or "none"
                problems.append((name, f"unknown query parameter; accepted: {accepted}"))
            elif name in values:
                problems.append((name, "given more than once"))
            elif value == "":
                problems.append((name, "must not be empty; leave the parameter out instead"))
            else:
                values[name] = value
        if problems:
            raise ValidationError.from_problems(problems)
        return values

    def read_body(self, request, limit: int) -> bytes:
        """The raw body, refused with 413 above ``limit`` bytes before it is read."""
        environ = request.environ
        length_text = environ.get("CONTENT_LENGTH") or ""
        if length_text.strip():
            try:
                length = int(length_text)
                if length < 0:
                    raise ValueError
            except ValueError:
                raise ValidationError.from_problems([("Content-Length", "must be a non-negative integer")]) from None
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            length = limit + 1
        else:
            length = 0
        if length > limit and length_text.strip():
            raise PayloadTooLarge(f"the request body is {length:,} bytes; the limit is {limit:,}",
                                  [{"field": "body", "problem": f"at most {limit} bytes"}])
        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is larger than the limit of {limit:,} bytes",
                                  [{"field": "body", "problem": f"at most {limit} bytes"}])
        return body

    def json_body(self, request) -> dict:
        """The body as a JSON object, or a 400 that says what is wrong with it."""
        kind = _media_type(request.environ.get("CONTENT_TYPE", ""))
        if kind not in JSON_TYPES and not (kind.startswith("application/") and kind.endswith("+json")):
            raise ValidationError.from_problems(
                [("Content-Type", f"must be application/json, not {kind or 'missing'}")])
        raw = self.read_body(request, self.reports.settings.max_body_bytes)
        if not raw.strip():
            raise ValidationError.from_problems([("body", "is required: a JSON object")])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError.from_problems([("body", f"is not UTF-8 (byte {exc.start})")]) from None
        try:
            data = parse_json(text)
        except ValueError as exc:
            raise ValidationError.from_problems([("body", str(exc))]) from None
        if not isinstance(data, dict):
            raise ValidationError.from_problems([("body", "must be a JSON object")])
        return data

    # -- responses ------------------------------------------------------

    def json_response(self, data: Any, status: int = 200, headers: Optional[dict] = None):
        # An error may quote what the client sent, a lone surrogate included; \ud800 is that
        # character's JSON escape, so backslashreplace keeps the body valid JSON instead of a 500.
        body = _JSON.encode(data).encode("utf-8", "backslashreplace")
        response = self.bottle.HTTPResponse(body=body, status=status, headers=JSON_HEADERS)
        for name, value in (headers or {}).items():
            response.set_header(name, value)
        return response

    def empty_response(self, status: int = 204):
        response = self.bottle.HTTPResponse(status=status)
        response.set_header("Cache-Control", "no-store")
        return response

    def error_response(self, exc: BotReportsError):
        headers = {}
        if isinstance(exc, Unauthorized):
            challenge = 'Bearer realm="botreports"'
            if isinstance(exc, InvalidCredentials):
                challenge += ', error="invalid_token"'
            headers["WWW-Authenticate"] = challenge
        if getattr(exc, "retry_after", None) is not None:  # 429, and 503 while the store cannot write
            headers["Retry-After"] = str(int(max(1, exc.retry_after)))
        return self.json_response(exc.to_dict(), exc.status, headers)

    def _router_error(self, error):
        """Errors raised before a route runs (no route, wrong method): flat JSON like the rest."""
        status = error.status_code
        codes = {404: ("not_found", "no such endpoint"), 405: ("method_not_allowed", "method not allowed here")}
        code, message = codes.get(status, ("internal_error" if status >= 500 else "bad_request",
                                           "internal server error" if status >= 500 else "bad request"))
        if status == 405:
            message = f"{self.bottle.request.method} is not allowed here; allowed: {error.headers.get('Allow', '')}"
        response = self.bottle.response
        response.content_type = "application/json"
        response.set_header("Cache-Control", "no-store")
        self._log(self.bottle.request, status, None, "-", "-")
        return json.dumps({"error": code, "message": message, "details": []})

    def _request_id(self, request) -> str:
        given = request.environ.get("HTTP_X_REQUEST_ID", "")
        # Ids only need to be unique, not secret: a random prefix per process and a counter
        # (no system call per request).
        return given if REQUEST_ID.match(given) else f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"

    def _log(self, request, status: int, started: Optional[float], who: str, request_id: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        took = f"{(time.perf_counter() - started) * 1000:.1f}ms" if started is not None else "-"
        # The query string may hold an API key or a link signature: log the path only. The
        # address is the connection's (X-Forwarded-For is the client's to write).
        log.info("%s %s %s %s %s by=%s id=%s", client_address(request.environ), request.method, request.path,
                 status, took, who, request_id)

    def url(self, path: str, request) -> str:
        """An absolute URL for ``path`` (the app's own path; the host's mount point, ``SCRIPT_NAME``,
        goes in front of it): the configured public URL, else the request's own host
        when it is one of ``allowed_hosts`` (a 400 naming ``Host`` otherwise: a link built on
        a host the client chose would send its recipients wherever the client wanted)."""
        settings = self.reports.settings
        base = settings.public_url
        if not base:
            environ = request.environ
            host = environ.get("HTTP_HOST") or ""
            if not host_allowed(host, settings.allowed_hosts):
                raise ValidationError.from_problems([("Host", (
                    f"{host or 'missing'} is not one of BOTREPORTS_ALLOWED_HOSTS; this server builds links only on "
                    "its configured hosts (set BOTREPORTS_PUBLIC_URL)"))])
            base = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        return base.rstrip("/") + self.prefix(request) + path

    def prefix(self, request) -> str:
        """Where this app answers inside its host: ``SCRIPT_NAME`` (a WSGI mount), then the prefix
        of ``Bottle.mount`` (which copies the routes into the host's app under it), ``""`` if none."""
        merged = quote(self.app.config.get("_mount.prefix", "").rstrip("/"), safe="/")
        return mount_prefix(request.environ) + merged

    def paging_headers(self, request, total: int, limit: int, offset: int, params: Dict[str, str]) -> dict:
        """``X-Total-Count`` and an RFC 8288 ``Link`` with first, prev, next and last pages."""
        here = mount_prefix(request.environ) + quote(request.path, safe="/")

        def link(page_offset, rel):
            query = urlencode({**params, "limit": limit, "offset": page_offset})
            return f'<{here}?{query}>; rel="{rel}"'

        links = [link(0, "first")]
        if offset > 0:
            links.append(link(max(0, offset - limit), "prev"))
        if offset + limit < total:
            links.append(link(offset + limit, "next"))
        links.append(link(max(0, (total - 1) // limit * limit) if total else 0, "last"))
        return {"X-Total-Count": str(total), "Link": ", ".join(links)}

    # -- handlers -------------------------------------------------------

    def openapi(self, _principal):
        """The OpenAPI 3.1 document of this API, built from the current registries."""
        from .openapi import openapi_document

        prefix = self.prefix(self.bottle.request)
        key = (tuple(self.reports.report_types), tuple(self.reports.exporters), tuple(self.reports.sections),
               prefix)
        if self._openapi_cache[0] != key:
            document = openapi_document(self.reports, self.base, server_url=prefix or "/")
            self._openapi_cache = (key, json.dumps(document, ensure_ascii=False).encode("utf-8"))
        response = self.bottle.HTTPResponse(body=self._openapi_cache[1], status=200)
        response.content_type = "application/json"
        return response

    def health(self, _principal):
        """Liveness without authentication (for load balancers and ``make demo``).

        Query parameters are ignored, not refused: monitors add cache-busters.
        """
        from .. import __version__
        return self.json_response({"status": "ok", "version": __version__,
                                   "queue": getattr(self.reports.queue, "name", "")})

    def catalog(self, principal):
        """Report types, sections, formats and templates with their options as JSON Schema."""
        self.query(self.bottle.request, ())
        return self.json_response(self.reports.catalog(principal))

    def generate(self, principal):
        request = self.bottle.request
        self.query(request, ())
        report = self.reports.generate(principal, self.json_body(request))
        status_path = f"{self.prefix(request)}{self.root}/{report.id}/status"
        return self.json_response(status_view(report), 202, {"Location": status_path})

    def list_reports(self, principal):
        request = self.bottle.request
        params = self.query(request, ("type", "status", "created_after", "created_before", "limit", "offset",
                                      "sort", "order"))
        # Asked every time, answered from memory or not: a role without the right is refused.
        self.reports.authorize(principal, "report.list")

        def page():
            items, total = self.reports.list(principal, **params)
            limit, offset = int(params.get("limit") or 20), int(params.get("offset") or 0)
            paging = {k: v for k, v in params.items() if k not in ("limit", "offset")}
            body = _JSON.encode([report_view(item) for item in items]).encode("utf-8", "backslashreplace")
            return body, self.paging_headers(request, total, limit, offset, paging)

        key = (principal.org_id, request.environ.get("SCRIPT_NAME", ""), request.path, tuple(sorted(params.items())))
        body, headers = self.pages.get_or_build(key, page)
        response = self.bottle.HTTPResponse(body=body, status=200, headers=JSON_HEADERS)
        for name, value in headers.items():
            response.set_header(name, value)
        return response

    def status(self, principal, report_id):
        self.query(self.bottle.request, ())
        return self.json_response(self.reports.status(principal, report_id))

    def get_report(self, principal, report_id):
        self.query(self.bottle.request, ())
        return self.json_response(report_view(self.reports.get(principal, report_id)))

    def delete_report(self, principal, report_id):
        self.query(self.bottle.request, ())
        self.reports.delete(principal, report_id)
        return self.empty_response()

    def verify_report(self, principal, report_id):
        """Compute the report again and say whether every number is the same (no body needed)."""
        self.query(self.bottle.request, ())
        return self.json_response(self.reports.verify(principal, report_id))

    def download(self, _principal, report_id):
        """The file itself, or ``?as=link`` a signed URL that downloads it without credentials."""
        request = self.bottle.request
        params = self.query(request, ("as", "expires", "signature"))
        mode = params.get("as", "file")
        if mode not in ("file", "link"):
            raise ValidationError.from_problems([("as", "must be file or link")])
        if "signature" in params or "expires" in params:
            if mode == "link":
                raise ValidationError.from_problems([("as", "a signed link cannot make another link")])
            # The signature names this report and is the only credential a link carries. It is
            # checked first (in memory): a wrong one spends its sender's failure budget, so that
            # nobody can spend a report's budget and keep the link's recipients out.
            expires, signature = params.get("expires"), params.get("signature", "")
            if not self.reports.download_link_valid(report_id, expires, signature):
                client = f"auth:{client_address(request.environ)}"
                self.failures.check(client, TOO_MANY_FAILURES)
                self.failures.spend(client)
            self.limiter.take(f"link:{report_id}")
            file = self.reports.download_signed(report_id, expires, signature)
            return self.file_response(request, file)
        principal = self.principal(request)
        if mode == "link":
            expires, signature = self.reports.download_link(principal, report_id)
            query = urlencode({"expires": expires, "signature": signature})
            url = self.url(f"{self.root}/{quote(report_id, safe='')}/download?{query}", request)
            expires_at = dt.datetime.fromtimestamp(expires, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            return self.json_response({"url": url, "expires_at": expires_at})
        return self.file_response(request, self.reports.download(principal, report_id))

    def file_response(self, request, file):
        etag = f'"{file.sha256}"'
        headers = {
            "ETag": etag,
            "Cache-Control": "private, max-age=0, must-revalidate",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": content_disposition(file.filename, display_filename(file.title, file.filename)),
        }
        if file.sha256:  # the file's SHA-256 as its metadata holds it: RFC 9530, and in hex
            headers["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(file.sha256)).decode()}:"
            headers["X-Checksum-SHA256"] = file.sha256
        if etag in [tag.strip() for tag in request.environ.get("HTTP_IF_NONE_MATCH", "").split(",")]:
            response = self.bottle.HTTPResponse(status=304)
        else:
            response = self.bottle.HTTPResponse(body=file.open(), status=200)
            response.content_type = file.media_type or "application/octet-stream"
            headers["Content-Length"] = str(file.size)
        for name, value in headers.items():
            response.set_header(name, value)
        return response

    def schedule_json(self, schedule):
        """A schedule with its next run (UTC and local) and its last runs."""
        return schedule_view(schedule, self.reports.schedule_runs(schedule))

    def list_schedules(self, principal):
        request = self.bottle.request
        params = self.query(request, ("limit", "offset"))
        items, total = self.reports.list_schedules(principal, limit=params.get("limit"), offset=params.get("offset"))
        limit, offset = int(params.get("limit") or 20), int(params.get("offset") or 0)
        return self.json_response([self.schedule_json(item) for item in items], 200,
                                  self.paging_headers(request, total, limit, offset, {}))

    def create_schedule(self, principal):
        request = self.bottle.request
        self.query(request, ())
        schedule = self.reports.create_schedule(principal, self.json_body(request))
        return self.json_response(self.schedule_json(schedule), 201,
                                  {"Location": f"{self.prefix(request)}{self.root}/schedule/{schedule.id}"})

    def update_schedule(self, principal, schedule_id):
        request = self.bottle.request
        self.query(request, ())
        body = self.json_body(request)
        return self.json_response(self.schedule_json(self.reports.update_schedule(principal, schedule_id, body)))

    def delete_schedule(self, principal, schedule_id):
        self.query(self.bottle.request, ())
        self.reports.delete_schedule(principal, schedule_id)
        return self.empty_response()

    def list_templates(self, principal):
        request = self.bottle.request
        params = self.query(request, ("limit", "offset"))
        items, total = self.reports.page_templates(principal, limit=params.get("limit"), offset=params.get("offset"))
        limit, offset = int(params.get("limit") or 20), int(params.get("offset") or 0)
        return self.json_response([template_view(t) for t in items], 200,
                                  self.paging_headers(request, total, limit, offset, {}))

    def create_template(self, principal):
        request = self.bottle.request
        self.query(request, ())
        template = self.reports.create_template(principal, self.json_body(request))
        return self.json_response(template_view(template), 201,
                                  {"Location": f"{self.prefix(request)}{self.root}/templates/{template.id}"})

    def get_template(self, principal, template_id):
        self.query(self.bottle.request, ())
        return self.json_response(template_view(self.reports.get_template(principal, template_id)))

    def ingest(self, principal):
        """NDJSON events for the standalone service's analytics store."""
        request = self.bottle.request
        self.query(request, ())
        kind = _media_type(request.environ.get("CONTENT_TYPE", ""))
        if kind not in NDJSON_TYPES:
            raise ValidationError.from_problems(
                [("Content-Type", f"must be application/x-ndjson, not {kind or 'missing'}")])
        body = self.read_body(request, self.reports.settings.max_events_bytes)
        result = self.reports.ingest(principal, _lines(body))
        inserted = sum(result["inserted"].values())
        if result["errors"] and not inserted:
            raise ValidationError.from_problems(
                [(f"line {e['line']}", e["problem"]) for e in result["errors"][:100]])
        return self.json_response({"inserted": result["inserted"], "inserted_total": inserted,
                                   "errors": result["errors"][:100], "error_count": len(result["errors"])})


def _lines(body: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(body):
        end = body.find(b"\n", start)
        if end < 0:
            end = len(body)
        yield body[start:end]
        start = end + 1
