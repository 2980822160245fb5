"""Loading events: validation with line numbers, whole batches or nothing."""
import json
import sqlite3

import pytest

from botreports import PermissionDenied

MSG = {"table": "messages", "id": "x-1", "org_id": "org-acme", "conversation_id": "cx", "bot_id": "bot-001",
       "channel": "web", "user_id": "u-new", "direction": "in", "created_at": "2025-01-30T10:00:00Z"}


def lines(*events):
    return [json.dumps(e) + "\n" for e in events]


def count(reports, table, where="1 = 1"):
    conn = sqlite3.connect(reports.data_dir / "analytics.db")
    return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def test_ingest_valid_events(reports, system_principal):
    result = reports.ingest(system_principal, lines(
        MSG, {**MSG, "id": "x-2", "direction": "out", "latency_ms": 900, "created_at": 1738231201000},
        {"table": "conversations", "id": "cx", "org_id": "org-acme", "bot_id": "bot-001", "user_id": "u-new",
         "channel": "web", "started_at": "2025-01-30T10:00:00", "status": "resolved", "satisfaction": 5}))
    assert result == {"inserted": {"messages": 2, "conversations": 1}, "errors": []}
    assert count(reports, "messages", "id LIKE 'x-%'") == 2
    conn = sqlite3.connect(reports.data_dir / "analytics.db")
    assert conn.execute("SELECT created_at FROM messages WHERE id = 'x-1'").fetchone()[0] == 1738231200000


def test_bad_line_is_reported_and_its_batch_is_not_written(reports, system_principal):
    events = lines(MSG, {**MSG, "id": "x-2"}, {**MSG, "id": "x-3", "direction": "sideways"})
    events.insert(1, "{not json\n")
    result = reports.ingest(system_principal, events, batch_size=10)
    assert [e["line"] for e in result["errors"]] == [2, 4]
    assert "direction" in result["errors"][1]["problem"]
    assert count(reports, "messages", "id LIKE 'x-%'") == 0


def test_good_batches_land_and_bad_batches_do_not(reports, system_principal):
    events = lines(MSG, {**MSG, "id": "x-2"}, {**MSG, "id": "x-3", "satisfaction": 1}, {**MSG, "id": "x-4"})
    result = reports.ingest(system_principal, events, batch_size=2)
    assert result["errors"] == [{"line": 3, "problem": "unknown field(s) for messages: satisfaction"}]
    assert count(reports, "messages", "id LIKE 'x-%'") == 2


def test_conversation_ending_before_it_starts_is_refused(reports, system_principal):
    conversation = {"table": "conversations", "id": "cx", "org_id": "org-acme", "bot_id": "bot-001",
                    "user_id": "u-new", "channel": "web", "started_at": "2025-01-30T10:00:00Z", "status": "resolved"}
    result = reports.ingest(system_principal, lines(
        {**conversation, "ended_at": "2025-01-30T10:00:00Z"},
        {**conversation, "id": "cy", "ended_at": "2025-01-30T09:59:59Z"}), batch_size=1)
    assert result == {"inserted": {"conversations": 1},
                      "errors": [{"line": 2, "problem": "ended_at must not be before started_at"}]}
    assert count(reports, "conversations", "id IN ('cx', 'cy')") == 1


def test_deeply_nested_line_is_a_bad_line_not_a_crash(reports, system_principal):
    deep = "[" * 100000 + "]" * 100000 + "\n"
    result = reports.ingest(system_principal, [lines(MSG)[0], deep, '{"table": []}\n'], batch_size=1)
    assert result == {"inserted": {"messages": 1}, "errors": [
        {"line": 2, "problem": "is not valid JSON: nested too deeply (at most 64 levels)"},
        {"line": 3, "problem": "table must be one of bots, conversations, messages, llm_calls, system_samples, "
                               "audit_events"}]}


def test_text_with_a_lone_surrogate_is_refused_naming_the_field(reports, system_principal):
    result = reports.ingest(system_principal, [json.dumps({**MSG, "user_id": "\ud800"}) + "\n"])
    assert result["inserted"] == {} and [e["line"] for e in result["errors"]] == [1]
    assert result["errors"][0]["problem"].startswith("user_id must be valid Unicode text")
    assert count(reports, "messages", "id = 'x-1'") == 0


def test_organisation_may_only_ingest_its_own_events(reports, principal_factory):
    result = reports.ingest(principal_factory("admin"), lines({**MSG, "org_id": "org-globex"},
                                                              {k: v for k, v in MSG.items() if k != "org_id"}))
    assert result["errors"][0]["line"] == 1
    assert count(reports, "messages", "id = 'x-1'") == 0
    with pytest.raises(PermissionDenied):
        reports.ingest(principal_factory("report_admin"), lines(MSG))


def test_organisation_cannot_replace_another_organisations_rows(reports, principal_factory):
    """Events are written by id (a resent event replaces its earlier self): an organisation's
    event must not replace a row of another organisation; only that row is refused."""
    conn = sqlite3.connect(reports.data_dir / "analytics.db")
    foreign_bot, = conn.execute("SELECT id FROM bots WHERE org_id != 'org-acme' LIMIT 1").fetchone()
    foreign_message, = conn.execute("SELECT id FROM messages WHERE org_id != 'org-acme' LIMIT 1").fetchone()
    own_conversation, own_bot = conn.execute(
        "SELECT id, bot_id FROM conversations WHERE org_id = 'org-acme' LIMIT 1").fetchone()
    before = conn.execute("SELECT * FROM messages WHERE id = ?", [foreign_message]).fetchone()
    conn.close()
    mine = {**MSG, "conversation_id": own_conversation, "bot_id": own_bot}
    result = reports.ingest(principal_factory("admin"), lines(
        {"table": "bots", "id": foreign_bot, "name": "Mine now", "created_at": "2025-01-30T10:00:00Z"},
        {**mine, "id": foreign_message},
        {**mine, "id": "x-3"}))
    taken = "id is not available; ids are unique across the service, so use random ones (UUIDs)"
    assert result["errors"] == [{"line": 1, "problem": taken}, {"line": 2, "problem": taken}]
    assert result["inserted"] == {"messages": 1}
    conn = sqlite3.connect(reports.data_dir / "analytics.db")
    assert conn.execute("SELECT * FROM messages WHERE id = ?", [foreign_message]).fetchone() == before
    assert conn.execute("SELECT org_id FROM bots WHERE id = ?", [foreign_bot]).fetchone()[0] != "org-acme"
    conn.close()


def test_cli_ingest_reports_line_numbers(tmp_path, reports):
    import subprocess, sys
    from pathlib import Path
    path = tmp_path / "events.ndjson"
    path.write_text("".join(lines(MSG, {**MSG, "id": "x-2", "created_at": "tomorrow"})))
    done = subprocess.run([str(Path(sys.executable).with_name("botreports")), "ingest", str(path),
                           "--data-dir", str(reports.data_dir)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "line 2: created_at" in done.stderr
