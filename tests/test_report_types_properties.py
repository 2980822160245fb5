"""Every metric of the data source equals a brute-force Python computation over
the same rows, for random small datasets, periods and timezones (DST included).

The brute force shares no code with the source: it converts each timestamp
with zoneinfo and counts, sorts and averages in plain Python.
"""
import datetime as dt
import math
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

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
INTENTS = ("billing", "greeting", None)
ORG = "org-x"


def ms(instant):
    return int(instant.timestamp() * 1000)


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
        started = draw(when)
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
                             int(draw(st.booleans())) if out else 0))
            if out and draw(st.booleans()):
                calls.append((f"l{c}-{i}", org, bot, f"c{c}", draw(st.sampled_from(MODELS)), t,
                              draw(st.integers(0, 100)), draw(st.integers(0, 100)), draw(st.integers(1, 300)),
                              int(draw(st.booleans())), draw(st.integers(0, 1000)) / 1000))
        ended = None if status == "open" else t + draw(st.integers(0, 600_000))
        satisfaction = draw(st.sampled_from((None, 1, 2, 3, 4, 5))) if status != "open" else None
        conversations.append((f"c{c}", org, bot, user, channel, started, ended, status, satisfaction, n))
    zone = draw(st.sampled_from(ZONES))
    first = base + dt.timedelta(days=draw(st.integers(0, 3)))
    days = draw(st.integers(1, 8))
    bots = draw(st.sampled_from(((), (), ("bot-a",), ("bot-a", "bot-c"))))
    channel = draw(st.sampled_from((None, None, "web")))
    org = draw(st.sampled_from((ORG, None)))
    return conversations, messages, calls, zone, first, days, bots, channel, org


def build(data):
    conversations, messages, calls = data[:3]
    folder = Path(tempfile.mkdtemp(prefix="br-prop-"))
    conn = create_database(folder / "a.db")
    conn.execute("BEGIN")
    insert_rows(conn, "bots", [(b, ORG, b.upper(), 0) for b in BOTS])
    insert_rows(conn, "conversations", conversations)
    insert_rows(conn, "messages", messages)
    insert_rows(conn, "llm_calls", calls)
    conn.execute("COMMIT")
    create_indexes(conn)
    conn.close()
    return SqliteAnalytics(folder / "a.db")


def scope_of(data):
    zone, first, days, bots, channel, org = data[3:]
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(first, dt.time(0), tz).astimezone(UTC)
    end = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(0), tz).astimezone(UTC)
    return Scope(org_id=org, period=Period(start, end, zone), bot_ids=bots, channel=channel)


# -- the brute force -----------------------------------------------------------


class Rows:
    """The dataset as dicts, filtered to a scope the slow, obvious way."""

    def __init__(self, data, scope):
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


def count_by(rows, key):
    return Counter(key(r) for r in rows)


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
@given(datasets())
def test_conversation_metrics_equal_brute_force(data):
    source, scope = build(data), scope_of(data)
    rows = Rows(data, scope)
    convs = rows.conversations
    summary = source.conversation_summary(scope)
    assert summary["conversations"] == len(convs)
    for status in STATUSES:
        assert summary[status] == sum(c["status"] == status for c in convs)
    assert summary["messages_p50"] == nearest_rank([c["message_count"] for c in convs], 50)
    assert summary["messages_p90"] == nearest_rank([c["message_count"] for c in convs], 90)
    durations = [c["ended_at"] - c["started_at"] for c in convs if c["ended_at"] is not None]
    assert summary["duration_p50_ms"] == nearest_rank(durations, 50)
    assert summary["duration_p90_ms"] == nearest_rank(durations, 90)

    outcomes = {o["day"]: o for o in source.conversation_outcomes(scope)}
    for day, n in count_by(convs, lambda c: (rows.day(c["started_at"]), c["status"])).items():
        assert outcomes[day[0]][day[1]] == n

    sat = source.satisfaction(scope)
    rated = [c["satisfaction"] for c in convs if c["satisfaction"] is not None]
    assert sat["rated"] == len(rated)
    assert sat["closed"] == sum(c["status"] != "open" for c in convs)
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
            assert got[key]["handed_off"] == sum(c["status"] == "handed_off" for c in convs if c[column] == key)
        # Most hand-offs first, ties by key.
        assert [h["key"] for h in answer] == sorted(got, key=lambda k: (-got[k]["handed_off"], k))

    intents = source.top_intents(scope, 10)
    labelled = [m for m in rows.messages if m["direction"] == "in" and m["intent"]]
    assert intents["total"] == len(labelled)
    assert {i["intent"]: i["messages"] for i in intents["intents"]} == dict(Counter(m["intent"] for m in labelled))

    raw = list(source.conversation_rows(scope))
    assert [r["id"] for r in raw] == [c["id"] for c in sorted(convs, key=lambda c: (c["started_at"], c["id"]))]
    for r in raw:
        mine = [m for m in rows.all_messages if m["conversation_id"] == r["id"]]
        assert r["messages_in"] == sum(m["direction"] == "in" for m in mine)
        assert r["errors"] == sum(m["is_error"] for m in mine)
        latencies = [m["latency_ms"] for m in mine if m["latency_ms"] is not None]
        assert r["avg_latency_ms"] == (pytest.approx(sum(latencies) / len(latencies), abs=1e-3) if latencies else None)


# -- performance ---------------------------------------------------------------


@COMMON
@given(datasets())
def test_performance_metrics_equal_brute_force(data):
    source, scope = build(data), scope_of(data)
    rows = Rows(data, scope)
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

    models = {r["model"]: r for r in source.llm_performance(scope)}
    assert set(models) == {c["model"] for c in rows.calls}
    for model, r in models.items():
        latencies = [c["latency_ms"] for c in rows.calls if c["model"] == model]
        assert r["calls"] == len(latencies)
        assert [r[f"p{p}_ms"] for p in (50, 90, 95, 99)] == [nearest_rank(latencies, p) for p in (50, 90, 95, 99)]

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
    assert sum(r["replies"] for r in raw) == len(replies)
    assert sum(r["llm_calls"] for r in raw) == len(rows.calls)


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
