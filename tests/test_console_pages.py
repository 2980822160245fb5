"""The web console over HTTP, without a browser: sessions, CSRF, roles and organisations as
the API enforces them, filters and paging as the API answers them, and form errors placed
next to the fields the facade names."""
from __future__ import annotations

import json
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from botreports.adapters.console import forms
from botreports.core import browser_sessions

from console_support import Page, ServedService, csrf_of, sign_in

BASE = "/api/v1/reports"
USAGE = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-26"}


@pytest.fixture
def service(reports):
    served = ServedService(reports)
    yield served
    served.stop()


def _key(reports, role, org="org-acme"):
    return reports.create_api_key(org, role, name=f"{role} of {org}")[0]


def test_session_cookie_is_httponly_strict_and_holds_no_key(service):
    key = _key(service.reports, "admin")
    session = requests.Session()
    page = session.get(f"{service.url}/signin")
    answer = session.post(f"{service.url}/signin", data={"csrf_token": csrf_of(page.text), "credential": key},
                          allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"] == "/reports"
    cookie = [value for name, value in answer.raw.headers.items() if name.lower() == "set-cookie"
              and value.startswith("botreports_session=")][0]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Secure" not in cookie  # plain HTTP
    value = cookie.split(";")[0].split("=", 1)[1]
    assert key not in value and key[4:] not in value
    payload = json.loads(browser_sessions._unb64(value.split(".")[0]))
    assert not any(key in str(item) for item in payload.values())


def test_session_cookie_is_secure_over_https(reports):
    from io import BytesIO, StringIO

    from botreports.adapters.console import build_console_app

    app = build_console_app(reports)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/signin", "QUERY_STRING": "", "SERVER_NAME": "x",
               "SERVER_PORT": "443", "wsgi.url_scheme": "https", "wsgi.input": BytesIO(), "HTTP_HOST": "x",
               "wsgi.errors": StringIO()}
    b"".join(app(environ, start_response))
    cookies = [value for name, value in seen["headers"] if name.lower() == "set-cookie"]
    assert cookies and all("Secure" in value and "HttpOnly" in value for value in cookies)


def test_wrong_key_is_refused_and_named(service):
    session = requests.Session()
    page = session.get(f"{service.url}/signin")
    answer = session.post(f"{service.url}/signin", data={"csrf_token": csrf_of(page.text), "credential": "brk_nope"})
    assert answer.status_code == 401
    assert "The API key is not valid" in answer.text
    assert "botreports_session" not in session.cookies


def test_signin_without_its_csrf_token_is_refused(service):
    key = _key(service.reports, "admin")
    answer = requests.post(f"{service.url}/signin", data={"credential": key}, allow_redirects=False)
    assert answer.status_code == 403
    assert "botreports_session" not in answer.cookies


def test_form_post_without_csrf_token_is_refused_and_changes_nothing(service):
    key = _key(service.reports, "admin")
    session = sign_in(service.url, key)
    answer = session.post(f"{service.url}/reports/new", data={"type": "usage", "format": "json"},
                          allow_redirects=False)
    assert answer.status_code == 403
    assert "did not come from this console" in answer.text
    wrong = session.post(f"{service.url}/reports/new", data={"type": "usage", "csrf_token": "x" * 43},
                         allow_redirects=False)
    assert wrong.status_code == 403
    # Another session's token is not this session's either.
    other = sign_in(service.url, key)
    token = csrf_of(other.get(f"{service.url}/reports/new").text)
    crossed = session.post(f"{service.url}/reports/new", data={"type": "usage", "csrf_token": token},
                           allow_redirects=False)
    assert crossed.status_code == 403
    assert requests.get(f"{service.url}{BASE}", headers={"X-API-Key": key}).json() == []


def test_viewer_sees_no_generate_button_and_a_forged_post_is_refused(service):
    viewer = _key(service.reports, "report_viewer")
    session = sign_in(service.url, viewer)
    page = session.get(f"{service.url}/reports")
    assert page.status_code == 200
    parsed = Page(page.text)
    assert "generate-link" not in parsed.ids and "/reports/new" not in parsed.links
    assert "/schedules" not in parsed.links  # schedules need report_admin, as in the API
    assert session.get(f"{service.url}/reports/new").status_code == 403
    token = csrf_of(page.text)
    forged = session.post(f"{service.url}/reports/new", data={"csrf_token": token, "type": "usage",
                                                             "format": "json", "period": "last_7_days"},
                          allow_redirects=False)
    assert forged.status_code == 403
    assert "report.generate requires the role report_creator" in forged.text
    assert requests.get(f"{service.url}{BASE}", headers={"X-API-Key": viewer}).json() == []


def test_another_organisations_report_is_the_not_found_page(service):
    other = _key(service.reports, "admin", org="org-other")
    report = requests.post(f"{service.url}{BASE}/generate", json=USAGE, headers={"X-API-Key": other}).json()
    session = sign_in(service.url, _key(service.reports, "admin"))
    for path in ("", "/download", "/view"):
        answer = session.get(f"{service.url}/reports/{report['report_id']}{path}")
        assert answer.status_code == 404, path
        assert Page(answer.text).title.startswith("Not found")
    token = csrf_of(session.get(f"{service.url}/reports").text)
    deleted = session.post(f"{service.url}/reports/{report['report_id']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 404
    assert requests.get(f"{service.url}{BASE}/{report['report_id']}", headers={"X-API-Key": other}).status_code == 200


def test_revoked_key_loses_its_session(service, monkeypatch):
    monkeypatch.setattr(browser_sessions, "KEY_FRESH_FOR", 0.0)
    key = _key(service.reports, "admin")
    session = sign_in(service.url, key)
    assert session.get(f"{service.url}/reports", allow_redirects=False).status_code == 200
    key_id = [row for row in service.reports.list_api_keys("org-acme") if row["prefix"] == key[:8]][0]["id"]
    service.reports.revoke_api_key(key_id)
    answer = session.get(f"{service.url}/reports", allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/signin?")
    assert "revoked" in requests.utils.unquote(answer.headers["Location"])


def test_signed_out_session_is_refused_even_when_its_cookie_is_replayed(service):
    session = sign_in(service.url, _key(service.reports, "admin"))
    cookie = session.cookies["botreports_session"]
    token = csrf_of(session.get(f"{service.url}/reports").text)
    out = session.post(f"{service.url}/signout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status_code == 303
    replay = requests.get(f"{service.url}/reports", cookies={"botreports_session": cookie}, allow_redirects=False)
    assert replay.status_code == 303 and replay.headers["Location"].startswith("/signin")
    tampered = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    answer = requests.get(f"{service.url}/reports", cookies={"botreports_session": tampered}, allow_redirects=False)
    assert answer.status_code == 303


def test_bearer_token_signs_in_and_its_revocation_ends_the_session(tmp_path, botreports_demo_db):
    import jwt

    from botreports import Reports

    secret = "s" * 40
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, jwt_secret=secret)
    served = ServedService(rk)
    try:
        now = int(time.time())
        token = jwt.encode({"sub": "ana", "roles": ["Admin"], "organization_id": "org-acme", "iss": "general-bots",
                            "aud": "general-bots-api", "iat": now, "exp": now + 600, "jti": "t-1"}, secret)
        session = sign_in(served.url, token)
        page = session.get(f"{served.url}/reports", allow_redirects=False)
        assert page.status_code == 200 and "ana" in page.text
        rk.revoke_tokens("jti", "t-1")
        assert session.get(f"{served.url}/reports", allow_redirects=False).status_code == 303
    finally:
        served.stop()
        rk.close()


def test_sign_in_goes_back_only_to_a_console_page(service):
    key = _key(service.reports, "admin")
    for target, expected in (("//evil.example/x", "/reports"), ("https://evil.example/", "/reports"),
                             ("/schedules", "/schedules")):
        session = requests.Session()
        page = session.get(f"{service.url}/signin", params={"next": target})
        answer = session.post(f"{service.url}/signin", allow_redirects=False,
                              data={"csrf_token": csrf_of(page.text), "credential": key,
                                    "next": Page(page.text).ids.get("next", {}).get("value", target)})
        assert answer.headers["Location"] == expected


def test_list_shows_the_apis_page_with_its_filters_and_paging(service):
    key = _key(service.reports, "admin")
    api = {"X-API-Key": key}
    made = []
    for index, kind in enumerate(["usage", "usage", "performance", "usage", "conversations"]):
        body = {**USAGE, "type": kind, "title": f"R{index} {kind}"}
        made.append(requests.post(f"{service.url}{BASE}/generate", json=body, headers=api).json()["report_id"])
    session = sign_in(service.url, key)
    query = {"type": "usage", "sort": "name", "order": "asc", "limit": "2"}
    expected = requests.get(f"{service.url}{BASE}", params=query, headers=api)
    page = Page(session.get(f"{service.url}/reports", params=query).text)
    titles = [row[0] for row in page.rows[1:]]
    assert titles == [item["title"] for item in expected.json()] == ["R0 usage", "R1 usage"]
    assert int(expected.headers["X-Total-Count"]) == 3
    assert any("offset=2" in link and "type=usage" in link for link in page.links)  # next page
    second = Page(session.get(f"{service.url}/reports", params={**query, "offset": "2"}).text)
    assert [row[0] for row in second.rows[1:]] == ["R3 usage"]
    assert all(row[4].startswith("completed") for row in page.rows[1:])


def test_bad_filter_is_shown_next_to_its_field(service):
    session = sign_in(service.url, _key(service.reports, "admin"))
    answer = session.get(f"{service.url}/reports", params={"created_after": "yesterday"})
    assert answer.status_code == 400
    page = Page(answer.text)
    assert "f-created_after-error" in page.errors
    assert page.ids["f-created_after"].get("aria-invalid") == "true"


def test_new_report_errors_are_placed_next_to_their_fields(service):
    session = sign_in(service.url, _key(service.reports, "admin"))
    token = csrf_of(session.get(f"{service.url}/reports/new").text)
    answer = session.post(f"{service.url}/reports/new", data={
        "csrf_token": token, "type": "usage", "format": "pdf", "period": "custom", "start_date": "2025-02-10",
        "end_date": "2025-02-01", "timezone": "Mars/Olympus", "sections": ["usage_summary", "top_users"],
        "s.top_users.limit": "many", "o.pdf.page_size": "A3"})
    assert answer.status_code == 400
    page = Page(answer.text)
    assert "must be of type int" in page.errors["f-s-top_users-limit-error"]
    assert "Mars/Olympus" in page.errors["f-timezone-error"]
    assert "must be one of A4, Letter" in page.errors["f-o-pdf-page_size-error"]
    assert page.ids["f-timezone"]["value"] == "Mars/Olympus"  # what was typed stays
    # The dates are checked once the timezone is one: fix it and the date error shows.
    again = session.post(f"{service.url}/reports/new", data={
        "csrf_token": token, "type": "usage", "format": "json", "period": "custom", "start_date": "2025-02-10",
        "end_date": "2025-02-01", "timezone": "Europe/Lisbon"})
    assert "must not be before start_date" in Page(again.text).errors["f-end_date-error"]


def test_new_report_form_makes_the_report_the_api_would(service):
    key = _key(service.reports, "admin")
    session = sign_in(service.url, key)
    page = session.get(f"{service.url}/reports/new")
    bots = [value for value in Page(page.text).ids if value.startswith("f-section-")]
    assert "f-section-usage_summary" in bots
    answer = session.post(f"{service.url}/reports/new", allow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "type": "usage", "format": "csv", "period": "custom",
        "start_date": "2025-01-20", "end_date": "2025-01-26", "timezone": "Europe/Lisbon",
        "sections": ["usage_summary", "top_users"], "s.top_users.limit": "3", "o.csv.csv_dialect": "semicolon",
        "o.pdf.page_size": "Letter", "title": "From the form"})
    assert answer.status_code == 303
    report_id = answer.headers["Location"].rsplit("/", 1)[1]
    stored = requests.get(f"{service.url}{BASE}/{report_id}", headers={"X-API-Key": key}).json()
    assert stored["parameters"]["sections"] == [{"type": "usage_summary"}, {"type": "top_users", "limit": 3}]
    assert stored["parameters"]["options"] == {"csv_dialect": "semicolon"}  # only the chosen format's
    assert (stored["start_date"], stored["end_date"], stored["timezone"]) == ("2025-01-20", "2025-01-26",
                                                                              "Europe/Lisbon")
    assert stored["title"] == "From the form" and stored["state"] == "completed"
    shown = Page(session.get(f"{service.url}/reports/{report_id}").text)
    assert "download-link" in shown.ids and "hidden" not in shown.ids["download-link"]
    from_console = session.get(f"{service.url}/reports/{report_id}/download")
    from_api = requests.get(f"{service.url}{BASE}/{report_id}/download", headers={"X-API-Key": key})
    assert from_console.status_code == 200 and from_console.content == from_api.content
    assert from_console.headers["Content-Disposition"] == from_api.headers["Content-Disposition"]
    assert from_console.content.decode("utf-8").splitlines()[0].count(";") >= 1  # the semicolon dialect


def test_status_json_answers_the_apis_status(service):
    key = _key(service.reports, "admin")
    report = requests.post(f"{service.url}{BASE}/generate", json=USAGE, headers={"X-API-Key": key}).json()
    session = sign_in(service.url, key)
    answer = session.get(f"{service.url}/reports/status.json", params={"ids": f"{report['report_id']},rpt-nope"})
    api = requests.get(f"{service.url}{BASE}/{report['report_id']}/status", headers={"X-API-Key": key}).json()
    assert answer.json() == [api, {"report_id": "rpt-nope", "state": "missing"}]
    assert requests.get(f"{service.url}/reports/status.json?ids=x").status_code == 401


def test_pages_send_a_strict_content_security_policy(service):
    session = sign_in(service.url, _key(service.reports, "admin"))
    for path in ("/reports", "/reports/new", "/schedules", "/templates", "/no-such-page"):
        answer = session.get(f"{service.url}{path}")
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
        assert "<script>" not in answer.text and " style=" not in answer.text and "<style" not in answer.text
    assert requests.get(f"{service.url}/no-such-page").status_code == 404
    assert requests.get(f"{service.url}{BASE}/nope/status").headers["Content-Type"] == "application/json"


@given(st.lists(st.sampled_from(["usage_summary", "top_users", "handoffs", "peak_hours"]), min_size=1, max_size=6),
       st.data())
def test_section_errors_name_the_section_at_their_index(names, data):
    index = data.draw(st.integers(0, len(names) - 1))
    errors = forms.field_errors([{"field": f"sections[{index}].limit", "problem": "p"},
                                 {"field": "options.page_size", "problem": "q"}], names, "pdf")
    assert errors == {f"s.{names[index]}.limit": ["p"], "o.pdf.page_size": ["q"]}


def test_html_report_is_shown_in_its_page_without_script(service):
    key = _key(service.reports, "admin")
    report = requests.post(f"{service.url}{BASE}/generate", json={**USAGE, "format": "html"},
                           headers={"X-API-Key": key}).json()
    session = sign_in(service.url, key)
    page = session.get(f"{service.url}/reports/{report['report_id']}")
    assert f'src="/reports/{report["report_id"]}/view"' in page.text and 'sandbox=""' in page.text
    shown = session.get(f"{service.url}/reports/{report['report_id']}/view")
    policy = shown.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    api = requests.get(f"{service.url}{BASE}/{report['report_id']}/download", headers={"X-API-Key": key})
    assert shown.content == api.content
    json_report = requests.post(f"{service.url}{BASE}/generate", json=USAGE, headers={"X-API-Key": key}).json()
    assert session.get(f"{service.url}/reports/{json_report['report_id']}/view").status_code == 404


def test_a_report_from_a_templates_page_takes_the_templates_definition(service):
    key = _key(service.reports, "admin")
    session = sign_in(service.url, key)
    template = service.reports.get_template(service.reports.session_principal(
        session.cookies["botreports_session"]), "tpl-executive-summary")
    form = session.get(f"{service.url}/reports/new", params={"template_id": template.id})
    page = Page(form.text)
    assert 'value="tpl-executive-summary" selected' in form.text
    answer = session.post(f"{service.url}/reports/new", allow_redirects=False, data={
        "csrf_token": csrf_of(form.text), "template_id": template.id, "type": "", "format": "", "period": "custom",
        "start_date": "2025-01-20", "end_date": "2025-01-26", "timezone": "UTC", "include_charts": "on"})
    assert answer.status_code == 303, Page(answer.text).errors
    report_id = answer.headers["Location"].rsplit("/", 1)[1]
    stored = requests.get(f"{service.url}{BASE}/{report_id}", headers={"X-API-Key": key}).json()
    assert (stored["type"], stored["format"]) == (template.type, template.format)
    assert [s["type"] for s in stored["parameters"]["sections"]] == [s["type"] for s in template.sections]
    assert stored["template_id"] == template.id and "f-type" in page.ids


def test_a_form_that_is_not_utf8_is_a_400_naming_the_field(service):
    session = sign_in(service.url, _key(service.reports, "admin"))
    token = csrf_of(session.get(f"{service.url}/reports").text)
    answer = session.post(f"{service.url}/reports/new", data=f"csrf_token={token}&title=%ff%fe".encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 400
    assert "title: is not UTF-8 text" in answer.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(
    st.sampled_from(["type", "format", "period", "start_date", "end_date", "timezone", "title", "channel",
                     "template_id", "bot_id", "sections", "s.top_users.limit", "s.custom_metric.filters",
                     "o.pdf.max_pages", "o.csv.csv_bom", "include_charts"]),
    st.text(max_size=30), max_size=8))
def test_any_new_report_form_is_a_report_or_a_400_that_names_its_fields(service, fields):
    session = getattr(service, "fuzz_session", None)
    if session is None:
        session = service.fuzz_session = sign_in(service.url, _key(service.reports, "admin"))
        service.fuzz_token = csrf_of(session.get(f"{service.url}/reports/new").text)
    answer = session.post(f"{service.url}/reports/new", data={**fields, "csrf_token": service.fuzz_token},
                          allow_redirects=False)
    assert answer.status_code in (303, 400), answer.text[:500]
    if answer.status_code == 400:
        page = Page(answer.text)
        assert page.errors or "error-summary" in page.ids


def test_console_under_a_mount_point_keeps_every_link_and_cookie_under_it(reports):
    import re

    from botreports.adapters.console import build_console_app
    from botreports.adapters.wsgi_server import create_server

    console = build_console_app(reports)

    def host(environ, start_response):  # a host that mounts the console at /console
        path = environ.get("PATH_INFO", "")
        if path == "/console" or path.startswith("/console/"):
            environ["SCRIPT_NAME"], environ["PATH_INFO"] = "/console", path[len("/console"):] or "/"
            return console(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"host"]

    server = create_server(host, host="127.0.0.1", port=0, threads=2)
    thread = __import__("threading").Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    try:
        key = _key(reports, "admin")
        session = requests.Session()
        first = session.get(f"{url}/console/reports", allow_redirects=False)
        assert first.headers["Location"].startswith("/console/signin?")
        page = session.get(url + first.headers["Location"])
        answer = session.post(f"{url}/console/signin", allow_redirects=False,
                              data={"csrf_token": csrf_of(page.text), "credential": key,
                                    "next": "/schedules"})
        assert answer.headers["Location"] == "/console/schedules"
        cookie = [c for c in session.cookies if c.name == "botreports_session"][0]
        assert cookie.path == "/console"
        shown = session.get(f"{url}/console/reports/new")
        assert shown.status_code == 200
        targets = re.findall(r'(?:href|action|src)="([^"#]+)"', shown.text)
        assert targets and all(target.startswith("/console/") for target in targets), targets
        assert 'data-root="/console"' in shown.text
    finally:
        from waitress import wasyncore

        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map, ignore_all=True))
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()


def test_schedules_show_next_run_in_local_time_and_last_runs_with_delivery(service):
    import datetime as dt

    key = _key(service.reports, "admin")
    api = {"X-API-Key": key}
    created = requests.post(f"{service.url}{BASE}/schedule", headers=api, json={
        "type": "usage", "format": "json", "cron": "0 8 * * *", "timezone": "Asia/Tokyo", "period": "previous_day",
        "recipients": ["ops@example.com"], "name": "Daily Tokyo"}).json()
    fire = dt.datetime.fromisoformat(created["next_run_at"].replace("Z", "+00:00"))
    service.reports.run_due_schedules(at=fire + dt.timedelta(seconds=1))
    [shown] = requests.get(f"{service.url}{BASE}/schedule", headers=api).json()
    [run] = shown["last_runs"]
    assert run["report_id"] and run["delivery"] is not None
    session = sign_in(service.url, key)
    page = Page(session.get(f"{service.url}/schedules").text)
    [row] = [row for row in page.rows if row and row[0].startswith("Daily Tokyo")]
    local = shown["next_run_at_local"]
    assert local[:16].replace("T", " ") in row[3] and local.endswith("+09:00") and "Asia/Tokyo" in row[3]
    assert f"delivered {run['delivery']['delivered']}, failed {run['delivery']['failed']}" in row[4]
    assert run["state"] in row[4] and f"/reports/{run['report_id']}" in page.links
