"""The list endpoint answers a page it built before from memory while the metadata store is
unchanged, and never once anything was written: by this thread, another thread, another
connection or another process."""
from __future__ import annotations

import io
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from botreports.core.store import Store

USAGE = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}


def _call(app, key, query="", method="GET", path="/api/v1/reports", body=None):
    data = json.dumps(body).encode() if body is not None else b""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "t",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(data),
               "wsgi.errors": io.StringIO(), "HTTP_X_API_KEY": key, "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_LENGTH": str(len(data)), "CONTENT_TYPE": "application/json"}
    seen = {}
    out = b"".join(app(environ, lambda status, headers, exc=None: seen.update(status=status, headers=headers)))
    return int(seen["status"].split()[0]), dict(seen["headers"]), out


def _ids(app, key, query=""):
    status, headers, body = _call(app, key, query)
    assert status == 200, body
    return [item["report_id"] for item in json.loads(body)], int(headers["X-Total-Count"])


@pytest.fixture
def api(reports):
    reports.settings.rate_limit = 0
    key = reports.create_api_key("org-acme", "admin")[0]
    return reports.wsgi_app(), key


def test_a_new_report_is_listed_at_once(api, reports):
    app, key = api
    assert _ids(app, key) == ([], 0)
    status, _, body = _call(app, key, method="POST", path="/api/v1/reports/generate", body=USAGE)
    assert status == 202
    assert _ids(app, key) == ([json.loads(body)["report_id"]], 1)


def test_a_write_by_another_connection_is_seen(api, reports):
    app, key = api
    _call(app, key, method="POST", path="/api/v1/reports/generate", body=USAGE)
    first, _ = _ids(app, key)
    other = Store(reports.store.path)  # another connection, as another process would have
    other.update_report(first[0], title="Renamed elsewhere")
    other.close()
    status, _, body = _call(app, key)
    assert json.loads(body)[0]["title"] == "Renamed elsewhere"


def test_a_write_by_another_thread_is_seen(api, reports):
    app, key = api
    _call(app, key, method="POST", path="/api/v1/reports/generate", body=USAGE)
    [report_id], _ = _ids(app, key)
    worker = threading.Thread(target=reports.store.delete_report, args=(report_id,))
    worker.start()
    worker.join()
    assert _ids(app, key) == ([], 0)


def test_a_page_in_memory_is_still_refused_to_a_role_without_the_right(api, reports):
    app, key = api
    _ids(app, key)  # the organisation's first page is now in memory
    from botreports import hookimpl

    class NoLists:
        @hookimpl
        def authorize(self, principal, action, resource, reports):
            return False if action == "report.list" else None

    plugin = NoLists()
    reports.add_plugin(plugin, "no-lists")
    try:
        status, _, body = _call(app, key)
        assert status == 403
    finally:
        reports.remove_plugin(plugin)


def test_another_organisations_page_is_never_served(api, reports):
    app, key = api
    _call(app, key, method="POST", path="/api/v1/reports/generate", body=USAGE)
    other = reports.create_api_key("org-other", "admin")[0]
    assert _ids(app, key)[1] == 1
    assert _ids(app, other) == ([], 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.tuples(st.just("generate"), st.sampled_from(["usage", "performance"])),
    st.tuples(st.just("delete"), st.integers(0, 5)),
    st.tuples(st.just("list"), st.sampled_from(["", "limit=2", "type=usage", "sort=type&order=asc",
                                                "limit=1&offset=1", "status=completed"]))), max_size=12))
def test_the_list_always_equals_the_store(api, reports, steps):
    app, key = api
    from botreports import Principal

    owner = Principal("k", "org-acme", {"admin"})
    for action, arg in steps:
        if action == "generate":
            reports.generate(owner, {**USAGE, "type": arg})
        elif action == "delete":
            items, _ = reports.list(owner, limit=100)
            if items:
                reports.delete(owner, items[arg % len(items)].id)
        else:
            params = dict(part.split("=") for part in arg.split("&") if part)
            items, total = reports.list(owner, **params)
            assert _ids(app, key, arg) == ([item.id for item in items], total)
