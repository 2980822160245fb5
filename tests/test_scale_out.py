"""Many hosts: two API processes (``serve --workers 0``) and three ``botreports worker`` processes,
each with its own empty data dir, sharing only the URLs of PostgreSQL, Redis and an S3 server.
Reports submitted to either API are rendered exactly once, downloadable and deletable from either,
and a worker killed mid-render loses no report."""
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests

from http_support import BASE
from s3_support import aws_environment, s3_bucket, s3_server  # noqa: F401 (fixtures)
from store_support import postgres_store_url  # noqa: F401 (fixture)

REPORTS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout=60.0, every=0.2, what="a condition"):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


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


def answers(url):
    try:
        return requests.get(url + "/openapi.json", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.postgres
@pytest.mark.redis
def test_two_apis_and_three_workers_share_only_urls(tmp_path, postgres_store_url, s3_bucket, s3_server,
                                                    botreports_demo_db):
    queue_url = redis_url()
    name = f"botreports-scale-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **aws_environment(s3_server), "BOTREPORTS_QUEUE_NAME": name,
           "BOTREPORTS_STORE": postgres_store_url, "BOTREPORTS_ARTIFACTS": f"s3://{s3_bucket}/reports-prod",
           "BOTREPORTS_SECRET": "one-secret-every-host-is-configured-with", "BOTREPORTS_MAX_UNFINISHED": "0",
           "BOTREPORTS_RATE_LIMIT": "0", "BOTREPORTS_LEASE_SECONDS": "2"}
    env.pop("BOTREPORTS_DATA_DIR", None)

    def data_dir(label, analytics=False):
        folder = tmp_path / label
        folder.mkdir()
        if analytics:  # each worker reads its own copy, as a replica of the analytics data
            shutil.copy(botreports_demo_db, folder / "analytics.db")
        return str(folder)

    key = subprocess.run([sys.executable, "-m", "botreports", "keys", "create", "--role", "report_admin",
                          "--org", "org-acme", "--data-dir", data_dir("admin")], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    processes, logs, apis = [], [], []
    try:
        for n in range(2):
            port = free_port()
            log = tmp_path / f"api-{n}.log"
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "botreports", "serve", "--port", str(port), "--workers", "0",
                 "--queue", queue_url, "--data-dir", data_dir(f"api-{n}")], env=env, stderr=log.open("w")))
            apis.append(f"http://127.0.0.1:{port}")
            logs.append(log)
        for n in range(3):
            log = tmp_path / f"worker-{n}.log"
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "botreports", "worker", "--queue", queue_url, "--workers", "1",
                 "--data-dir", data_dir(f"worker-{n}", analytics=True)], env=env, stderr=log.open("w")))
            logs.append(log)
        for api in apis:
            wait_for(lambda: answers(api), what=f"the API at {api}")
        for log in logs[2:]:
            wait_for(lambda: "worker on" in log.read_text(), what=f"the worker of {log.name}")

        headers = {"X-API-Key": key}
        ids = []
        for i in range(REPORTS):  # round robin over the two APIs
            body = {"type": "usage", "format": ["csv", "json"][i % 2], "start_date": "2025-01-20",
                    "end_date": "2025-01-21", "title": f"burst {i}"}
            response = requests.post(f"{apis[i % 2]}{BASE}/generate", json=body, headers=headers, timeout=30)
            assert response.status_code == 202, response.text
            ids.append(response.json()["report_id"])

        def states():
            return [requests.get(f"{apis[i % 2]}{BASE}/{report_id}/status", headers=headers, timeout=30).json()["state"]
                    for i, report_id in enumerate(ids)]

        wait_for(lambda: set(states()) == {"completed"}, timeout=240, every=1, what="every report")

        import boto3
        import psycopg

        def rows_of(report_ids):
            with psycopg.connect(postgres_store_url) as conn:
                found = {row[0]: row[1:] for row in conn.execute(
                    "SELECT id, attempts, worker, artifact_path, artifact_sha256, state FROM reports")}
            return {report_id: found.get(report_id) for report_id in report_ids}

        rows = rows_of(ids)
        assert [rows[i][0] for i in ids] == [1] * REPORTS  # each claimed and rendered exactly once
        assert len({rows[i][1].rsplit("-", 1)[0] for i in ids}) == 3  # every worker process took part
        listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, MaxKeys=1000).get("Contents", [])
        assert {item["Key"] for item in listed} == {f"reports-prod/{rows[i][2]}" for i in ids}
        for n in range(3):  # nothing kept on the workers' own disks
            assert list((tmp_path / f"worker-{n}" / "reports").glob("*")) == []
        for i, report_id in enumerate(ids):  # each API serves what the other accepted
            file = requests.get(f"{apis[(i + 1) % 2]}{BASE}/{report_id}/download", headers=headers, timeout=30)
            assert file.status_code == 200
            assert hashlib.sha256(file.content).hexdigest() == rows[report_id][3]

        # a worker killed with SIGKILL mid-render loses no report
        slow = {"type": "usage", "format": "pdf", "start_date": "2025-01-01", "end_date": "2025-03-31"}
        pdfs = [requests.post(f"{apis[i % 2]}{BASE}/generate", json={**slow, "title": f"pdf {i}"}, headers=headers,
                              timeout=30).json()["report_id"] for i in range(6)]
        victim = None

        def running_worker():
            nonlocal victim
            for report_id, row in rows_of(pdfs).items():
                if row and row[4] == "running" and row[1]:
                    victim = (report_id, int(row[1].rsplit("-", 1)[0].rsplit("-", 1)[1]))
                    return True
            return False

        wait_for(running_worker, timeout=60, every=0.05, what="a running PDF report")
        killed = next(process for process in processes if process.pid == victim[1])
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        processes.append(subprocess.Popen(  # the host's supervisor starts it again; it reclaims the report
            [sys.executable, "-m", "botreports", "worker", "--queue", queue_url, "--workers", "1",
             "--data-dir", data_dir("worker-restarted", analytics=True)], env=env, stderr=(tmp_path / "restarted.log").open("w")))
        wait_for(lambda: {row[4] for row in rows_of(pdfs).values()} == {"completed"}, timeout=240, every=0.5,
                 what="every PDF report after the kill")
        pdf_rows = rows_of(pdfs)
        assert pdf_rows[victim[0]][0] == 2  # the killed attempt, then one more
        assert sorted(row[0] for report_id, row in pdf_rows.items() if report_id != victim[0]) == [1] * 5
        for report_id in pdfs:
            file = requests.get(f"{apis[0]}{BASE}/{report_id}/download", headers=headers, timeout=30)
            assert file.content.startswith(b"%PDF-")
            assert hashlib.sha256(file.content).hexdigest() == pdf_rows[report_id][3]

        for i, report_id in enumerate(ids + pdfs):  # deleted from either API
            assert requests.delete(f"{apis[i % 2]}{BASE}/{report_id}", headers=headers, timeout=30).status_code == 204
            gone = requests.get(f"{apis[(i + 1) % 2]}{BASE}/{report_id}/status", headers=headers, timeout=30)
            assert gone.status_code == 404
        assert boto3.client("s3").list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    problems = [line for log in tmp_path.glob("*.log") for line in log.read_text().splitlines() if "Traceback" in line]
    assert problems == []
