"""The botserver database the tests use is botserver's own: its migrations
applied in diesel's order, filled only through columns botserver's code
writes, the way it writes them."""
import json
import shutil
import threading
from collections import Counter

import pytest

from botreports.plugins.sources import botserver_fixture as fixture
from botreports.plugins.sources.botserver_fixture import (
    DEFAULT_BOT, NIL_UUID, create_botserver_database, drop_botserver_database, ended_at_ms, migration_files,
    migrations_dir, rfc3339, session_status, template_name)

from botserver_support import PG_URL, botserver_db, connect  # noqa: F401 (fixture)


def rows(botserver_db, sql, params=()):
    with botserver_db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def test_migrations_are_applied_in_diesel_order(botserver_db):
    files = migration_files(migrations_dir())
    assert len(files) == 47 and all(path.is_file() for path in files)
    names = [path.parent.name for path in files]
    assert names[0] == "2026-03-15-email-crm-campaigns"
    assert names.index("6.0.10-01-products") < names.index("6.0.1-01-core")  # compared as text without '-'
    assert names == sorted(names, key=lambda name: name.replace("-", ""))
    [(tables,)] = rows(botserver_db, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN"
                                     " ('pg_catalog', 'information_schema')")
    assert tables >= 295
    columns = {(t, c) for t, c in rows(botserver_db, "SELECT table_name, column_name FROM information_schema.columns"
                                                     " WHERE table_schema = 'public'")}
    assert ("attendant_sessions", "session_id") not in columns  # the column the old fixture invented
    assert {("user_sessions", "context_data"), ("message_history", "content_encrypted"), ("bots", "org_id"),
            ("compliance_audit_log", "ip_address"), ("llm_metrics", "estimated_cost")} <= columns
    assert rows(botserver_db, "SELECT name FROM bots WHERE id = %s", [DEFAULT_BOT]) == [("default",)]


def test_loader_writes_only_what_botserver_writes(botserver_db):
    [(tokens, latencies, models)] = rows(
        botserver_db, "SELECT count(*) FILTER (WHERE token_count <> 0), count(processing_time_ms), count(llm_model)"
                      " FROM message_history")
    assert (tokens, latencies, models) == (0, 0, 0)
    assert rows(botserver_db, "SELECT count(*) FROM user_sessions WHERE message_count <> 0") == [(0,)]
    assert rows(botserver_db, "SELECT count(*) FROM llm_metrics") == [(0,)]
    assert rows(botserver_db, "SELECT count(*) FROM compliance_audit_log WHERE org_id <> %s", [NIL_UUID]) == [(0,)]
    results = dict(rows(botserver_db, "SELECT result, count(*) FROM compliance_audit_log GROUP BY result"))
    assert set(results) == {"success", "failure", "denied", "error"}
    assert rows(botserver_db, "SELECT count(*) FROM compliance_audit_log WHERE user_id IS NULL")[0][0] > 0
    assert rows(botserver_db, "SELECT count(*) FROM bots WHERE org_id IS NULL") == [(1,)]
    # one session per user and bot, reused
    assert rows(botserver_db, "SELECT count(*) FROM (SELECT user_id, bot_id FROM user_sessions"
                              " GROUP BY user_id, bot_id HAVING count(*) > 1) t") == [(0,)]
    [(sessions, conversations)] = [(botserver_db.counts["user_sessions"],
                                    _canonical_count(botserver_db, "conversations"))]
    assert sessions < conversations
    automation = rows(botserver_db, "SELECT title, context_data FROM user_sessions WHERE user_id = bot_id")
    assert len(automation) == fixture.AUTOMATION_BOTS and {t for t, _ in automation} == {"Automation"}
    roles = dict(rows(botserver_db, "SELECT role, count(*) FROM message_history GROUP BY role"))
    assert set(roles) == {1, 2, 3, 9} and roles[3] > 0 and roles[9] > 0
    # message_index counts a session's rows in order, as save_message does
    assert rows(botserver_db, "SELECT count(*) FROM (SELECT session_id FROM message_history GROUP BY session_id"
                              " HAVING min(message_index) <> 0 OR max(message_index) <> count(*) - 1"
                              " OR count(DISTINCT message_index) <> count(*)) t") == [(0,)]
    # bot replies carry the end user's id, as botserver writes them
    assert rows(botserver_db, "SELECT count(*) FROM message_history m JOIN user_sessions s ON s.id = m.session_id"
                              " WHERE m.user_id <> s.user_id") == [(0,)]


def structure(conn, table):
    """A table's constraints and indexes, as definitions."""
    constraints = conn.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                               " WHERE conrelid = %s::regclass", [table]).fetchall()
    indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table]).fetchall()
    return sorted(constraints), sorted(indexes)


def test_bulk_load_leaves_message_history_keys_and_indexes_as_the_migrations_made_them(botserver_db):
    fresh = create_botserver_database(PG_URL)
    try:
        with connect(fresh) as conn:
            expected = structure(conn, "message_history")
    finally:
        drop_botserver_database(PG_URL, fresh)
    with botserver_db.connect() as conn:
        assert structure(conn, "message_history") == expected
    assert len(expected[0]) == 3 and len(expected[1]) == 3  # key, two foreign keys; key and two indexes


def _canonical_count(botserver_db, table):
    import sqlite3
    conn = sqlite3.connect(botserver_db.canonical_file)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def test_context_data_holds_channel_and_status_as_botserver_writes_them(botserver_db):
    contexts = [c if isinstance(c, dict) else json.loads(c)
                for (c,) in rows(botserver_db, "SELECT context_data FROM user_sessions")]
    channels = Counter(c.get("channel") for c in contexts)
    assert set(channels) == {None, "whatsapp"}
    statuses = Counter(c.get("status") for c in contexts)
    assert {None, "resolved", "assigned", "queued", "transferred", "pending_transfer", "abandoned"} <= set(statuses)
    for context in contexts:
        if context.get("status") == "resolved":
            assert context["resolved"] is True and fixture.LOOKS_LIKE_TIMESTAMP.match(context["resolved_at"])
        if context.get("status") == "queued":
            assert context["needs_human"] is True
    nine_digits = [c["resolved_at"] for c in contexts if c.get("status") == "resolved"
                   and len(c["resolved_at"].split(".")[-1]) == len("123456789+00:00")]
    assert nine_digits  # as chrono prints most of botserver's clock readings


def test_rfc3339_prints_the_digits_chrono_prints():
    assert rfc3339(1_741_478_400_000) == "2025-03-09T00:00:00+00:00"
    assert rfc3339(1_741_478_400_120) == "2025-03-09T00:00:00.120+00:00"
    assert rfc3339(1_741_478_400_120, nanos=True) == "2025-03-09T00:00:00.120000001+00:00"
    assert ended_at_ms({"status": "resolved", "resolved_at": "2025-03-09T00:00:00.120000001+00:00"}) == 1_741_478_400_120
    assert ended_at_ms({"status": "resolved", "resolved_at": "2025-03-08T21:00:00.5-03:00"}) == 1_741_478_400_500


def test_session_status_follows_the_mapping_first_rule_first():
    assert session_status({"status": "resolved", "needs_human": True}) == "resolved"
    assert session_status({"resolved_at": "2025-03-09T00:00:00+00:00"}) == "resolved"
    assert session_status({"resolved": True}) == "resolved"
    assert session_status({"status": "abandoned", "needs_human": True}) == "abandoned"
    assert session_status({"status": "waiting"}) == session_status({"needs_human": True}) == "handed_off"
    assert session_status({"channel": "whatsapp"}) == session_status({"needs_human": False}) == "open"
    assert ended_at_ms({"resolved_at": "yesterday"}) is None
    assert ended_at_ms({"status": "queued"}) is None


def test_migrations_folder_comes_from_the_environment_or_beside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv(fixture.MIGRATIONS_ENV, str(tmp_path))
    assert migrations_dir() is None
    monkeypatch.delenv(fixture.MIGRATIONS_ENV)
    assert migrations_dir() is None or (migrations_dir() / "migration-order.txt").is_file()


def test_template_is_built_once_when_two_processes_ask_at_the_same_time(monkeypatch, tmp_path):
    """A fresh set of migrations (one comment more) gets a template of its own, built by one caller only."""
    root = migrations_dir()
    if root is None:
        pytest.skip("botserver's migrations are not found")
    connect(PG_URL).close()
    copy = tmp_path / "botserver"
    shutil.copytree(root, copy)
    last = migration_files(copy)[-1]
    last.write_text(last.read_text() + f"\n-- {tmp_path.name}\n")
    monkeypatch.setenv(fixture.MIGRATIONS_ENV, str(copy))
    template = template_name(copy)
    assert template != template_name(root)
    made, errors = [], []

    def create():
        try:
            made.append(create_botserver_database(PG_URL))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors and len(set(made)) == 2
        with connect(PG_URL) as conn:
            names = [n for (n,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                [template + "%"])]
        assert names == [template]  # one template, no half-built copy left
        for url in made:
            with connect(url) as conn:
                assert conn.execute("SELECT count(*) FROM bots").fetchone() == (1,)  # the migrations' own bot
    finally:
        for url in made:
            drop_botserver_database(PG_URL, url)
        drop_botserver_database(PG_URL, fixture.database_url(PG_URL, template))
