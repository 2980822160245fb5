"""Attacks on the HTTP service that need no valid credentials, each written as the attack it
stops: a forged log line, a report's signed link blocked by bad signatures, wrong keys sent
without end, and links built on a Host header the client chose."""
import io
import json
import logging
import shutil
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from botreports import Reports
from botreports.adapters.log_escaping import escape_controls, traceback_text

from http_support import BASE, LiveServer, RecordingQueue

JSON_USAGE = {"type": "usage", "start_date": "2025-01-20", "end_date": "2025-01-21", "format": "json"}


def serve(tmp_path, demo_db, **settings):
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    shutil.copy(demo_db, data_dir / "analytics.db")
    return LiveServer(Reports(data_dir=data_dir, load_entrypoints=False, queue="immediate", **settings))


@pytest.fixture
def server(tmp_path, botreports_demo_db):
    live = serve(tmp_path, botreports_demo_db)
    yield live
    live.stop()
    live.reports.close()


def completed_report(server):
    key = server.reports.create_api_key("org-acme", "report_creator")[0]
    response = server.request("POST", f"{BASE}/generate", key, json=JSON_USAGE)
    assert response.status_code == 202 and response.json()["state"] == "completed", response.text
    return response.json()["report_id"], key


def wsgi_get(app, path, remote_addr, headers=None):
    """One request straight into the WSGI app from ``remote_addr`` (another client than the test's)."""
    from wsgiref.util import setup_testing_defaults

    environ = {"PATH_INFO": path.split("?")[0], "QUERY_STRING": path.partition("?")[2], "REQUEST_METHOD": "GET",
               "REMOTE_ADDR": remote_addr}
    environ.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in (headers or {}).items()})
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return int(status[0].split()[0]), body


# -- log forging ----------------------------------------------------------------------


def test_encoded_newline_in_a_path_cannot_write_a_second_log_line(server):
    forged = "127.0.0.1 GET /api/v1/reports 200 1.0ms by=key-admin id=ok"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("botreports.http")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        for encoded in ("%0a", "%0d%0a", "%0d", "%e2%80%ae", "%c2%85", "%00"):
            path = f"{BASE}/rpt-x{encoded}{forged.replace(' ', '%20')}"
            assert server.session.get(server.url + path, timeout=30).status_code in (401, 404)
        deadline = time.monotonic() + 5
        while stream.getvalue().count("\n") < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 6 and all(line.startswith("INFO 127.0.0.1 GET /api/v1/reports/rpt-x\\") for line in lines)
    assert not any(line.startswith(("127.0.0.1", "INFO 127.0.0.1 GET /api/v1/reports 200")) for line in lines)
    assert [line.split("rpt-x", 1)[1][:6] for line in lines] == [
        "\\x0a12", "\\x0d\\x", "\\x0d12", "\\u202e", "\\x8512", "\\x0012"]


def test_an_exception_quoting_request_text_logs_its_traceback_without_forged_lines():
    try:
        try:
            raise KeyError("inner\nINFO forged")
        except KeyError as inner:
            raise ValueError("bad path /x\r\n127.0.0.1 GET / 200") from inner
    except ValueError as error:
        text = traceback_text(error)
    assert not any(line.startswith(("INFO forged", "127.0.0.1")) for line in text.splitlines())
    assert "ValueError: bad path /x\\x0d\\x0a127.0.0.1 GET / 200" in text
    assert "The above exception was the direct cause" in text and text.startswith("Traceback")


def test_escapes_are_unambiguous():
    """A backslash the client sent is escaped too, so a literal ``\\x0a`` is not a newline's escape."""
    assert escape_controls("a\\x0ab\n") == "a\\\\x0ab\\x0a"
    assert escape_controls("Relatório ボット") == "Relatório ボット"


# -- signed links -------------------------------------------------------------------


def test_bad_signatures_do_not_spend_the_reports_link_budget(server):
    """610 requests with a forged signature (the per-report budget is 600 a minute) must not keep
    the real link's recipients out: bad ones spend their sender's budget, answered 429 after it."""
    report_id, key = completed_report(server)
    link = server.request("GET", f"{BASE}/{report_id}/download?as=link", key).json()["url"]
    params = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    started = time.monotonic()
    statuses = [server.session.get(f"{server.url}{BASE}/{report_id}/download", timeout=30,
                                   params={"expires": params["expires"], "signature": f"forged-{n}"}).status_code
                for n in range(610)]
    took = time.monotonic() - started
    # 30 failures a minute by default: the first 30 are refused as forged, then 429 but for the
    # few the budget earned back meanwhile.
    assert statuses[:30] == [403] * 30 and set(statuses) == {403, 429}
    assert statuses.count(403) <= 30 + took / 2 + 1 and statuses[-1] in (403, 429)
    opened = server.session.get(link, timeout=30)
    assert opened.status_code == 200 and json.loads(opened.content)["type"] == "usage"


# -- failed authentication ----------------------------------------------------------


def test_wrong_keys_are_limited_per_client_address(tmp_path, botreports_demo_db):
    live = serve(tmp_path, botreports_demo_db, auth_failure_limit=6)  # one failure earned back every 10 s
    try:
        good = live.reports.create_api_key("org-acme", "report_viewer")[0]
        wrong = [live.request("GET", BASE, f"brk_guess-{n}", headers={"X-Forwarded-For": f"10.9.0.{n}"}).status_code
                 for n in range(8)]
        assert wrong == [401] * 6 + [429] * 2  # a forwarding header the client writes buys no new budget
        blocked = live.request("GET", BASE, good)
        assert blocked.status_code == 429 and 1 <= int(blocked.headers["Retry-After"]) <= 10
        assert "failed authentication" in blocked.json()["message"]
        bearer = live.request("GET", BASE, headers={"Authorization": "Bearer x.y.z"})
        assert bearer.status_code == 429
        # another address is not affected, and requests without credentials are not guesses
        assert wsgi_get(live.server.application, BASE, "10.0.0.9", {"X-Api-Key": "brk_guess"})[0] == 401
        assert wsgi_get(live.server.application, BASE, "10.0.0.9", {"X-Api-Key": good})[0] == 200
        assert [wsgi_get(live.server.application, BASE, "10.0.0.8")[0] for _ in range(8)] == [401] * 8
    finally:
        live.stop()
        live.reports.close()


def test_a_failure_budget_is_earned_back_and_valid_requests_spend_none():
    from botreports import RateLimited
    from botreports.core.rate_limit import TokenBuckets

    clock = [0.0]
    failures = TokenBuckets(6, lambda: clock[0])
    for _ in range(6):
        failures.check("auth:a")
        failures.spend("auth:a")
    with pytest.raises(RateLimited) as caught:
        failures.check("auth:a")
    assert caught.value.retry_after == 10
    for _ in range(100):  # checking spends nothing, and spending past empty does not go into debt
        failures.spend("auth:a")
    clock[0] += 10
    failures.check("auth:a")
    failures.check("auth:b")


# -- links and the Host header ------------------------------------------------------


def link_for(server, key, report_id, **headers):
    return server.request("GET", f"{BASE}/{report_id}/download?as=link", key, headers=headers)


def test_link_is_not_built_on_a_host_the_client_chose(server):
    report_id, key = completed_report(server)
    port = urlsplit(server.url).port
    evil = link_for(server, key, report_id, Host="evil.example")
    assert evil.status_code == 400 and evil.json()["details"][0]["field"] == "Host"
    assert "evil.example" not in json.dumps(evil.json().get("url", ""))
    for header in ("127.0.0.1:80/evil.example", "localhost@evil.example", "127.0.0.1 evil"):
        assert link_for(server, key, report_id, Host=header).status_code == 400, header
    forwarded = link_for(server, key, report_id, **{"X-Forwarded-Host": "evil.example",
                                                    "X-Forwarded-Proto": "javascript"})
    assert forwarded.status_code == 200
    assert forwarded.json()["url"].startswith(f"http://127.0.0.1:{port}{BASE}/{report_id}/download?")
    local = link_for(server, key, report_id, Host=f"localhost:{port}")
    assert local.json()["url"].startswith(f"http://localhost:{port}/")
    assert server.session.get(local.json()["url"].replace("localhost", "127.0.0.1"), timeout=30).status_code == 200


def test_links_follow_the_public_url_or_the_allowed_hosts(tmp_path, botreports_demo_db):
    live = serve(tmp_path, botreports_demo_db, allowed_hosts="reports.example.com, [::1]")
    try:
        report_id, key = completed_report(live)
        assert link_for(live, key, report_id, Host="reports.example.com:8443").json()["url"].startswith(
            "http://reports.example.com:8443/api/v1/reports/")
        assert link_for(live, key, report_id, Host="[::1]:8080").status_code == 200
        assert link_for(live, key, report_id).status_code == 400  # 127.0.0.1 is not in this list
        live.reports.settings.public_url = "https://bots.example.com/"
        assert link_for(live, key, report_id, Host="evil.example").json()["url"].startswith(
            f"https://bots.example.com{BASE}/{report_id}/download?expires=")
    finally:
        live.stop()
        live.reports.close()


def test_behind_a_trusted_proxy_each_client_has_its_own_failure_budget(tmp_path, botreports_demo_db, monkeypatch):
    """``BOTREPORTS_TRUSTED_PROXY``: the proxy's X-Forwarded-For names the client, so one client's
    wrong keys do not lock out everyone behind the same proxy; the log names the client."""
    from botreports.adapters import wsgi_server

    plain = wsgi_server.create_server
    monkeypatch.setattr(wsgi_server, "create_server", lambda app, **kw: plain(
        app, **{**kw, **wsgi_server.proxy_adjustments("127.0.0.1")}))
    live = serve(tmp_path, botreports_demo_db, auth_failure_limit=3)
    try:
        good = live.reports.create_api_key("org-acme", "report_viewer")[0]
        attacker = {"X-Forwarded-For": "203.0.113.7"}
        assert [live.request("GET", BASE, "brk_guess", headers=attacker).status_code for _ in range(4)] == \
            [401, 401, 401, 429]
        assert live.request("GET", BASE, good, headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 200
        assert live.request("GET", BASE, good, headers=attacker).status_code == 429
    finally:
        live.stop()
        live.reports.close()


def test_serve_writes_one_line_per_request_whatever_the_path_holds(tmp_path):
    """The service as deployed: ``botreports serve`` logging to stderr through its own handlers."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import threading

    import requests

    process = subprocess.Popen([sys.executable, "-m", "botreports.adapters.cli", "serve", "--data-dir", str(tmp_path),
                                "--port", "0", "--workers", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "BOTREPORTS_LOAD_PLUGINS": ""})
    lines, ready, url = [], threading.Event(), {}

    def read():
        for line in process.stderr:
            lines.append(line)
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)/api/v1/reports", line)
            if found:
                url["base"] = found.group(1)
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(60), "".join(lines)
        forged = "%0a2026-01-01 00:00:00,000 INFO botreports.http: 10.0.0.1 GET /admin 200"
        for path in (f"{BASE}/rpt-x{forged}", f"/nothing{forged}"):
            assert requests.get(url["base"] + path.replace(" ", "%20"), timeout=10).status_code in (401, 404)
        deadline = time.monotonic() + 10
        while sum("rpt-x" in line or "/nothing" in line for line in lines) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert sum("rpt-x\\x0a2026-01-01" in line or "/nothing\\x0a2026-01-01" in line for line in lines) == 2
    assert not any(line.startswith("2026-01-01 00:00:00,000") for line in lines), "".join(lines)
