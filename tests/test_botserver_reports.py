"""Reports on botserver's real schema: every report type, and a custom report with
every section of the catalog, system-wide and for one organisation, in UTC and
in New York across its DST change, give the same document from botserver's
PostgreSQL as from the SQLite source over the canonical file computed
independently from the same rows; their numbers equal plain SQL over
botserver's own tables."""
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from botreports import Principal, Reports
from botreports.core.service import SYSTEM
from botreports.plugins.sources.botserver_fixture import NIL_UUID

from botserver_support import botserver_db, differences, with_options  # noqa: F401 (fixture)

BIN = Path(sys.executable).with_name("botreports")
#: Two weeks holding New York's spring-forward night (9 March 2025).
DAYS = {"start_date": "2025-03-06", "end_date": "2025-03-19"}
ZONES = ("UTC", "America/New_York")
#: Keys of a document that say when it was made, not what it holds.
WHEN_MADE = {"generated_at", "report_id"}


#: Manifest fields that name the source, its state and the instant of computing: the same report
#: over the two sources differs there and nowhere else.
SOURCE_STATE = ("data_source", "data_watermark", "computed_as_of")


def comparable(document):
    """The document without when it was made and without what says which source it read."""
    kept = {k: v for k, v in document.items() if k not in WHEN_MADE}
    if "manifest" in kept:
        kept["manifest"] = {k: v for k, v in kept["manifest"].items() if k not in SOURCE_STATE}
    return kept


def compare_documents(pg, lite):
    return differences(comparable(pg), comparable(lite))


def section(document, name):
    return next(s for s in document["sections"] if s["name"] == name)


def kpis(document, name="usage_summary"):
    block = next(b for b in section(document, name)["blocks"] if b["kind"] == "kpis")
    return {i["name"]: i["value"] for i in block["items"]}


def tables(document, name):
    return [b for b in section(document, name)["blocks"] if b["kind"] == "table"]


@pytest.fixture(scope="module")
def instances(botserver_db, tmp_path_factory):
    """Reports over botserver's database and over the expected canonical file, with and without automation."""
    sources = {
        "pg": botserver_db.url,
        "lite": f"sqlite://{botserver_db.sqlite_file}",
        "pg-no-automation": with_options(botserver_db.url, automation="exclude"),
        "lite-no-automation": f"sqlite://{botserver_db.sqlite_without_automation()}",
    }
    made = {name: Reports(data_dir=tmp_path_factory.mktemp(f"reports-{name}"), data_source=source,
                          load_entrypoints=False, secret="one secret for them all, so pseudonyms match")
            for name, source in sources.items()}
    yield made
    for instance in made.values():
        instance.close()


def every_section(rk):
    """Every section of the catalog, the custom metric twice (messages and conversations)."""
    sections = [{"type": name} for name in sorted(rk.sections) if name != "custom_metric"]
    sections.append({"type": "custom_metric", "table": "messages", "measure": "count", "group_by": "channel"})
    sections.append({"type": "custom_metric", "table": "conversations", "measure": "p90", "field": "message_count",
                     "group_by": "status"})
    return sections


def report_bodies(rk, timezone):
    """One request per report type; the custom one lists every section of the catalog."""
    for name, report_type in sorted(rk.report_types.items()):
        body = {"type": name, "format": "json", "timezone": timezone, **DAYS}
        if report_type.requires_sections:
            body["sections"] = every_section(rk)
        yield name, body


def principal_for(botserver_db, org):
    if org is None:
        return SYSTEM
    return Principal(id="auditor", org_id=botserver_db.org(org), roles={"admin"}, via="test")


def render(rk, principal, body, out):
    return json.loads(rk.render(principal, body, out).read_text())


@pytest.mark.parametrize("timezone", ZONES)
@pytest.mark.parametrize("org", [None, "org-acme"], ids=["system-wide", "one-organisation"])
def test_every_report_type_equals_the_document_of_the_expected_file(botserver_db, instances, tmp_path, org, timezone):
    principal = principal_for(botserver_db, org)
    failures = {}
    types = list(report_bodies(instances["pg"], timezone))
    assert {"usage", "conversations", "performance", "compliance", "custom"} <= {name for name, _ in types}
    for name, body in types:
        pg = render(instances["pg"], principal, body, tmp_path / f"{name}-pg.json")
        lite = render(instances["lite"], principal, body, tmp_path / f"{name}-lite.json")
        assert pg["organization_id"] == (None if org is None else botserver_db.org(org))
        assert sum(len(s["blocks"]) for s in lite["sections"]) > 0
        problems = compare_documents(pg, lite)
        if problems:
            failures[name] = problems[:10]
    assert not failures


def test_custom_report_holds_every_section_of_the_catalog(instances):
    rk = instances["pg"]
    body = dict(report_bodies(rk, "UTC"))["custom"]
    assert {s["type"] for s in body["sections"]} == set(rk.sections)


# -- the documents' numbers against plain SQL over botserver's tables ------------


def period_of(timezone):
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(dt.date.fromisoformat(DAYS["start_date"]), dt.time(0), zone)
    end = dt.datetime.combine(dt.date.fromisoformat(DAYS["end_date"]) + dt.timedelta(days=1), dt.time(0), zone)
    return start, end


def raw_usage(botserver_db, org_uuid, start, end):
    """Sessions started, role 1 and 2 messages, and distinct users writing, over botserver's tables."""
    org_filter = "b.org_id = %(org)s" if org_uuid else "TRUE"
    with botserver_db.connect() as conn:
        sessions = conn.execute(
            f"SELECT count(*) FROM user_sessions s JOIN bots b ON b.id = s.bot_id WHERE {org_filter}"
            " AND s.created_at >= %(start)s AND s.created_at < %(end)s",
            {"org": org_uuid, "start": start, "end": end}).fetchone()[0]
        messages_in, messages_out, users, others = conn.execute(
            "SELECT count(*) FILTER (WHERE m.role = 1), count(*) FILTER (WHERE m.role = 2),"
            " count(DISTINCT m.user_id) FILTER (WHERE m.role = 1), count(*) FILTER (WHERE m.role NOT IN (1, 2))"
            f" FROM message_history m JOIN user_sessions s ON s.id = m.session_id JOIN bots b ON b.id = s.bot_id"
            f" WHERE {org_filter} AND m.created_at >= %(start)s AND m.created_at < %(end)s",
            {"org": org_uuid, "start": start, "end": end}).fetchone()
    return {"conversations": sessions, "messages_in": messages_in, "messages_out": messages_out,
            "active_users": users}, others


@pytest.mark.parametrize("org", [None, "org-acme", "org-globex"])
def test_usage_numbers_equal_plain_sql_over_botserver_tables(botserver_db, instances, tmp_path, org):
    """Sessions of an organisation through bots.org_id, role 1 and 2 messages, distinct writing users;
    system (3) and summary (9) rows in the same period never count."""
    timezone = "America/New_York"
    document = render(instances["pg"], principal_for(botserver_db, org),
                      {"type": "usage", "format": "json", "timezone": timezone, **DAYS}, tmp_path / "usage.json")
    expected, others = raw_usage(botserver_db, org and botserver_db.org(org), *period_of(timezone))
    got = kpis(document)
    assert {k: got[k] for k in expected} == expected
    assert expected["messages_in"] > 50 and expected["conversations"] > 5
    assert others > 0  # role 3 and 9 rows were there to be miscounted


def test_bot_without_organisation_shows_system_wide_only(botserver_db, instances, tmp_path):
    with botserver_db.connect() as conn:
        orphans = conn.execute("SELECT id::text, name FROM bots WHERE org_id IS NULL").fetchall()
        [(orgs,)] = conn.execute("SELECT array_agg(org_id::text) FROM organizations").fetchall()
        replies = conn.execute(
            "SELECT count(*) FROM message_history m JOIN user_sessions s ON s.id = m.session_id"
            " JOIN bots b ON b.id = s.bot_id WHERE b.org_id IS NULL AND m.role = 1").fetchone()[0]
    assert len(orphans) == 1 and replies > 0
    [(orphan, name)] = orphans
    body = {"type": "usage", "format": "json", "timezone": "UTC", "start_date": "2025-03-01",
            "end_date": "2025-04-05"}
    everyone = render(instances["pg"], SYSTEM, body, tmp_path / "all.json")
    assert name in json.dumps(tables(everyone, "usage_by_bot"))
    total = 0
    for org in orgs:
        principal = Principal(id="auditor", org_id=org, roles={"admin"}, via="test")
        document = render(instances["pg"], principal, body, tmp_path / f"{org}.json")
        assert name not in json.dumps(tables(document, "usage_by_bot")), org
        total += kpis(document)["messages_in"]
    assert total == kpis(everyone)["messages_in"] - replies  # its messages count in no organisation


def test_nil_organisation_audit_rows_count_in_their_bots_organisation(botserver_db, instances, tmp_path):
    org = botserver_db.org("org-globex")
    start, end = period_of("UTC")
    with botserver_db.connect() as conn:
        written = conn.execute("SELECT count(*), count(*) FILTER (WHERE org_id = %s) FROM compliance_audit_log",
                               [NIL_UUID]).fetchone()
        events, denied = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE a.result = 'denied') FROM compliance_audit_log a"
            " JOIN bots b ON b.id = a.bot_id WHERE b.org_id = %s AND a.created_at >= %s AND a.created_at < %s",
            [org, start, end]).fetchone()
    assert written[0] == written[1] > 0  # every row carries the placeholder, as botserver writes it
    document = render(instances["pg"], principal_for(botserver_db, "org-globex"),
                      {"type": "compliance", "format": "json", "timezone": "UTC", **DAYS}, tmp_path / "c.json")
    got = kpis(document, section_name(document, "kpis"))
    assert (got["events"], got["denied_events"]) == (events, denied) and events > 50


def section_name(document, kind):
    """The first section with a block of ``kind``."""
    return next(s["name"] for s in document["sections"] if any(b["kind"] == kind for b in s["blocks"]))


def test_automation_sessions_count_by_default_and_leave_with_automation_exclude(botserver_db, instances, tmp_path):
    start, end = period_of("UTC")
    with botserver_db.connect() as conn:
        sessions, automation, messages, automated = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE s.user_id = s.bot_id AND s.title = 'Automation'),"
            " (SELECT count(*) FROM message_history m WHERE m.role = 2 AND m.created_at >= %(start)s"
            "  AND m.created_at < %(end)s),"
            " (SELECT count(*) FROM message_history m JOIN user_sessions a ON a.id = m.session_id"
            "  WHERE a.user_id = a.bot_id AND m.role = 2 AND m.created_at >= %(start)s AND m.created_at < %(end)s)"
            " FROM user_sessions s WHERE s.created_at >= '2025-03-01'", {"start": start, "end": end}).fetchone()
    assert automation > 0 and automated > 0
    body = {"type": "usage", "format": "json", "timezone": "UTC", "start_date": "2025-03-01",
            "end_date": "2025-04-05"}
    included = kpis(render(instances["pg"], SYSTEM, body, tmp_path / "in.json"))
    excluded = kpis(render(instances["pg-no-automation"], SYSTEM, body, tmp_path / "out.json"))
    assert included["conversations"] == sessions
    assert excluded["conversations"] == sessions - automation
    in_days = kpis(render(instances["pg"], SYSTEM, {**body, **DAYS}, tmp_path / "in-days.json"))
    out_days = kpis(render(instances["pg-no-automation"], SYSTEM, {**body, **DAYS}, tmp_path / "out-days.json"))
    assert in_days["messages_out"] == messages and out_days["messages_out"] == messages - automated
    for timezone in ZONES:
        for name, request in report_bodies(instances["pg"], timezone):
            pg = render(instances["pg-no-automation"], SYSTEM, request, tmp_path / f"{name}-pg.json")
            lite = render(instances["lite-no-automation"], SYSTEM, request, tmp_path / f"{name}-lite.json")
            assert not compare_documents(pg, lite)[:10], (name, timezone)


def test_unrecorded_measures_read_not_recorded_on_both_sources(botserver_db, instances, tmp_path):
    body = {"type": "custom", "format": "json", "timezone": "UTC", **DAYS, "sections": [
        {"type": "custom_metric", "table": "messages", "measure": "count", "group_by": "intent"},
        {"type": "latency"}, {"type": "llm_performance"}, {"type": "satisfaction_scores"}]}
    principal = principal_for(botserver_db, "org-acme")
    pg = render(instances["pg"], principal, body, tmp_path / "pg.json")
    lite = render(instances["lite"], principal, body, tmp_path / "lite.json")
    assert not compare_documents(pg, lite)
    for part in pg["sections"]:
        assert "not recorded by this source" in json.dumps(part), part["name"]


# -- the command line, the server and the statement timeout ---------------------


def test_cli_generate_reads_botserver_with_data_url(botserver_db, tmp_path):
    """``--data postgresql://...`` picks botserver's database; metadata stays in the data dir."""
    out = tmp_path / "usage.json"
    env = {**os.environ, "BOTREPORTS_DATA_DIR": str(tmp_path / "data")}
    org = botserver_db.org("org-globex")
    done = subprocess.run(
        [str(BIN), "generate", "--type", "usage", "--format", "json", "--out", str(out), "--start", DAYS["start_date"],
         "--end", DAYS["end_date"], "--org", org, "--data", botserver_db.url],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected, _ = raw_usage(botserver_db, org, *period_of("UTC"))
    assert kpis(json.loads(out.read_text()))["messages_in"] == expected["messages_in"] > 0
    assert (tmp_path / "data" / "botreports.db").exists()
    assert not (tmp_path / "data" / "analytics.db").exists()


def test_report_held_up_past_the_statement_timeout_fails_with_that_reason(botserver_db, tmp_path):
    """A query stuck behind a lock on botserver's table is cancelled; the report fails, once, saying why."""
    rk = Reports(data_dir=tmp_path / "data", data_source=with_options(botserver_db.url, statement_timeout="300ms"),
                 load_entrypoints=False)
    locker = botserver_db.connect()
    try:
        locker.execute("LOCK TABLE user_sessions IN ACCESS EXCLUSIVE MODE")  # held until rollback
        principal = Principal(id="ana", org_id=botserver_db.org("org-acme"), roles={"report_creator"}, via="test")
        started = time.monotonic()
        report = rk.generate(principal, {"type": "usage", "format": "json", "timezone": "UTC", **DAYS})
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
        body = json.dumps({"type": "compliance", "format": "json", "timezone": "America/New_York", **DAYS}).encode()
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
        start, end = period_of("America/New_York")
        with botserver_db.connect() as conn:
            expected = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE a.result = 'denied') FROM compliance_audit_log a"
                " JOIN bots b ON b.id = a.bot_id WHERE b.org_id = %s AND a.created_at >= %s AND a.created_at < %s",
                [org, start, end]).fetchone()
        got = kpis(document, section_name(document, "kpis"))
        assert document["organization_id"] == org
        assert (got["events"], got["denied_events"]) == expected and expected[0] > 0
        assert (tmp_path / "data" / "botreports.db").exists() and not (tmp_path / "data" / "analytics.db").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        server.stderr.close()
