"""Scale-out benchmark: reports per minute for a burst of small PDF reports rendered by 1, 2 and 4
``botreports worker`` processes sharing PostgreSQL, Redis and an S3 server (moto's, on this machine),
each with its own data dir; the ratio is against 1 worker measured in the same run. Then the status
endpoint's throughput with the metadata store on PostgreSQL next to the SQLite file (same server,
same threads, same load generator: wrk when installed).

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), Redis on 127.0.0.1:6379 and moto[server].

    python bench/bench_scale_out.py [--reports 200] [--workers 1,2,4] [--seconds 10]
"""
import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_http import Server, run_python, run_wrk  # noqa: E402

PDF = {"type": "usage", "format": "pdf", "start_date": "2025-01-25", "end_date": "2025-01-31"}
ADMIN_URL = os.environ.get("BOTREPORTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = "redis://127.0.0.1:6379/14"
SECRET = "bench-secret-shared-by-every-process-0123"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_s3():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(up, 30, "moto's S3 server")
    return process, f"http://127.0.0.1:{port}"


def create_database():
    import psycopg

    name = "botreports_bench_" + secrets.token_hex(4)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name, ADMIN_URL.rpartition("/")[0] + f"/{name}"


def drop_database(name):
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def burst(rk, env, root, analytics, workers, count):
    """Seconds for ``workers`` worker processes to render ``count`` PDF reports enqueued at once."""
    from botreports.core.service import SYSTEM

    processes, logs = [], []
    for n in range(workers):
        data_dir = root / f"w{workers}-{n}"
        data_dir.mkdir()
        shutil.copy(analytics, data_dir / "analytics.db")
        log = root / f"w{workers}-{n}.log"
        processes.append(subprocess.Popen([sys.executable, "-m", "botreports", "worker", "--workers", "1",
                                           "--queue", REDIS, "--data-dir", str(data_dir)], env=env,
                                          stderr=log.open("w")))
        logs.append(log)
    try:
        for log in logs:
            wait_until(lambda: "worker on" in log.read_text(), 60, f"the worker of {log.name}")
        time.sleep(2)  # let every process finish starting (its PDF renderer warms up in the background)
        started = time.perf_counter()
        ids = [rk.generate(SYSTEM, {**PDF, "title": f"burst {n}"}).id for n in range(count)]
        wait_until(lambda: all(rk.store.get_report(i).state in ("completed", "failed") for i in ids), 3600,
                   "the burst")
        elapsed = time.perf_counter() - started
        failed = sum(rk.store.get_report(i).state == "failed" for i in ids)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    return elapsed, failed


def status_rate(rk, seconds, connections):
    from botreports import Principal

    plain, _ = rk.create_api_key("org-1", "report_viewer")
    creator = Principal(id="bench", org_id="org-1", roles={"report_creator"}, via="test")
    report = rk.generate(creator, {**PDF, "format": "json"})
    server = Server(rk.wsgi_app(), threads=4)
    try:
        url = f"{server.url}/api/v1/reports/{report.id}/status"
        run = run_wrk if shutil.which("wrk") else run_python
        return run(url, seconds, connections, {"X-API-Key": plain})
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()

    import datetime as dt
    import logging

    logging.getLogger("waitress").setLevel(logging.ERROR)  # "task queue depth" under load is expected

    import boto3

    from botreports import Reports
    from botreports.adapters.queue import make_queue
    from botreports.plugins.sources.synthetic import generate as synthesize

    root = Path(tempfile.mkdtemp(prefix="bench-scale-out-"))
    analytics = root / "analytics.db"
    synthesize(analytics, days=31, bots=10, messages=20_000, seed=3, end_date=dt.date(2025, 1, 31))
    s3, endpoint = start_s3()
    name, store_url = create_database()
    queue_name = f"bench-scale-{uuid.uuid4().hex[:8]}"
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench-secret"}
    os.environ.update(aws)
    boto3.client("s3").create_bucket(Bucket="bench")
    env = {**os.environ, **aws, "BOTREPORTS_STORE": store_url, "BOTREPORTS_ARTIFACTS": "s3://bench/reports",
           "BOTREPORTS_SECRET": SECRET, "BOTREPORTS_QUEUE_NAME": queue_name, "BOTREPORTS_MAX_UNFINISHED": "0"}
    try:
        api_dir = root / "api"
        api_dir.mkdir()
        queue = make_queue(REDIS, api_dir, name=queue_name)
        rk = Reports(data_dir=api_dir, queue=queue, load_entrypoints=False, store_url=store_url,
                     artifacts_url="s3://bench/reports", secret=SECRET, max_unfinished=0, rate_limit=0)
        rates = {}
        for workers in [int(n) for n in args.workers.split(",")]:
            elapsed, failed = burst(rk, env, root, analytics, workers, args.reports)
            rates[workers] = args.reports / elapsed * 60
            base = rates[min(rates)]
            print(f"{args.reports} small PDF reports, {workers} worker process(es): {elapsed:.1f} s = "
                  f"{rates[workers]:.0f} reports/min ({failed} failed); ratio to {min(rates)} worker: "
                  f"{rates[workers] / base:.2f}x", flush=True)
        queue.huey.storage.flush_all()

        pg = status_rate(rk, args.seconds, args.connections)
        rk.close()
        lite_dir = root / "sqlite"
        lite_dir.mkdir()
        shutil.copy(analytics, lite_dir / "analytics.db")
        lite = Reports(data_dir=lite_dir, queue="immediate", load_entrypoints=False, secret=SECRET, rate_limit=0)
        sqlite = status_rate(lite, args.seconds, args.connections)
        lite.close()
        for label, result in (("SQLite file", sqlite), ("PostgreSQL", pg)):
            print(f"GET /status, {args.connections} connections, store on {label}: {result['rate']:.0f} req/s, "
                  f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms, {result['errors']} errors")
        print(f"  PostgreSQL / SQLite: {pg['rate'] / sqlite['rate']:.2f}x")
    finally:
        drop_database(name)
        s3.terminate()
        s3.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
