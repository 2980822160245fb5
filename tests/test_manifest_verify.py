"""The manifest every report carries, read back from each format; the artifact's SHA-256 in the
API against the downloaded bytes; and ``verify`` (CLI and HTTP): unchanged on untouched data,
the changed numbers named after an ingest into the period."""
import base64
import hashlib
import io
import json
import shutil
import sqlite3
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import botreports
from botreports import Reports
from botreports.adapters.cli import CHANGED_EXIT, main
from botreports.core.errors import Conflict, NotFound
from botreports.core.manifest import METRIC_DEFINITIONS_VERSION
from botreports.core.models import Principal
from botreports.core.report_records import load_record
from botreports.core.verification import Comparison

from http_support import BASE, LiveServer, RecordingQueue

ACME = Principal(id="alice", org_id="org-acme", roles={"admin"})
#: Seven whole UTC days inside the demo data (which ends on 31 January 2025).
PERIOD = {"start_date": "2025-01-25", "end_date": "2025-01-31", "timezone": "UTC"}
START_MS, END_MS = 1737763200000, 1738368000000  # 2025-01-25T00:00Z, 2025-02-01T00:00Z


def usage(fmt):
    return {"type": "usage", "format": fmt, **PERIOD}


def independent_watermark(path, org):
    """The watermark of ``org`` counted from the base tables of a file no ingest has touched yet
    (a bulk load's counts are its rows) and the newest instants, by plain SQL."""
    columns = {"bots": "created_at", "conversations": "started_at", "messages": "created_at",
               "llm_calls": "created_at", "system_samples": "created_at", "audit_events": "created_at"}
    conn = sqlite3.connect(path)
    tables = {}
    for table, column in columns.items():
        count, newest = conn.execute(f"SELECT count(*), max({column}) FROM {table} WHERE org_id = ?",
                                     [org]).fetchone()
        tables[table] = (count, newest)
    conn.close()
    return tables


def iso_ms(ms):
    import datetime as dt
    instant = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def in_messages(path, org):
    conn = sqlite3.connect(path)
    count = conn.execute("SELECT count(*) FROM messages WHERE org_id = ? AND direction = 'in'"
                         " AND created_at >= ? AND created_at < ?", [org, START_MS, END_MS]).fetchone()[0]
    conn.close()
    return count


def new_events(count, org="org-acme", bot="bot-001", prefix="verify"):
    """A conversation of ``org`` inside the period and ``count`` incoming messages of it."""
    conversation = {"table": "conversations", "id": f"{prefix}-c", "org_id": org, "bot_id": bot,
                    "user_id": f"{prefix}-user", "channel": "web", "started_at": "2025-01-28T10:00:00Z",
                    "ended_at": "2025-01-28T10:09:00Z", "status": "resolved", "message_count": count}
    messages = [{"table": "messages", "id": f"{prefix}-m{i}", "org_id": org, "conversation_id": f"{prefix}-c",
                 "bot_id": bot, "channel": "web", "user_id": f"{prefix}-user", "direction": "in",
                 "created_at": f"2025-01-28T10:0{i}:00Z"} for i in range(count)]
    return [json.dumps(event) for event in [conversation] + messages]


# -- the manifest in every format ----------------------------------------------


@pytest.fixture(scope="module")
def made(tmp_path_factory, botreports_demo_db):
    """One usage report of org-acme in each format, made by a worker (immediate queue)."""
    data_dir = tmp_path_factory.mktemp("manifest") / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    rk = Reports(data_dir=data_dir, load_entrypoints=False)
    reports = {fmt: rk.generate(ACME, usage(fmt)) for fmt in ("json", "xlsx", "html", "pdf", "csv")}
    assert all(report.state == "completed" for report in reports.values()), reports
    yield rk, reports
    rk.close()


def test_json_manifest_holds_parameters_versions_and_the_watermark(made):
    rk, reports = made
    report = reports["json"]
    document = json.loads((rk.data_dir / report.artifact_path).read_text(encoding="utf-8"))
    manifest = document["manifest"]
    assert manifest["report_id"] == report.id
    assert manifest["parameters"] == report.parameters == document["parameters"]
    assert manifest["metric_definitions_version"] == METRIC_DEFINITIONS_VERSION
    assert manifest["code_version"] == botreports.__version__
    assert manifest["data_source"] == "sqlite"
    expected = independent_watermark(rk.data_dir / "analytics.db", "org-acme")
    mark = manifest["data_watermark"]
    assert mark["organization"] == "org-acme"
    for table, (count, newest) in expected.items():
        assert mark["tables"][table] == {"changes": count, "newest": iso_ms(newest)}
    assert mark["newest_event"] == max(iso_ms(newest) for table, (_, newest) in expected.items() if table != "bots")
    assert "sha256" not in json.dumps(manifest["data_watermark"])  # the file cannot hold its own hash


def about_manifest(workbook):
    """``{label: text}`` of the rows under the About sheet's Manifest heading."""
    rows = list(workbook["About"].iter_rows(values_only=True))
    start = next(index for index, row in enumerate(rows) if row and row[0] == "Manifest")
    return {row[0]: row[1] for row in rows[start + 1:] if row and row[0]}


class ManifestList(HTMLParser):
    """The ``dt``/``dd`` pairs inside the page's manifest section."""

    def __init__(self):
        super().__init__()
        self.inside, self.cell, self.label, self.pairs = False, None, None, {}

    def handle_starttag(self, tag, attrs):
        if tag == "section" and ("class", "manifest") in attrs:
            self.inside = True
        elif self.inside and tag in ("dt", "dd"):
            self.cell, self.text = tag, ""

    def handle_endtag(self, tag):
        if tag == "section":
            self.inside = False
        elif self.inside and tag == self.cell:
            if tag == "dt":
                self.label = self.text.strip()
            else:
                self.pairs[self.label] = self.text.strip()
            self.cell = None

    def handle_data(self, data):
        if self.cell:
            self.text += data


def check_printed(labels, report, json_manifest):
    """A manifest printed as label and text reads back to the JSON export's manifest."""
    assert json.loads(labels["Parameters"]) == report.parameters
    assert labels["Report ID"] == report.id
    assert labels["Metric definitions"] == f"version {METRIC_DEFINITIONS_VERSION}"
    assert labels["Code version"] == f"botreports {botreports.__version__}"
    assert json.loads(labels["Data watermark"]) == json_manifest["data_watermark"]


def test_manifest_read_back_from_xlsx_html_and_pdf(made):
    import openpyxl
    from pdfminer.high_level import extract_pages, extract_text

    rk, reports = made
    json_manifest = json.loads((rk.data_dir / reports["json"].artifact_path).read_text())["manifest"]

    workbook = openpyxl.load_workbook(rk.data_dir / reports["xlsx"].artifact_path, read_only=True)
    assert workbook.sheetnames[-1] == "About"
    check_printed(about_manifest(workbook), reports["xlsx"], json_manifest)

    page = ManifestList()
    page.feed((rk.data_dir / reports["html"].artifact_path).read_text(encoding="utf-8"))
    check_printed(page.pairs, reports["html"], json_manifest)

    pdf = rk.data_dir / reports["pdf"].artifact_path
    pages = sum(1 for _ in extract_pages(pdf))
    last = extract_text(pdf, page_numbers=[pages - 1])
    before = extract_text(pdf, page_numbers=[pages - 2])
    assert "Manifest" in last and "Data watermark" in last and "Data watermark" not in before
    squeezed = "".join(last.split())  # long values wrap anywhere on paper
    assert reports["pdf"].id in squeezed
    assert f"version{METRIC_DEFINITIONS_VERSION}" in squeezed
    for value in (json_manifest["data_watermark"], reports["pdf"].parameters):
        compact = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        assert "".join(compact.split()) in squeezed


# -- the SHA-256 in the API ------------------------------------------------------


@pytest.fixture
def api(tmp_path, botreports_demo_db):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    rk = Reports(data_dir=data_dir, load_entrypoints=False, rate_limit=0)
    server = LiveServer(rk)
    server.admin = rk.create_api_key("org-acme", "admin")[0]
    yield server
    server.stop()
    rk.close()


def make(api, body, key=None):
    key = key or api.admin
    response = api.request("POST", f"{BASE}/generate", key, json=body)
    assert response.status_code == 202, response.text
    status = api.wait_for(response.json()["report_id"], key)
    assert status["state"] == "completed", status
    return status


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx"])
def test_sha256_in_the_api_is_the_hash_of_the_downloaded_bytes(api, fmt):
    status = make(api, usage(fmt))
    report_id = status["report_id"]
    download = api.request("GET", f"{BASE}/{report_id}/download", api.admin)
    assert download.status_code == 200
    digest = hashlib.sha256(download.content).hexdigest()
    assert status["sha256"] == digest
    assert api.request("GET", f"{BASE}/{report_id}", api.admin).json()["sha256"] == digest
    listed = {item["report_id"]: item for item in api.request("GET", BASE, api.admin).json()}
    assert listed[report_id]["sha256"] == digest
    assert download.headers["X-Checksum-SHA256"] == digest
    assert download.headers["Repr-Digest"] == f"sha-256=:{base64.b64encode(hashlib.sha256(download.content).digest()).decode()}:"


# -- verify over HTTP -------------------------------------------------------------


def test_verify_over_http_unchanged_then_names_the_numbers_an_ingest_changed(api):
    analytics = api.reports.data_dir / "analytics.db"
    report_id = make(api, usage("json"))["report_id"]
    viewer = api.reports.create_api_key("org-acme", "report_viewer")[0]

    answer = api.request("POST", f"{BASE}/{report_id}/verify", viewer)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["verdict"] == "unchanged" and result["unchanged"] is True
    assert result["differences"] == [] and result["numbers_compared"] > 100
    assert result["data_changed"] is False

    before = in_messages(analytics, "org-acme")
    ingest = api.request("POST", "/api/v1/events", api.admin, data="\n".join(new_events(3)).encode(),
                         headers={"Content-Type": "application/x-ndjson"})
    assert ingest.status_code == 200 and ingest.json()["inserted_total"] == 4, ingest.text
    assert in_messages(analytics, "org-acme") == before + 3

    result = api.request("POST", f"{BASE}/{report_id}/verify", viewer).json()
    assert result["verdict"] == "changed" and result["data_changed"] is True
    found = {(d["section"], d["block"], d["metric"], d["field"]): d for d in result["differences"]}
    kpi = found[("usage_summary", "KPIs", "messages_in", "value")]
    assert (kpi["old"], kpi["new"]) == (before, before + 3)
    day = found[("daily_activity", "Daily activity", "Messages in", None)]
    assert day["row"] == "2025-01-28" and day["new"] - day["old"] == 3
    assert any(d["block"] == "Usage per bot per day" and d["what"].startswith("raw table")
               for d in result["differences"])
    watermark = result["data_watermark"]
    assert watermark["now"]["tables"]["messages"]["changes"] == watermark["then"]["tables"]["messages"]["changes"] + 3


def test_verify_over_http_needs_read_access_and_a_completed_report(api):
    report_id = make(api, usage("csv"))["report_id"]
    other = api.reports.create_api_key("org-globex", "admin")[0]
    assert api.request("POST", f"{BASE}/{report_id}/verify", other).status_code == 404
    assert api.request("POST", f"{BASE}/{report_id}/verify").status_code == 401
    assert api.request("POST", f"{BASE}/rpt-nope/verify", api.admin).status_code == 404
    refused = api.request("POST", f"{BASE}/{report_id}/verify?deep=1", api.admin)
    assert refused.status_code == 400 and refused.json()["details"][0]["field"] == "deep"
    contract = api.request("GET", "/openapi.json").json()
    assert "post" in contract["paths"][f"{BASE}/{{report_id}}/verify"]


def test_a_report_that_is_not_completed_cannot_be_verified(tmp_path, botreports_demo_db):
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, queue=RecordingQueue())
    try:
        pending = rk.generate(ACME, usage("json"))
        with pytest.raises(Conflict):
            rk.verify(ACME, pending.id)
        with pytest.raises(NotFound):
            rk.verify(Principal(id="bob", org_id="org-globex", roles={"admin"}), pending.id)
    finally:
        rk.close()


# -- verify from the command line ------------------------------------------------


def test_verify_command_unchanged_then_changed_after_ingest(tmp_path, botreports_demo_db, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    rk = Reports(data_dir=data_dir, load_entrypoints=False)
    report = rk.generate(ACME, {"type": "conversations", "format": "csv", **PERIOD})
    rk.close()
    conn = sqlite3.connect(data_dir / "analytics.db")
    conversations = conn.execute("SELECT count(*) FROM conversations WHERE org_id = 'org-acme'"
                                 " AND started_at >= ? AND started_at < ?", [START_MS, END_MS]).fetchone()[0]
    conn.close()

    assert main(["verify", report.id, "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{report.id}: unchanged: 0 difference(s)") and "1 raw table(s)" in out

    events = tmp_path / "events.ndjson"
    events.write_text("\n".join(new_events(2, prefix="cli")) + "\n")
    assert main(["ingest", str(events), "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()

    assert main(["verify", report.id, "--data-dir", str(data_dir), "--json"]) == CHANGED_EXIT
    result = json.loads(capsys.readouterr().out)
    found = {(d["block"], d["metric"], d["field"]): d for d in result["differences"]}
    started = found[("KPIs", "conversations", "value")]
    assert (started["old"], started["new"]) == (conversations, conversations + 1)
    raw = [d for d in result["differences"] if d["what"].startswith("raw table")]
    assert len(raw) == 1 and raw[0]["old"]["rows"] == conversations and raw[0]["new"]["rows"] == conversations + 1

    assert main(["verify", report.id, "--data-dir", str(data_dir)]) == CHANGED_EXIT
    text = capsys.readouterr().out
    assert f"{report.id}: changed:" in text and "the data changed since" in text
    assert f"Conversations: value: {conversations} -> {conversations + 1}" in text


@pytest.mark.parametrize("fmt", ["html", "xlsx", "pdf"])
def test_every_format_verifies_unchanged_and_an_ingest_elsewhere_changes_no_number(made, fmt):
    rk, reports = made
    result = rk.verify(ACME, reports[fmt].id)
    assert result["unchanged"] and result["streamed_tables_compared"] == 1
    record = load_record(rk.store, reports[fmt].id)
    raw = [b for s in record["sections"] for b in s["blocks"] if b.get("raw")]
    # A page previews a raw table: the record covers the rows it read, a workbook all of them.
    assert raw[0]["digest"]["complete"] is (fmt == "xlsx")


def test_ingest_for_another_organisation_moves_no_number_nor_this_watermark(tmp_path, botreports_demo_db):
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    try:
        report = rk.generate(ACME, usage("json"))
        rk.ingest(Principal(id="g", org_id="org-globex", roles={"admin"}),
                  new_events(2, org="org-globex", bot="bot-002", prefix="globex"))
        result = rk.verify(ACME, report.id)
        assert result["unchanged"] and result["data_changed"] is False
        system = rk.generate(rk_system(), usage("json"))
        rk.ingest(rk_system(), new_events(1, org="org-globex", bot="bot-002", prefix="again"))
        assert rk.verify(rk_system(), system.id)["data_changed"] is True
    finally:
        rk.close()


def rk_system():
    from botreports.core.service import SYSTEM
    return SYSTEM


def test_deleting_a_report_deletes_its_record(tmp_path, botreports_demo_db):
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    try:
        report = rk.generate(ACME, usage("json"))
        assert load_record(rk.store, report.id)["manifest"]["report_id"] == report.id
        rk.delete(ACME, report.id)
        assert load_record(rk.store, report.id) is None
    finally:
        rk.close()


# -- the comparison, for any document ---------------------------------------------

numbers = st.one_of(st.integers(-10**9, 10**9), st.floats(allow_nan=False, allow_infinity=False, width=64))
kpi_items = st.lists(st.tuples(st.text("abcdefgh", min_size=1, max_size=6), numbers), min_size=1, max_size=6,
                     unique_by=lambda item: item[0])
table_rows = st.lists(st.tuples(st.text("xyz", max_size=4), numbers, numbers), max_size=8)


def record_of(items, rows):
    return {"sections": [{"name": "s", "title": "S", "blocks": [
        {"kind": "kpis", "items": [{"name": n, "label": n.upper(), "value": v, "previous": None, "change": None}
                                   for n, v in items]},
        {"kind": "table", "title": "T", "raw": False,
         "columns": [{"name": "k", "label": "Key"}, {"name": "a", "label": "A"}, {"name": "b", "label": "B"}],
         "rows": [list(row) for row in rows]}]}]}


def moved(value):
    """Another number, far enough from ``value`` to count as different (beyond float noise)."""
    return value + 1 if abs(value) < 1e6 else value / 2


@settings(max_examples=150, deadline=None)
@given(items=kpi_items, rows=table_rows, data=st.data())
def test_a_record_matches_itself_and_one_changed_number_is_named(items, rows, data):
    same = Comparison()
    same.records(record_of(items, rows), json.loads(json.dumps(record_of(items, rows))))
    assert same.differences == []
    assert same.numbers == len(items) + 2 * len(rows)

    position = data.draw(st.integers(0, len(items) + 2 * len(rows) - 1))
    changed_items, changed_rows = list(items), [list(row) for row in rows]
    if position < len(items):
        name, value = items[position]
        changed_items[position] = (name, moved(value))
        expected = {"block": "KPIs", "metric": name, "field": "value"}
    else:
        index, column = divmod(position - len(items), 2)
        value = rows[index][1 + column]
        changed_rows[index][1 + column] = moved(value)
        expected = {"block": "T", "metric": "AB"[column]}
    comparison = Comparison()
    comparison.records(record_of(items, rows), record_of(changed_items, changed_rows))
    assert len(comparison.differences) == 1
    difference = comparison.differences[0]
    assert {key: difference[key] for key in expected} == expected
    assert difference["new"] != difference["old"]


def test_metrics_doc_states_the_definitions_version_of_the_code():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text(encoding="utf-8")
    stated = re.findall(r"\*\*Definitions version (\d+)\.\*\*", text)
    assert stated == [str(METRIC_DEFINITIONS_VERSION)]
