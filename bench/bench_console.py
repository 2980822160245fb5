"""How fast the web console's pages answer on the demo data (``make demo``'s dataset).

Serves the console and the API as ``botreports serve`` does (waitress, same threads) with 60
reports, 10 schedules and 2 own templates stored, signs in once, then asks each page many
times from one client in another process (a person clicks one page at a time) and prints
p50 and p95 per page. Baseline in the same run: a bare Bottle hello-world on the same server.
Target: every page p95 <= 50 ms on a 2-core machine.

    python bench/bench_console.py [--requests 200] [--messages 300000]
"""
import argparse
import datetime as dt
import multiprocessing
import re
import statistics
import tempfile
from pathlib import Path

from botreports import Principal, Reports
from botreports.plugins.sources.synthetic import generate

# The same server in a thread as the API's benchmark (this folder is on the path of a script run
# as ``python bench/bench_console.py``).
from bench_http import Server, hello_app

GEN = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-31"}
TARGET_P95_MS = 50.0


def _client(base, paths, count, headers, out):
    """Ask each path ``count`` times in turn on one kept-alive connection; latencies in ms."""
    import http.client
    import time
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    found = {}
    for path in paths:
        for _ in range(5):  # warm up: templates compiled, caches filled
            conn.request("GET", path, headers=headers)
            conn.getresponse().read()
        latencies, statuses = [], set()
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            statuses.add(response.status)
        found[path] = (latencies, sorted(statuses))
    out.put(found)


def measure(base, paths, count, headers):
    out = multiprocessing.Queue()
    worker = multiprocessing.Process(target=_client, args=(base, paths, count, headers, out))
    worker.start()
    found = out.get()
    worker.join()
    return found


def p95(values):
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def sign_in(url, key):
    import requests

    session = requests.Session()
    page = session.get(f"{url}/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    session.post(f"{url}/signin", data={"csrf_token": token, "credential": key}, allow_redirects=False)
    return session.cookies["botreports_session"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    parser.add_argument("--messages", type=int, default=300_000, help="demo messages (make demo: 300,000)")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads, same for every app")
    args = parser.parse_args()

    from botreports.adapters.console import service_app

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        generate(data_dir / "analytics.db", days=30, bots=20, messages=args.messages, seed=1,
                 end_date=dt.date(2025, 1, 31))
        rk = Reports(data_dir=data_dir, load_entrypoints=False, rate_limit=0, max_unfinished=0)
        owner = Principal("bench", "org-acme", {"admin"})
        ids = [rk.generate(owner, {**GEN, "title": f"Report {n}"}).id for n in range(60)]
        html = rk.generate(owner, {**GEN, "format": "html", "title": "HTML report"}).id
        for n in range(10):
            rk.create_schedule(owner, {"type": "usage", "format": "pdf", "cron": f"0 {n} * * 1",
                                       "timezone": "Europe/Lisbon", "recipients": ["ops@example.com"]})
        for n in range(2):
            rk.create_template(owner, {"name": f"Own template {n}", "type": "custom",
                                       "sections": [{"type": "usage_summary"}], "format": "pdf"})
        template_id = rk.list_templates(owner)[-1].id
        key = rk.create_api_key("org-acme", "admin")[0]

        hello = Server(hello_app(), args.threads)
        try:
            baseline = measure(hello.url, ["/hello"], args.requests, {})["/hello"][0]
        finally:
            hello.stop()
        app = Server(service_app(rk), args.threads)
        try:
            cookie = {"Cookie": f"botreports_session={sign_in(app.url, key)}"}
            paths = ["/reports", "/reports?type=usage&sort=name&order=asc&limit=50", f"/reports/{ids[0]}",
                     f"/reports/{html}", "/reports/new", f"/reports/status.json?ids={','.join(ids[:20])}",
                     "/schedules", "/schedules/new", "/templates", f"/templates/{template_id}"]
            found = measure(app.url, paths, args.requests, cookie)
        finally:
            app.stop()
            rk.close()

    base_p95 = p95(baseline)
    print(f"{args.requests} requests a page, one client; demo data of {args.messages:,} messages, "
          f"60 reports, 10 schedules")
    print(f"{'page':58} {'p50 ms':>7} {'p95 ms':>7} {'x hello':>8} status")
    print(f"{'bare Bottle hello-world (baseline)':58} {statistics.median(baseline):7.2f} {base_p95:7.2f} "
          f"{1.0:8.1f} 200")
    worst = 0.0
    for path, (latencies, statuses) in found.items():
        value = p95(latencies)
        worst = max(worst, value)
        print(f"{path[:58]:58} {statistics.median(latencies):7.2f} {value:7.2f} {value / base_p95:8.1f} "
              f"{','.join(map(str, statuses))}")
    ok = worst <= TARGET_P95_MS and all(statuses == [200] for _, statuses in found.values())
    print(f"target (every page p95 <= {TARGET_P95_MS:.0f} ms, all 200): {'met' if ok else 'NOT met'} "
          f"(worst p95 {worst:.1f} ms)")


if __name__ == "__main__":
    main()
