"""Throughput and latency of the HTTP API under a real load generator on 127.0.0.1.

Measures, in one run and on the same server (waitress, same threads): a bare
Bottle hello-world (the baseline), then GET /{report_id}/status and GET
/api/v1/reports (a page of 20) with an API key, with 60 reports stored and then with 10,000.
Targets on a 2-core machine: status >= 0.4x the hello-world rate, the list of 10,000 >= 0.2x,
p99 <= 25 ms at 10 connections.

Uses wrk when it is installed (Debian package ``wrk``), else a bounded Python
load generator in separate processes (slower: it competes for the same cores).

    python bench/bench_http.py [--seconds 10] [--connections 10] [--threads 4]
"""
import argparse
import multiprocessing
import re
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from botreports import Principal, Reports
from botreports.plugins.sources.synthetic import generate

GEN = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-31"}


class Server:
    """A WSGI app on the server of ``botreports serve`` (waitress) in a thread of this process,
    on an ephemeral port."""

    def __init__(self, app, threads):
        from botreports.adapters.wsgi_server import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=threads)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def stop(self):
        from waitress import wasyncore

        self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown()


LIST_10K = "GET /api/v1/reports, 20 of 10,000 (API key)"


def fill_reports(rk, model_id, count):
    """Store ``count`` more completed reports like ``model_id``, one second apart and older than it
    (rows written straight to the store: generating 10,000 reports would take the whole run)."""
    import datetime as dt

    import attrs

    from botreports.core.security import new_id

    model = rk.store.get_report(model_id)
    with rk.store.transaction():
        for n in range(count):
            rk.store.insert_report(attrs.evolve(model, id=new_id("rpt"), title=f"Filled {n}",
                                                created_at=model.created_at - dt.timedelta(seconds=n + 1)))


def hello_app():
    import bottle

    app = bottle.Bottle()

    @app.get("/hello")
    def hello():
        return "Hello, world!"

    return app


def _unit_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url, seconds, connections, headers):
    import subprocess

    command = ["wrk", "--latency", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = _unit_ms(*re.search(r"50%\s+([\d.]+)(us|ms|s)", output).groups())
    p99 = _unit_ms(*re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rate": rate, "p50": p50, "p99": p99, "errors": int(non2xx.group(1)) if non2xx else 0}


def _client(url, seconds, headers, out):
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies, errors = [], 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        errors += response.status >= 400
    out.put((latencies, errors))


def run_python(url, seconds, connections, headers):
    out = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_client, args=(url, seconds, headers, out)) for _ in range(connections)]
    for worker in workers:
        worker.start()
    results = [out.get() for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    return {"rate": len(latencies) / seconds, "p50": statistics.median(latencies) * 1000,
            "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000, "errors": sum(e for _, e in results)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4, help="waitress threads, same for every app")
    args = parser.parse_args()
    import logging
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # a full queue is the point of a load test
    load = run_wrk if shutil.which("wrk") else run_python
    print(f"load generator: {'wrk' if load is run_wrk else 'python (wrk not installed)'}; "
          f"{args.seconds} s, {args.connections} connections, waitress threads {args.threads}")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        generate(data_dir / "analytics.db", days=14, bots=6, messages=20_000, seed=7,
                 end_date=__import__("datetime").date(2025, 1, 31))
        rk = Reports(data_dir=data_dir, load_entrypoints=False, rate_limit=0, max_unfinished=0)
        owner = Principal("bench", "org-acme", {"admin"})
        ids = [rk.generate(owner, {**GEN, "title": f"Report {n}"}).id for n in range(60)]
        key = rk.create_api_key("org-acme", "report_viewer")[0]
        auth = {"X-API-Key": key}

        results = {}
        hello = Server(hello_app(), args.threads)
        try:
            load(f"{hello.url}/hello", 1, args.connections, {})  # warm up
            results["bare Bottle hello-world"] = load(f"{hello.url}/hello", args.seconds, args.connections, {})
        finally:
            hello.stop()
        api = Server(rk.wsgi_app(), args.threads)
        try:
            status_url = f"{api.url}/api/v1/reports/{ids[0]}/status"
            load(status_url, 1, args.connections, auth)
            results["GET /{id}/status (API key)"] = load(status_url, args.seconds, args.connections, auth)
            list_url = f"{api.url}/api/v1/reports?limit=20"
            results["GET /api/v1/reports, 20 of 60 (API key)"] = load(list_url, args.seconds, args.connections, auth)
            fill_reports(rk, ids[0], 10_000 - len(ids))
            load(list_url, 1, args.connections, auth)
            results[LIST_10K] = load(list_url, args.seconds, args.connections, auth)
        finally:
            api.stop()
            rk.close()

    base = results["bare Bottle hello-world"]["rate"]
    print(f"{'endpoint':44} {'req/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for name, result in results.items():
        print(f"{name:44} {result['rate']:9.0f} {result['rate'] / base:6.2f} {result['p50']:7.2f} "
              f"{result['p99']:7.2f} {result['errors']:6d}")
    status = results["GET /{id}/status (API key)"]
    ok = status["rate"] / base >= 0.4 and status["p99"] <= 25 and status["errors"] == 0
    print(f"targets (status >= 0.4x hello-world, p99 <= 25 ms): {'met' if ok else 'NOT met'}")
    listed = results[LIST_10K]
    ok = listed["rate"] / base >= 0.2 and listed["p99"] <= 25 and listed["errors"] == 0
    print(f"targets (list of 10,000 >= 0.2x hello-world, p99 <= 25 ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
