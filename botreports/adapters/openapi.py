"""The OpenAPI 3.1 contract of the HTTP API, built from the live registries so the
enums of report types, formats and sections are the ones this server accepts.

The request schemas are never stricter than the server's validation (anything
they refuse, the server refuses with a 400 too); the facade adds the rules a
schema cannot say (end after start, a period no longer than the maximum).
"""
from __future__ import annotations

from typing import Any, Dict

from ..core.catalog import options_schema, section_request_schema
from ..core.models import REPORT_STATES
from ..core.params import DEFAULT_PERIOD, MAX_BOT_IDS, MAX_TITLE
from ..core.schedules import MAX_MESSAGE, MAX_SUBJECT
from ..core.scheduling import RELATIVE_PERIODS, SUPPORTED_YEARS
from ..core.security import ROLES

NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_TIME = {"type": ["string", "null"], "description": "ISO 8601 UTC instant, e.g. 2025-01-31T12:00:00Z"}
DIGITS = {"type": "string", "pattern": "^[0-9]+$"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: Dict[str, dict] = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _header(description: str, schema: dict = None) -> dict:
    return {"description": description, "required": True, "schema": schema or {"type": "string"}}


def _error(description: str, headers: Dict[str, dict] = None) -> dict:
    return _json(_ref("Error"), description, headers)


ERRORS = {
    "400": _error("Invalid parameters; `details` names each field and its problem"),
    "401": _error("Missing or invalid credentials",
                  {"WWW-Authenticate": _header("The authentication scheme to use")}),
    "403": _error("The caller's role does not allow this (code `insufficient_permissions`)"),
    "404": _error("No such object, or it belongs to another organisation"),
    "409": _error("The report is not completed, or its file is gone"),
    "410": _error("The report is past its `expires_at` (code `expired`); generate it again"),
    "413": _error("The request body is larger than the limit"),
    "429": _error("Too many requests for this key, or too many unfinished reports (code `rate_limited`)",
                  {"Retry-After": _header("Seconds to wait before retrying", DIGITS)}),
    "500": _error("Internal error; never a traceback"),
    "503": _error("The service cannot write to its storage now (code `storage_unavailable`, e.g. a full disk)",
                  {"Retry-After": _header("Seconds to wait before retrying", DIGITS)}),
}


def _errors(*codes: str) -> dict:
    return {code: ERRORS[code] for code in ("400", "401", "403", "429", "500", "503") + codes}


def _path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _body(schema: dict, description: str, media_type: str = "application/json") -> dict:
    return {"required": True, "description": description, "content": {media_type: {"schema": schema}}}


def catalog_schema() -> Dict[str, Any]:
    """``GET /api/v1/reports/catalog``: what may be asked for, each with its plugin and origin."""
    origin = {"plugin": NULLABLE_STRING,
              "origin": {"type": "string", "description": "builtin, the distribution (name version), "
                                                          "embedder, or organisation (a template of its own)"}}
    schema = {"type": "object", "description": "JSON Schema of the options (an object of them)"}
    described = {"title": {"type": "string"}, "description": {"type": "string"}}

    def listing(required, properties):
        return {"type": "array", "items": {"type": "object", "required": required + ["plugin", "origin"],
                                           "properties": {**properties, **origin}}}

    return {
        "type": "object", "required": ["report_types", "sections", "formats", "templates"],
        "properties": {
            "report_types": listing(["name", "default_sections"], {
                "name": {"type": "string"}, **described,
                "default_sections": {"type": "array", "items": {"type": "string"}},
                "raw_data_section": NULLABLE_STRING, "requires_sections": {"type": "boolean"}}),
            "sections": listing(["name", "options"], {"name": {"type": "string"}, **described, "options": schema}),
            "formats": listing(["format", "extension", "media_type", "options"], {
                "format": {"type": "string"}, "extension": {"type": "string"}, "media_type": {"type": "string"},
                **described, "options": schema}),
            "templates": listing(["template_id", "type", "format"], {
                "template_id": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string"},
                "format": {"type": "string"}, "builtin": {"type": "boolean"}}),
        },
    }


def schemas(reports) -> Dict[str, Any]:
    """The component schemas; enums come from the registries of ``reports``."""
    types = sorted(reports.report_types)
    formats = sorted(reports.exporters)
    sections = sorted(reports.sections)
    first_year, last_year = SUPPORTED_YEARS
    years = f"years {first_year} to {last_year}"
    report_definition = {
        "type": {"type": "string", "enum": types, "description": "Report type"},
        "format": {"type": "string", "enum": formats, "default": "pdf", "description": "Export format"},
        "start_date": {"type": "string", "description": f"First day (YYYY-MM-DD) or instant, in `timezone`; {years}. "
                                                        "Give it with end_date, or give period, or neither"},
        "end_date": {"type": "string", "description": f"Last day, inclusive (YYYY-MM-DD), or instant; {years}"},
        "period": {"type": "string", "enum": list(RELATIVE_PERIODS),
                   "description": "A relative period instead of start_date and end_date; without either, "
                                  f"the report covers {DEFAULT_PERIOD} (the 30 whole days before today in "
                                  "`timezone`)"},
        "timezone": {"type": "string", "default": "UTC", "description": "IANA timezone, e.g. America/New_York"},
        "bot_id": {"oneOf": [{"type": "string"},
                             {"type": "array", "items": {"type": "string"}, "maxItems": MAX_BOT_IDS}],
                   "description": "Only this bot, or these bots"},
        "channel": {"type": "string", "description": "Only this channel"},
        "include_charts": {"type": "boolean", "default": True},
        "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE,
                  "description": "Without control or bidirectional-override characters"},
        "sections": {"type": "array", "minItems": 1, "maxItems": reports.settings.max_sections,
                     "items": _ref("SectionRequest"),
                     "description": "Sections of a custom report (or to replace a type's defaults)"},
        "template_id": {"type": "string", "description": "Start from this template"},
        "options": {"type": "object", "description": "Exporter options of the chosen format (an option of "
                                                     "another format is refused)",
                    "anyOf": [_ref(f"FormatOptions.{name}") for name in formats]},
    }
    status = {
        "report_id": {"type": "string", "examples": ["rpt-3kq9Zb1x"]},
        "state": {"type": "string", "enum": list(REPORT_STATES)},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100,
                     "description": "Percent done; grows within an attempt and starts again from 0 when a retry starts"},
        "stage": {"type": "string"},
        "error": NULLABLE_STRING,
        "created_at": NULLABLE_TIME,
        "started_at": NULLABLE_TIME,
        "completed_at": NULLABLE_TIME,
        "sha256": {**NULLABLE_STRING, "description": "SHA-256 of the report's file (hex), once completed; the "
                                                     "file cannot hold its own hash"},
    }
    difference = {
        "section": NULLABLE_STRING, "section_title": NULLABLE_STRING,
        "block": {"type": "string", "description": "KPIs, a table's or chart's title, text, or section"},
        "row": {"description": "The row (a day, a bot: the table's first cell) or the chart's category"},
        "metric": {"description": "The KPI's name, the column's label or the chart series"},
        "field": {**NULLABLE_STRING, "description": "Of a KPI: value, previous, change or unavailable"},
        "old": {"description": "The value in the report as made (a raw table: its rows and digest)"},
        "new": {"description": "The value computed now"},
        "what": {"type": "string", "description": "The difference in words"},
    }
    then_now = {"type": "object", "properties": {"then": {}, "now": {}}}
    return {
        "Error": {
            "type": "object", "required": ["error", "message", "details"],
            "properties": {
                "error": {"type": "string", "description": "Machine-readable code, e.g. invalid_parameters"},
                "message": {"type": "string", "description": "A human sentence"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
        "SectionRequest": {
            "oneOf": [_ref(f"Section.{name}") for name in sections],
            "description": "A catalog section (`type`) and its options",
        },
        **{f"Section.{name}": section_request_schema(name, reports.sections[name]) for name in sections},
        **{f"FormatOptions.{name}": {**options_schema(reports.exporters[name].options),
                                     "description": f"Options of the {name} format"} for name in formats},
        "Catalog": catalog_schema(),
        "GenerateRequest": {"type": "object", "properties": report_definition, "additionalProperties": False},
        "Status": {"type": "object", "required": list(status), "properties": status},
        "Report": {
            "type": "object", "required": list(status) + ["type", "title", "format"],
            "properties": {
                **status,
                "type": {"type": "string"}, "title": {"type": "string"}, "name": {"type": "string"},
                "format": {"type": "string"},
                "start_date": {"type": ["string", "null"], "format": "date",
                               "description": "First day of the period in `timezone` (YYYY-MM-DD)"},
                "end_date": {"type": ["string", "null"], "format": "date",
                             "description": "Last day of the period in `timezone`, inclusive (YYYY-MM-DD)"},
                "period_start": {**NULLABLE_TIME, "description": "The instant the period begins (UTC)"},
                "period_end": {**NULLABLE_TIME,
                               "description": "The instant the period ends, exclusive (UTC)"},
                "timezone": NULLABLE_STRING,
                "parameters": {"type": "object",
                               "description": "The validated request as stored and run: its dates are the "
                                              "UTC instants of period_start and period_end"},
                "organization_id": NULLABLE_STRING, "owner_id": {"type": "string"},
                "template_id": NULLABLE_STRING, "template_version": {"type": ["integer", "null"]},
                "schedule_id": NULLABLE_STRING, "expires_at": NULLABLE_TIME,
                "file_name": NULLABLE_STRING, "file_size": {"type": ["integer", "null"]},
                "media_type": NULLABLE_STRING, "sha256": NULLABLE_STRING,
                "attempts": {"type": "integer"},
            },
        },
        "ScheduleRequest": {
            "type": "object",
            "properties": {
                **{k: v for k, v in report_definition.items() if k not in ("start_date", "end_date", "period")},
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "cron": {"type": "string", "description": "5-field cron expression, e.g. '0 8 * * 1'"},
                "period": {"type": "string", "enum": list(RELATIVE_PERIODS), "default": "previous_day"},
                "recipients": {"type": "array", "items": {"type": "string"}, "description": "E-mail addresses"},
                "webhooks": {"type": "array", "items": {"type": "string", "format": "uri"},
                             "description": "http(s) URLs that receive a JSON notice with a signed download "
                                            "link; private, loopback and link-local addresses are refused"},
                "subject": {"type": "string", "maxLength": MAX_SUBJECT,
                            "description": "E-mail subject (one line; default: the report's title and period)"},
                "message": {"type": "string", "maxLength": MAX_MESSAGE, "description": "E-mail body text"},
                "enabled": {"type": "boolean", "default": True},
            },
            "additionalProperties": False,
        },
        "Schedule": {
            "type": "object", "required": ["schedule_id", "cron", "timezone", "format", "enabled"],
            "properties": {
                "schedule_id": {"type": "string"}, "name": {"type": "string"}, "type": NULLABLE_STRING,
                "template_id": NULLABLE_STRING, "format": {"type": "string"}, "cron": {"type": "string"},
                "timezone": {"type": "string"}, "period": {"type": "string"},
                "recipients": {"type": "array", "items": {"type": "string"}}, "enabled": {"type": "boolean"},
                "definition": {"type": "object"}, "organization_id": NULLABLE_STRING,
                "owner_id": NULLABLE_STRING, "created_at": NULLABLE_TIME, "updated_at": NULLABLE_TIME,
                "next_run_at": NULLABLE_TIME,
                "last_runs": {"type": "array", "items": _ref("ScheduleRun"), "description": "Newest first"},
            },
        },
        "ScheduleRun": {
            "type": "object", "required": ["fire_time", "state", "report_id"],
            "properties": {
                "fire_time": {"type": "string"},
                "state": {"type": "string", "description": "The run's outcome: skipped, denied or failed before "
                                                           "a report was made; then its report's state (pending, "
                                                           "running, completed, failed, expired)"},
                "report_id": NULLABLE_STRING, "report_state": NULLABLE_STRING,
                "detail": {**NULLABLE_STRING, "description": "Why a run was skipped or denied, or its report failed"},
                "delivery": {
                    "type": ["object", "null"],
                    "description": "Delivery attempts so far: recipients delivered, recipients whose latest "
                                   "attempt failed or was refused, and each recipient's latest state",
                    "properties": {
                        "delivered": {"type": "integer"}, "failed": {"type": "integer"},
                        "recipients": {"type": "array", "items": {"type": "object", "properties": {
                            "channel": {"type": "string"}, "recipient": {"type": "string"},
                            "state": {"type": "string", "enum": ["sent", "failed", "refused"]},
                            "attempts": {"type": "integer"}, "detail": NULLABLE_STRING}}},
                    },
                },
            },
        },
        "TemplateRequest": {
            "type": "object", "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": {"type": "string", "maxLength": 2000},
                "type": {"type": "string", "enum": types, "default": "custom"},
                "sections": report_definition["sections"],
                "defaults": {"type": "object", "description": "Default request fields (timezone, bot_id, ...)"},
                "format": report_definition["format"],
                "intro_markdown": {"type": "string", "maxLength": 20000,
                                   "description": "Markdown shown under the title (sanitized)"},
                "css": {"type": "string", "maxLength": 20000,
                        "description": "A restricted stylesheet: colours, bundled fonts, spacing"},
                "layout": {"type": "string", "maxLength": 50000,
                           "description": "A Jinja2 layout arranging the sections (sandboxed; docs/templates.md)"},
                "logo": {"type": "string", "description": "A PNG or SVG data: URL of at most 100 KB"},
                "presentation": {"type": "object", "description": "intro_markdown, css, layout and logo, nested"},
            },
            "additionalProperties": False,
        },
        "Template": {
            "type": "object", "required": ["template_id", "name", "description", "type"],
            "properties": {
                "template_id": {"type": "string"}, "name": {"type": "string"},
                "description": {"type": "string"}, "type": {"type": "string"},
                "sections": {"type": "array"}, "defaults": {"type": "object"}, "format": {"type": "string"},
                "builtin": {"type": "boolean"}, "organization_id": NULLABLE_STRING,
                "owner_id": NULLABLE_STRING, "version": {"type": "integer"}, "presentation": {"type": "object"},
                "created_at": NULLABLE_TIME, "updated_at": NULLABLE_TIME,
            },
        },
        "Verification": {
            "type": "object",
            "required": ["report_id", "verdict", "unchanged", "numbers_compared", "difference_count", "differences"],
            "properties": {
                "report_id": {"type": "string"},
                "verdict": {"type": "string", "enum": ["unchanged", "changed"]},
                "unchanged": {"type": "boolean", "description": "Every number of the report is still the same"},
                "numbers_compared": {"type": "integer"},
                "streamed_tables_compared": {"type": "integer",
                                             "description": "Raw tables compared by the digest of their rows"},
                "difference_count": {"type": "integer"},
                "differences": {"type": "array", "items": {"type": "object", "properties": difference},
                                "description": "The first 1,000 differences"},
                "data_changed": {"type": ["boolean", "null"],
                                 "description": "Whether the data source's watermark moved (null: no watermark)"},
                "data_watermark": then_now, "metric_definitions_version": then_now, "code_version": then_now,
                "computed_as_of": NULLABLE_STRING, "sha256": NULLABLE_STRING, "verified_at": {"type": "string"},
                "notes": {"type": "array", "items": {"type": "string"}},
            },
        },
        "DownloadLink": {
            "type": "object", "required": ["url", "expires_at"],
            "properties": {"url": {"type": "string"}, "expires_at": {"type": "string"}},
        },
        "IngestResult": {
            "type": "object", "required": ["inserted", "inserted_total", "errors", "error_count"],
            "properties": {
                "inserted": {"type": "object", "additionalProperties": {"type": "integer"}},
                "inserted_total": {"type": "integer"},
                "errors": {"type": "array", "items": {"type": "object"}},
                "error_count": {"type": "integer"},
            },
        },
        "Health": {
            "type": "object", "required": ["status"],
            "properties": {"status": {"type": "string"}, "version": {"type": "string"}, "queue": {"type": "string"}},
        },
    }


def openapi_document(reports, base: str = "/api/v1", server_url: str = "/") -> Dict[str, Any]:
    """The whole OpenAPI 3.1 document of the API served under ``{base}/reports``, its paths
    relative to ``server_url`` (where a host mounted the app, ``/`` at the server's root)."""
    from .. import __version__

    r = f"{base}/reports"
    report_id = _path_param("report_id", "Report id (rpt-…)")
    paging = [_query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size"),
              _query("offset", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0}, "Items to skip")]
    list_headers = {"X-Total-Count": _header("Items matching the filters", DIGITS),
                    "Link": _header("RFC 8288 links to the first, previous, next and last pages")}
    location = {"Location": _header("Where the new object (or the report's status) is")}
    exporter_types = sorted({e.media_type for e in reports.exporters.values()} - {"application/json"})
    download_content = {media: {"schema": {"type": "string", "format": "binary"}} for media in exporter_types}
    download_content["application/json"] = {"schema": {"anyOf": [_ref("DownloadLink"), {"type": "object"}]}}
    public = []

    paths = {
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "security": public, "tags": ["meta"],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document")}}},
        f"{r}/openapi.json": {"get": {
            "operationId": "openapiUnderReports", "summary": "This document, under the API's own path",
            "security": public, "tags": ["meta"],
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document")}}},
        f"{r}/health": {"get": {
            "operationId": "health", "summary": "Liveness, without authentication", "security": public,
            "description": "Query parameters are ignored (monitors add cache-busters).",
            "tags": ["meta"], "responses": {"200": _json(_ref("Health"), "The service is up")}}},
        f"{r}/catalog": {"get": {
            "operationId": "getCatalog", "summary": "Report types, sections, formats and templates", "tags": ["meta"],
            "description": "Requires report_viewer. Each with its options as JSON Schema (the same schemas as "
                           "`Section.*` and `FormatOptions.*` here), its description and the plugin it came from.",
            "responses": {"200": _json(_ref("Catalog"), "The catalog"), **_errors()}}},
        f"{r}/generate": {"post": {
            "operationId": "generateReport", "summary": "Generate a new report (asynchronously)",
            "tags": ["reports"],
            "description": "Requires report_creator. Answers at once; poll the status. A request with neither "
                           f"start_date/end_date nor period covers the period {DEFAULT_PERIOD}.",
            "requestBody": _body(_ref("GenerateRequest"), "The report definition"),
            "responses": {"202": _json(_ref("Status"), "Generation started", location), **_errors("404", "413")}}},
        r: {"get": {
            "operationId": "listReports", "summary": "List the organisation's reports", "tags": ["reports"],
            "parameters": [
                _query("type", {"type": "string", "enum": sorted(reports.report_types)}, "Only this report type"),
                _query("status", {"type": "string", "enum": list(REPORT_STATES)}, "Only reports in this state"),
                _query("created_after", {"type": "string"}, "Created after this ISO 8601 date or instant"),
                _query("created_before", {"type": "string"},
                       "Created before this ISO 8601 date or instant; must be after created_after"),
                *paging,
                _query("sort", {"type": "string", "enum": ["created_at", "name", "type"], "default": "created_at"},
                       "Sort field"),
                _query("order", {"type": "string", "enum": ["asc", "desc"], "default": "desc"}, "Sort order"),
            ],
            "responses": {"200": _json({"type": "array", "items": _ref("Report")}, "One page of reports",
                                       list_headers), **_errors()}}},
        f"{r}/{{report_id}}/status": {"get": {
            "operationId": "reportStatus", "summary": "Get report generation status", "tags": ["reports"],
            "parameters": [report_id],
            "responses": {"200": _json(_ref("Status"), "The status"), **_errors("404")}}},
        f"{r}/{{report_id}}": {
            "get": {"operationId": "getReport", "summary": "Get report metadata", "tags": ["reports"],
                    "parameters": [report_id],
                    "responses": {"200": _json(_ref("Report"), "The report"), **_errors("404")}},
            "delete": {"operationId": "deleteReport", "summary": "Delete a report and its file",
                       "tags": ["reports"], "parameters": [report_id],
                       "responses": {"204": {"description": "Deleted"}, **_errors("404")}},
        },
        f"{r}/{{report_id}}/download": {"get": {
            "operationId": "downloadReport", "summary": "Download the report file, or a signed link to it",
            "tags": ["reports"],
            "description": "With `as=link`: `{url, expires_at}`, a signed URL that downloads without "
                           "credentials until it expires. With `expires` and `signature` (such a URL): "
                           "no other credentials are needed.",
            "security": [{"ApiKeyHeader": []}, {"Bearer": []}, {"ApiKeyQuery": []}, {}],
            "parameters": [
                report_id,
                _query("as", {"type": "string", "enum": ["file", "link"], "default": "file"},
                       "file: the bytes; link: a signed URL"),
                _query("expires", {"type": "string"}, "Signed link: expiry (Unix seconds)"),
                _query("signature", {"type": "string"}, "Signed link: HMAC signature"),
            ],
            "responses": {
                "200": {"description": "The file (RFC 6266 Content-Disposition, ETag), or the link",
                        "content": download_content,
                        "headers": {
                            "Repr-Digest": {"description": "The file's SHA-256 (RFC 9530): sha-256=:base64:",
                                            "required": False, "schema": {"type": "string"}},
                            "X-Checksum-SHA256": {"description": "The file's SHA-256 in hex, as `sha256` of the "
                                                                 "report's metadata", "required": False,
                                                  "schema": {"type": "string"}}}},
                "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                **_errors("404", "409", "410"),
            }}},
        f"{r}/{{report_id}}/verify": {"post": {
            "operationId": "verifyReport", "summary": "Compute the report again and compare every number",
            "tags": ["reports"],
            "description": "Whoever may read the report may verify it (report_viewer). The report is computed "
                           "again from its parameters, as of the instant it was made, over the data as it is "
                           "now, and compared with the document kept when it was made: `unchanged`, or every "
                           "number that differs (section, block, row, metric, old and new value); a raw table "
                           "is compared by the digest of its rows. No request body. Runs while the request "
                           "waits (as long as generating the report).",
            "parameters": [report_id],
            "responses": {"200": _json(_ref("Verification"), "The comparison"), **_errors("404", "409")}}},
        f"{r}/schedule": {
            "get": {"operationId": "listSchedules", "summary": "List scheduled reports", "tags": ["schedules"],
                    "parameters": paging,
                    "responses": {"200": _json({"type": "array", "items": _ref("Schedule")}, "One page of schedules",
                                               list_headers), **_errors()}},
            "post": {"operationId": "createSchedule", "summary": "Create a scheduled report", "tags": ["schedules"],
                     "requestBody": _body(_ref("ScheduleRequest"), "Cron, timezone, period and report definition"),
                     "responses": {"201": _json(_ref("Schedule"), "Created", location), **_errors("404", "413")}},
        },
        f"{r}/schedule/{{schedule_id}}": {
            "put": {"operationId": "updateSchedule", "summary": "Update a schedule (fields given replace theirs)",
                    "tags": ["schedules"], "parameters": [_path_param("schedule_id", "Schedule id (sch-…)")],
                    "requestBody": _body(_ref("ScheduleRequest"), "Fields to change"),
                    "responses": {"200": _json(_ref("Schedule"), "Updated"), **_errors("404", "413")}},
            "delete": {"operationId": "deleteSchedule", "summary": "Delete a schedule", "tags": ["schedules"],
                       "parameters": [_path_param("schedule_id", "Schedule id (sch-…)")],
                       "responses": {"204": {"description": "Deleted"}, **_errors("404")}},
        },
        f"{r}/templates": {
            "get": {"operationId": "listTemplates", "summary": "List available templates", "tags": ["templates"],
                    "parameters": paging,
                    "responses": {"200": _json({"type": "array", "items": _ref("Template")},
                                               "One page of the built-in and the organisation's templates",
                                               list_headers), **_errors()}},
            "post": {"operationId": "createTemplate", "summary": "Create a custom template", "tags": ["templates"],
                     "requestBody": _body(_ref("TemplateRequest"), "Name, description and report definition"),
                     "responses": {"201": _json(_ref("Template"), "Created", location), **_errors("404", "413")}},
        },
        f"{r}/templates/{{template_id}}": {"get": {
            "operationId": "getTemplate", "summary": "Get template details", "tags": ["templates"],
            "parameters": [_path_param("template_id", "Template id (tpl-…)")],
            "responses": {"200": _json(_ref("Template"), "The template"), **_errors("404")}}},
        f"{base}/events": {"post": {
            "operationId": "ingestEvents", "summary": "Load analytics events (standalone mode; admin)",
            "tags": ["events"],
            "requestBody": _body({"type": "string"}, "One JSON object a line, each with its `table`",
                                 "application/x-ndjson"),
            "responses": {"200": _json(_ref("IngestResult"), "Events written"), **_errors("413")}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "botreports Reports API", "version": __version__,
            "description": "Generate, manage, schedule and export analytics reports about chat bots. "
                           "Roles, lowest first: " + " < ".join(ROLES) + ". Every object belongs to an "
                           "organisation; another organisation's objects answer 404.",
        },
        "servers": [{"url": server_url}],
        "security": [{"ApiKeyHeader": []}, {"Bearer": []}, {"ApiKeyQuery": []}],
        "tags": [{"name": n} for n in ("reports", "schedules", "templates", "events", "meta")],
        "paths": paths,
        "components": {
            "schemas": schemas(reports),
            "securitySchemes": {
                "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "HS256 tokens with botserver's claims (sub, roles, organization_id)"},
                "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key",
                                "description": "For chat scripts that cannot send headers"},
            },
        },
    }
