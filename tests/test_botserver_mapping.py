"""How one botserver session reads as a conversation: every hand-off and
resolution status botserver's code writes, the channel, and ``resolved_at``
texts of any shape (a malformed one is no end, never a failed report)."""
import datetime as dt
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botreports.core.models import Period, Scope
from botreports.plugins.sources.botserver_fixture import create_botserver_database, drop_botserver_database
from botreports.plugins.sources.botserver_pg import BotserverAnalytics

from botserver_support import PG_URL, connect

UTC = dt.timezone.utc
BOT = "5a0c8a56-5d3c-4d55-9d57-6f0a1b2c3d4e"
STARTED = dt.datetime(2025, 3, 5, 10, 0, tzinfo=UTC)
PERIOD = Period(dt.datetime(2025, 3, 1, tzinfo=UTC), dt.datetime(2025, 4, 1, tzinfo=UTC), "UTC")

#: (context_data, channel, status, ended_at) as the source must read them.
CASES = [
    ({}, "web", "open", None),
    ({"channel": "whatsapp"}, "whatsapp", "open", None),
    ({"channel": ""}, "web", "open", None),
    # transfer_to_human.rs replaces context_data whole: the WhatsApp channel is gone after it
    ({"needs_human": True, "status": "assigned", "assigned_to": "a1"}, "web", "handed_off", None),
    ({"needs_human": True, "status": "queued"}, "web", "handed_off", None),
    ({"channel": "whatsapp", "status": "transferred"}, "whatsapp", "handed_off", None),
    ({"status": "pending_transfer"}, "web", "handed_off", None),
    ({"status": "waiting"}, "web", "handed_off", None),
    ({"status": "active"}, "web", "handed_off", None),
    ({"needs_human": True}, "web", "handed_off", None),
    ({"needs_human": False}, "web", "open", None),
    ({"status": "abandoned"}, "web", "abandoned", None),
    ({"status": "resolved", "resolved": True, "resolved_at": "2025-03-06T12:00:00.123000000+00:00"},
     "web", "resolved", dt.datetime(2025, 3, 6, 12, 0, 0, 123000, tzinfo=UTC)),
    ({"status": "resolved", "needs_human": True, "resolved_at": "2025-03-05T11:30:00Z"},
     "web", "resolved", dt.datetime(2025, 3, 5, 11, 30, tzinfo=UTC)),
    ({"resolved": True}, "web", "resolved", None),
    ({"resolved_at": "yesterday"}, "web", "resolved", None),
    ({"resolved_at": "2025-02-30T10:00:00Z"}, "web", "resolved", None),
    ({"resolved_at": "2025-02-29T10:00:00Z"}, "web", "resolved", None),
    ({"resolved_at": "2024-02-29T10:00:00-03:00"}, "web", "resolved", dt.datetime(2024, 2, 29, 13, tzinfo=UTC)),
    ({"resolved_at": "2025-03-07T10:00:00+20:00"}, "web", "resolved", None),
    ({"resolved_at": 1741341600}, "web", "resolved", None),
    ({"status": "new", "channel": "teams"}, "teams", "open", None),
]


@pytest.fixture(scope="module")
def database():
    connect().close()
    url = create_botserver_database(PG_URL)
    with connect(url) as conn:
        conn.execute("INSERT INTO bots (id, name, llm_provider, context_provider) VALUES (%s, 'Support', 'openai',"
                     " 'qdrant')", (BOT,))
    yield url
    drop_botserver_database(PG_URL, url)


def read_back(url, contexts):
    """Write one session per context, read them back as conversations (then remove them)."""
    with connect(url) as conn:
        conn.execute("DELETE FROM user_sessions")
        conn.execute("DELETE FROM users")
        ids = []
        for index, context in enumerate(contexts):
            user = str(uuid.UUID(int=index + 1))
            conn.execute("INSERT INTO users (id, username, email, password_hash) VALUES (%s, %s, %s, 'x')",
                         (user, f"u{index}", f"u{index}@example.com"))
            session = str(uuid.UUID(int=10_000 + index))
            conn.execute("INSERT INTO user_sessions (id, user_id, bot_id, context_data, created_at)"
                         " VALUES (%s, %s, %s, %s::jsonb, %s)",
                         (session, user, BOT, json.dumps(context), STARTED + dt.timedelta(seconds=index)))
            ids.append(session)
    source = BotserverAnalytics(url)
    try:
        rows = {row["id"]: row for row in source.conversation_rows(Scope(None, PERIOD))}
        unrecorded = source.unrecorded()
    finally:
        source.close()
    return [rows[i] for i in ids], unrecorded


def test_every_status_botserver_writes_reads_as_its_outcome(database):
    rows, unrecorded = read_back(database, [context for context, *_ in CASES])
    for (context, channel, status, ended), row in zip(CASES, rows):
        assert (row["channel"], row["status"], row["ended_at"]) == (channel, status, ended), context
        expected_ms = None if ended is None else round((ended - row["started_at"]).total_seconds() * 1000)
        assert row["duration_ms"] == expected_ms, context
    assert "conversations.ended_at" not in unrecorded


def test_without_a_readable_end_durations_are_unrecorded(database):
    rows, unrecorded = read_back(database, [{"resolved_at": "soon"}, {"status": "resolved"}])
    assert [row["ended_at"] for row in rows] == [None, None]
    assert "conversations.ended_at" in unrecorded


def python_reading(text):
    """What ``resolved_at`` means to a strict RFC 3339 reader, or None (PostgreSQL's offset limit is 15:59)."""
    try:
        head, zone = (text[:-1], "+00:00") if text.endswith("Z") else (text[:-6], text[-6:])
        day, clock = head[:10], head[11:]
        whole, _, fraction = clock.partition(".")
        parsed = dt.datetime.fromisoformat(f"{day}T{whole}{'.' + fraction[:6].ljust(6, '0') if fraction else ''}"
                                           f"{zone}")
    except ValueError:
        return None
    if abs(parsed.utcoffset()) >= dt.timedelta(hours=16) or parsed.year < 1000:
        return None
    # PostgreSQL rounds a seventh to ninth digit to the microsecond
    extra = fraction[6:]
    if extra and int(extra.ljust(3, "0")[0]) >= 5:
        parsed += dt.timedelta(microseconds=1)
    return parsed.astimezone(UTC)


def stamp(year, month, day, hour, minute, second, fraction, zone):
    return (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
            f"{'.' + fraction if fraction else ''}{zone}")


STAMPS = st.builds(
    stamp, st.integers(1000, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24),
    st.integers(0, 60), st.integers(0, 60), st.one_of(st.just(""), st.from_regex(r"\A[0-9]{1,9}\Z")),
    st.one_of(st.just("Z"), st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"),
                                      st.integers(0, 23), st.integers(0, 59))))


# jsonb holds no NUL and no lone surrogate: botserver could not have written them
TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(STAMPS, TEXTS), min_size=1, max_size=40))
def test_any_resolved_at_is_an_exact_end_or_none_and_never_a_failed_report(database, texts):
    rows, _ = read_back(database, [{"status": "resolved", "resolved_at": text} for text in texts])
    for text, row in zip(texts, rows):
        expected = python_reading(text) if len(text) >= 20 else None
        assert row["status"] == "resolved"
        assert row["ended_at"] == expected, text
