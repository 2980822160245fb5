"""The embedding example runs: a host app with botreports inside, a report made
through the host's route with the host's sign-in, the user told it is ready,
and the host stopped with no thread left behind."""
import importlib.util
import json
import shutil
import threading
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from botserver_support import botserver_db  # noqa: F401 (fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "embed_in_host.py"


def load_example():
    spec = importlib.util.spec_from_file_location("embed_in_host", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_host(tmp_path, org, data_source, period):
    example = load_example()
    before = set(threading.enumerate())
    users = {"ana": {"org_id": org, "role": "report_creator"}, "eve": {"org_id": org, "role": ""}}
    host = example.Host(tmp_path / "host-data", users, data_source=data_source, workers=1)
    url = host.start(port=0)
    try:
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(urllib.request.Request(f"{url}/login", data=b"user=ana"), timeout=10)
        body = json.dumps({"type": "usage", "format": "json", "title": "Embedded", **period}).encode()
        request = urllib.request.Request(f"{url}/api/v1/reports/generate", data=body,
                                         headers={"Content-Type": "application/json"})
        answer = opener.open(request, timeout=10)
        assert answer.status == 202
        report_id = json.loads(answer.read())["report_id"]
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(opener.open(f"{url}/api/v1/reports/{report_id}/status", timeout=10).read())
            if status["state"] in ("completed", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status["state"] == "completed", status
        document = json.loads(opener.open(f"{url}/api/v1/reports/{report_id}/download", timeout=10).read())
        # report_finished runs right after the state is stored: give the worker a moment
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            told = json.loads(opener.open(f"{url}/notifications", timeout=10).read())["notifications"]
            if told:
                break
            time.sleep(0.05)
        assert told == [{"report_id": report_id, "state": "completed", "title": "Embedded", "error": None}]
        # the contract is reachable through the host, where the docs route it
        contract = json.loads(opener.open(f"{url}/api/v1/reports/openapi.json", timeout=10).read())
        assert contract["openapi"].startswith("3.1") and "/api/v1/reports/generate" in contract["paths"]
        # without the host's session there is no way in
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{url}/api/v1/reports/{report_id}/status", timeout=10)
        assert denied.value.code == 401
    finally:
        host.stop()
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not left, left
    return document


def kpis(document):
    return {i["name"]: i["value"] for i in document["sections"][0]["blocks"][0]["items"]}


def test_embedded_in_host_with_the_sqlite_source(tmp_path, botreports_demo_db):
    from botreports.testing import DEMO
    data = tmp_path / "analytics.db"
    shutil.copy(botreports_demo_db, data)
    document = run_host(tmp_path, "org-acme", f"sqlite://{data}",
                        {"start_date": "2025-01-20", "end_date": str(DEMO["end_date"])})
    assert document["organization_id"] == "org-acme" and kpis(document)["messages_in"] > 0


def test_embedded_in_host_with_botserver_database(tmp_path, botserver_db):
    document = run_host(tmp_path, botserver_db.org("org-acme"), botserver_db.url,
                        {"start_date": "2025-03-10", "end_date": "2025-03-20", "timezone": "Europe/Berlin"})
    assert kpis(document)["messages_in"] > 0
