"""Every metric of the data source equals a brute-force Python computation over
the same rows, for random small datasets, periods and timezones (DST included).

The brute force shares no code with the source: it converts each timestamp
with zoneinfo and counts, sorts and averages in plain Python.
"""
import atexit
import datetime as dt
import math
import shutil
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from botreports.core.custom_metrics import parse_metric
from botreports.core.models import Period, Scope
from botreports.plugins.sources.sqlite import SqliteAnalytics, create_database, create_indexes, insert_rows

UTC = dt.timezone.utc
ZONES = ("America/New_York", "Asia/Kathmandu", "Europe/Berlin", "UTC", "Australia/Lord_Howe")
#: Windows holding a DST change in New York, Berlin and Lord Howe (spring and autumn).
WINDOWS = (dt.date(2025, 3, 6), dt.date(2025, 3, 27), dt.date(2025, 10, 23), dt.date(2025, 4, 2))
BOTS = ("bot-a", "bot-b", "bot-c")
CHANNELS = ("web", "whatsapp")
STATUSES = ("resolved", "abandoned", "handed_off", "open")
MODELS = ("m-large", "m-small")
INTENTS = ("billing", "greeting", "refund", None)
ORG = "org-x"
HOSTS = ("host-1", "host-2", "host-3")
ACTORS = ("alice", "bob", "carol", "svc")
#: An action may hold any text, a comma too (the denials list each actor's actions apart).
ACTIONS = ("report.generate", "report.download", "report.delete", "login", "settings.update", "export,csv")
RESULTS = ("allowed", "denied", "error")
DAY_MS = 86_400_000
EPOCH_UTC = dt.datetime(1970, 1, 1, tzinfo=UTC)


def ms(instant):
    return int(instant.timestamp() * 1000)


def utc(value):
    """Epoch ms -> the aware UTC datetime, by exact integer arithmetic."""
    return EPOCH_UTC + dt.timedelta(milliseconds=value)


def is_utc(instant):
    return instant.tzinfo is not None and instant.utcoffset() == dt.timedelta(0)


@st.composite
def datasets(draw):
    """A small random analytics dataset spread over 12 days around a DST change."""
    base = draw(st.sampled_from(WINDOWS))
    lo = ms(dt.datetime.combine(base, dt.time(0), UTC))
    hi = lo + 12 * 86_400_000
    when = st.integers(lo, lo + 5 * 86_400_000)
    conversations, messages, calls = [], [], []
    for c in range(draw(st.integers(3, 30))):
        bot, channel = draw(st.sampled_from(BOTS)), draw(st.sampled_from(CHANNELS))
        user = f"u{draw(st.integers(0, 6))}"
        org = draw(st.sampled_from((ORG, ORG, "org-other")))
        # Now and then the same start as the previous conversation: ties for the orders by start.
        started = conversations[-1][5] if conversations and not draw(st.integers(0, 5)) else draw(when)
        status = draw(st.sampled_from(STATUSES))
        n = draw(st.integers(0, 8))
        t = started
        for i in range(n):
            t += draw(st.integers(0, 3 * 3_600_000))
            out = i % 2 == 1
            messages.append((f"m{c}-{i}", org, f"c{c}", bot, channel, user, "out" if out else "in", t,
                             draw(st.integers(1, 400)) if out else None,
                             draw(st.integers(0, 50)) if out else None,
                             None if out else draw(st.sampled_from(INTENTS)),
                             # Incoming messages carry error flags too: they are no errored replies.
                             int(draw(st.booleans()))))
            if out and draw(st.booleans()):
                calls.append((f"l{c}-{i}", org, bot, f"c{c}", draw(st.sampled_from(MODELS)), t,
                              draw(st.integers(0, 100)), draw(st.integers(0, 100)), draw(st.integers(1, 300)),
                              int(draw(st.booleans())), draw(st.integers(0, 1000)) / 1000))
        ended = None if status == "open" else t + draw(st.integers(0, 600_000))
        # Open conversations are rated now and then too (a score given before the end).
        satisfaction = draw(st.sampled_from((None, 1, 2, 3, 4, 5) if status != "open" else (None, None, 2, 5)))
        conversations.append((f"c{c}", org, bot, user, channel, started, ended, status, satisfaction, n))
    zone = draw(st.sampled_from(ZONES))
    first = base + dt.timedelta(days=draw(st.integers(0, 3)))
    days = draw(st.integers(1, 8))
    bots = draw(st.sampled_from(((), (), ("bot-a",), ("bot-a", "bot-c"))))
    channel = draw(st.sampled_from((None, None, "web")))
    org = draw(st.sampled_from((ORG, None)))
    return conversations, messages, calls, zone, first, days, bots, channel, org


def around_period(data):
    """A strategy of instants from two days before the scope's period to two days after it,
    its edges (and an instant just inside or outside each) more often than by chance."""
    scope = scope_of(data)
    start, end = ms(scope.period.start), ms(scope.period.end)
    return st.one_of(st.integers(start - 2 * DAY_MS, end + 2 * DAY_MS),
                     st.sampled_from((start - 1, start, end - 1, end)))


@st.composite
def with_system_samples(draw):
    """A dataset and random ``system_samples`` rows around its period (some values missing)."""
    data = draw(datasets())
    when = around_period(data)
    pct = st.one_of(st.none(), st.integers(0, 1000).map(lambda v: v / 10))
    samples = []
    for _ in range(draw(st.integers(0, 25))):
        samples.append((draw(st.sampled_from((ORG, ORG, "org-other"))), draw(st.sampled_from(HOSTS)), draw(when),
                        draw(pct), draw(pct), draw(st.one_of(st.none(), st.integers(0, 500))),
                        draw(st.one_of(st.none(), st.integers(0, 20))),
                        draw(st.one_of(st.none(), st.integers(0, 50_000).map(lambda v: v / 10)))))
    return data, samples


@st.composite
def with_audit_events(draw):
    """A dataset, random ``audit_events`` rows around its period (bot sometimes None, equal
    instants now and then) and a retention cutoff (sometimes exactly a conversation's start)."""
    data = draw(datasets())
    when = around_period(data)
    events = []
    for e in range(draw(st.integers(0, 30))):
        at = draw(when) if not events or draw(st.integers(0, 4)) else events[-1][3]
        events.append((f"a{e}", draw(st.sampled_from((ORG, ORG, "org-other"))),
                       draw(st.sampled_from(BOTS + (None,))), at, draw(st.sampled_from(ACTORS)),
                       draw(st.sampled_from(ACTIONS)), draw(st.sampled_from((None, "report", "bot"))),
                       draw(st.sampled_from((None, "r1", "r2"))), draw(st.sampled_from(RESULTS)),
                       draw(st.sampled_from((None, "10.0.0.1", "10.0.0.2")))))
    starts = [c[5] for c in data[0]]
    cutoff = draw(st.one_of(st.sampled_from(starts), st.integers(min(starts) - 1, max(starts) + 1)))
    return data, events, cutoff


#: The last example's source and folder: closed and removed when the next example is built (a
#: shrinking run builds thousands), or at exit.
_BUILT = []


def _drop_built():
    while _BUILT:
        source, folder = _BUILT.pop()
        source.close()
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_drop_built)


def tied_dataset():
    """Three conversations with the same start, length and duration (ids c1, c10, c2: not in
    number order) and an older open one: the orders by start settle ties by id."""
    t = ms(dt.datetime(2025, 3, 6, 10, 0, tzinfo=UTC))
    conversations = [(c, ORG, bot, user, channel, t, t + 60_000, status, score, 2)
                     for c, bot, user, channel, status, score in (
                         ("c1", "bot-a", "u1", "web", "resolved", 5), ("c10", "bot-b", "u2", "web", "resolved", None),
                         ("c2", "bot-a", "u3", "whatsapp", "abandoned", 3))]
    conversations.append(("c3", ORG, "bot-c", "u1", "web", t - 3_600_000, None, "open", None, 0))
    messages = [m for c in conversations[:3] for m in (
        (f"m{c[0]}-0", ORG, c[0], c[2], c[4], c[3], "in", t + 1000, None, None, "billing", 0),
        (f"m{c[0]}-1", ORG, c[0], c[2], c[4], c[3], "out", t + 2000, 100, 10, None, 0))]
    return conversations, messages, [], "Europe/Berlin", dt.date(2025, 3, 6), 3, (), None, None


def build(data, system_samples=(), audit_events=()):
    _drop_built()
    conversations, messages, calls = data[:3]
    folder = Path(tempfile.mkdtemp(prefix="br-prop-"))
    conn = create_database(folder / "a.db")
    conn.execute("BEGIN")
    insert_rows(conn, "bots", [(b, ORG, b.upper(), 0) for b in BOTS])
    insert_rows(conn, "conversations", conversations)
    insert_rows(conn, "messages", messages)
    insert_rows(conn, "llm_calls", calls)
    insert_rows(conn, "system_samples", system_samples)
    insert_rows(conn, "audit_events", audit_events)
    conn.execute("COMMIT")
    create_indexes(conn)
    conn.close()
    source = SqliteAnalytics(folder / "a.db")
    _BUILT.append((source, folder))
    return source


def scope_of(data):
    zone, first, days, bots, channel, org = data[3:]
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(first, dt.time(0), tz).astimezone(UTC)
    end = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(0), tz).astimezone(UTC)
    return Scope(org_id=org, period=Period(start, end, zone), bot_ids=bots, channel=channel)


# -- the brute force -----------------------------------------------------------


class Rows:
    """The dataset as dicts, filtered to a scope the slow, obvious way."""

    def __init__(self, data, scope, system_samples=(), audit_events=()):
        self.scope = scope
        self.tz = ZoneInfo(scope.period.timezone)
        self.lo, self.hi = ms(scope.period.start), ms(scope.period.end)
        keys_c = ("id", "org_id", "bot_id", "user_id", "channel", "started_at", "ended_at", "status",
                  "satisfaction", "message_count")
        keys_m = ("id", "org_id", "conversation_id", "bot_id", "channel", "user_id", "direction", "created_at",
                  "latency_ms", "tokens", "intent", "is_error")
        keys_l = ("id", "org_id", "bot_id", "conversation_id", "model", "created_at", "input_tokens",
                  "output_tokens", "latency_ms", "success", "cost_usd")
        self.all_conversations = [dict(zip(keys_c, r)) for r in data[0]]
        self.all_messages = [dict(zip(keys_m, r)) for r in data[1]]
        channel_of = {c["id"]: c["channel"] for c in self.all_conversations}
        self.all_calls = [dict(zip(keys_l, r), channel=channel_of.get(r[3])) for r in data[2]]
        self.conversations = [c for c in self.all_conversations if self.keep(c, "started_at")]
        self.messages = [m for m in self.all_messages if self.keep(m, "created_at")]
        self.calls = [c for c in self.all_calls if self.keep(c, "created_at")]
        keys_s = ("org_id", "host", "created_at", "cpu_pct", "mem_pct", "requests", "errors", "p95_ms")
        keys_a = ("id", "org_id", "bot_id", "created_at", "actor", "action", "resource_type", "resource_id",
                  "result", "ip")
        s = scope
        # Samples have neither a bot nor a channel: only the organisation and the period apply.
        self.samples = [r for r in (dict(zip(keys_s, v)) for v in system_samples)
                        if (s.org_id is None or r["org_id"] == s.org_id) and self.lo <= r["created_at"] < self.hi]
        # Audit events have a bot (an event of no bot is none of the scope's bots) but no channel.
        self.audits = [r for r in (dict(zip(keys_a, v)) for v in audit_events)
                       if (s.org_id is None or r["org_id"] == s.org_id) and self.lo <= r["created_at"] < self.hi
                       and (not s.bot_ids or r["bot_id"] in s.bot_ids)]

    def keep(self, row, time_column, period=True):
        s = self.scope
        return ((s.org_id is None or row["org_id"] == s.org_id)
                and (not period or self.lo <= row[time_column] < self.hi)
                and (not s.bot_ids or row["bot_id"] in s.bot_ids)
                and (s.channel is None or row["channel"] == s.channel))

    def local(self, value):
        return dt.datetime.fromtimestamp(value / 1000, self.tz)

    def day(self, value):
        return self.local(value).date()


def nearest_rank(values, p):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def median(values):
    """The middle value, or the mean of the two middle values of an even count."""
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def count_by(rows, key):
    return Counter(key(r) for r in rows)


def mean(values):
    """The average of the values that are not None (None if there are none), approximately."""
    present = [v for v in values if v is not None]
    return pytest.approx(sum(present) / len(present), abs=1e-3) if present else None


def highest(values):
    present = [v for v in values if v is not None]
    return max(present) if present else None


def assert_time_ordered(got, candidates, limit=None, newest_first=False):
    """``got`` is the first ``limit`` of ``candidates`` (event dicts) in time order. Events of the
    same instant may come in any order, and where the limit cuts such a run any of them may be
    the ones kept: the contract orders by time only."""
    ordered = sorted(candidates, key=lambda e: e["created_at"], reverse=newest_first)[:limit]
    assert [e["created_at"] for e in got] == [e["created_at"] for e in ordered]
    as_key = lambda e: tuple(sorted(e.items()))  # noqa: E731
    for instant in {e["created_at"] for e in got}:
        mine = Counter(as_key(e) for e in got if e["created_at"] == instant)
        possible = Counter(as_key(e) for e in candidates if e["created_at"] == instant)
        assert not mine - possible, instant


COMMON = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- usage ---------------------------------------------------------------------


@COMMON
@given(datasets())
def test_usage_metrics_equal_brute_force(data):
    source, scope = build(data), scope_of(data)
    rows = Rows(data, scope)
    incoming = [m for m in rows.messages if m["direction"] == "in"]
    totals = source.usage_totals(scope)
    assert totals["conversations"] == len(rows.conversations)
    assert totals["messages_in"] == len(incoming)
    assert totals["messages_out"] == len(rows.messages) - len(incoming)
    assert totals["active_users"] == len({m["user_id"] for m in incoming})
    first_seen = {}
    for m in rows.all_messages:  # new users: first incoming message ever (any time) falls in the period
        if m["direction"] == "in" and rows.keep(m, "created_at", period=False):
            first_seen[m["user_id"]] = min(first_seen.get(m["user_id"], m["created_at"]), m["created_at"])
    new = [t for t in first_seen.values() if rows.lo <= t < rows.hi]
    assert totals["new_users"] == len(new)
    assert totals["tokens"] == sum(c["input_tokens"] + c["output_tokens"] for c in rows.calls)
    assert totals["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in rows.calls), abs=1e-6)

    daily = {row["day"]: row for row in source.daily_usage(scope)}
    conv_days = count_by(rows.conversations, lambda c: rows.day(c["started_at"]))
    in_days = count_by(incoming, lambda m: rows.day(m["created_at"]))
    new_days = Counter(rows.day(t) for t in new)
    users_days = defaultdict(set)
    for m in incoming:
        users_days[rows.day(m["created_at"])].add(m["user_id"])
    for day in set(conv_days) | set(in_days) | set(daily):
        row = daily.get(day, {})
        assert row.get("conversations", 0) == conv_days[day]
        assert row.get("messages_in", 0) == in_days[day]
        assert row.get("active_users", 0) == len(users_days[day])
        assert row.get("new_users", 0) == new_days[day]

    grid = {(g["weekday"], g["hour"]): g for g in source.activity_grid(scope)}
    expected = count_by(incoming, lambda m: (rows.local(m["created_at"]).weekday(), rows.local(m["created_at"]).hour))
    assert {k: v["messages_in"] for k, v in grid.items() if v["messages_in"]} == dict(expected)
    expected = count_by(rows.conversations,
                        lambda c: (rows.local(c["started_at"]).weekday(), rows.local(c["started_at"]).hour))
    assert {k: v["conversations"] for k, v in grid.items() if v["conversations"]} == dict(expected)

    for dimension, column in (("bot", "bot_id"), ("channel", "channel")):
        got = {r["key"]: r for r in source.usage_breakdown(scope, dimension)}
        for key in {m[column] for m in rows.messages} | {c[column] for c in rows.conversations}:
            assert got[key]["messages_in"] == sum(1 for m in incoming if m[column] == key)
            assert got[key]["active_users"] == len({m["user_id"] for m in incoming if m[column] == key})
            assert got[key]["conversations"] == sum(1 for c in rows.conversations if c[column] == key)
        assert sum(r["tokens"] for r in got.values()) == totals["tokens"]

    raw = list(source.usage_rows(scope))
    assert [(r["day"], r["bot_id"]) for r in raw] == sorted((r["day"], r["bot_id"]) for r in raw)
    for r in raw:
        mine = [m for m in rows.messages if m["bot_id"] == r["bot_id"] and rows.day(m["created_at"]) == r["day"]]
        assert r["messages_in"] == sum(m["direction"] == "in" for m in mine)
        assert r["errors"] == sum(m["is_error"] for m in mine if m["direction"] == "out")
    assert sum(r["messages_out"] for r in raw) == totals["messages_out"]

    top = source.top_users(scope, 3)
    ranked = sorted(Counter(m["user_id"] for m in incoming).items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(u["user_id"], u["messages_in"]) for u in top] == ranked


# -- conversations -------------------------------------------------------------


@COMMON
@given(datasets(), st.integers(1, 5))
@example(tied_dataset(), 2)
def test_conversation_metrics_equal_brute_force(data, k):
    source, scope = build(data), scope_of(data)
    rows = Rows(data, scope)
    convs = rows.conversations
    summary = source.conversation_summary(scope)
    assert summary["conversations"] == len(convs)
    for status in STATUSES:
        assert summary[status] == sum(c["status"] == status for c in convs)
    assert summary["messages_median"] == median([c["message_count"] for c in convs])
    assert summary["messages_p90"] == nearest_rank([c["message_count"] for c in convs], 90)
    assert summary["avg_messages"] == mean(c["message_count"] for c in convs)
    durations = [c["ended_at"] - c["started_at"] for c in convs if c["ended_at"] is not None]
    assert summary["ended"] == len(durations)
    assert summary["duration_median_ms"] == median(durations)
    assert summary["duration_p90_ms"] == nearest_rank(durations, 90)

    # Most messages (none counted as 0) or longest (open ones last) first; ties by start, then id.
    ranking = {"messages": lambda c: c["message_count"] or 0,
               "duration": lambda c: -1 if c["ended_at"] is None else c["ended_at"] - c["started_at"]}
    for order_by, value in ranking.items():
        got = source.top_conversations(scope, order_by, k)
        ranked = sorted(convs, key=lambda c: (-value(c), c["started_at"], c["id"]))[:k]
        assert [(r["id"], r["bot_id"], r["channel"], r["user_id"], r["started_at"], r["duration_ms"],
                 r["message_count"], r["status"], r["satisfaction"]) for r in got] == [
            (c["id"], c["bot_id"], c["channel"], c["user_id"], utc(c["started_at"]),
             None if c["ended_at"] is None else c["ended_at"] - c["started_at"], c["message_count"], c["status"],
             c["satisfaction"]) for c in ranked], order_by
        assert all(is_utc(r["started_at"]) for r in got)

    outcomes = {o["day"]: o for o in source.conversation_outcomes(scope)}
    for day, n in count_by(convs, lambda c: (rows.day(c["started_at"]), c["status"])).items():
        assert outcomes[day[0]][day[1]] == n

    sat = source.satisfaction(scope)
    rated = [c["satisfaction"] for c in convs if c["satisfaction"] is not None]
    assert sat["rated"] == len(rated)
    assert sat["closed"] == sum(c["status"] != "open" for c in convs)
    assert sat["rated_closed"] == sum(c["status"] != "open" and c["satisfaction"] is not None for c in convs)
    assert sat["distribution"] == {s: rated.count(s) for s in range(1, 6)}
    assert sat["average"] == (pytest.approx(sum(rated) / len(rated), abs=1e-4) if rated else None)

    daily = {d["day"]: d for d in source.daily_satisfaction(scope)}
    assert set(daily) == {rows.day(c["started_at"]) for c in convs}
    for day, d in daily.items():
        scores = [c["satisfaction"] for c in convs
                  if rows.day(c["started_at"]) == day and c["satisfaction"] is not None]
        assert d["rated"] == len(scores)
        assert d["average"] == (pytest.approx(sum(scores) / len(scores), abs=1e-4) if scores else None)

    for dimension, column in (("bot", "bot_id"), ("channel", "channel")):
        answer = source.handoffs(scope, dimension)
        got = {h["key"]: h for h in answer}
        assert set(got) == {c[column] for c in convs}
        for key, n in count_by(convs, lambda c: c[column]).items():
            assert got[key]["conversations"] == n
            assert got[key]["closed"] == sum(c["status"] != "open" for c in convs if c[column] == key)
            assert got[key]["handed_off"] == sum(c["status"] == "handed_off" for c in convs if c[column] == key)
        # Most hand-offs first, ties by key.
        assert [h["key"] for h in answer] == sorted(got, key=lambda k: (-got[k]["handed_off"], k))

    intents = source.top_intents(scope, 10)
    labelled = [m for m in rows.messages if m["direction"] == "in" and m["intent"]]
    assert intents["total"] == len(labelled)
    assert {i["intent"]: i["messages"] for i in intents["intents"]} == dict(Counter(m["intent"] for m in labelled))
    top = source.top_intents(scope, k)
    assert top["total"] == len(labelled)
    by_intent = defaultdict(list)
    for m in labelled:
        by_intent[m["intent"]].append(m)
    ranked = sorted(by_intent, key=lambda i: (-len(by_intent[i]), i))[:k]  # most messages first, ties by intent
    assert [(i["intent"], i["messages"], i["conversations"], i["users"]) for i in top["intents"]] == [
        (i, len(by_intent[i]), len({m["conversation_id"] for m in by_intent[i]}),
         len({m["user_id"] for m in by_intent[i]})) for i in ranked]

    raw = list(source.conversation_rows(scope))
    assert [r["id"] for r in raw] == [c["id"] for c in sorted(convs, key=lambda c: (c["started_at"], c["id"]))]
    for r in raw:
        mine = [m for m in rows.all_messages if m["conversation_id"] == r["id"]]
        assert r["messages_in"] == sum(m["direction"] == "in" for m in mine)
        assert r["errors"] == sum(m["is_error"] for m in mine if m["direction"] == "out")
        latencies = [m["latency_ms"] for m in mine if m["latency_ms"] is not None and m["direction"] == "out"]
        assert r["avg_latency_ms"] == (pytest.approx(sum(latencies) / len(latencies), abs=1e-3) if latencies else None)


# -- performance ---------------------------------------------------------------


@COMMON
@given(with_system_samples())
def test_performance_metrics_equal_brute_force(case):
    data, samples = case
    source, scope = build(data, system_samples=samples), scope_of(data)
    rows = Rows(data, scope, system_samples=samples)
    replies = [m for m in rows.messages if m["direction"] == "out"]
    groups = {None: lambda m: None, "day": lambda m: rows.day(m["created_at"]), "bot": lambda m: m["bot_id"],
              "channel": lambda m: m["channel"]}
    for group, key in groups.items():
        got = {r["key"]: r for r in source.reply_latency(scope, group)}
        expected = defaultdict(list)
        for m in replies:
            expected[key(m)].append(m["latency_ms"])
        assert set(got) == set(expected)
        for k, values in expected.items():
            assert got[k]["replies"] == len(values)
            for p in (50, 90, 95, 99):
                assert got[k][f"p{p}_ms"] == nearest_rank(values, p), (group, k, p)
            assert got[k]["max_ms"] == max(values)
            assert got[k]["avg_ms"] == pytest.approx(sum(values) / len(values), abs=1e-3)
        errors = {r["key"]: r for r in source.error_counts(scope, group)}
        for k, values in expected.items():
            assert errors[k]["errors"] == sum(m["is_error"] for m in replies if key(m) == k)
        call_key = {None: lambda c: None, "day": lambda c: rows.day(c["created_at"]), "bot": lambda c: c["bot_id"],
                    "channel": lambda c: c["channel"]}[group]
        for k, n in count_by(rows.calls, call_key).items():
            assert errors[k]["llm_calls"] == n
            assert errors[k]["llm_failures"] == sum(c["success"] == 0 for c in rows.calls if call_key(c) == k)

    answer = source.llm_performance(scope)
    models = {r["model"]: r for r in answer}
    assert set(models) == {c["model"] for c in rows.calls}
    for model, r in models.items():
        mine = [c for c in rows.calls if c["model"] == model]
        latencies = [c["latency_ms"] for c in mine]
        assert r["calls"] == len(latencies)
        assert [r[f"p{p}_ms"] for p in (50, 90, 95, 99)] == [nearest_rank(latencies, p) for p in (50, 90, 95, 99)]
        assert r["failures"] == sum(c["success"] == 0 for c in mine)
        assert r["input_tokens"] == sum(c["input_tokens"] for c in mine)
        assert r["output_tokens"] == sum(c["output_tokens"] for c in mine)
        assert r["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in mine), abs=1e-6)
        assert r["avg_ms"] == mean(latencies)
    # Most calls first, ties by model.
    assert [r["model"] for r in answer] == sorted(models, key=lambda m: (-models[m]["calls"], m))

    hosts = source.system_health(scope)
    assert [h["host"] for h in hosts] == sorted({s["host"] for s in rows.samples})
    for h in hosts:
        mine = [s for s in rows.samples if s["host"] == h["host"]]
        assert h["samples"] == len(mine)
        for name, column in (("cpu", "cpu_pct"), ("mem", "mem_pct"), ("p95", "p95_ms")):
            unit = "_ms" if name == "p95" else ""
            assert h[f"{name}_avg{unit}"] == mean(s[column] for s in mine), (name, h)
            assert h[f"{name}_max{unit}"] == highest(s[column] for s in mine), (name, h)
        assert h["requests"] == sum(s["requests"] or 0 for s in mine)
        assert h["errors"] == sum(s["errors"] or 0 for s in mine)

    daily = source.daily_system_health(scope)
    assert [d["day"] for d in daily] == sorted({rows.day(s["created_at"]) for s in rows.samples})
    for d in daily:
        mine = [s for s in rows.samples if rows.day(s["created_at"]) == d["day"]]
        assert d["cpu_avg"] == mean(s["cpu_pct"] for s in mine)
        assert d["mem_avg"] == mean(s["mem_pct"] for s in mine)
        assert d["requests"] == sum(s["requests"] or 0 for s in mine)
        assert d["errors"] == sum(s["errors"] or 0 for s in mine)

    result = source.throughput(scope)
    assert result["messages"] == len(rows.messages)
    if rows.messages:
        per_minute = Counter(m["created_at"] // 60000 for m in rows.messages)
        assert result["peak_minute_messages"] == max(per_minute.values())
        per_hour = Counter(rows.local(m["created_at"]).replace(minute=0, second=0, microsecond=0).astimezone(UTC)
                           for m in rows.messages)
        assert result["peak_hour_messages"] == max(per_hour.values())
        assert result["active_hours"] == len(per_hour)
        best = min(per_hour.items(), key=lambda kv: (-kv[1], kv[0]))
        assert result["peak_hour_at"] == best[0]

    raw = list(source.performance_rows(scope))
    for r in raw:
        mine = [m for m in rows.messages if m["bot_id"] == r["bot_id"] and rows.local(m["created_at"]).replace(
            minute=0, second=0, microsecond=0).astimezone(UTC) == r["hour_start"]]
        assert r["replies"] == sum(m["direction"] == "out" for m in mine)
        assert r["errors"] == sum(m["is_error"] for m in mine if m["direction"] == "out")
    assert sum(r["replies"] for r in raw) == len(replies)
    assert sum(r["errors"] for r in raw) == sum(m["is_error"] for m in replies)
    assert sum(r["llm_calls"] for r in raw) == len(rows.calls)


# -- compliance ----------------------------------------------------------------


@COMMON
@given(with_audit_events(), st.integers(1, 4),
       st.one_of(st.none(), st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True)),
       st.one_of(st.none(), st.lists(st.sampled_from(RESULTS), min_size=1, max_size=2, unique=True)),
       st.integers(1, 40))
def test_compliance_metrics_equal_brute_force(case, k, actions, results, limit):
    data, events, cutoff = case
    source, scope = build(data, audit_events=events), scope_of(data)
    rows = Rows(data, scope, audit_events=events)
    audits = rows.audits

    # Events per (action, result): most first, ties by action then result.
    counted = count_by(audits, lambda a: (a["action"], a["result"]))
    assert [(r["action"], r["result"], r["events"]) for r in source.audit_summary(scope)] == [
        (action, result, n) for (action, result), n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))]

    # Per actor with denials: most first, ties by actor; the denied actions sorted; the last denial.
    denied = defaultdict(list)
    for a in audits:
        if a["result"] == "denied":
            denied[a["actor"]].append(a)
    ranked = sorted(denied, key=lambda actor: (-len(denied[actor]), actor))[:k]
    got = source.audit_denials(scope, k)
    assert [(r["actor"], r["denials"], r["actions"], r["last_at"]) for r in got] == [
        (actor, len(denied[actor]), sorted({a["action"] for a in denied[actor]}),
         utc(max(a["created_at"] for a in denied[actor]))) for actor in ranked]
    assert all(is_utc(r["last_at"]) for r in got)

    def shown(a):
        return {"created_at": utc(a["created_at"]), "actor": a["actor"], "action": a["action"],
                "resource_type": a["resource_type"], "resource_id": a["resource_id"], "result": a["result"],
                "bot_id": a["bot_id"], "ip": a["ip"]}

    picked = [shown(a) for a in audits
              if (actions is None or a["action"] in actions) and (results is None or a["result"] in results)]
    got = source.audit_events(scope, actions=actions, results=results, limit=limit)
    assert_time_ordered(got, picked, limit, newest_first=True)
    assert all(is_utc(e["created_at"]) for e in got)
    assert_time_ordered(source.audit_events(scope), [shown(a) for a in audits], 100, newest_first=True)

    raw = list(source.audit_rows(scope))
    assert_time_ordered(raw, [shown(a) for a in audits])
    assert all(is_utc(e["created_at"]) for e in raw)

    # Conversations started before the cutoff, whatever the period (the other filters apply).
    old = defaultdict(list)
    for c in rows.all_conversations:
        if rows.keep(c, "started_at", period=False) and c["started_at"] < cutoff:
            old[c["bot_id"]].append(c["started_at"])
    got = source.retention_overview(scope, utc(cutoff))
    assert {r["bot_id"]: (r["conversations"], r["oldest_at"]) for r in got} == {
        bot: (len(starts), utc(min(starts))) for bot, starts in old.items()}
    assert len(got) == len(old)
    assert all(is_utc(r["oldest_at"]) for r in got)


# -- custom metrics --------------------------------------------------------------


@COMMON
@given(datasets(), st.sampled_from(("count", "distinct", "sum", "avg", "max", "p90")),
       st.sampled_from((None, "day", "week", "hour", "bot", "weekday", "hour_of_day")),
       st.sampled_from(({}, {"direction": "out"}, {"latency_ms": {"gte": 100}}, {"intent": ["billing", "greeting"]})))
def test_custom_metric_equals_brute_force(data, measure, group_by, filters):
    source, scope = build(data), scope_of(data)
    rows = Rows(data, scope)
    field = {"count": None, "distinct": "user_id"}.get(measure, "latency_ms")
    metric, problems = parse_metric({"table": "messages", "measure": measure, "field": field,
                                     "group_by": group_by, "filters": filters, "limit": 1000})
    assert problems == []
    selected = rows.messages
    for column, condition in filters.items():
        if isinstance(condition, list):
            selected = [m for m in selected if m[column] in condition]
        elif isinstance(condition, dict):
            selected = [m for m in selected if m[column] is not None and m[column] >= condition["gte"]]
        else:
            selected = [m for m in selected if m[column] == condition]

    def key(m):
        local = rows.local(m["created_at"])
        return {None: None, "day": local.date(), "week": local.date() - dt.timedelta(days=local.weekday()),
                "hour": local.replace(minute=0, second=0, microsecond=0).astimezone(UTC), "bot": m["bot_id"],
                "weekday": local.weekday(), "hour_of_day": local.hour}[group_by]

    def measured(ms_):
        if measure == "count":
            return len(ms_)
        values = [m[field] for m in ms_ if field is None or m[field] is not None]
        if measure == "count":
            return len(ms_)
        if measure == "distinct":
            return len(set(values))
        if not values:
            return None
        return {"sum": sum, "max": max, "avg": lambda v: sum(v) / len(v),
                "p90": lambda v: nearest_rank(v, 90)}[measure](values)

    got = {row["group"]: row["value"] for row in source.custom_metric(scope, metric)}
    if group_by is None:
        assert got[None] == pytest.approx(measured(selected)) if measured(selected) is not None else got[None] is None
        return
    expected = defaultdict(list)
    for m in selected:
        expected[key(m)].append(m)
    expected = {k: measured(v) for k, v in expected.items()}
    expected = {k: v for k, v in expected.items() if v is not None}
    got = {k: v for k, v in got.items() if v is not None}
    assert set(got) == set(expected)
    for k in expected:
        assert got[k] == pytest.approx(expected[k], abs=1e-6)
