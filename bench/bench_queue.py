"""Queue benchmark: time from POST generate to completed for a small JSON
report in the default standalone mode (Huey on SQLite, worker threads in the
serving process), and reports per minute for a burst of 100 mixed reports with
2 workers. Each figure is printed beside a baseline measured in the same run:
the same reports rendered synchronously, without the queue.

    .venv/bin/python bench/bench_queue.py [--runs 20] [--burst 100]
"""
import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.request import Request, urlopen
from wsgiref.simple_server import WSGIRequestHandler, make_server

from botreports import Reports
from botreports.adapters.queue import make_queue
from botreports.core.service import SYSTEM
from botreports.plugins.sources.synthetic import generate as synthesize

SMALL = {"type": "usage", "format": "json", "start_date": "2025-01-25", "end_date": "2025-01-31"}


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def mixed(rk, count):
    formats = [f for f in ("json", "csv", "html", "xlsx", "pdf") if f in rk.exporters]
    bodies = []
    for n in range(count):
        body = dict(SMALL, format=formats[n % len(formats)])
        if n % 3 == 1:
            body.update(start_date="2025-01-01")
        if n % 3 == 2:
            body = {**body, "type": "custom", "sections": [{"type": "usage_summary"}, {"type": "daily_activity"}]}
        bodies.append(body)
    return bodies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    synthesize(data_dir / "analytics.db", days=31, bots=10, messages=50_000, seed=3,
               end_date=__import__("datetime").date(2025, 1, 31))

    queue = make_queue(None, data_dir, workers=2)
    rk = Reports(data_dir=data_dir, queue=queue, load_entrypoints=False, max_unfinished=0, rate_limit=0)
    plain, _ = rk.create_api_key("org-1", "report_creator")
    server = make_server("127.0.0.1", 0, rk.wsgi_app(), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1/reports"
    queue.start()

    # Baseline: the same small report rendered synchronously, no HTTP and no queue.
    sync = []
    for n in range(args.runs):
        started = time.perf_counter()
        rk.render(SYSTEM, SMALL, data_dir / f"sync-{n}.json")
        sync.append(time.perf_counter() - started)

    latencies = []
    for _ in range(args.runs):
        started = time.perf_counter()
        request = Request(f"{base}/generate", data=json.dumps(SMALL).encode(), method="POST",
                          headers={"Content-Type": "application/json", "X-API-Key": plain})
        with urlopen(request) as response:
            report_id = json.loads(response.read())["report_id"]
        while True:
            with urlopen(f"{base}/{report_id}/status?api_key={plain}") as response:
                state = json.loads(response.read())["state"]
            if state in ("completed", "failed"):
                break
            time.sleep(0.01)
        assert state == "completed", state
        latencies.append(time.perf_counter() - started)
    median, baseline = statistics.median(latencies), statistics.median(sync)
    print(f"POST generate -> completed, small JSON report, standalone (SQLite Huey, 2 threads): "
          f"median {median * 1000:.0f} ms, p90 {sorted(latencies)[int(len(latencies) * 0.9) - 1] * 1000:.0f} ms "
          f"(target <= 1000 ms: {'met' if median <= 1.0 else 'MISSED'})")
    print(f"  baseline synchronous render: median {baseline * 1000:.0f} ms; ratio {median / baseline:.1f}x")

    bodies = mixed(rk, args.burst)
    started = time.perf_counter()
    for n, body in enumerate(bodies):
        rk.render(SYSTEM, body, data_dir / f"seq-{n}")
    sequential = time.perf_counter() - started

    started = time.perf_counter()
    ids = [rk.generate(SYSTEM, body).id for body in bodies]
    while True:
        states = [rk.store.get_report(i).state for i in ids]
        if all(s in ("completed", "failed") for s in states):
            break
        time.sleep(0.05)
    burst = time.perf_counter() - started
    failed = states.count("failed")
    print(f"burst of {len(ids)} mixed reports ({', '.join(sorted({b['format'] for b in bodies}))}), 2 workers: "
          f"{burst:.1f} s = {len(ids) / burst * 60:.0f} reports/min ({failed} failed)")
    print(f"  baseline sequential render: {sequential:.1f} s = {len(ids) / sequential * 60:.0f} reports/min; "
          f"ratio {sequential / burst:.2f}x")
    server.shutdown()
    rk.close()


if __name__ == "__main__":
    main()
