"""The rollup tables equal a rebuild from the base tables whatever the order of
writes (inserts, replacements, late conversations, deletes, updates), and a
file without them answers every query with the same numbers, only slower."""
import datetime as dt
import random
import shutil
import sqlite3
from zoneinfo import ZoneInfo

import pytest

from botreports.core.models import Period, Scope
from botreports.plugins.sources.sqlite import (INDEXES, SqliteAnalytics, create_database, create_indexes,
                                               missing_indexes)
from botreports.plugins.sources.sqlite_conversation_keys import TABLE as CONVERSATION_KEYS
from botreports.plugins.sources.sqlite_conversation_rows import COLUMNS as CONVERSATION_COLUMNS
from botreports.plugins.sources.sqlite_conversation_rows import JSON_COLUMNS
from botreports.plugins.sources.sqlite_conversation_rows import TABLE as CONVERSATION_ROWS
from botreports.plugins.sources.sqlite_conversation_rows import build_conversation_rows
from botreports.plugins.sources.sqlite_rollups import ROLLUPS, build_rollups
from botreports.plugins.sources.synthetic import generate

UTC = dt.timezone.utc
T0 = 1_735_776_000_000  # 2025-01-02T00:00Z


def snapshot(path):
    """Every rollup row, floats rounded (sums of costs may add up in another order)."""
    conn = sqlite3.connect(path)
    tables = {r.name: r.columns() for r in ROLLUPS}
    tables[CONVERSATION_ROWS] = ", ".join(CONVERSATION_COLUMNS + JSON_COLUMNS)  # the kept JSON too
    try:
        return {name: sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                              for row in conn.execute(f"SELECT {columns} FROM {name}")), key=repr)
                for name, columns in tables.items()}
    finally:
        conn.close()


def random_events(rng, n):
    """Messages, calls and conversations with repeated ids (replacements), in shuffled order."""
    events = []
    for i in range(n):
        conv = f"c{rng.randint(0, 12)}"
        out = rng.random() < 0.5
        events.append(("messages", {
            "id": f"m{rng.randint(0, n // 2)}", "org_id": rng.choice(("o1", "o2")), "conversation_id": conv,
            "bot_id": rng.choice(("b1", "b2")), "channel": rng.choice(("web", "teams")),
            "user_id": f"u{rng.randint(0, 5)}", "direction": "out" if out else "in",
            "created_at": T0 + rng.randint(0, 3 * 3_600_000), "latency_ms": rng.randint(1, 900) if out else None,
            "tokens": rng.randint(0, 50) if out else None, "intent": None if out else rng.choice(("a", "b", None)),
            "is_error": rng.choice((0, 1, None))}))
        if rng.random() < 0.4:
            events.append(("llm_calls", {
                "id": f"l{rng.randint(0, n // 3)}", "org_id": "o1", "bot_id": rng.choice(("b1", "b2")),
                "conversation_id": rng.choice((conv, None, "c-missing")), "model": rng.choice(("x", "y")),
                "created_at": T0 + rng.randint(0, 3 * 3_600_000), "input_tokens": rng.choice((None, 10, 20)),
                "output_tokens": rng.randint(0, 9), "latency_ms": rng.choice((None, 100, 250)),
                "success": rng.choice((0, 1, None)), "cost_usd": rng.choice((None, 0.001, 0.25))}))
        if rng.random() < 0.2:
            events.append(("conversations", {
                "id": conv, "org_id": "o1", "bot_id": "b1", "user_id": "u1",
                "channel": rng.choice(("web", "teams", "whatsapp")), "started_at": T0, "ended_at": None,
                "status": "open", "satisfaction": None, "message_count": 3}))
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_follow_every_kind_of_write(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "a.db"
    conn = create_database(path)
    create_indexes(conn)  # empty rollups and their triggers, before any data
    conn.close()
    source = SqliteAnalytics(path)
    events = random_events(rng, 300)
    for start in range(0, len(events), 37):
        source.write_events(events[start:start + 37])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM messages WHERE rowid % 7 = 0")
    conn.execute("UPDATE messages SET created_at = created_at + 1800000, channel = 'sms' WHERE rowid % 5 = 0")
    conn.execute("UPDATE conversations SET channel = 'sms' WHERE id IN ('c1', 'c2')")
    conn.execute("DELETE FROM conversations WHERE id = 'c3'")
    conn.execute("DELETE FROM llm_calls WHERE rowid % 4 = 0")
    kept = snapshot(path)
    build_rollups(conn)
    build_conversation_rows(conn)
    # The keys catalog only grows: it lists every key a conversation has now (and may list
    # keys whose conversations have gone or moved, which count nothing).
    listed = set(conn.execute(f"SELECT org_id, bot_id, channel, status, score FROM {CONVERSATION_KEYS}"))
    present = set(conn.execute("SELECT DISTINCT org_id, bot_id, channel, status, coalesce(satisfaction, 0)"
                               " FROM conversations"))
    conn.close()
    assert snapshot(path) == kept
    assert any(kept.values())
    assert present and present <= listed


ZONES = ("America/New_York", "Asia/Kathmandu", "UTC")


def scopes():
    for zone in ZONES:
        tz = ZoneInfo(zone)
        for first, days in ((dt.date(2025, 1, 2), 30), (dt.date(2025, 1, 20), 3)):
            period = Period(dt.datetime.combine(first, dt.time(0), tz).astimezone(UTC),
                            dt.datetime.combine(first + dt.timedelta(days=days), dt.time(0), tz).astimezone(UTC),
                            zone)
            yield Scope(org_id=None, period=period)
            yield Scope(org_id="org-acme", period=period, bot_ids=("bot-001", "bot-004"), channel="web")


def answers(source, scope):
    """Every query of the interface that rollups may answer, with its result."""
    result = {
        "usage_totals": source.usage_totals(scope), "daily_usage": source.daily_usage(scope),
        "activity_grid": source.activity_grid(scope), "top_users": source.top_users(scope, 10),
        "usage_rows": list(source.usage_rows(scope)), "conversation_rows": list(source.conversation_rows(scope)),
        "llm_performance": source.llm_performance(scope), "throughput": source.throughput(scope),
        "performance_rows": list(source.performance_rows(scope)),
    }
    for dimension in ("bot", "channel"):
        result[f"usage_breakdown_{dimension}"] = source.usage_breakdown(scope, dimension)
        result[f"handoffs_{dimension}"] = source.handoffs(scope, dimension)
    result.update(conversation_summary=source.conversation_summary(scope),
                  conversation_outcomes=source.conversation_outcomes(scope), satisfaction=source.satisfaction(scope),
                  daily_satisfaction=source.daily_satisfaction(scope))
    for group in (None, "day", "bot", "channel"):
        result[f"reply_latency_{group}"] = source.reply_latency(scope, group)
        result[f"error_counts_{group}"] = source.error_counts(scope, group)
    table = source.conversation_table_rows(scope, str)
    result["conversation_table_rows"] = list(table) if table is not None else [
        [r["id"], r["bot_id"], r["channel"], str(r["user_id"]), r["started_at"], r["ended_at"],
         None if r["duration_ms"] is None else r["duration_ms"] / 1000, r["message_count"], r["messages_in"],
         r["messages_out"], r["errors"], r["avg_latency_ms"], r["status"], r["satisfaction"]]
        for r in result["conversation_rows"]]
    return result


def test_file_without_rollups_gives_the_same_answers(tmp_path):
    path = tmp_path / "with.db"
    generate(path, days=30, bots=6, messages=20_000, seed=3, end_date=dt.date(2025, 1, 31))
    old, older = tmp_path / "without_conversation_rows.db", tmp_path / "without.db"
    for copy, dropped in ((old, [CONVERSATION_ROWS, CONVERSATION_KEYS]),
                          (older, [CONVERSATION_ROWS, CONVERSATION_KEYS] + [r.name for r in ROLLUPS])):
        shutil.copy(path, copy)
        conn = sqlite3.connect(copy)
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {trigger}")
        for table in dropped:
            conn.execute(f"DROP TABLE {table}")
        conn.close()
    rolled, joined, plain = SqliteAnalytics(path), SqliteAnalytics(old), SqliteAnalytics(older)
    assert rolled.rollups and joined.rollups and not plain.rollups
    for scope in scopes():
        expected = answers(rolled, scope)
        assert expected == answers(joined, scope), scope
        assert expected == answers(plain, scope), scope


def test_old_file_gains_its_rollups_on_its_next_ingest(tmp_path):
    path = tmp_path / "old.db"
    conn = create_database(path)
    conn.execute("INSERT INTO messages (id, org_id, conversation_id, bot_id, channel, user_id, direction,"
                 " created_at) VALUES ('m0', 'o1', 'c1', 'b1', 'web', 'u1', 'in', ?)", [T0])
    conn.close()
    source = SqliteAnalytics(path)
    assert not source.rollups
    assert missing_indexes(sqlite3.connect(path)) == list(INDEXES)
    source.write_events(random_events(random.Random(7), 20))
    source.close()
    fresh = SqliteAnalytics(path)
    assert fresh.rollups and fresh.has_table(CONVERSATION_KEYS)
    assert missing_indexes(sqlite3.connect(path)) == []  # the covering indexes too, as after a bulk load
    kept = snapshot(path)
    conn = sqlite3.connect(path, isolation_level=None)
    build_rollups(conn)
    conn.close()
    assert snapshot(path) == kept


def test_reply_latency_kept_for_a_report_follows_the_next_write(tmp_path):
    path = tmp_path / "a.db"
    generate(path, days=30, bots=3, messages=3_000, seed=5, end_date=dt.date(2025, 1, 31))
    source = SqliteAnalytics(path)
    scope = Scope(org_id=None, period=Period(dt.datetime(2025, 1, 2, tzinfo=UTC), dt.datetime(2025, 2, 1, tzinfo=UTC)))
    [before] = source.reply_latency(scope)
    assert source.reply_latency(scope) == [before]  # asked again: the kept answer
    source.write_events([("messages", {
        "id": "m-late", "org_id": "org-acme", "conversation_id": "c-late", "bot_id": "bot-001", "channel": "web",
        "user_id": "u1", "direction": "out", "created_at": T0 + 3_600_000, "latency_ms": 10_000_000,
        "tokens": None, "intent": None, "is_error": 0})])
    [after] = source.reply_latency(scope)
    assert after["replies"] == before["replies"] + 1 and after["max_ms"] == 10_000_000
    assert {row["key"]: row["replies"] for row in source.reply_latency(scope, "bot")}["bot-001"] > 0


def test_walking_the_history_indexes_gives_the_same_answers(tmp_path, monkeypatch):
    """Distinct users, top intents, the summary's histograms and the top conversations along the
    user-, intent-, length- and duration-ordered indexes (a period holding much of the file)
    equal the answers that sort the period's rows (limits past the number of conversations too)."""
    path = tmp_path / "a.db"
    generate(path, days=10, bots=4, messages=4_000, seed=5, end_date=dt.date(2025, 1, 31))
    source = SqliteAnalytics(path)
    for scope in scopes():
        monkeypatch.setattr(source, "walks_history", lambda *_: True, raising=False)
        walked = answers(source, scope)
        walked["intents"] = source.top_intents(scope, 10)
        walked["top"] = [source.top_conversations(scope, by, n) for by in ("messages", "duration") for n in (1, 10, 10**4)]
        monkeypatch.setattr(source, "walks_history", lambda *_: False, raising=False)
        sorted_ = answers(source, scope)
        sorted_["intents"] = source.top_intents(scope, 10)
        sorted_["top"] = [source.top_conversations(scope, by, n) for by in ("messages", "duration") for n in (1, 10, 10**4)]
        assert walked == sorted_


def test_a_file_without_the_conversations_rollup_counts_conversations_and_gains_it_on_its_next_load(tmp_path):
    path = tmp_path / "a.db"
    generate(path, days=10, bots=3, messages=3_000, seed=9, end_date=dt.date(2025, 1, 31))
    scope = next(scopes())
    expected = answers(SqliteAnalytics(path), scope)
    conn = sqlite3.connect(path, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                                " AND name LIKE 'rollup_conversations_%'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE rollup_conversations")
    conn.close()
    older = SqliteAnalytics(path)
    assert older.rollups and not older.has_table("rollup_conversations")
    assert answers(older, scope) == expected  # counted from the conversations themselves
    older.write_events(random_events(random.Random(4), 5))
    assert older.has_table("rollup_conversations")
    assert answers(older, scope) == answers(SqliteAnalytics(path), scope)
    assert snapshot(path)["rollup_conversations"]


def test_kept_answers_are_shared_by_threads_and_renewed_by_a_commit(tmp_path):
    import threading
    import time

    path = tmp_path / "a.db"
    generate(path, days=5, bots=2, messages=1_000, seed=2, end_date=dt.date(2025, 1, 31))
    source = SqliteAnalytics(path)
    scope = next(scopes())
    computed = []

    def slow():
        computed.append(1)
        time.sleep(0.3)
        return len(computed)

    answers_seen = []
    threads = [threading.Thread(target=lambda: answers_seen.append(source.kept("q", scope, slow)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers_seen == [1, 1, 1] and len(computed) == 1  # one computation, shared
    assert source.kept("q", scope, slow) == 1
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("UPDATE bots SET name = name || '!'")  # any commit
    writer.close()
    assert source.kept("q", scope, slow) == 2  # the file changed: computed again


def test_rollups_of_an_earlier_definition_are_read_around_and_rebuilt_at_the_next_write(tmp_path):
    """A file whose rollups and conversation rows counted an incoming message's error flag as an
    errored reply (the earlier definition): its reports read the base tables, with the numbers of
    today's definitions, until its next write rebuilds those structures."""
    path = tmp_path / "a.db"
    generate(path, days=10, bots=3, messages=3000, seed=5, end_date=dt.date(2025, 1, 31))
    conn = sqlite3.connect(path)
    flagged = conn.execute("UPDATE messages SET is_error = 1 WHERE direction = 'in' AND rowid % 7 = 0").rowcount
    expected_source = SqliteAnalytics(path)  # current rollups, kept by the triggers through the update
    scope = next(scopes())
    expected = answers(expected_source, scope)
    expected_source.close()
    # The earlier definition: every message's flag counted, in the stored counts and the triggers.
    old_count = "coalesce(sum({t}.is_error), 0)"
    for table, trigger in (("rollup_conversation_messages", "rollup_conversation_messages_insert"),
                           (CONVERSATION_ROWS, f"{CONVERSATION_ROWS}_message_insert")):
        (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [trigger]).fetchone()
        conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute(sql.replace("CASE WHEN b.direction = 'out' THEN b.is_error END", "b.is_error")
                     .replace("CASE WHEN m.direction = 'out' THEN m.is_error END", "m.is_error"))
    conn.execute(f"UPDATE {CONVERSATION_ROWS} SET errors = (SELECT coalesce(sum(m.is_error), 0) FROM messages m"
                 f" WHERE m.conversation_id = {CONVERSATION_ROWS}.id)")
    conn.commit()
    conn.close()
    assert flagged > 0
    old = SqliteAnalytics(path)
    try:
        assert not old.rollups and not old.conversation_rows_current
        assert answers(old, scope) == expected
        old.write_events([])  # any write brings the structures to today's definitions
    finally:
        old.close()
    rebuilt = SqliteAnalytics(path)
    try:
        assert rebuilt.rollups and rebuilt.conversation_rows_current
        assert answers(rebuilt, scope) == expected
    finally:
        rebuilt.close()
