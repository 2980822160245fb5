"""A layout that would exhaust the server through the PDF renderer: 20,000 nested elements are
refused when a template is stored and when its layout renders to them; and whatever reaches the
renderer is laid out in a child process bounded in time and memory, while the service answers its
health checks at once and keeps its own memory."""
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from botreports import Reports, ValidationError
from botreports.plugins.exporters import pdf_renderer
from botreports.plugins.templates.structure import MAX_DEPTH, MAX_ELEMENTS

from http_support import BASE, LiveServer, ThreadQueue

PERIOD = {"start_date": "2025-01-20", "end_date": "2025-01-26"}
NESTED_LOOP = ("{% for i in range(20000) %}<div>{% endfor %}deep"
               "{% for s in sections %}{{ s.placeholder }}{% endfor %}{% for i in range(20000) %}</div>{% endfor %}")


#: Polls a health URL every 20 ms until a line arrives on stdin; prints the latencies (s) as JSON.
HEALTH_PROBE = """
import http.client, json, sys, threading, time, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
latencies = []
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
while not done.is_set():
    began = time.perf_counter()
    connection.request("GET", url.path)
    answer = connection.getresponse()
    answer.read()
    latencies.append(time.perf_counter() - began)
    assert answer.status == 200, answer.status
    time.sleep(0.02)
print(json.dumps(latencies))
"""


def problems_of(caught):
    return {d["field"]: d["problem"] for d in caught.value.details}


def artifacts(reports):
    return sorted(p.name for p in Path(reports.reports_dir).glob("*")) if Path(reports.reports_dir).exists() else []


@pytest.mark.parametrize("look,words", [
    ({"layout": "<div>" * 10_000}, f"nests elements more than {MAX_DEPTH} deep"),
    ({"layout": "<p>x</p>" * 6_000}, f"more than {MAX_ELEMENTS:,} elements"),
    ({"intro_markdown": "> " * 2_000 + "quoted"}, f"nests elements more than {MAX_DEPTH} deep"),
])
def test_deep_or_huge_markup_is_refused_when_the_template_is_stored(reports, principal_factory, look, words):
    with pytest.raises(ValidationError) as caught:
        reports.create_template(principal_factory("admin"), {"name": "Deep", "type": "usage", **look})
    (field,) = look
    assert words in problems_of(caught)[field]


def test_an_intro_that_costs_minutes_of_markdown_is_refused_within_its_cpu_limit(reports, principal_factory):
    started = time.monotonic()
    with pytest.raises(ValidationError) as caught:  # about a minute of Python-Markdown in the service
        reports.create_template(principal_factory("admin"), {"name": "Slow", "type": "usage",
                                                             "intro_markdown": "[" * 9_000 + "x" + "]" * 9_000})
    assert "CPU time" in problems_of(caught)["intro_markdown"]
    assert time.monotonic() - started < 12


@pytest.mark.parametrize("fmt", ["pdf", "html"])
def test_a_layout_that_builds_20000_nested_divs_fails_its_report_fast(reports, principal_factory, fmt):
    admin = principal_factory("admin")
    template = reports.create_template(admin, {"name": "Loops", "type": "custom", "format": fmt,
                                               "sections": [{"type": "usage_summary"}], "layout": NESTED_LOOP})
    started = time.monotonic()
    report = reports.generate(principal_factory("report_creator"), {"template_id": template.id, **PERIOD})
    assert report.state == "failed"
    assert report.error == f"the template layout: its output nests elements more than {MAX_DEPTH} deep (the limit)"
    assert time.monotonic() - started < 15
    assert artifacts(reports) == []  # no file, not even a partial one


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _renderer_children(wait: float = 5.0) -> list:
    """The renderer's children left after ``wait`` s (one that has answered may take a moment to exit)."""
    server = pdf_renderer._SERVER.process
    deadline = time.monotonic() + wait
    while server is not None:
        with open(f"/proc/{server.pid}/task/{server.pid}/children") as handle:
            children = handle.read().split()
        if not children or time.monotonic() > deadline:
            return children
        time.sleep(0.05)
    return []


@pytest.fixture
def served(tmp_path, botreports_demo_db):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    queue = ThreadQueue()
    reports = Reports(data_dir=data_dir, load_entrypoints=False, queue=queue, rate_limit=0)
    queue.start()
    server = LiveServer(reports)
    key, _ = reports.create_api_key("org-acme", "admin")
    yield reports, server, key
    server.stop()
    queue.stop()
    reports.close()


def test_nested_divs_reaching_the_pdf_renderer_are_bounded_while_health_answers(served, monkeypatch):
    """The checks in front of the renderer taken away: the renderer's own limits still hold."""
    reports, server, key = served
    from botreports.plugins.exporters import document_html

    # the 120 KB page of the original attack, straight into the PDF renderer
    monkeypatch.setattr(document_html, "render_html", lambda *a, **k: "<div>" * 20_000 + "deep")
    monkeypatch.setenv("BOTREPORTS_PDF_TIMEOUT", "4")
    pdf_renderer.render_pdf_in_child("<p>warm</p>", 1)  # the fork server is up before the clock starts
    rss_before = _rss_mb()
    started = server.request("POST", f"{BASE}/generate", key, json={"type": "usage", "format": "pdf", **PERIOD})
    assert started.status_code == 202
    report_id = started.json()["report_id"]

    # A health checker of its own (another process, as a load balancer would be), polling meanwhile.
    probe = subprocess.Popen([sys.executable, "-c", HEALTH_PROBE, server.url + BASE + "/health"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    began = time.monotonic()
    status = server.wait_for(report_id, key, timeout=60)
    took = time.monotonic() - began
    latencies = json.loads(probe.communicate("stop\n", timeout=30)[0])
    assert status["state"] == "failed"
    assert "took longer than 4 s to lay out" in status["error"] and "stopped" in status["error"]
    assert took < 15
    assert len(latencies) >= 20 and max(latencies) < 0.1, sorted(latencies)[-5:]
    assert _rss_mb() - rss_before < 50  # the layout's memory was the child's, and it is gone
    assert _renderer_children() == []
    assert artifacts(reports) == []
    assert server.request("GET", f"{BASE}/{report_id}/download", key).status_code == 409


def test_a_page_bigger_than_the_renderer_memory_fails_with_its_limit(monkeypatch):
    pdf_renderer.render_pdf_in_child("<p>warm</p>", 1)
    with open(f"/proc/{pdf_renderer._SERVER.process.pid}/status") as handle:
        server_mb = next(int(line.split()[1]) for line in handle if line.startswith("VmSize")) // 1024
    monkeypatch.setenv("BOTREPORTS_PDF_MEMORY_MB", str(server_mb + 40))
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        pdf_renderer.render_pdf_in_child("<p>" + "word " * 12_000_000 + "</p>", 5)
    assert f"exceeded its memory limit ({server_mb + 40:,} MB)" in str(caught.value)
    assert time.monotonic() - started < 20
    # the next PDF is laid out as usual
    monkeypatch.delenv("BOTREPORTS_PDF_MEMORY_MB")
    assert pdf_renderer.render_pdf_in_child("<p>fine</p>", 1).startswith(b"%PDF")
    assert _renderer_children() == []


def test_renderer_limits_from_the_environment_name_their_variable(monkeypatch):
    monkeypatch.setenv("BOTREPORTS_PDF_TIMEOUT", "soon")
    with pytest.raises(Exception) as caught:
        pdf_renderer.render_pdf_in_child("<p>x</p>", 1)
    assert "BOTREPORTS_PDF_TIMEOUT='soon' is not a number" in str(caught.value)


def test_pdfs_rendered_at_once_each_get_their_own_child():
    from pdfminer.high_level import extract_text

    results = {}

    def render(n):
        results[n] = pdf_renderer.render_pdf_in_child(f"<h1>Report number {n}</h1>", 2)

    threads = [threading.Thread(target=render, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert {n: f"Report number {n}" in extract_text(io.BytesIO(data)) for n, data in results.items()} == {
        n: True for n in range(4)}
    assert _renderer_children() == []
