"""Synthetic data looks like real bot traffic and is reproducible."""
import datetime as dt
import hashlib
import sqlite3

import pytest

from botreports.plugins.sources.synthetic import generate


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "analytics.db"
    counts = generate(path, days=28, bots=8, messages=20000, seed=3, end_date=dt.date(2025, 2, 28))
    return path, counts, sqlite3.connect(path)


def one(conn, sql):
    return conn.execute(sql).fetchone()[0]


def test_exact_message_count_and_tables(demo):
    path, counts, conn = demo
    assert counts["messages"] == one(conn, "SELECT count(*) FROM messages") == 20000
    for table in ("bots", "conversations", "llm_calls", "system_samples", "audit_events"):
        assert one(conn, f"SELECT count(*) FROM {table}") == counts[table] > 0
    assert one(conn, "SELECT sum(message_count) FROM conversations") == 20000


def test_several_organisations_and_channels(demo):
    _, _, conn = demo
    assert one(conn, "SELECT count(DISTINCT org_id) FROM bots") == 3
    assert {r[0] for r in conn.execute("SELECT DISTINCT channel FROM conversations")} == {
        "web", "whatsapp", "teams", "telegram"}
    # a bot's messages belong to the bot's organisation
    assert one(conn, "SELECT count(*) FROM messages m JOIN bots b ON b.id = m.bot_id WHERE b.org_id != m.org_id") == 0


def test_outcomes_satisfaction_and_returning_users(demo):
    _, _, conn = demo
    statuses = dict(conn.execute("SELECT status, count(*) FROM conversations GROUP BY status").fetchall())
    assert set(statuses) == {"resolved", "abandoned", "handed_off", "open"}
    assert statuses["resolved"] > statuses["abandoned"] > statuses["handed_off"]
    rated = one(conn, "SELECT avg(satisfaction IS NOT NULL) FROM conversations")
    assert 0.2 < rated < 0.5
    assert one(conn, "SELECT avg(satisfaction) FROM conversations WHERE status = 'resolved'") > \
        one(conn, "SELECT avg(satisfaction) FROM conversations WHERE status = 'abandoned'")
    returning = one(conn, "SELECT count(*) FROM (SELECT user_id FROM conversations GROUP BY user_id HAVING count(*) > 1)")
    assert returning > 50


def test_rhythm_latency_tail_llm_and_audit(demo):
    _, _, conn = demo
    by_hour = dict(conn.execute(
        "SELECT (created_at / 3600000) % 24, count(*) FROM messages GROUP BY 1").fetchall())
    assert by_hour[11] > 4 * by_hour[3]  # busy office hours, quiet nights
    weekday = dict(conn.execute(
        "SELECT strftime('%w', created_at / 1000, 'unixepoch') IN ('0', '6'), count(*) FROM messages GROUP BY 1"))
    assert weekday[0] / 5 > weekday[1] / 2  # weekends are quieter per day
    p50, p99 = [one(conn, f"SELECT latency_ms FROM messages WHERE direction = 'out' ORDER BY latency_ms "
                          f"LIMIT 1 OFFSET (SELECT count(*) * {q} / 100 FROM messages WHERE direction = 'out')")
                for q in (50, 99)]
    assert p99 > 4 * p50  # a long tail
    assert one(conn, "SELECT count(DISTINCT model) FROM llm_calls") == 3
    assert one(conn, "SELECT sum(cost_usd) FROM llm_calls") > 0
    assert one(conn, "SELECT count(*) FROM messages WHERE is_error = 1") > 0
    assert one(conn, "SELECT count(*) FROM audit_events WHERE result = 'denied'") > 0


def test_same_seed_same_data(tmp_path):
    digests = []
    for name in ("a.db", "b.db"):
        generate(tmp_path / name, days=5, bots=3, messages=2000, seed=9, end_date=dt.date(2025, 1, 10))
        conn = sqlite3.connect(tmp_path / name)
        digests.append(hashlib.sha256(repr(conn.execute(
            "SELECT * FROM messages ORDER BY id").fetchall()).encode()).hexdigest())
    assert digests[0] == digests[1]
