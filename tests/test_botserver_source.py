"""The botserver source against a real PostgreSQL: every query equals the SQLite
source over the same data, independent computations agree, and the source
never writes and never runs longer than its statement timeout."""
import datetime as dt
import inspect
import math
import sqlite3
from collections import Counter, defaultdict
from zoneinfo import ZoneInfo

import pytest

from botreports.core.datasource import AnalyticsSource
from botreports.core.errors import ReportFailed
from botreports.core.models import Period, Scope
from botreports.plugins.sources.botserver_pg import UNRECORDED, BotserverAnalytics, split_url
from botreports.plugins.sources.sqlite import SqliteAnalytics

from botserver_support import botserver_db, connect, with_options  # noqa: F401 (fixture)

UTC = dt.timezone.utc
#: Methods whose answer botserver cannot give: None for the whole answer.
NO_DATA_METHODS = {"top_intents", "system_health", "daily_system_health"}
#: Keys botserver has no column for (per-message error flags): None in every row.
NO_DATA_KEYS = {"errors"}


def local_period(first, last, tz):
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(dt.date.fromisoformat(first), dt.time(0), zone).astimezone(UTC)
    end = dt.datetime.combine(dt.date.fromisoformat(last) + dt.timedelta(days=1), dt.time(0), zone).astimezone(UTC)
    return Period(start, end, tz)


def scopes(db, lite):
    """Scopes that exercise every filter: whole system, an org across a DST change, a bot, a channel."""
    ny = local_period("2025-03-03", "2025-03-16", "America/New_York")
    berlin = local_period("2025-03-24", "2025-04-02", "Europe/Berlin")
    kathmandu = local_period("2025-03-15", "2025-03-31", "Asia/Kathmandu")
    acme = db.org("org-acme")
    bot = next(iter(lite.query("SELECT id FROM bots WHERE org_id = ? ORDER BY id", [acme])))[0]
    return [
        Scope(None, ny),
        Scope(acme, berlin),
        Scope(db.org("org-globex"), kathmandu, channel="whatsapp"),
        Scope(acme, ny, bot_ids=(bot,)),
    ]


def calls(scope):
    """Every protocol method with arguments that cover its options."""
    cutoff = scope.period.end - dt.timedelta(days=5)
    return [
        ("usage_totals", ()), ("daily_usage", ()), ("activity_grid", ()),
        ("usage_breakdown", ("bot",)), ("usage_breakdown", ("channel",)), ("top_users", (7,)),
        ("bot_names", ()), ("usage_rows", ()),
        ("conversation_summary", ()), ("conversation_outcomes", ()), ("top_conversations", ("duration", 5)),
        ("top_conversations", ("messages", 5)), ("top_intents", (5,)), ("satisfaction", ()),
        ("daily_satisfaction", ()), ("handoffs", ("bot",)), ("handoffs", ("channel",)), ("conversation_rows", ()),
        ("reply_latency", (None,)), ("reply_latency", ("day",)), ("reply_latency", ("bot",)),
        ("reply_latency", ("channel",)), ("error_counts", (None,)), ("error_counts", ("day",)),
        ("error_counts", ("bot",)), ("error_counts", ("channel",)), ("llm_performance", ()), ("throughput", ()),
        ("system_health", ()), ("daily_system_health", ()), ("performance_rows", ()),
        ("audit_summary", ()), ("audit_denials", (5,)), ("audit_events", ()), ("retention_overview", (cutoff,)),
        ("audit_rows", ()),
    ]


def materialize(value):
    if value is None or isinstance(value, (dict, list, str, int, float)):
        return value
    return list(value)


def without_unrecorded(value):
    """``value`` with the keys botserver does not record taken out (checked separately)."""
    if isinstance(value, list):
        return [without_unrecorded(v) for v in value]
    if isinstance(value, dict):
        return {k: without_unrecorded(v) for k, v in value.items() if k not in NO_DATA_KEYS}
    return value


def unrecorded_values(value):
    if isinstance(value, list):
        return [x for v in value for x in unrecorded_values(v)]
    if isinstance(value, dict):
        return [v for k, v in value.items() if k in NO_DATA_KEYS]
    return []


def same(a, b):
    """Equal, numbers exactly except float sums, which may differ in their last bits."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module")
def sources(botserver_db):
    pg = BotserverAnalytics(botserver_db.url)
    lite = SqliteAnalytics(botserver_db.sqlite_file)
    yield pg, lite
    pg.close()
    lite.close()


def test_every_protocol_method_is_answered():
    protocol = {name for name, _ in inspect.getmembers(AnalyticsSource, inspect.isfunction) if not name.startswith("_")}
    missing = [name for name in protocol if not callable(getattr(BotserverAnalytics, name, None))]
    assert not missing
    covered = {name for name, _ in calls(Scope(None, local_period("2025-03-01", "2025-03-02", "UTC")))}
    assert covered | {"custom_metric"} == protocol  # custom metrics have a test of their own


def test_every_query_equals_the_sqlite_source(botserver_db, sources):
    pg, lite = sources
    compared = 0
    for scope in scopes(botserver_db, lite):
        for name, args in calls(scope):
            got = materialize(getattr(pg, name)(scope, *args))
            if name in NO_DATA_METHODS:
                assert got is None, name
                continue
            assert all(v is None for v in unrecorded_values(got)), name
            if not hasattr(lite, name):
                continue  # the SQLite source does not answer it yet; independent checks below cover it
            want = materialize(getattr(lite, name)(scope, *args))
            assert same(without_unrecorded(got), without_unrecorded(want)), (name, args, scope)
            compared += 1
    assert compared >= 8


def test_custom_metrics_equal_the_sqlite_source(botserver_db, sources):
    from botreports.core.custom_metrics import parse_metric
    pg, lite = sources
    if not hasattr(lite, "custom_metric"):
        pytest.skip("the SQLite source answers no custom metric yet")
    scope = scopes(botserver_db, lite)[1]
    for options in (
            {"table": "messages", "measure": "count", "group_by": "day"},
            {"table": "messages", "measure": "p95", "field": "latency_ms", "group_by": "channel"},
            {"table": "conversations", "measure": "avg", "field": "satisfaction", "group_by": "bot"},
            {"table": "conversations", "measure": "p50", "field": "duration_ms", "filters": {"status": "resolved"}},
            {"table": "llm_calls", "measure": "sum", "field": "total_tokens", "group_by": "model"},
            {"table": "llm_calls", "measure": "count", "group_by": "hour_of_day", "filters": {"success": False}},
            {"table": "audit_events", "measure": "count", "group_by": "week", "filters": {"result": ["denied"]}}):
        metric, problems = parse_metric(options)
        assert not problems
        assert same(pg.custom_metric(scope, metric), lite.custom_metric(scope, metric)), options
    for unrecorded in ({"table": "messages", "measure": "count", "group_by": "intent"},
                       {"table": "system_samples", "measure": "avg", "field": "cpu_pct"}):
        assert pg.custom_metric(scope, parse_metric(unrecorded)[0]) is None


# -- independent computations (plain Python over the SQLite copy) -------------


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def test_latency_percentiles_and_hours_equal_a_naive_computation(botserver_db, sources):
    pg, lite = sources
    scope = scopes(botserver_db, lite)[0]  # New York, across the spring-forward night
    lo, hi = (int(t.timestamp() * 1000) for t in (scope.period.start, scope.period.end))
    conn = sqlite3.connect(botserver_db.sqlite_file)
    rows = conn.execute("SELECT created_at, direction, latency_ms FROM messages WHERE created_at >= ? AND created_at < ?",
                        [lo, hi]).fetchall()
    latencies = [lat for _, d, lat in rows if d == "out" and lat is not None]
    [whole] = pg.reply_latency(scope)
    assert whole["replies"] == len(latencies)
    for p in (50, 90, 95, 99):
        assert whole[f"p{p}_ms"] == nearest_rank(latencies, p)
    assert whole["avg_ms"] == round(sum(latencies) / len(latencies), 3)
    zone = ZoneInfo(scope.period.timezone)
    per_day = defaultdict(list)
    for created, d, lat in rows:
        if d == "out" and lat is not None:
            per_day[dt.datetime.fromtimestamp(created / 1000, zone).date()].append(lat)
    by_day = {r["key"]: r for r in pg.reply_latency(scope, "day")}
    assert set(by_day) == set(per_day)
    for day, values in per_day.items():
        assert by_day[day]["p90_ms"] == nearest_rank(values, 90) and by_day[day]["replies"] == len(values)
    hours = Counter()
    for created, _, _ in rows:
        local = dt.datetime.fromtimestamp(created / 1000, zone)
        hours[(local.replace(minute=0, second=0, microsecond=0)).astimezone(UTC)] += 1
    got = pg.throughput(scope)
    assert got["messages"] == len(rows) and got["active_hours"] == len(hours)
    peak = max(hours.values())
    assert got["peak_hour_messages"] == peak and got["peak_hour_at"] == min(h for h, n in hours.items() if n == peak)
    conn.close()


def test_conversations_and_audit_equal_a_naive_computation(botserver_db, sources):
    pg, lite = sources
    scope = scopes(botserver_db, lite)[1]
    lo, hi = (int(t.timestamp() * 1000) for t in (scope.period.start, scope.period.end))
    conn = sqlite3.connect(botserver_db.sqlite_file)
    convs = conn.execute("SELECT status, satisfaction, started_at, ended_at, message_count FROM conversations"
                         " WHERE org_id = ? AND started_at >= ? AND started_at < ?", [scope.org_id, lo, hi]).fetchall()
    summary = pg.conversation_summary(scope)
    statuses = Counter(c[0] for c in convs)
    assert summary["conversations"] == len(convs) > 20
    assert all(summary[s] == statuses[s] for s in ("resolved", "abandoned", "handed_off", "open"))
    durations = [c[3] - c[2] for c in convs if c[3] is not None]
    assert summary["ended"] == len(durations)
    assert summary["duration_p90_ms"] == nearest_rank(durations, 90)
    assert summary["messages_p50"] == nearest_rank([c[4] for c in convs], 50)
    ratings = [c[1] for c in convs if c[1] is not None]
    got = pg.satisfaction(scope)
    assert got["rated"] == len(ratings) and got["distribution"] == {n: ratings.count(n) for n in range(1, 6)}
    assert got["average"] == round(sum(ratings) / len(ratings), 4)
    events = conn.execute("SELECT action, result FROM audit_events WHERE org_id = ? AND created_at >= ? AND created_at < ?",
                          [scope.org_id, lo, hi]).fetchall()
    assert {(r["action"], r["result"]): r["events"] for r in pg.audit_summary(scope)} == Counter(events)
    conn.close()


# -- read-only, timeouts, configuration ---------------------------------------


def test_source_refuses_to_write(botserver_db, sources):
    import psycopg
    pg, _ = sources
    before = pg.query("SELECT count(*) FROM bots")[0][0]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg.query("INSERT INTO bots (org_id, name) VALUES (gen_random_uuid(), %(name)s)", {"name": "intruder"})
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg.query("DELETE FROM message_history")
    assert pg.query("SELECT count(*) FROM bots")[0][0] == before
    assert pg.query("SHOW transaction_read_only") == [("on",)]
    assert not hasattr(pg, "write_events")  # so ingest refuses it as a read-only source


def test_slow_query_is_cut_by_the_statement_timeout(botserver_db):
    pg = BotserverAnalytics(with_options(botserver_db.url, statement_timeout="200ms"))
    try:
        assert pg.query("SHOW statement_timeout") == [("200ms",)]
        started = dt.datetime.now()
        with pytest.raises(ReportFailed, match="statement timeout of 0.2 s"):
            pg.query("SELECT pg_sleep(3)")
        assert (dt.datetime.now() - started).total_seconds() < 2
        assert pg.query("SELECT 1") == [(1,)]  # the pooled connection is still usable
    finally:
        pg.close()


def test_url_options_are_ours_and_the_rest_goes_to_libpq():
    url, ours = split_url("postgresql+botserver://gb@db:5432/botserver?sslmode=require&schema=gb&statement_timeout=5s")
    assert url == "postgresql://gb@db:5432/botserver?sslmode=require"
    assert ours == {"schema": "gb", "statement_timeout": "5s"}
    assert BotserverAnalytics("postgres://h/db?statement_timeout=5s").statement_timeout_ms == 5000
    with pytest.raises(ValueError):
        BotserverAnalytics("postgresql://h/db?schema=x;drop")
    assert UNRECORDED == {"messages.intent", "messages.is_error", "system_samples"}
