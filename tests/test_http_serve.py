"""`botreports serve` as `make demo` runs it: a real waitress server, the Huey worker in the
same process, an admin key printed for the user, and a clean stop on SIGTERM."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).with_name("botreports")


def test_demo_serve_prints_a_key_and_curl_examples_then_serves_reports(tmp_path, botreports_demo_db):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    process = subprocess.Popen([str(ROOT / "scripts" / "demo-serve"), str(BIN), str(data_dir), "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "BOTREPORTS_RATE_LIMIT": "100000"})
    stderr_lines = []
    ready = threading.Event()
    url = {}

    def read_stderr():
        for line in process.stderr:
            stderr_lines.append(line)
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)/api/v1/reports", line)
            if found:
                url["base"] = found.group(1)
                ready.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        assert ready.wait(60), "".join(stderr_lines)
        banner = ""
        while "curl" not in banner or "/health" not in banner:  # the examples come before the server starts
            banner += process.stdout.readline()
        key = re.search(r"export KEY=(brk_\S+)", banner).group(1)
        for group in ("/generate", "/status", "/download?as=link", "/schedule", "/templates", "/openapi.json"):
            assert group in banner, group
        api = url["base"] + "/api/v1/reports"
        assert requests.get(f"{api}/health", timeout=10).json()["status"] == "ok"
        body = {"type": "usage", "start_date": "2025-01-20", "end_date": "2025-01-31", "format": "json"}
        started = requests.post(f"{api}/generate", json=body, headers={"X-API-Key": key}, timeout=10)
        assert started.status_code == 202 and started.json()["state"] == "pending"
        report_id = started.json()["report_id"]
        deadline = time.monotonic() + 60
        while True:
            status = requests.get(f"{api}/{report_id}/status", headers={"X-API-Key": key}, timeout=10).json()
            if status["state"] in ("completed", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status["state"] == "completed", status
        document = requests.get(f"{api}/{report_id}/download?api_key={key}", timeout=10).json()
        assert document["report_id"] == report_id and document["organization_id"] == "org-acme"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, "".join(stderr_lines)
    log = "".join(stderr_lines)
    assert re.search(r"botreports\.http: 127\.0\.0\.1 POST /api/v1/reports/generate 202", log)
    assert key not in log  # the api_key query parameter never reaches the log
