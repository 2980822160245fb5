"""Workers for real: generation over HTTP with the standalone Huey-on-SQLite
queue, a worker process killed with SIGKILL in the middle of a report, and two
worker processes sharing a burst on Redis."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from botreports import Reports
from botreports.adapters.queue import make_queue
from botreports.core.errors import Conflict
from botreports.core.service import SYSTEM
from jobs_plugins import JobSections

HERE = Path(__file__).parent
# Sections may be collected side by side: the slow ones end at different times, so progress
# moves in steps that a poller sees.
SLOW = {"type": "custom", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21",
        "sections": [{"type": "slow_steps", "steps": 1, "delay": 0.4}, {"type": "slow_steps", "steps": 1,
                                                                           "delay": 0.8},
                     {"type": "usage_summary"}]}


@pytest.fixture
def data_dir(tmp_path, botreports_demo_db):
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    return tmp_path


def wait_for(predicate, timeout=30, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_generate_over_http_is_202_then_running_then_completed(data_dir):
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    queue = make_queue(None, data_dir, workers=2)
    rk = Reports(data_dir=data_dir, queue=queue, load_entrypoints=False, plugins=[JobSections()])
    plain, _ = rk.create_api_key("org-acme", "report_creator")

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, rk.wsgi_app(), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1/reports"
    queue.start()
    try:
        started = time.monotonic()
        request = Request(f"{base}/generate", data=json.dumps(SLOW).encode(), method="POST",
                          headers={"Content-Type": "application/json", "X-API-Key": plain})
        with urlopen(request) as response:
            status, body = response.status, json.loads(response.read())
        assert status == 202 and time.monotonic() - started < 1.0
        assert (body["state"], body["progress"]) == ("pending", 0)
        seen = []

        def poll():
            with urlopen(f"{base}/{body['report_id']}/status?api_key={plain}") as response:
                now = json.loads(response.read())
            seen.append((now["state"], now["progress"], now["stage"]))
            return now["state"] in ("completed", "failed")

        wait_for(poll, every=0.05)
        states = [s for s, _, _ in seen]
        assert states[-1] == "completed" and "running" in states
        order = ["pending", "running", "completed"]
        assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)
        progress = [p for _, p, _ in seen]
        assert progress == sorted(progress) and progress[-1] == 100
        assert len({p for s, p, _ in seen if s == "running"}) >= 2  # it grew while we watched
        assert any(stage.startswith("collecting") for _, _, stage in seen)
        with urlopen(f"{base}/{body['report_id']}/download?api_key={plain}") as response:
            document = json.loads(response.read())
            assert response.headers["Content-Type"].startswith("application/json")
        assert document["report_id"] == body["report_id"]
    finally:
        server.shutdown()
        rk.close()


def start_worker(data_dir, queue_url="sqlite", env=None):
    process = subprocess.Popen([sys.executable, str(HERE / "jobs_plugins.py"), str(data_dir), queue_url, "2"],
                               env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_worker_killed_mid_report_is_retried_and_never_serves_a_partial_file(data_dir):
    env = {"BOTREPORTS_LEASE_SECONDS": "1"}
    queue = make_queue(None, data_dir, workers=1)
    rk = Reports(data_dir=data_dir, queue=queue, load_entrypoints=False, plugins=[JobSections()],
                 lease_seconds=1)
    body = {**SLOW, "sections": [{"type": "slow_steps", "steps": 20, "delay": 0.1}, {"type": "usage_summary"}]}
    report = rk.generate(SYSTEM, body)
    victim = start_worker(data_dir, env=env)
    try:
        wait_for(lambda: rk.store.get_report(report.id).state == "running")
        time.sleep(0.5)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    assert victim.returncode == -signal.SIGKILL
    stuck = rk.store.get_report(report.id)
    assert stuck.state == "running" and stuck.artifact_path is None
    with pytest.raises(Conflict):
        rk.download(SYSTEM, report.id)
    assert not list(rk.reports_dir.glob(f"{report.id}*"))
    time.sleep(1.2)  # the dead worker's lease runs out
    survivor = start_worker(data_dir, env=env)  # its start-up reconciler takes the report back
    try:
        done = wait_for(lambda: (r := rk.store.get_report(report.id)).state in ("completed", "failed") and r)
    finally:
        survivor.terminate()
        survivor.wait(20)
    assert (done.state, done.attempts) == ("completed", 2)
    assert json.loads(rk.download(SYSTEM, report.id).path.read_text())["report_id"] == report.id
    rk.close()


def test_status_shows_a_killed_workers_report_as_lost_at_once_and_its_retry_restarts_progress(data_dir):
    # The fault: a worker SIGKILLed at 81 % left status saying "running 81 % rendering" for the
    # minute of its lease and the reconciler's tick, and the retry went on showing 81 %.
    env = {"BOTREPORTS_LEASE_SECONDS": "5"}  # renewed every 1.7 s: a busy machine keeps it
    queue = make_queue(None, data_dir, workers=1)
    rk = Reports(data_dir=data_dir, queue=queue, load_entrypoints=False, plugins=[JobSections()],
                 lease_seconds=5)
    body = {**SLOW, "sections": [{"type": "slow_steps", "steps": 1, "delay": 1.0} for _ in range(6)]}
    report = rk.generate(SYSTEM, body)
    victim = start_worker(data_dir, env=env)
    try:
        before = wait_for(lambda: (s := rk.status(SYSTEM, report.id))["progress"] >= 20 and s, timeout=60)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    killed = time.monotonic()
    # Another worker, idle: the queue's only message was the victim's.
    standby = subprocess.Popen([sys.executable, str(HERE / "jobs_plugins.py"), str(data_dir), "sqlite", "2"],
                               env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    try:
        seen = []
        while time.monotonic() - killed < 60:
            status = rk.status(SYSTEM, report.id)
            seen.append((round(time.monotonic() - killed, 2), status["state"], status["progress"], status["stage"]))
            if status["state"] in ("completed", "failed"):
                break
            time.sleep(0.05)
    finally:
        standby.terminate()
        standby.wait(20)
    assert seen[-1][1] == "completed", seen
    # Once the lease lapsed (2/3 of it to all of it after the kill), the very next status said
    # so, with no reconciler tick needed ...
    lost = next(i for i, (_, state, _, stage) in enumerate(seen) if state != "running" or stage.startswith("worker"))
    assert 5 * 2 / 3 - 0.5 < seen[lost][0] < 5 + 1.0, seen
    assert seen[lost][1:] == ("pending", 0, "worker lost, will retry (attempt 2 of 3)"), seen
    # ... and the retry counts its own progress from 0, growing only within that attempt.
    retry = [progress for _, state, progress, _ in seen[lost:]]
    assert retry == sorted(retry) and retry[0] == 0 and max(p for _, _, p, _ in seen[:lost]) >= before["progress"] > 0
    assert seen[-1][0] < 30, seen  # recovered within seconds of the lease, not a minute or two after
    assert rk.store.get_report(report.id).attempts == 2
    rk.close()


def redis_url():
    url = "redis://127.0.0.1:6379/15"
    try:
        import redis
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Redis is not reachable: {exc}")
    return url


@pytest.mark.redis
def test_two_worker_processes_on_redis_share_a_burst_without_doing_any_twice(data_dir):
    url = redis_url()
    name = f"botreports-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BOTREPORTS_QUEUE_NAME": name, "BOTREPORTS_DATA_DIR": str(data_dir)}
    queue = make_queue(url, data_dir, name=name)
    rk = Reports(data_dir=data_dir, queue=queue, load_entrypoints=False, max_unfinished=0)
    logs = [data_dir / f"worker-{n}.log" for n in range(2)]
    workers = [subprocess.Popen([sys.executable, "-m", "botreports", "worker", "--queue", url, "--workers", "2"],
                                env=env, stderr=log.open("w")) for log in logs]
    try:
        for log in logs:
            wait_for(lambda: "worker on" in log.read_text(), every=0.1)
        body = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}
        ids = [rk.generate(SYSTEM, body).id for _ in range(50)]
        wait_for(lambda: all(rk.store.get_report(i).state == "completed" for i in ids), timeout=90, every=0.2)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
        queue.huey.storage.flush_all()
    rows = [rk.store.report_row(i) for i in ids]
    assert [row["attempts"] for row in rows] == [1] * 50  # each claimed exactly once
    processes = {row["worker"].rsplit("-", 1)[0] for row in rows}
    assert len(processes) == 2  # both processes took part
    claims = rk.store.db.execute("SELECT count(*) FROM audit_log WHERE action = 'report.generate'").fetchone()[0]
    assert claims == 50
    rk.close()
