"""The botserver source on botserver's real schema: every query equals the
SQLite source over the canonical file the fixture computes independently
from the same rows, naive computations agree, and the source never writes
and never runs longer than its statement timeout."""
import datetime as dt
import inspect
import math
import re
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from botreports.core.datasource import AnalyticsSource
from botreports.core.errors import ReportFailed
from botreports.core.models import Period, Scope
from botreports.plugins.sources.botserver_pg import BotserverAnalytics, split_url
from botreports.plugins.sources.sqlite import SqliteAnalytics

from botserver_support import botserver_db, differences, with_options  # noqa: F401 (fixture)

UTC = dt.timezone.utc


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
        Scope(None, local_period("2025-03-14", "2025-04-04", "UTC"), channel="web"),
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


def test_every_query_equals_the_sqlite_source_over_the_expected_file(botserver_db, sources):
    pg, lite = sources
    failures = {}
    for number, scope in enumerate(scopes(botserver_db, lite)):
        for name, args in calls(scope):
            got = materialize(getattr(pg, name)(scope, *args))
            want = materialize(getattr(lite, name)(scope, *args))
            found = differences(got, want, rel_tol=1e-12, none_for_empty=True)
            if found:
                failures[(number, name, args)] = found[:5]
    assert not failures


def test_both_sources_say_the_same_measures_are_unrecorded(botserver_db, sources):
    pg, lite = sources
    assert pg.unrecorded() == lite.unrecorded() == {
        "messages.latency_ms", "messages.tokens", "messages.is_error", "messages.intent",
        "conversations.satisfaction", "llm_calls", "system_samples"}


def test_custom_metrics_equal_the_sqlite_source(botserver_db, sources):
    from botreports.core.custom_metrics import parse_metric
    pg, lite = sources
    for scope in scopes(botserver_db, lite)[:3]:
        for options in (
                {"table": "messages", "measure": "count", "group_by": "day"},
                {"table": "messages", "measure": "count", "group_by": "hour", "filters": {"direction": "in"}},
                {"table": "messages", "measure": "distinct", "field": "user_id", "group_by": "channel"},
                {"table": "conversations", "measure": "count", "group_by": "status"},
                {"table": "conversations", "measure": "p90", "field": "message_count", "group_by": "bot"},
                {"table": "conversations", "measure": "p50", "field": "duration_ms", "filters": {"status": "resolved"}},
                {"table": "audit_events", "measure": "count", "group_by": "week", "filters": {"result": ["denied"]}},
                {"table": "audit_events", "measure": "count", "group_by": "result"}):
            metric, problems = parse_metric(options)
            assert not problems, (options, problems)
            got, want = pg.custom_metric(scope, metric), lite.custom_metric(scope, metric)
            assert not differences(got, want, rel_tol=1e-12, none_for_empty=True), (options, scope)
            assert want, options  # a metric with rows, not two empty answers


# -- independent computations (plain SQL over botserver's own tables) ---------


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def raw(botserver_db, sql, params=()):
    with botserver_db.connect() as conn:
        return conn.execute(sql, params).fetchall()


def test_hours_and_peaks_equal_a_naive_computation_over_message_history(botserver_db, sources):
    pg, lite = sources
    scope = scopes(botserver_db, lite)[0]  # New York, across the spring-forward night
    times = [t for (t,) in raw(botserver_db, "SELECT created_at FROM message_history WHERE role IN (1, 2)"
                               " AND created_at >= %s AND created_at < %s", (scope.period.start, scope.period.end))]
    zone = ZoneInfo(scope.period.timezone)
    hours = Counter()
    for created in times:
        local = created.astimezone(zone)
        hours[(local.replace(minute=0, second=0, microsecond=0)).astimezone(UTC)] += 1
    got = pg.throughput(scope)
    assert got["messages"] == len(times) > 1000 and got["active_hours"] == len(hours)
    peak = max(hours.values())
    assert got["peak_hour_messages"] == peak and got["peak_hour_at"] == min(h for h, n in hours.items() if n == peak)
    per_day = Counter(created.astimezone(zone).date() for created in times)
    assert {r["day"]: r["messages_in"] + r["messages_out"] for r in pg.daily_usage(scope)} == per_day


def test_conversations_equal_a_naive_reading_of_user_sessions(botserver_db, sources):
    import json
    pg, lite = sources
    scope = scopes(botserver_db, lite)[1]  # Acme, Berlin
    sessions = raw(botserver_db, (
        "SELECT s.id, s.context_data, s.created_at, (SELECT count(*) FROM message_history m"
        " WHERE m.session_id = s.id AND m.role IN (1, 2)) FROM user_sessions s JOIN bots b ON b.id = s.bot_id"
        " WHERE b.org_id = %s AND s.created_at >= %s AND s.created_at < %s"),
        (scope.org_id, scope.period.start, scope.period.end))
    statuses, durations, counts = Counter(), [], []
    for _, context, created, count in sessions:
        context = context if isinstance(context, dict) else json.loads(context)
        if context.get("status") == "resolved":
            statuses["resolved"] += 1
            end = dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", context["resolved_at"]))
            durations.append(round((end - created).total_seconds() * 1000))
        elif context.get("status") == "abandoned":
            statuses["abandoned"] += 1
        elif context.get("status") in ("assigned", "queued", "transferred", "pending_transfer"):
            statuses["handed_off"] += 1
        else:
            statuses["open"] += 1
        counts.append(count)
    summary = pg.conversation_summary(scope)
    assert summary["conversations"] == len(sessions) > 20
    assert {s: summary[s] for s in ("resolved", "abandoned", "handed_off", "open")} == \
        {s: statuses[s] for s in ("resolved", "abandoned", "handed_off", "open")}
    assert summary["ended"] == len(durations) == statuses["resolved"]
    assert summary["duration_p90_ms"] == nearest_rank(durations, 90)
    ordered, middle = sorted(counts), len(counts) // 2
    assert summary["messages_median"] == (ordered[middle] if len(counts) % 2
                                          else (ordered[middle - 1] + ordered[middle]) / 2)
    ended, half = sorted(durations), len(durations) // 2
    assert summary["duration_median_ms"] == (ended[half] if len(ended) % 2 else (ended[half - 1] + ended[half]) / 2)


def test_audit_equals_a_naive_reading_of_the_nil_organisation_rows(botserver_db, sources):
    pg, lite = sources
    scope = scopes(botserver_db, lite)[1]
    rows = raw(botserver_db, (
        "SELECT a.action, a.result FROM compliance_audit_log a JOIN bots b ON b.id = a.bot_id"
        " WHERE a.org_id = '00000000-0000-0000-0000-000000000000' AND b.org_id = %s"
        " AND a.created_at >= %s AND a.created_at < %s"), (scope.org_id, scope.period.start, scope.period.end))
    ours = {"success": "allowed", "denied": "denied", "failure": "error", "error": "error"}
    expected = Counter((action, ours[result]) for action, result in rows)
    assert {(r["action"], r["result"]): r["events"] for r in pg.audit_summary(scope)} == expected
    assert sum(expected.values()) > 50


def test_measures_light_up_once_botserver_writes_them(tmp_path_factory):
    """Reply times, tokens and LLM calls are unrecorded until botserver fills their columns; then they count."""
    from botserver_support import BotserverDatabase
    db = BotserverDatabase(tmp_path_factory, messages=600)  # a database of its own: this test writes
    pg = BotserverAnalytics(db.url)
    try:
        scope = Scope(None, local_period("2025-03-01", "2025-04-05", "UTC"))
        assert {"messages.latency_ms", "messages.tokens", "llm_calls"} <= pg.unrecorded()
        with db.connect() as conn:
            conn.execute("UPDATE message_history SET processing_time_ms = 200 + (message_index * 37) % 900,"
                         " token_count = 10 + message_index WHERE role = 2")
            conn.execute(
                "INSERT INTO llm_metrics (id, request_id, session_id, bot_id, model, request_type, input_tokens,"
                " output_tokens, total_tokens, latency_ms, success, estimated_cost, timestamp)"
                " SELECT gen_random_uuid(), gen_random_uuid(), s.id, s.bot_id, 'gpt-4o', 'chat', 100, 20, 120, 800,"
                " m.message_index % 5 <> 0, 0.002, m.created_at FROM message_history m"
                " JOIN user_sessions s ON s.id = m.session_id WHERE m.role = 2")
            latencies = [v for (v,) in conn.execute("SELECT processing_time_ms FROM message_history WHERE role = 2")]
            [(calls, failures)] = conn.execute("SELECT count(*), count(*) FILTER (WHERE NOT success) FROM llm_metrics")
        assert {"messages.latency_ms", "llm_calls"} <= pg.unrecorded()  # kept until asked again
        pg.forget()
        assert not {"messages.latency_ms", "messages.tokens", "llm_calls"} & pg.unrecorded()
        [whole] = pg.reply_latency(scope)
        assert whole["replies"] == len(latencies) > 100
        assert (whole["p50_ms"], whole["p90_ms"]) == (nearest_rank(latencies, 50), nearest_rank(latencies, 90))
        [model] = pg.llm_performance(scope)
        assert (model["model"], model["calls"], model["failures"]) == ("gpt-4o", calls, failures)
    finally:
        pg.close()
        db.drop()


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
    assert BotserverAnalytics("postgresql://h/db?automation=exclude").views.automation is False
    with pytest.raises(ValueError):
        BotserverAnalytics("postgresql://h/db?automation=maybe")
