"""The OpenAPI 3.1 contract: it describes every route, and schemathesis, generating valid and
invalid requests from it against the live server, finds no 500 and no response that breaks it."""
import re
import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from botreports import Reports

from http_support import LiveServer, RecordingQueue

#: Bounded: a few examples per operation keeps the whole run within seconds.
MAX_EXAMPLES = 20


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    return value.encode("utf-8") if isinstance(value, str) else str(value).encode("utf-8")


@pytest.fixture(scope="module")
def live(tmp_path_factory, botreports_demo_db):
    data_dir = tmp_path_factory.mktemp("contract") / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    rk = Reports(data_dir=data_dir, load_entrypoints=False, queue=RecordingQueue(), rate_limit=0, max_unfinished=0)
    server = LiveServer(rk, threads=2)
    server.admin_key = rk.create_api_key("org-acme", "admin")[0]
    yield server
    server.stop()
    rk.close()


CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.response_headers_conformance]


@pytest.fixture(scope="module")
def operations(live):
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


# One test per operation and generation mode: valid requests, and requests that break the schema
# (which must be refused with a 4xx, never accepted, never a 500).
# (schemathesis leaves out the document's own URL, /openapi.json, which the test below checks.)
OPERATIONS = ["GET /api/v1/reports/health", "GET /api/v1/reports/openapi.json", "GET /api/v1/reports/catalog",
              "POST /api/v1/reports/generate",
              "GET /api/v1/reports", "GET /api/v1/reports/{report_id}/status", "GET /api/v1/reports/{report_id}",
              "DELETE /api/v1/reports/{report_id}", "GET /api/v1/reports/{report_id}/download",
              "POST /api/v1/reports/{report_id}/verify",
              "GET /api/v1/reports/schedule", "POST /api/v1/reports/schedule",
              "PUT /api/v1/reports/schedule/{schedule_id}", "DELETE /api/v1/reports/schedule/{schedule_id}",
              "GET /api/v1/reports/templates", "POST /api/v1/reports/templates",
              "GET /api/v1/reports/templates/{template_id}", "POST /api/v1/events"]


# Health and the document take no input and need no credentials: there is no invalid request to
# make of them.
NO_INPUT = ("GET /api/v1/reports/health", "GET /api/v1/reports/openapi.json")
CASES = [(label, mode) for label in OPERATIONS
         for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
         if not (label in NO_INPUT and mode is schemathesis.GenerationMode.NEGATIVE)]


@pytest.mark.parametrize("label,mode", CASES, ids=[f"{label}-{mode.value}" for label, mode in CASES])
def test_api_keeps_its_contract(operations, live, label, mode):
    assert set(operations) == set(OPERATIONS)
    operation = operations[label]
    extra = [checks.negative_data_rejection] if mode is schemathesis.GenerationMode.NEGATIVE else []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(base_url=live.url, headers={"X-API-Key": live.admin_key}, checks=CHECKS + extra)

    run()


def test_document_is_openapi_31_and_names_every_route(live):
    document = live.request("GET", "/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    routes = {(route.method, re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", route.rule))
              for route in live.reports.wsgi_app().routes}
    assert documented == routes
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (method, path)
            assert operation.get("summary"), (method, path)
            for name in re.findall(r"{(\w+)}", path):
                assert name in [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
    from botreports.core.schedules import SCHEDULE_KEYS
    assert set(SCHEDULE_KEYS) <= set(document["components"]["schemas"]["ScheduleRequest"]["properties"])
    generate = document["components"]["schemas"]["GenerateRequest"]
    assert set(generate["properties"]["type"]["enum"]) == set(live.reports.report_types)
    assert set(generate["properties"]["format"]["enum"]) == set(live.reports.exporters)
