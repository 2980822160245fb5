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

import pytest
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
        assert banner.index("The web console: open http://127.0.0.1:0/") < banner.index("curl")  # first
        console = requests.get(url["base"] + "/", timeout=10)
        assert console.status_code == 200 and console.url.endswith("/signin") and "Sign in" in console.text
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


def _serving(app, **limits):
    """``app`` on waitress as ``serve`` sets it up, in a thread; returns (server, port)."""
    from botreports.adapters.wsgi_server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4, **limits)
    threading.Thread(target=server.run, daemon=True).start()
    return server, server.effective_port


def _stop(server):
    from waitress import wasyncore
    try:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map, ignore_all=True))
    except OSError:
        pass
    server.task_dispatcher.shutdown()


def _health_time(port, timeout=5.0):
    """Seconds a fresh client waits for /health (``timeout`` if it got no answer)."""
    started = time.monotonic()
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/api/v1/reports/health", timeout=timeout)
    except requests.RequestException:
        return timeout
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    return time.monotonic() - started


def _idle_sockets(port, count):
    import socket
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    time.sleep(0.3)  # accepted by the server's loop
    return sockets


def test_a_hundred_idle_connections_no_longer_lock_health_checks_out(reports):
    # The fault: with waitress's default limit of 100 connections, 100 idle sockets kept every
    # new client, health checks included, waiting until they closed (two minutes later).
    old, old_port = _serving(reports.wsgi_app(), connection_limit=100, idle_timeout=120)
    sockets = _idle_sockets(old_port, 100)
    try:
        assert _health_time(old_port, timeout=1.5) == 1.5  # the fault, as it was
    finally:
        for sock in sockets:
            sock.close()
        _stop(old)
    server, port = _serving(reports.wsgi_app())  # serve's defaults
    sockets = _idle_sockets(port, 150)
    try:
        times = [_health_time(port) for _ in range(5)]
        assert max(times) < 0.5, times
    finally:
        for sock in sockets:
            sock.close()
        _stop(server)


def test_idle_connections_are_closed_after_the_idle_timeout(reports):
    server, port = _serving(reports.wsgi_app(), idle_timeout=1)
    (idle,) = _idle_sockets(port, 1)
    try:
        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server, not by us
        assert time.monotonic() - started < 4
    finally:
        idle.close()
        _stop(server)


def test_health_answers_while_every_thread_is_busy_with_slow_requests(reports):
    # The fault: under load a health check queued behind the requests before it (13 s under wrk -c99).
    api = reports.wsgi_app()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/slow":
            time.sleep(2)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"done"]
        return api(environ, start_response)

    server, port = _serving(app)
    slow = [threading.Thread(target=requests.get, args=(f"http://127.0.0.1:{port}/slow",), kwargs={"timeout": 30})
            for _ in range(12)]  # three rounds of four threads: six seconds of queue
    try:
        for thread in slow:
            thread.start()
        time.sleep(0.3)
        times = [_health_time(port) for _ in range(5)]
        assert max(times) < 0.5, times
    finally:
        for thread in slow:
            thread.join(30)
        _stop(server)


@pytest.mark.parametrize("flag, value, words", [("--connection-limit", "5", "must be at least 16"),
                                                ("--idle-timeout", "0", "must be positive"),
                                                ("--idle-timeout", "soon", "must be a number of seconds")])
def test_serve_refuses_bad_connection_settings_naming_the_flag(tmp_path, flag, value, words):
    done = subprocess.run([str(BIN), "serve", "--data-dir", str(tmp_path), "--port", "0", flag, value],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and flag in done.stderr and words in done.stderr, done.stderr
