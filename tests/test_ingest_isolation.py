"""Ingest across organisations, written as the attacks it stops: one organisation's admin
writing into another's conversations or claiming its ids."""
import json
import sqlite3

from botreports.plugins.sources.sqlite_ownership import ID_TAKEN, NO_CONVERSATION

ATTACKER, VICTIM = "org-acme", "org-globex"
SECTIONS = [{"type": "conversations_raw"}, {"type": "usage_by_channel"}, {"type": "usage_summary"}]


def lines(*events):
    return [json.dumps(e) + "\n" for e in events]


def export(reports, principal, tmp_path, name):
    """The organisation's conversations and usage of the demo's last two weeks, as a JSON export
    read back: {section: rows or kpis}."""
    out = tmp_path / f"{name}.json"
    reports.render(principal, {"type": "custom", "sections": SECTIONS, "format": "json",
                               "start_date": "2025-01-18", "end_date": "2025-01-31"}, out)
    document = json.loads(out.read_text())
    result = {}
    for section in document["sections"]:
        for block in section["blocks"]:
            if block["kind"] == "table":
                result[section["name"]] = block["rows"]
            elif block["kind"] == "kpis":
                result[section["name"]] = {item["name"]: item["value"] for item in block["items"]}
    return result


def victim_conversation(reports):
    """A conversation of the victim with replies and LLM calls, and its numbers counted in SQL."""
    with sqlite3.connect(reports.data_dir / "analytics.db") as conn:
        conversation, bot, channel = conn.execute(
            "SELECT c.id, c.bot_id, c.channel FROM conversations c WHERE c.org_id = ?"
            " AND c.started_at >= 1737158400000 AND EXISTS (SELECT 1 FROM llm_calls l WHERE l.conversation_id = c.id)"
            " ORDER BY c.id LIMIT 1", [VICTIM]).fetchone()
        out, errors = conn.execute("SELECT sum(direction = 'out'), coalesce(sum(is_error), 0) FROM messages"
                                   " WHERE conversation_id = ?", [conversation]).fetchone()
    return conversation, bot, channel, out, errors


def test_admin_cannot_append_messages_to_another_organisations_conversation(reports, principal_factory,
                                                                            tmp_path):
    victim = principal_factory("report_creator", VICTIM)
    attacker_viewer = principal_factory("report_creator", ATTACKER)
    conversation, bot, channel, out, errors = victim_conversation(reports)
    before, attacker_before = export(reports, victim, tmp_path, "before"), export(reports, attacker_viewer,
                                                                                  tmp_path, "attacker")
    row = next(r for r in before["conversations_raw"] if r[0] == conversation)
    assert (row[9], row[10]) == (out, errors)  # the export says what the messages table holds

    planted = [{"table": "messages", "id": f"planted-{n}", "conversation_id": conversation, "bot_id": bot,
                "channel": channel, "user_id": "u-x", "direction": "out", "created_at": "2025-01-25T10:00:00Z",
                "latency_ms": 49_000_000, "is_error": True} for n in range(50)]
    planted.append({"table": "llm_calls", "id": "planted-call", "conversation_id": conversation, "bot_id": bot,
                    "model": "gpt-x", "created_at": "2025-01-25T10:00:00Z", "input_tokens": 10_000_000,
                    "output_tokens": 10_000_000, "success": True, "cost_usd": 999.0})
    result = reports.ingest(principal_factory("admin", ATTACKER), lines(*planted))

    assert result["inserted"] == {}
    assert result["errors"] == [{"line": n, "problem": NO_CONVERSATION} for n in range(1, 52)]
    after = export(reports, victim, tmp_path, "after")
    assert after == before
    assert next(r for r in after["conversations_raw"] if r[0] == conversation) == row
    # The planted call's tokens do not reach the attacker's own usage per channel either.
    assert export(reports, attacker_viewer, tmp_path, "attacker-after") == attacker_before
    with sqlite3.connect(reports.data_dir / "analytics.db") as conn:
        assert conn.execute("SELECT count(*) FROM messages WHERE id LIKE 'planted-%'").fetchone()[0] == 0


def test_refusal_of_another_organisations_conversation_reads_like_no_conversation(reports, principal_factory):
    """The answer must not tell an id that exists elsewhere from one that exists nowhere."""
    conversation, bot, channel, _, _ = victim_conversation(reports)
    message = {"table": "messages", "id": "probe-1", "bot_id": bot, "channel": channel, "user_id": "u-x",
               "direction": "in", "created_at": "2025-01-25T10:00:00Z"}
    result = reports.ingest(principal_factory("admin", ATTACKER), lines(
        {**message, "conversation_id": conversation}, {**message, "id": "probe-2", "conversation_id": "c-nowhere"}))
    assert result["errors"][0]["problem"] == result["errors"][1]["problem"] == NO_CONVERSATION
    assert VICTIM not in json.dumps(result)


def test_id_claimed_by_another_organisation_refuses_that_row_only(reports, principal_factory):
    """An organisation that claims ids first (demo ids are sequential) cannot make another's
    batch fail whole, and the refusal names neither the holder nor anything of its row."""
    conversation = {"table": "conversations", "bot_id": "bot-900", "user_id": "u-1", "channel": "web",
                    "started_at": "2025-01-30T10:00:00Z", "status": "open"}
    claimed = reports.ingest(principal_factory("admin", ATTACKER), lines({**conversation, "id": "conv-next"}))
    assert claimed == {"inserted": {"conversations": 1}, "errors": []}
    reply = {"table": "messages", "bot_id": "bot-900", "channel": "web", "user_id": "u-1", "direction": "out",
             "created_at": "2025-01-30T10:00:05Z"}
    result = reports.ingest(principal_factory("admin", VICTIM), lines(
        {**conversation, "id": "conv-next"},
        {**reply, "id": "msg-a", "conversation_id": "conv-next"},
        {**conversation, "id": "conv-own"},
        {**reply, "id": "msg-b", "conversation_id": "conv-own"}))
    assert result == {"inserted": {"conversations": 1, "messages": 1},
                      "errors": [{"line": 1, "problem": ID_TAKEN}, {"line": 2, "problem": NO_CONVERSATION}]}
    assert ATTACKER not in json.dumps(result)
    with sqlite3.connect(reports.data_dir / "analytics.db") as conn:
        assert conn.execute("SELECT org_id FROM conversations WHERE id = 'conv-next'").fetchone() == (ATTACKER,)
        assert conn.execute("SELECT org_id FROM messages WHERE id = 'msg-b'").fetchone() == (VICTIM,)


def test_message_must_name_its_conversations_bot(reports, principal_factory):
    with sqlite3.connect(reports.data_dir / "analytics.db") as conn:
        conversation, bot = conn.execute(
            "SELECT id, bot_id FROM conversations WHERE org_id = ? ORDER BY id LIMIT 1", [ATTACKER]).fetchone()
    message = {"table": "messages", "id": "m-other-bot", "conversation_id": conversation, "bot_id": bot + "-other",
               "channel": "web", "user_id": "u-x", "direction": "in", "created_at": "2025-01-25T10:00:00Z"}
    result = reports.ingest(principal_factory("admin", ATTACKER), lines(message, {**message, "id": "m-ok",
                                                                                   "bot_id": bot}))
    assert result == {"inserted": {"messages": 1}, "errors": [
        {"line": 1, "problem": f"bot_id must be the bot of conversation {conversation}: {bot}"}]}


def test_local_load_cannot_tie_a_message_to_another_organisations_conversation(reports, system_principal):
    """``botreports ingest`` loads every organisation's rows: a known conversation must still be
    of the row's own organisation (an unknown one may come later in the file)."""
    conversation, bot, channel, _, _ = victim_conversation(reports)
    message = {"table": "messages", "org_id": ATTACKER, "bot_id": bot, "channel": channel, "user_id": "u-x",
               "direction": "in", "created_at": "2025-01-25T10:00:00Z"}
    result = reports.ingest(system_principal, lines({**message, "id": "sys-1", "conversation_id": conversation},
                                                    {**message, "id": "sys-2", "conversation_id": "later"}))
    assert result == {"inserted": {"messages": 1}, "errors": [
        {"line": 1, "problem": "conversation_id names no conversation of the row's organisation"}]}
