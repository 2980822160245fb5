"""Every report type gives the same document from botserver's PostgreSQL as from
the SQLite source over the same synthetic data, number for number; what
botserver does not record shows as no data."""
import json
import time
import os
import subprocess
import sys
from pathlib import Path

import pytest

from botreports import Principal, Reports

from botserver_support import botserver_db  # noqa: F401 (fixture)

BIN = Path(sys.executable).with_name("botreports")
#: Sections built only from what botserver does not record: they show a "no data" text.
NO_DATA_SECTIONS = {"top_intents", "system_health"}
#: Metrics botserver does not record (per-message error flags): no value (None) on PostgreSQL.
UNRECORDED_METRICS = {"errors", "error_rate"}
#: Chart series drawn from them: (chart title, series name).
UNRECORDED_SERIES = {("Error rate per day", "Replies")}
PERIOD = {"start_date": "2025-03-03", "end_date": "2025-03-16", "timezone": "America/New_York"}


def unrecorded(name):
    return name in UNRECORDED_METRICS or name in UNRECORDED_SERIES


def compare_values(a, b, where, problems, metric=None):
    """Record in ``problems`` where the PostgreSQL value ``a`` is not the SQLite value ``b``."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            problems.append((where, sorted(a.keys() ^ b.keys())))
            return
        for key in a:
            compare_values(a[key], b[key], f"{where}.{key}", problems, metric)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append((where, f"{len(a)} items, not {len(b)}"))
            return
        for index, (x, y) in enumerate(zip(a, b)):
            compare_values(x, y, f"{where}[{index}]", problems, metric)
    elif a != b:
        if a is None and metric is not None and unrecorded(metric):
            return  # not recorded by botserver: no data, as it must be
        if isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-9 * max(1.0, abs(b)):
            return
        problems.append((where, a, b))


def compare_block(pg, lite, where, problems):
    if pg.get("kind") != lite.get("kind"):
        problems.append((where, pg.get("kind"), lite.get("kind")))
        return
    if pg["kind"] == "kpis":
        for index, (x, y) in enumerate(zip(pg["items"], lite["items"])):
            compare_values(x, y, f"{where}.items[{index}]", problems, metric=y.get("name"))
        if len(pg["items"]) != len(lite["items"]):
            problems.append((where, "kpi count"))
    elif pg["kind"] == "table":
        compare_values(pg["columns"], lite["columns"], f"{where}.columns", problems)
        names = [c["name"] for c in lite["columns"]]
        if len(pg["rows"]) != len(lite["rows"]):
            problems.append((where, f"{len(pg['rows'])} rows, not {len(lite['rows'])}"))
        for r, (x, y) in enumerate(zip(pg["rows"], lite["rows"])):
            for c, (u, v) in enumerate(zip(x, y)):
                compare_values(u, v, f"{where}.rows[{r}][{c}]", problems, metric=names[c])
    elif pg["kind"] == "chart":
        compare_values({k: v for k, v in pg.items() if k != "series"},
                       {k: v for k, v in lite.items() if k != "series"}, where, problems)
        for index, (x, y) in enumerate(zip(pg["series"], lite["series"])):
            compare_values(x, y, f"{where}.series[{index}]", problems, metric=(lite["title"], y.get("name")))
    else:
        compare_values(pg, lite, where, problems)


def compare_documents(pg, lite):
    problems = []
    for key in ("title", "type", "period", "parameters", "organization_id", "schema"):
        compare_values(pg.get(key), lite.get(key), key, problems)
    assert [s["name"] for s in pg["sections"]] == [s["name"] for s in lite["sections"]]
    for pg_section, lite_section in zip(pg["sections"], lite["sections"]):
        name = pg_section["name"]
        if name in NO_DATA_SECTIONS:
            texts = [b.get("markdown", "") for b in pg_section["blocks"] if b.get("kind") == "text"]
            assert texts and all(b.get("kind") == "text" for b in pg_section["blocks"]), name
            assert "no " in texts[0].lower(), texts[0]
            continue
        if len(pg_section["blocks"]) != len(lite_section["blocks"]):
            problems.append((name, "block count"))
            continue
        for index, (x, y) in enumerate(zip(pg_section["blocks"], lite_section["blocks"])):
            compare_block(x, y, f"{name}.blocks[{index}]", problems)
    return problems


@pytest.fixture(scope="module")
def instances(botserver_db, tmp_path_factory):
    made = {}
    for name, source in (("pg", botserver_db.url), ("lite", f"sqlite://{botserver_db.sqlite_file}")):
        made[name] = Reports(data_dir=tmp_path_factory.mktemp(f"reports-{name}"), data_source=source,
                             load_entrypoints=False, secret="one secret, so pseudonyms match")
    yield made
    for instance in made.values():
        instance.close()


def report_bodies(rk):
    """One request per report type; the custom one lists every section of the catalog."""
    for name, report_type in sorted(rk.report_types.items()):
        body = {"type": name, "format": "json", **PERIOD}
        if report_type.requires_sections:
            sections = [{"type": s} for s in sorted(rk.sections) if s != "custom_metric"]
            if "custom_metric" in rk.sections:
                sections.append({"type": "custom_metric", "table": "messages", "measure": "p90",
                                 "field": "latency_ms", "group_by": "channel"})
            body["sections"] = sections
        yield name, body


def test_every_report_type_equals_the_sqlite_document(botserver_db, instances, tmp_path):
    principal = Principal(id="auditor", org_id=botserver_db.org("org-acme"), roles={"admin"}, via="test")
    failures = {}
    types = list(report_bodies(instances["pg"]))
    assert {"usage", "custom"} <= {name for name, _ in types}
    for name, body in types:
        documents = {}
        for side, rk in instances.items():
            out = rk.render(principal, body, tmp_path / f"{name}-{side}.json")
            documents[side] = json.loads(out.read_text())
        assert sum(len(s["blocks"]) for s in documents["lite"]["sections"]) > 0
        problems = compare_documents(documents["pg"], documents["lite"])
        if problems:
            failures[name] = problems[:10]
    assert not failures


def test_cli_generate_reads_botserver_with_data_url(botserver_db, tmp_path):
    """``--data postgresql://...`` picks botserver's database; metadata stays in the data dir."""
    out = tmp_path / "usage.json"
    env = {**os.environ, "BOTREPORTS_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [str(BIN), "generate", "--type", "usage", "--format", "json", "--out", str(out), "--start", "2025-03-03",
         "--end", "2025-03-16", "--org", botserver_db.org("org-globex"), "--data", botserver_db.url],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kpis = {i["name"]: i["value"] for i in json.loads(out.read_text())["sections"][0]["blocks"][0]["items"]}
    import sqlite3
    conn = sqlite3.connect(botserver_db.sqlite_file)
    expected = conn.execute(
        "SELECT count(*) FROM messages WHERE direction = 'in' AND org_id = ? AND created_at >= ? AND created_at < ?",
        [botserver_db.org("org-globex"), 1740960000000, 1742169600000]).fetchone()[0]
    assert kpis["messages_in"] == expected > 0
    assert (tmp_path / "data" / "botreports.db").exists()
    assert not (tmp_path / "data" / "analytics.db").exists()


def test_report_held_up_past_the_statement_timeout_fails_with_that_reason(botserver_db, tmp_path):
    """A query stuck behind a lock on botserver's table is cancelled; the report fails, once, saying why."""
    from psycopg import sql

    from botserver_support import connect, with_options
    rk = Reports(data_dir=tmp_path / "data", data_source=with_options(botserver_db.url, statement_timeout="300ms"),
                 load_entrypoints=False)
    locker = connect()
    try:
        with locker.cursor() as cur:
            cur.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(botserver_db.schema)))
            cur.execute("LOCK TABLE user_sessions IN ACCESS EXCLUSIVE MODE")  # held until rollback
        principal = Principal(id="ana", org_id=botserver_db.org("org-acme"), roles={"report_creator"}, via="test")
        started = time.monotonic()
        report = rk.generate(principal, {"type": "usage", "format": "json", **PERIOD})
        assert time.monotonic() - started < 10
        assert report.state == "failed"
        assert "statement timeout of 0.3 s" in report.error and "cancelled" in report.error
        assert rk.store.report_row(report.id)["attempts"] == 1  # a slow query is not retried
    finally:
        locker.rollback()
        locker.close()
        rk.close()


def test_serve_with_botserver_database_as_data(botserver_db, tmp_path):
    """``botreports serve --data postgresql://...``: reports from botserver's tables, metadata in the data dir."""
    import re
    import signal
    import urllib.request
    env = {**os.environ, "BOTREPORTS_DATA_DIR": str(tmp_path / "data")}
    org = botserver_db.org("org-initech")
    key = subprocess.run([str(BIN), "keys", "create", "--role", "report_creator", "--org", org],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    server = subprocess.Popen([str(BIN), "serve", "--port", "0", "--workers", "1", "--data", botserver_db.url],
                              env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "serving" not in line:
            line = server.stderr.readline()
            assert line or server.poll() is None, "serve exited"
        base = re.search(r"(http://\S+)/api/v1/reports", line).group(1)
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        body = json.dumps({"type": "compliance", "format": "json", **PERIOD}).encode()
        answer = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{base}/api/v1/reports/generate", data=body, headers=headers), timeout=10).read())
        deadline = time.monotonic() + 60
        while True:
            status = json.loads(urllib.request.urlopen(urllib.request.Request(
                f"{base}/api/v1/reports/{answer['report_id']}/status", headers=headers), timeout=10).read())
            if status["state"] in ("completed", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status["state"] == "completed", status
        document = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{base}/api/v1/reports/{answer['report_id']}/download", headers=headers), timeout=10).read())
        import sqlite3
        kpis = {i["name"]: i["value"] for i in document["sections"][0]["blocks"][0]["items"]}
        conn = sqlite3.connect(botserver_db.sqlite_file)
        expected = conn.execute(
            "SELECT count(*), sum(result = 'denied') FROM audit_events WHERE org_id = ? AND created_at >= ?"
            " AND created_at < ?", [org, 1740978000000, 1742184000000]).fetchone()  # New York local days
        conn.close()
        assert document["organization_id"] == org
        assert (kpis["events"], kpis["denied_events"]) == expected and expected[0] > 0
        assert (tmp_path / "data" / "botreports.db").exists() and not (tmp_path / "data" / "analytics.db").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        server.stderr.close()


def test_custom_metric_on_what_botserver_does_not_record_shows_no_data(botserver_db, instances, tmp_path):
    principal = Principal(id="auditor", org_id=botserver_db.org("org-acme"), roles={"admin"}, via="test")
    body = {"type": "custom", "format": "json", **PERIOD, "sections": [
        {"type": "custom_metric", "table": "messages", "measure": "count", "group_by": "intent"}]}
    pg = json.loads(instances["pg"].render(principal, body, tmp_path / "pg.json").read_text())
    lite = json.loads(instances["lite"].render(principal, body, tmp_path / "lite.json").read_text())
    assert [b["kind"] for b in pg["sections"][0]["blocks"]] == ["text"]
    assert "No data" in pg["sections"][0]["blocks"][0]["markdown"]
    assert any(b["kind"] == "table" and b["rows"] for b in lite["sections"][0]["blocks"])
