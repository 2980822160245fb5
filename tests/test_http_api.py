"""The HTTP API over real HTTP (waitress on 127.0.0.1): the seed's examples end to end,
bodies and status codes, downloads and signed links, lists, limits and the request log."""
import datetime as dt
import hashlib
import io
import json
import logging
import re
import shutil
import sqlite3
import time
from urllib.parse import unquote, urlsplit, parse_qs
from zoneinfo import ZoneInfo

import pytest

from botreports import Principal, Reports
from botreports.core.security import signed_query
from botreports.core.service import download_resource

from http_support import BASE, LiveServer, RecordingQueue, ThreadQueue
from independent import usage

SEED_USAGE = {"type": "usage", "start_date": "2025-01-01", "end_date": "2025-01-31", "format": "pdf",
              "include_charts": True}
SEED_SCHEDULE = {"type": "conversations", "format": "pdf", "cron": "0 8 * * 1",
                 "recipients": ["manager@company.com"], "timezone": "America/New_York"}
SEED_CUSTOM = {"type": "custom", "title": "Monthly Executive Summary",
               "sections": [{"type": "usage_summary"}, {"type": "top_conversations"},
                            {"type": "satisfaction_scores"}], "format": "pdf",
               "start_date": "2025-01-01", "end_date": "2025-01-31"}
JSON_USAGE = {"type": "usage", "start_date": "2025-01-20", "end_date": "2025-01-31", "format": "json"}


def _make(tmp_path, demo_db, queue=None, **settings):
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    shutil.copy(demo_db, data_dir / "analytics.db")
    queue = queue if queue is not None else ThreadQueue()
    rk = Reports(data_dir=data_dir, load_entrypoints=False, queue=queue, **settings)
    queue.start()
    return rk


@pytest.fixture
def api(tmp_path, botreports_demo_db):
    """A served ``Reports`` whose reports run on a background thread."""
    rk = _make(tmp_path, botreports_demo_db)
    server = LiveServer(rk)
    yield server
    server.stop()
    rk.close()


@pytest.fixture
def pending_api(tmp_path, botreports_demo_db):
    """A served ``Reports`` whose queue never runs anything (reports stay pending)."""
    rk = _make(tmp_path, botreports_demo_db, queue=RecordingQueue(), max_unfinished=0)
    server = LiveServer(rk)
    yield server
    server.stop()
    rk.close()


def key_of(server, role="admin", org="org-acme"):
    return server.reports.create_api_key(org, role)[0]


def require(server, kind, *names):
    registry = getattr(server.reports, kind)
    missing = [n for n in names if n not in registry]
    if missing:
        pytest.skip(f"{kind} not registered in this build: {', '.join(missing)}")


def kpis(document):
    for section in document["sections"]:
        for block in section["blocks"]:
            if block["kind"] == "kpis":
                return {item["name"]: item["value"] for item in block["items"]}
    raise AssertionError("no KPI block")


# -- the seed's examples ----------------------------------------------------------


def generate_and_wait(server, key, body):
    response = server.request("POST", f"{BASE}/generate", key, json=body)
    assert response.status_code == 202, response.text
    started = response.json()
    # the truth at the moment of answering: a fast worker may already have claimed it
    assert started["state"] in ("pending", "running", "completed") and started["report_id"].startswith("rpt-")
    assert started["state"] != "pending" or (started["progress"], started["started_at"]) == (0, None)
    assert response.headers["Location"] == f"{BASE}/{started['report_id']}/status"
    status = server.wait_for(started["report_id"], key)
    assert status["state"] == "completed", status
    assert status["progress_seen"] == sorted(status["progress_seen"])  # progress only grows
    assert status["progress"] == 100 and status["completed_at"] >= status["started_at"] >= status["created_at"]
    return started["report_id"]


def test_seed_usage_report_walk_in_json_matches_independent_numbers(api, botreports_demo_db):
    key = key_of(api, "report_creator")
    body = {**SEED_USAGE, "format": "json"}
    report_id = generate_and_wait(api, key, body)
    meta = api.request("GET", f"{BASE}/{report_id}", key).json()
    assert (meta["type"], meta["format"], meta["organization_id"]) == ("usage", "json", "org-acme")
    assert meta["parameters"]["include_charts"] is True
    response = api.request("GET", f"{BASE}/{report_id}/download", key)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    expected = usage(botreports_demo_db, "2025-01-01", "2025-01-31", "UTC", org="org-acme")[0]
    got = kpis(document)
    for name in ("conversations", "messages_in", "messages_out", "active_users"):
        assert got[name] == expected[name], name
    assert expected["messages_in"] > 0


def test_seed_usage_report_as_pdf(api, botreports_demo_db):
    require(api, "exporters", "pdf")
    from pdfminer.high_level import extract_text

    key = key_of(api, "report_creator")
    report_id = generate_and_wait(api, key, SEED_USAGE)
    response = api.request("GET", f"{BASE}/{report_id}/download", key)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pdf"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert response.content.startswith(b"%PDF-")
    text = extract_text(io.BytesIO(response.content))
    assert "Usage" in text
    digits = re.sub(r"(?<=\d)[,\u202f\u00a0 .](?=\d{3}\b)", "", text)
    expected = usage(botreports_demo_db, "2025-01-01", "2025-01-31", "UTC", org="org-acme")[0]
    assert str(expected["messages_in"]) in digits


@pytest.mark.parametrize("variant", ["seed", "json"])
def test_seed_weekly_schedule(api, variant):
    body = dict(SEED_SCHEDULE)
    if variant == "seed":
        require(api, "report_types", "conversations")
        require(api, "exporters", "pdf")
    else:
        body.update(type="usage", format="json")
    key = key_of(api, "report_admin")
    response = api.request("POST", f"{BASE}/schedule", key, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    schedule_id = created["schedule_id"]
    assert schedule_id.startswith("sch-") and response.headers["Location"] == f"{BASE}/schedule/{schedule_id}"
    assert (created["cron"], created["timezone"], created["recipients"]) == (
        "0 8 * * 1", "America/New_York", ["manager@company.com"])
    assert (created["type"], created["format"], created["enabled"]) == (body["type"], body["format"], True)

    listed = api.request("GET", f"{BASE}/schedule", key)
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "1"
    assert [s["schedule_id"] for s in listed.json()] == [schedule_id]

    updated = api.request("PUT", f"{BASE}/schedule/{schedule_id}", key, json={"enabled": False, "cron": "30 9 * * 5"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["enabled"], updated.json()["cron"]) == (False, "30 9 * * 5")
    assert updated.json()["recipients"] == ["manager@company.com"]  # fields not given are kept

    bad = api.request("PUT", f"{BASE}/schedule/{schedule_id}", key, json={"cron": "every monday"})
    assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "cron"

    assert api.request("DELETE", f"{BASE}/schedule/{schedule_id}", key).status_code == 204
    assert api.request("PUT", f"{BASE}/schedule/{schedule_id}", key, json={"enabled": True}).status_code == 404
    assert api.request("GET", f"{BASE}/schedule", key).json() == []


def test_seed_list_templates_and_create_one(api):
    admin, viewer = key_of(api, "report_admin"), key_of(api, "report_viewer")
    before = api.request("GET", f"{BASE}/templates", viewer)
    assert before.status_code == 200 and isinstance(before.json(), list)
    assert before.headers["X-Total-Count"] == str(len(before.json()))
    for template in before.json():  # what a bot's FOR EACH reads
        assert isinstance(template["name"], str) and isinstance(template["description"], str)

    body = {"name": "Executive summary", "description": "KPIs for the board", "type": "usage", "format": "json"}
    created = api.request("POST", f"{BASE}/templates", admin, json=body)
    assert created.status_code == 201, created.text
    template_id = created.json()["template_id"]
    assert template_id.startswith("tpl-") and created.headers["Location"] == f"{BASE}/templates/{template_id}"

    after = api.request("GET", f"{BASE}/templates", viewer).json()
    assert len(after) == len(before.json()) + 1
    assert [t for t in after if t["template_id"] == template_id][0]["name"] == "Executive summary"
    shown = api.request("GET", f"{BASE}/templates/{template_id}", viewer).json()
    assert (shown["name"], shown["description"], shown["builtin"]) == (
        "Executive summary", "KPIs for the board", False)
    # another organisation neither lists nor reads it
    other = key_of(api, "admin", "org-globex")
    assert template_id not in [t["template_id"] for t in api.request("GET", f"{BASE}/templates", other).json()]
    assert api.request("GET", f"{BASE}/templates/{template_id}", other).status_code == 404


@pytest.mark.parametrize("fmt", ["json", "pdf"])
def test_seed_custom_report_with_three_sections(api, fmt):
    require(api, "sections", "usage_summary", "top_conversations", "satisfaction_scores")
    require(api, "exporters", fmt)
    key = key_of(api, "report_creator")
    report_id = generate_and_wait(api, key, {**SEED_CUSTOM, "format": fmt})
    meta = api.request("GET", f"{BASE}/{report_id}", key).json()
    assert meta["title"] == "Monthly Executive Summary"
    assert [s["type"] for s in meta["parameters"]["sections"]] == [
        "usage_summary", "top_conversations", "satisfaction_scores"]
    response = api.request("GET", f"{BASE}/{report_id}/download", key)
    assert response.status_code == 200
    if fmt == "json":
        document = response.json()
        assert [s["name"] for s in document["sections"]] == [
            "usage_summary", "top_conversations", "satisfaction_scores"]
    else:
        assert response.content.startswith(b"%PDF-")


# -- bodies and codes ----------------------------------------------------------------


def test_bad_requests_answer_400_naming_the_field(pending_api):
    key = key_of(pending_api)
    cases = [
        (dict(data=b"{not json", headers={"Content-Type": "application/json"}), "body"),
        (dict(data=b'{"type": "usage"}', headers={"Content-Type": "text/plain"}), "Content-Type"),
        (dict(data=b"[1, 2]", headers={"Content-Type": "application/json"}), "body"),
        (dict(data=b'{"type": NaN}', headers={"Content-Type": "application/json"}), "body"),
        (dict(data=b"\xff\xfe{}", headers={"Content-Type": "application/json"}), "body"),
        (dict(json={**JSON_USAGE, "colour": "red"}), "colour"),
        (dict(json={**JSON_USAGE, "format": "docx"}), "format"),
        (dict(json={**JSON_USAGE, "include_charts": "yes"}), "include_charts"),
        (dict(json={**JSON_USAGE, "end_date": "2025-13-45"}), "end_date"),
    ]
    for kwargs, field in cases:
        response = pending_api.request("POST", f"{BASE}/generate", key, **kwargs)
        assert response.status_code == 400, (kwargs, response.text)
        error = response.json()
        assert set(error) == {"error", "message", "details"} and error["error"] == "invalid_parameters"
        assert field in [d["field"] for d in error["details"]], (field, error)
        assert "Traceback" not in response.text
    for query, field in [("limit=101", "limit"), ("limit=0", "limit"), ("offset=-1", "offset"),
                         ("sort=owner", "sort"), ("order=up", "order"), ("status=done", "status"),
                         ("created_after=yesterday", "created_after"), ("colour=red", "colour"),
                         ("limit=5&limit=6", "limit")]:
        response = pending_api.request("GET", f"{BASE}?{query}", key)
        assert response.status_code == 400, query
        assert field in [d["field"] for d in response.json()["details"]], query
    response = pending_api.request("GET", f"{BASE}/rpt-x/status?verbose=1", key)
    assert response.status_code == 400 and response.json()["details"][0]["field"] == "verbose"


def test_deeply_nested_json_is_a_400_not_a_recursion_error(pending_api):
    key = key_of(pending_api)
    deep = "[" * 100000 + "]" * 100000
    schedule_id = pending_api.request("POST", f"{BASE}/schedule", key, json=SEED_SCHEDULE).json()["schedule_id"]
    json_type = {"Content-Type": "application/json"}
    for method, path in [("POST", f"{BASE}/generate"), ("PUT", f"{BASE}/schedule/{schedule_id}"),
                         ("POST", f"{BASE}/templates")]:
        for body in (deep, '{"type": "usage", "options": {"a": ' + "[" * 100 + "]" * 100 + "}}"):
            response = pending_api.request(method, path, key, data=body, headers=json_type)
            assert response.status_code == 400, (method, path, response.text)
            (detail,) = response.json()["details"]
            assert detail["field"] == "body" and "is not valid JSON: nested too deeply" in detail["problem"]
    events = json.dumps({"table": "bots", "id": "b-1", "name": "b", "created_at": "2025-01-01T00:00:00Z"})
    response = pending_api.request("POST", "/api/v1/events", key, data=f"{events}\n{deep}\n",
                                   headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 400, response.text  # the bad line's batch is left out whole
    assert response.json()["details"] == [{"field": "line 2",
                                           "problem": "is not valid JSON: nested too deeply (at most 64 levels)"}]


def test_lone_surrogates_are_a_400_naming_the_field(pending_api):
    key = key_of(pending_api)
    json_type = {"Content-Type": "application/json"}
    cases = [
        (f"{BASE}/generate", '{"type": "usage", "format": "json", "title": "\\ud800"}', "title"),
        (f"{BASE}/generate", '{"type": "custom", "sections": [{"type": "usage_summary", "x": "\\udfff"}]}',
         "sections[0].x"),
        (f"{BASE}/templates", '{"type": "usage", "name": "\\ud800"}', "name"),
        (f"{BASE}/schedule", '{"type": "usage", "cron": "0 8 * * 1", "title": "\\ud800"}', "title"),
        (f"{BASE}/schedule", '{"type": "usage", "cron": "0 8 * * 1", "name": "x\\ud800"}', "name"),
    ]
    for path, body, field in cases:
        response = pending_api.request("POST", path, key, data=body, headers=json_type)
        assert response.status_code == 400, (path, body, response.text)
        problems = {d["field"]: d["problem"] for d in response.json()["details"]}
        assert "must be valid Unicode text" in problems[field], (path, problems)
    event = {"table": "messages", "id": "m-s", "conversation_id": "c", "bot_id": "bot-001", "channel": "web",
             "user_id": "\ud800", "direction": "in", "created_at": "2025-01-05T10:00:00Z"}
    response = pending_api.request("POST", "/api/v1/events", key, data=json.dumps(event) + "\n",
                                   headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 400
    assert response.json()["details"][0]["problem"].startswith("user_id must be valid Unicode text")
    assert pending_api.reports.store.db.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


def test_dates_out_of_the_supported_range_are_a_400(pending_api):
    key = key_of(pending_api)
    for start, end, fields in [("9999-12-31", "9999-12-31", {"start_date", "end_date"}),
                               ("0001-01-01T00:00:00+14:00", "2025-01-31", {"start_date"}),
                               ("0001-01-01", "0001-01-02", {"start_date", "end_date"})]:
        response = pending_api.request("POST", f"{BASE}/generate", key,
                                       json={**JSON_USAGE, "start_date": start, "end_date": end})
        assert response.status_code == 400, response.text
        problems = {d["field"]: d["problem"] for d in response.json()["details"]}
        assert set(problems) == fields
        assert all("dates must be from 1970-01-01 to 9998-12-31" in p for p in problems.values())
    for query, field in [("created_after=9999-12-31T23:59:59-12:00", "created_after"),
                         ("created_before=0001-01-01T00:00:00%2B14:00", "created_before")]:
        response = pending_api.request("GET", f"{BASE}?{query}", key)
        assert response.status_code == 400, response.text
        assert [d["field"] for d in response.json()["details"]] == [field]
    assert pending_api.reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 0


def test_seed_custom_report_without_dates_covers_the_last_30_days(pending_api):
    key = key_of(pending_api, "report_creator")
    seed = {"type": "custom", "title": "Executive Summary", "format": "pdf",
            "sections": [{"type": "usage_summary"}, {"type": "top_conversations"}, {"type": "satisfaction_scores"}]}
    response = pending_api.request("POST", f"{BASE}/generate", key, json=seed)
    assert response.status_code == 202, response.text
    parameters = pending_api.request("GET", f"{BASE}/{response.json()['report_id']}", key).json()["parameters"]
    today = dt.datetime.now(dt.timezone.utc).date()
    start = dt.datetime.fromisoformat(parameters["start_date"].replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(parameters["end_date"].replace("Z", "+00:00"))
    # (today may turn over between the request and this line)
    assert end.date() in (today, today - dt.timedelta(days=1)) and end - start == dt.timedelta(days=30)
    one_date = pending_api.request("POST", f"{BASE}/generate", key, json={**seed, "start_date": "2025-01-01"})
    assert one_date.status_code == 400 and [d["field"] for d in one_date.json()["details"]] == ["end_date"]


def test_report_metadata_shows_inclusive_local_dates_and_utc_instants(pending_api):
    key = key_of(pending_api, "report_creator")
    body = {**JSON_USAGE, "start_date": "2026-11-01", "end_date": "2026-11-20", "timezone": "America/New_York"}
    response = pending_api.request("POST", f"{BASE}/generate", key, json=body)
    assert response.status_code == 202, response.text
    meta = pending_api.request("GET", f"{BASE}/{response.json()['report_id']}", key).json()
    # New York leaves summer time on 2026-11-01: the period starts at 04:00Z and ends at 05:00Z
    assert (meta["start_date"], meta["end_date"]) == ("2026-11-01", "2026-11-20")
    assert (meta["period_start"], meta["period_end"]) == ("2026-11-01T04:00:00Z", "2026-11-21T05:00:00Z")
    assert meta["timezone"] == "America/New_York"
    # the stored parameters keep the instants a worker runs (and re-validates)
    assert (meta["parameters"]["start_date"], meta["parameters"]["end_date"]) == (meta["period_start"],
                                                                                   meta["period_end"])
    listed = pending_api.request("GET", BASE, key).json()
    assert (listed[0]["start_date"], listed[0]["end_date"]) == ("2026-11-01", "2026-11-20")


def test_list_with_created_before_not_after_created_after_is_a_400(pending_api):
    key = key_of(pending_api)
    for query in ("created_after=2026-11-27&created_before=2026-11-01",
                  "created_after=2026-11-01T00:00:00Z&created_before=2026-11-01"):
        response = pending_api.request("GET", f"{BASE}?{query}", key)
        assert response.status_code == 400, response.text
        details = response.json()["details"]
        assert [(d["field"], d["problem"]) for d in details] == [("created_before", "must be after created_after")]
    fine = pending_api.request("GET", f"{BASE}?created_after=2026-11-01&created_before=2026-11-27", key)
    assert fine.status_code == 200 and fine.json() == []


def test_body_above_the_limit_is_413(tmp_path, botreports_demo_db):
    rk = _make(tmp_path, botreports_demo_db, queue=RecordingQueue(), max_body_bytes=2048)
    server = LiveServer(rk)
    try:
        key = key_of(server)
        big = {**JSON_USAGE, "title": "x" * 4000}
        response = server.request("POST", f"{BASE}/generate", key, json=big)
        assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
        small = server.request("POST", f"{BASE}/generate", key, json=JSON_USAGE)
        assert small.status_code == 202
    finally:
        server.stop()
        rk.close()


def test_not_found_conflict_and_other_organisations(pending_api):
    acme, globex = key_of(pending_api, "admin", "org-acme"), key_of(pending_api, "admin", "org-globex")
    report_id = pending_api.request("POST", f"{BASE}/generate", acme, json=JSON_USAGE).json()["report_id"]
    assert pending_api.request("GET", f"{BASE}/rpt-doesnotexist", acme).status_code == 404
    conflict = pending_api.request("GET", f"{BASE}/{report_id}/download", acme)
    assert conflict.status_code == 409 and conflict.json()["error"] == "conflict"
    link = pending_api.request("GET", f"{BASE}/{report_id}/download?as=link", acme)
    assert link.status_code == 409
    for method, path in [("GET", f"{BASE}/{report_id}"), ("GET", f"{BASE}/{report_id}/status"),
                         ("GET", f"{BASE}/{report_id}/download"), ("DELETE", f"{BASE}/{report_id}")]:
        response = pending_api.request(method, path, globex)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"
    assert pending_api.request("GET", f"{BASE}/{report_id}", acme).status_code == 200  # still there


def test_reserved_segments_are_not_report_ids(pending_api):
    key = key_of(pending_api)
    for method, path in [("DELETE", f"{BASE}/schedule"), ("DELETE", f"{BASE}/templates"),
                         ("GET", f"{BASE}/generate"), ("DELETE", f"{BASE}/generate")]:
        response = pending_api.request(method, path, key)
        assert response.status_code == 405, (method, path, response.text)
        assert response.json()["error"] == "method_not_allowed" and "Allow" in response.headers
    assert pending_api.request("GET", "/api/v1/nothing-here", key).json()["error"] == "not_found"


def test_unexpected_errors_are_500_without_a_traceback(pending_api):
    import botreports
    from botreports.testing import registered

    class Broken:
        @botreports.hookimpl
        def authorize(self, principal, action, resource, reports):
            raise RuntimeError("secret internals /etc/passwd")

    key = key_of(pending_api)
    with registered(pending_api.reports, Broken(), "broken"):
        response = pending_api.request("GET", BASE, key)
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error" and set(body) == {"error", "message", "details"}
    assert "Traceback" not in response.text and "passwd" not in response.text
    assert response.headers["X-Request-Id"] in body["message"]


# -- downloads and signed links -----------------------------------------------------


def test_download_headers_are_safe_for_any_title(api):
    key = key_of(api)
    title = 'Relatório "Q1"\r\nSet-Cookie: x=1; ünïcode/../..'
    refused = api.request("POST", f"{BASE}/generate", key, json={**JSON_USAGE, "title": title})
    assert refused.status_code == 400 and refused.json()["details"][0]["field"] == "title"
    report_id = generate_and_wait(api, key, {**JSON_USAGE, "title": 'Relatório "Q1"; ünïcode/../..'})
    # A title stored before titles were checked for control characters: the header stays safe.
    api.reports.store.update_report(report_id, title=title)
    response = api.request("GET", f"{BASE}/{report_id}/download", key)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    disposition = response.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and disposition.isascii()
    fallback = re.search(r'filename="([^"]*)"', disposition).group(1)
    assert re.fullmatch(r"[A-Za-z0-9._ -]+", fallback) and fallback.endswith("_2025-01-20_2025-01-31.json")
    encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition).group(1)
    assert re.fullmatch(r"[A-Za-z0-9!#$&+\-.^_`|~%]+", encoded)  # RFC 8187 attr-chars only
    name = unquote(encoded)
    assert name.startswith('Relatório "Q1" Set-Cookie: x=1; ünïcode') and "/" not in name
    assert name.endswith("_2025-01-20_2025-01-31.json")
    assert response.headers["ETag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert int(response.headers["Content-Length"]) == len(response.content)
    again = api.request("GET", f"{BASE}/{report_id}/download", key,
                        headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


def test_signed_link_downloads_without_credentials_and_only_that_report(api):
    key = key_of(api, "report_viewer")
    creator = key_of(api, "report_creator")
    first = generate_and_wait(api, creator, JSON_USAGE)
    second = generate_and_wait(api, creator, {**JSON_USAGE, "start_date": "2025-01-25"})
    direct = api.request("GET", f"{BASE}/{first}/download", key).content

    response = api.request("GET", f"{BASE}/{first}/download?as=link&api_key={key}")
    assert response.status_code == 200, response.text
    link = response.json()
    assert set(link) == {"url", "expires_at"}
    expires_at = time.mktime(time.strptime(link["expires_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 3500 < expires_at - time.time() <= 3600
    assert "api_key" not in link["url"] and key not in link["url"]

    fetched = api.session.get(link["url"])  # no key, no header: a chat user opening the link
    assert fetched.status_code == 200 and fetched.content == direct

    parts = urlsplit(link["url"])
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    elsewhere = api.session.get(f"{api.url}{BASE}/{second}/download", params=params)
    assert elsewhere.status_code == 403  # the signature names the first report only
    tampered = api.session.get(f"{api.url}{parts.path}", params={**params, "signature": params["signature"][:-2] + "xx"})
    assert tampered.status_code == 403
    expires, signature = signed_query(api.reports.secret, download_resource(first), -5)
    expired = api.session.get(f"{api.url}{parts.path}", params={"expires": expires, "signature": signature})
    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    # the signature opens the download, and nothing else
    status = api.session.get(f"{api.url}{BASE}/{first}/status", params=params)
    assert status.status_code == 401
    assert api.session.get(f"{api.url}{BASE}/{first}/status").status_code == 401
    # a deleted report's link is dead
    assert api.request("DELETE", f"{BASE}/{first}", key_of(api, "report_admin")).status_code == 204
    assert api.session.get(link["url"]).status_code == 404


# -- lists ------------------------------------------------------------------------


def test_list_filters_sorting_and_paging(pending_api):
    key = key_of(pending_api, "report_creator")
    titles = ["delta", "alpha", "echo", "charlie", "bravo"]
    ids = []
    for day, title in enumerate(titles, start=1):
        response = pending_api.request("POST", f"{BASE}/generate", key, json={**JSON_USAGE, "title": title})
        ids.append(response.json()["report_id"])
        # distinct, known creation times make the expected order and filters unambiguous
        pending_api.reports.store.update_report(ids[-1], created_at=dt.datetime(2025, 2, day, 10, tzinfo=dt.timezone.utc))
    pending_api.reports.generate(Principal("g", "org-globex", {"admin"}), JSON_USAGE)  # not ours

    page = pending_api.request("GET", f"{BASE}?limit=2&offset=0", key)
    assert page.headers["X-Total-Count"] == "5"
    assert [r["report_id"] for r in page.json()] == ids[::-1][:2]  # newest first by default
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', page.headers["Link"]))
    assert set(links) == {"first", "next", "last"}
    seen = []
    url = links["first"]
    while url:
        response = pending_api.request("GET", url, key)
        seen += [r["report_id"] for r in response.json()]
        url = dict((rel, u) for u, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers["Link"])).get("next")
    assert seen == ids[::-1]
    assert re.search(r"offset=4", links["last"])

    by_name = pending_api.request("GET", f"{BASE}?sort=name&order=asc", key).json()
    assert [r["title"] for r in by_name] == sorted(titles)
    assert pending_api.request("GET", f"{BASE}?status=completed", key).json() == []
    assert len(pending_api.request("GET", f"{BASE}?status=pending&type=usage", key).json()) == 5
    assert pending_api.request("GET", BASE, key).json()[2]["created_at"] == "2025-02-03T10:00:00Z"
    after = pending_api.request("GET", f"{BASE}?created_after=2025-02-03T10:00:00Z", key).json()
    assert [r["report_id"] for r in after] == ids[::-1][:2]
    before = pending_api.request("GET", f"{BASE}?created_before=2025-02-03&order=asc", key).json()
    assert [r["report_id"] for r in before] == ids[:2]


# -- authentication and limits ------------------------------------------------------


def test_missing_or_bad_credentials_are_401_with_a_challenge(pending_api):
    key = key_of(pending_api, "report_viewer")
    missing = pending_api.request("GET", BASE)
    assert missing.status_code == 401 and missing.json()["error"] == "missing_token"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = pending_api.request("GET", BASE, "brk_not-a-real-key")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert pending_api.request("GET", f"{BASE}?api_key={key}").status_code == 200  # chat scripts
    assert pending_api.request("GET", BASE, key).status_code == 200
    assert pending_api.request("GET", f"{BASE}/health").json()["status"] == "ok"  # no key needed


def test_rate_limit_per_key_answers_429_with_retry_after(tmp_path, botreports_demo_db):
    rk = _make(tmp_path, botreports_demo_db, queue=RecordingQueue(), rate_limit=3)
    server = LiveServer(rk)
    try:
        first, second = key_of(server, "report_viewer"), key_of(server, "report_viewer")
        codes = [server.request("GET", BASE, first).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = server.request("GET", BASE, first)
        assert limited.json()["error"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 20  # 3 a minute: one token every 20 s
        assert server.request("GET", BASE, second).status_code == 200  # another key has its own budget
    finally:
        server.stop()
        rk.close()


def test_unfinished_reports_are_capped_per_organisation(tmp_path, botreports_demo_db):
    rk = _make(tmp_path, botreports_demo_db, queue=RecordingQueue(), max_unfinished=2)
    server = LiveServer(rk)
    try:
        acme, globex = key_of(server, "report_creator"), key_of(server, "report_creator", "org-globex")
        codes = [server.request("POST", f"{BASE}/generate", acme, json=JSON_USAGE).status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        capped = server.request("POST", f"{BASE}/generate", acme, json=JSON_USAGE)
        assert capped.json()["error"] == "rate_limited" and int(capped.headers["Retry-After"]) >= 1
        assert server.request("POST", f"{BASE}/generate", globex, json=JSON_USAGE).status_code == 202
        rk.run_report(rk.queue.enqueued[0], worker="test")  # one finishes: room for one more
        assert server.request("POST", f"{BASE}/generate", acme, json=JSON_USAGE).status_code == 202
    finally:
        server.stop()
        rk.close()


def test_unfinished_cap_holds_under_concurrent_requests(tmp_path, botreports_demo_db):
    import threading

    from botreports import RateLimited
    rk = _make(tmp_path, botreports_demo_db, queue=RecordingQueue(), max_unfinished=20)
    creator = Principal("ana", "org-acme", {"report_creator"})
    outcomes, start = [], threading.Barrier(40)

    def request():
        start.wait()
        try:
            rk.generate(creator, JSON_USAGE)
            outcomes.append("accepted")
        except RateLimited:
            outcomes.append("capped")

    try:
        threads = [threading.Thread(target=request) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        unfinished = rk.store.db.execute(
            "SELECT count(*) FROM reports WHERE org_id = 'org-acme' AND state IN ('pending', 'running')").fetchone()[0]
        assert unfinished == 20 and sorted(outcomes) == ["accepted"] * 20 + ["capped"] * 20
    finally:
        rk.close()


# -- events, health, the request log -------------------------------------------------


def test_health_ignores_query_parameters(pending_api):
    response = pending_api.request("GET", f"{BASE}/health?x=1&_=1732630000&x=2")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_events_ingest_ndjson(api):
    admin, viewer = key_of(api, "admin"), key_of(api, "report_viewer")
    lines = [{"table": "messages", "id": f"ingest-{n}", "conversation_id": "c-ingest", "bot_id": "bot-001",
              "channel": "web", "user_id": "u-ingest", "direction": "in", "created_at": "2025-01-05T10:00:00Z"}
             for n in range(3)]
    conversation = {"table": "conversations", "id": "c-ingest", "bot_id": "bot-001", "user_id": "u-ingest",
                    "channel": "web", "started_at": "2025-01-05T10:00:00Z", "status": "open"}
    body = "\n".join(json.dumps(line) for line in [conversation] + lines) + "\n"
    headers = {"Content-Type": "application/x-ndjson"}
    assert api.request("POST", "/api/v1/events", viewer, data=body, headers=headers).status_code == 403
    response = api.request("POST", "/api/v1/events", admin, data=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == {"conversations": 1, "messages": 3} and response.json()["errors"] == []
    with sqlite3.connect(api.reports.data_dir / "analytics.db") as conn:
        rows = conn.execute("SELECT org_id, count(*) FROM messages WHERE id LIKE 'ingest-%'").fetchall()
    assert rows == [("org-acme", 3)]
    bad = api.request("POST", "/api/v1/events", admin, data='{"table": "nope"}\nnot json\n', headers=headers)
    assert bad.status_code == 400
    assert [d["field"] for d in bad.json()["details"]] == ["line 1", "line 2"]
    wrong_type = api.request("POST", "/api/v1/events", admin, data=body, headers={"Content-Type": "text/csv"})
    assert wrong_type.status_code == 400 and wrong_type.json()["details"][0]["field"] == "Content-Type"


def test_one_log_line_per_request_without_secrets(pending_api, caplog):
    key = key_of(pending_api, "report_viewer")
    with caplog.at_level(logging.INFO, logger="botreports.http"):
        pending_api.request("GET", f"{BASE}?api_key={key}")
        pending_api.request("GET", f"{BASE}/rpt-missing", key, headers={"X-Request-Id": "trace-42"})
        pending_api.request("GET", "/no/such/route")
        deadline = time.monotonic() + 5
        while len([r for r in caplog.records if r.name == "botreports.http"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "botreports.http"]
    assert len(lines) == 3
    assert re.search(rf"GET {BASE} 200 [\d.]+ms by=key-", lines[0])
    assert f"GET {BASE}/rpt-missing 404" in lines[1] and "id=trace-42" in lines[1]
    assert "GET /no/such/route 404" in lines[2]
    assert all(key not in line for line in lines)


def test_schedule_shows_next_run_and_its_last_runs(api):
    key = key_of(api, "report_admin")
    created = api.request("POST", f"{BASE}/schedule", key, json={
        "type": "usage", "format": "json", "cron": "0 8 * * 1", "timezone": "America/New_York",
        "period": "previous_week", "recipients": []}).json()
    assert created["last_runs"] == []
    next_run = dt.datetime.fromisoformat(created["next_run_at"].replace("Z", "+00:00"))
    assert next_run.astimezone(ZoneInfo("America/New_York")).strftime("%a %H:%M") == "Mon 08:00"
    api.reports.run_due_schedules(at=next_run + dt.timedelta(seconds=30))
    listed = api.request("GET", f"{BASE}/schedule", key).json()[0]
    report_id = listed["last_runs"][0]["report_id"]
    assert api.wait_for(report_id, key)["state"] == "completed"
    listed = api.request("GET", f"{BASE}/schedule", key).json()[0]
    assert [(run["state"], run["report_state"]) for run in listed["last_runs"]] == [("completed", "completed")]
    assert api.request("GET", f"{BASE}/{report_id}", key).json()["schedule_id"] == created["schedule_id"]
    later = dt.datetime.fromisoformat(listed["next_run_at"].replace("Z", "+00:00"))
    assert later - next_run == dt.timedelta(days=7)
