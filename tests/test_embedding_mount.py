"""Embedded under a mount point: every URL the app makes starts with the host's prefix (the OpenAPI
``servers``, ``Location``, the paging ``Link``, signed links), the contract is served under the
mount, the host's sign-in reaches ``authenticate``, and SIGTERM stops the example host cleanly."""
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import bottle
import pytest

from botreports import Principal, Reports, hookimpl
from botreports.testing import DEMO

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "embed_in_host.py"
PERIOD = {"start_date": "2025-01-20", "end_date": str(DEMO["end_date"])}


def load_example():
    spec = importlib.util.spec_from_file_location("embed_in_host_mounted", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def links(header: str) -> dict:
    """RFC 8288 ``<url>; rel="name"`` pairs as ``{name: url}``."""
    return {rel: url for url, rel in re.findall(r'<([^>]*)>;\s*rel="([^"]+)"', header)}


@pytest.fixture
def mounted_host(tmp_path, botreports_demo_db, monkeypatch):
    """The example host with the reports API under ``/analytics``, served on an ephemeral port."""
    monkeypatch.setenv("BOTREPORTS_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.delenv("BOTREPORTS_PUBLIC_URL", raising=False)
    data = tmp_path / "analytics.db"
    shutil.copy(botreports_demo_db, data)
    example = load_example()
    users = {"ana": {"org_id": "org-acme", "role": "report_creator"}}
    host = example.Host(tmp_path / "host-data", users, data_source=f"sqlite://{data}", workers=1, mount="/analytics")
    url = host.start(port=0)
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(urllib.request.Request(f"{url}/login", data=b"user=ana"), timeout=10)
    try:
        yield url, opener
    finally:
        host.stop()


def generate(url, opener, title):
    body = json.dumps({"type": "usage", "format": "json", "title": title, **PERIOD}).encode()
    answer = opener.open(urllib.request.Request(f"{url}/analytics/api/v1/reports/generate", data=body,
                                                headers={"Content-Type": "application/json"}), timeout=10)
    assert answer.status == 202
    return json.loads(answer.read())["report_id"], answer.headers["Location"]


def wait_completed(url, opener, status_path):
    deadline = time.monotonic() + 60
    while True:
        status = json.loads(opener.open(url + status_path, timeout=10).read())
        if status["state"] in ("completed", "failed") or time.monotonic() > deadline:
            assert status["state"] == "completed", status
            return status
        time.sleep(0.05)


def test_mounted_api_builds_every_url_under_the_mount(mounted_host):
    url, opener = mounted_host
    contract = json.loads(opener.open(f"{url}/analytics/api/v1/reports/openapi.json", timeout=10).read())
    assert contract["servers"] == [{"url": "/analytics"}]
    # a client joins the server URL and a path of the document: health answers there
    health_path = contract["servers"][0]["url"] + "/api/v1/reports/health"
    assert "/api/v1/reports/health" in contract["paths"]
    assert json.loads(opener.open(url + health_path, timeout=10).read())["status"] == "ok"
    # outside the mount the path is the host's, which has no such route
    with pytest.raises(urllib.error.HTTPError) as outside:
        opener.open(f"{url}/api/v1/reports/health", timeout=10)
    assert outside.value.code == 404

    first, location = generate(url, opener, "First")
    assert location == f"/analytics/api/v1/reports/{first}/status"
    wait_completed(url, opener, location)
    second, location = generate(url, opener, "Second")
    wait_completed(url, opener, location)

    # the paging Link header, followed as a client would: page 2 of 2 holds the other report
    page_one = opener.open(f"{url}/analytics/api/v1/reports?limit=1", timeout=10)
    assert page_one.headers["X-Total-Count"] == "2"
    rels = links(page_one.headers["Link"])
    assert set(rels) == {"first", "next", "last"}
    assert all(target.startswith("/analytics/api/v1/reports?") for target in rels.values())
    page_two = opener.open(url + rels["next"], timeout=10)
    ids = [json.loads(page_one.read())[0]["report_id"], json.loads(page_two.read())[0]["report_id"]]
    assert sorted(ids) == sorted([first, second])
    assert set(links(page_two.headers["Link"])) == {"first", "prev", "last"}

    # the signed link carries the mount and opens without the host's session
    own = opener.open(f"{url}/analytics/api/v1/reports/{first}/download", timeout=10).read()
    link = json.loads(opener.open(f"{url}/analytics/api/v1/reports/{first}/download?as=link", timeout=10).read())
    assert link["url"].startswith(f"{url}/analytics/api/v1/reports/{first}/download?")
    anonymous = urllib.request.urlopen(link["url"], timeout=10).read()
    assert anonymous == own and json.loads(anonymous)["title"] == "First"


def wsgi_get(app, path, script_name="", **environ):
    """One GET straight through a WSGI app: status, headers and body."""
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": script_name, "HTTP_HOST": "127.0.0.1",
           "wsgi.input": io.BytesIO(b""), **environ}
    setup_testing_defaults(env)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app(env, start_response))
    return seen["status"], seen["headers"], body


class HostIdentity:
    """What a host's sign-in hands over: the server's ``REMOTE_USER``, or its own object."""

    @hookimpl
    def authenticate(self, request):
        if request.identity is not None:
            return Principal(id=request.identity["user"], org_id="org-acme", roles={"report_admin"}, via="host")
        if request.remote_user is not None:
            return Principal(id=request.remote_user, org_id="org-acme", roles={"report_viewer"}, via="host")
        return None


@pytest.fixture
def reports(tmp_path, botreports_demo_db, monkeypatch):
    monkeypatch.setenv("BOTREPORTS_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.delenv("BOTREPORTS_PUBLIC_URL", raising=False)
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, queue="immediate", plugins=[HostIdentity()])
    yield rk
    rk.close()


def test_bottle_mount_copies_routes_and_urls_follow(reports):
    host = bottle.Bottle()
    host.mount("/analytics/", reports.wsgi_app())
    status, _, body = wsgi_get(host, "/analytics/openapi.json", script_name="/portal")
    assert status == 200 and json.loads(body)["servers"] == [{"url": "/portal/analytics"}]
    report = reports.generate(Principal("ana", "org-acme", {"admin"}), {"type": "usage", "format": "json", **PERIOD})
    status, _, body = wsgi_get(host, f"/analytics/api/v1/reports/{report.id}/download",
                               script_name="/portal", QUERY_STRING="as=link", REMOTE_USER="ana")
    assert status == 200, body
    signed = json.loads(body)["url"]
    assert signed.startswith(f"http://127.0.0.1/portal/analytics/api/v1/reports/{report.id}/download?")
    query = signed.split("?", 1)[1]
    status, headers, body = wsgi_get(host, f"/analytics/api/v1/reports/{report.id}/download",
                                     script_name="/portal", QUERY_STRING=query)
    assert status == 200 and json.loads(body)["report_id"] == report.id
    status, headers, _ = wsgi_get(host, "/analytics/api/v1/reports", script_name="/portal",
                                  QUERY_STRING="limit=1", REMOTE_USER="ana")
    assert status == 200 and links(headers["Link"])["first"] == "/portal/analytics/api/v1/reports?limit=1&offset=0"


def test_remote_user_and_host_identity_reach_authenticate(reports):
    app = reports.wsgi_app()
    path = "/api/v1/reports/schedule"  # report_admin: the host's own object grants it, REMOTE_USER does not
    assert wsgi_get(app, path, REMOTE_USER="ana")[0] == 403
    assert wsgi_get(app, path, **{"botreports.identity": {"user": "ana"}})[0] == 200
    assert wsgi_get(app, "/api/v1/reports", REMOTE_USER="ana")[0] == 200
    # a client cannot claim a user through a header: it arrives as HTTP_REMOTE_USER, not REMOTE_USER
    status, headers, body = wsgi_get(app, "/api/v1/reports", HTTP_REMOTE_USER="ana")
    assert status == 401 and json.loads(body)["error"] == "missing_token"


def test_example_host_stops_cleanly_on_sigterm(tmp_path, botreports_demo_db):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    host = subprocess.Popen([sys.executable, str(EXAMPLE), "--data-dir", str(data_dir), "--port", "0",
                             "--mount", "/analytics"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = host.stdout.readline()
        found = re.search(r"listening on (http://\S+);", line)
        assert found, (line, host.stderr.read() if host.poll() is not None else "")
        health = json.loads(urllib.request.urlopen(f"{found.group(1)}/analytics/api/v1/reports/health",
                                                   timeout=10).read())
        assert health["status"] == "ok"
        host.send_signal(signal.SIGTERM)
        out, err = host.communicate(timeout=30)
    finally:
        if host.poll() is None:
            host.kill()
            host.communicate()
    assert host.returncode == 0, err
    assert out.strip().endswith("host stopped")
    assert "Traceback" not in err
