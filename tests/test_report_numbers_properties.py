"""The numbers a report shows (KPIs, their changes, the raw tables, the sentences) equal a
brute-force computation from the definitions in docs/metrics.md, for random small datasets
loaded into the SQLite source: errored incoming messages, rated open conversations,
changes from tiny previous rates, periods with nothing closed.

The brute force shares no code with the sections or the source: it filters the rows with
zoneinfo, counts in plain Python and finds the previous period by local calendar arithmetic.
"""
import datetime as dt
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from botreports.core.models import Period, Principal, Scope, SectionContext
from botreports.plugins.sections import conversations, performance, usage
from botreports.plugins.sources.sqlite import SqliteAnalytics, create_database, create_indexes, insert_rows

UTC = dt.timezone.utc
ORG = "org-x"
BOTS = ("bot-a", "bot-b")
ZONES = ("America/New_York", "Europe/Berlin", "Asia/Kathmandu", "UTC")
#: First days of periods that hold or follow a DST change (New York 9 March, Berlin 30 March 2025).
FIRST_DAYS = (dt.date(2025, 3, 9), dt.date(2025, 3, 10), dt.date(2025, 3, 30), dt.date(2025, 3, 31),
              dt.date(2025, 11, 2))
STATUSES = ("resolved", "abandoned", "handed_off", "open")
PRINCIPAL = Principal(id="tester", org_id=None, roles={"admin"})
#: "Now" for the sections: long after every period, so none of them is still running.
NOW = dt.datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3_600_000


def ms(instant):
    return int(instant.timestamp() * 1000)


def local_midnight(day, zone):
    return ms(dt.datetime.combine(day, dt.time(0), ZoneInfo(zone)))


@st.composite
def cases(draw):
    """A period of 1-3 local days, the same number of local days before it, and conversations and
    messages spread over both (and a little outside): errored incoming messages, rated open
    conversations, sometimes a previous period with one errored reply among more than 20,000
    (an error rate under 0.00005)."""
    zone = draw(st.sampled_from(ZONES))
    first = draw(st.sampled_from(FIRST_DAYS))
    days = draw(st.integers(1, 3))
    before = first - dt.timedelta(days=days)
    lo, hi = local_midnight(before, zone) - HOUR, local_midnight(first + dt.timedelta(days=days), zone) + HOUR
    when = st.one_of(st.integers(lo, hi), st.sampled_from((local_midnight(first, zone) - 1,
                                                           local_midnight(first, zone))))
    conversations_, messages = [], []
    for c in range(draw(st.integers(0, 14))):
        started = draw(when)
        status = draw(st.sampled_from(STATUSES))
        ended = None if status == "open" else started + draw(st.integers(0, 7_200_000))
        score = draw(st.sampled_from((None, 1, 2, 3, 4, 5)))  # open ones are rated too, now and then
        bot = draw(st.sampled_from(BOTS))
        org = draw(st.sampled_from((ORG, ORG, "org-other")))
        n = draw(st.integers(0, 6))
        t = started
        for i in range(n):
            t += draw(st.integers(0, 2 * HOUR))
            out = draw(st.booleans())
            messages.append((f"m{c}-{i}", org, f"c{c}", bot, "web", f"u{c % 4}", "out" if out else "in", t,
                             draw(st.integers(1, 900)) if out else None, None, None,
                             int(draw(st.booleans()))))  # an incoming message may carry the flag too
        conversations_.append((f"c{c}", org, bot, f"u{c % 4}", "web", started, ended, status, score, n))
    bulk = 0
    if draw(st.integers(0, 4)) == 0:
        # One errored reply among more than 20,000 in the previous period: a rate rounded to 4
        # places would be 0, and its change would be lost.
        bulk = draw(st.integers(20_001, 24_000))
        start = local_midnight(before, zone)
        messages += [(f"b{i}", ORG, "c-bulk", "bot-a", "web", "u-bulk", "out", start + i, 5, None, None,
                      int(i == 0)) for i in range(bulk)]
        messages.append(("b-in", ORG, "c-bulk", "bot-a", "web", "u-bulk", "in", start + 1, None, None, None, 1))
    org = draw(st.sampled_from((ORG, None)))
    return conversations_, messages, zone, first, days, org, bulk


_BUILT = []


def build(case):
    while _BUILT:
        source, folder = _BUILT.pop()
        source.close()
        shutil.rmtree(folder, ignore_errors=True)
    conversations_, messages = case[:2]
    folder = Path(tempfile.mkdtemp(prefix="br-numbers-"))
    conn = create_database(folder / "a.db")
    conn.execute("BEGIN")
    insert_rows(conn, "bots", [(b, ORG, b.upper(), 0) for b in BOTS])
    insert_rows(conn, "conversations", conversations_)
    insert_rows(conn, "messages", messages)
    conn.execute("COMMIT")
    create_indexes(conn)
    conn.close()
    source = SqliteAnalytics(folder / "a.db")
    _BUILT.append((source, folder))
    return source


def context(case, source, **options):
    _, _, zone, first, days, org = case[:6]
    period = Period(dt.datetime.fromtimestamp(local_midnight(first, zone) / 1000, UTC),
                    dt.datetime.fromtimestamp(local_midnight(first + dt.timedelta(days=days), zone) / 1000, UTC),
                    zone)
    return SectionContext(scope=Scope(org_id=org, period=period), source=source, options=options,
                          principal=PRINCIPAL, include_charts=False, now=NOW)


class Brute:
    """The dataset's rows of the report's period and of the N local days before it."""

    def __init__(self, case):
        conversations_, messages, zone, first, days, org = case[:6]
        keys_c = ("id", "org_id", "bot_id", "user_id", "channel", "started_at", "ended_at", "status",
                  "satisfaction", "message_count")
        keys_m = ("id", "org_id", "conversation_id", "bot_id", "channel", "user_id", "direction", "created_at",
                  "latency_ms", "tokens", "intent", "is_error")
        self.all_conversations = [dict(zip(keys_c, c)) for c in conversations_]
        self.all_messages = [dict(zip(keys_m, m)) for m in messages]
        self.org = org
        # The previous period: the same number of local days just before, by the calendar.
        self.spans = {"now": (local_midnight(first, zone), local_midnight(first + dt.timedelta(days=days), zone)),
                      "before": (local_midnight(first - dt.timedelta(days=days), zone), local_midnight(first, zone))}

    def mine(self, row):
        return self.org is None or row["org_id"] == self.org

    def conversations(self, span):
        lo, hi = self.spans[span]
        return [c for c in self.all_conversations if self.mine(c) and lo <= c["started_at"] < hi]

    def messages(self, span):
        lo, hi = self.spans[span]
        return [m for m in self.all_messages if self.mine(m) and lo <= m["created_at"] < hi]

    def replies(self, span):
        return [m for m in self.messages(span) if m["direction"] == "out"]


def ratio(part, whole):
    return part / whole if whole else None


def change(value, previous):
    return None if value is None or not previous else (value - previous) / previous


def median(values):
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def nearest_rank(values, p):
    ordered = sorted(values)
    return ordered[-(-len(ordered) * p // 100) - 1] if ordered else None


def kpis_of(blocks):
    return {kpi.name: kpi for block in blocks if block.kind == "kpis" for kpi in block.items}


def close(got, expected):
    """Equal, floats to 1e-12 relative (the same exact values, divided in another order)."""
    if expected is None or got is None:
        return got is expected
    return got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def table(blocks, title):
    found = next(b for b in blocks if b.kind == "table" and b.title == title)
    names = [c.name for c in found.columns]
    return [dict(zip(names, row)) for row in found.rows]


COMMON = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(cases())
def test_error_rate_and_its_change_count_replies_only_from_exact_values(case):
    source, brute = build(case), Brute(case)
    blocks = performance.error_rates(context(case, source))
    got = kpis_of(blocks)
    if not brute.all_messages:  # no message has an error flag: not recorded, rather than 0
        assert got["errors"].unavailable and got["error_rate"].value is None
        return
    values = {}
    for span in ("now", "before"):
        replies = brute.replies(span)
        errors = sum(m["is_error"] for m in replies)
        values[span] = (errors, ratio(errors, len(replies)))
    assert got["errors"].value == values["now"][0] and got["errors"].previous == values["before"][0]
    assert close(got["error_rate"].value, values["now"][1])
    assert close(got["error_rate"].previous, values["before"][1])
    assert close(got["error_rate"].change, change(values["now"][1], values["before"][1]))
    assert close(got["errors"].change, change(values["now"][0], values["before"][0]))
    if case[-1] and values["before"][1] < 0.00005:
        # A previous rate that 4 places would round to 0 still gives its change.
        assert values["before"][1] > 0 and (got["error_rate"].change is not None) == (values["now"][1] is not None)


@COMMON
@given(cases())
def test_raw_tables_count_errored_replies_as_error_rates_does(case):
    source, brute = build(case), Brute(case)
    ctx = context(case, source)
    errored_replies = sum(m["is_error"] for m in brute.replies("now"))
    if not brute.all_messages:
        return  # no error flag anywhere: not recorded (the test above)
    assert kpis_of(performance.error_rates(ctx))["errors"].value == errored_replies
    usage_rows = table(usage.usage_raw(ctx), "Usage per bot per day")
    assert sum(row["errors"] for row in usage_rows) == errored_replies
    per_bot_day = Counter()
    zone = ZoneInfo(ctx.scope.period.timezone)
    for m in brute.replies("now"):
        per_bot_day[(dt.datetime.fromtimestamp(m["created_at"] / 1000, zone).date(), m["bot_id"])] += m["is_error"]
    assert {(r["day"], r["bot_id"]): r["errors"] for r in usage_rows if r["errors"]} == +per_bot_day
    performance_rows = table(performance.performance_raw(ctx), "Performance per bot per hour")
    assert sum(row["errors"] for row in performance_rows) == errored_replies
    for row in table(conversations.conversations_raw(ctx), "Conversations"):
        mine = [m for m in brute.all_messages if m["conversation_id"] == row["conversation_id"]]
        assert row["errors"] == sum(m["is_error"] for m in mine if m["direction"] == "out")
        latencies = [m["latency_ms"] for m in mine if m["direction"] == "out"]
        assert close(row["avg_latency_ms"], None if not latencies else round(sum(latencies) / len(latencies), 3))


def conversation_values(convs):
    closed = [c for c in convs if c["status"] != "open"]
    by_status = Counter(c["status"] for c in closed)
    durations = [c["ended_at"] - c["started_at"] for c in convs if c["ended_at"] is not None]
    lengths = [c["message_count"] for c in convs]
    rated = [c["satisfaction"] for c in convs if c["satisfaction"] is not None]
    return {
        "conversations": len(convs), "closed": len(closed),
        "avg_messages": ratio(sum(lengths), len(lengths)),
        "messages_median": median(lengths), "messages_p90": nearest_rank(lengths, 90),
        "minutes_median": None if not durations else median(durations) / 60000,
        "minutes_p90": None if not durations else nearest_rank(durations, 90) / 60000,
        "resolution_rate": ratio(by_status["resolved"], len(closed)),
        "containment_rate": ratio(len(closed) - by_status["handed_off"], len(closed)),
        "abandonment_rate": ratio(by_status["abandoned"], len(closed)),
        "handoff_rate": ratio(by_status["handed_off"], len(closed)),
        # CSAT: the average and the share of 4 and 5 over every rating; the response rate counts
        # closed conversations only, rated open ones in neither part.
        "average": ratio(sum(rated), len(rated)), "rated": len(rated),
        "csat": ratio(sum(score >= 4 for score in rated), len(rated)),
        "response_rate": ratio(sum(c["satisfaction"] is not None for c in closed), len(closed)),
    }


@COMMON
@given(cases())
def test_conversation_and_satisfaction_kpis_and_changes_equal_the_definitions(case):
    source, brute = build(case), Brute(case)
    ctx = context(case, source, limit=10)
    now, before = conversation_values(brute.conversations("now")), conversation_values(brute.conversations("before"))
    got = {**kpis_of(conversations.conversation_summary(ctx)), **kpis_of(conversations.satisfaction_scores(ctx))}
    for name, kpi in got.items():
        if kpi.unavailable:  # the measure is nowhere in the file: ratings, or conversation ends
            measure = "satisfaction" if name in ("average", "rated", "csat", "response_rate") else "ended_at"
            assert all(c[measure] is None for c in brute.all_conversations), name
            assert kpi.value is kpi.previous is kpi.change is None
            continue
        assert close(kpi.value, now[name]), name
        assert close(kpi.previous, before[name]), name
        assert close(kpi.change, change(now[name], before[name])), name


@COMMON
@given(cases())
def test_handoff_sentence_and_rates_are_over_closed_conversations(case):
    source, brute = build(case), Brute(case)
    ctx = context(case, source, limit=10)
    blocks = conversations.handoffs(ctx)
    convs = brute.conversations("now")
    closed = [c for c in convs if c["status"] != "open"]
    handed = sum(c["status"] == "handed_off" for c in closed)
    (sentence,) = [b.markdown for b in blocks if b.kind == "text"]
    if closed:
        assert sentence.startswith(f"{handed:,} of {len(closed):,} closed conversations were handed off")
        assert f"({handed / len(closed):.1%})" in sentence
    else:  # no rate where none closed: the KPI is none, and the sentence says so rather than "0.0%"
        assert "%" not in sentence and "0 of 0" not in sentence
        assert kpis_of(conversations.conversation_summary(ctx))["handoff_rate"].value is None
    for row in table(blocks, "Hand-offs by bot"):
        mine = [c for c in closed if c["bot_id"] in row["bot"]]
        assert row["closed"] == len(mine)
        assert close(row["handoff_rate"], ratio(sum(c["status"] == "handed_off" for c in mine), len(mine)))


# -- the previous period and periods still running ------------------------------------------------

from botreports.core.scheduling import previous_period  # noqa: E402
from botreports.plugins.sections.kpi_math import comparison_period  # noqa: E402

ANY_ZONE = st.sampled_from(ZONES + ("Australia/Lord_Howe", "America/Sao_Paulo"))
DAYS = st.dates(dt.date(2024, 1, 1), dt.date(2026, 12, 31))


def period_of(first, last_exclusive, zone):
    return Period(dt.datetime.fromtimestamp(local_midnight(first, zone) / 1000, UTC),
                  dt.datetime.fromtimestamp(local_midnight(last_exclusive, zone) / 1000, UTC), zone)


@settings(max_examples=200, deadline=None)
@given(ANY_ZONE, DAYS, st.integers(1, 40))
def test_n_local_days_compare_with_the_n_local_days_before(zone, first, n):
    last = first + dt.timedelta(days=n)
    if first.day == 1 and last.day == 1:  # whole months: the months before (next test)
        return
    assert previous_period(period_of(first, last, zone)) == period_of(first - dt.timedelta(days=n), first, zone)


@settings(max_examples=200, deadline=None)
@given(ANY_ZONE, st.integers(2024 * 12, 2026 * 12), st.integers(1, 12))
def test_whole_months_compare_with_as_many_months_before(zone, month_index, months):
    def first_of(index):
        return dt.date(index // 12, index % 12 + 1, 1)

    period = period_of(first_of(month_index), first_of(month_index + months), zone)
    assert previous_period(period) == period_of(first_of(month_index - months), first_of(month_index), zone)


def test_a_dst_day_compares_with_the_local_day_before_whatever_their_lengths():
    spring = period_of(dt.date(2025, 3, 9), dt.date(2025, 3, 10), "America/New_York")  # 23 hours
    before = previous_period(spring)
    assert spring.length == dt.timedelta(hours=23) and before.length == dt.timedelta(hours=24)
    assert before == period_of(dt.date(2025, 3, 8), dt.date(2025, 3, 9), "America/New_York")
    after = period_of(dt.date(2025, 3, 10), dt.date(2025, 3, 11), "America/New_York")
    assert previous_period(after) == spring  # 24 hours compared with the 23 of the day before
    march = period_of(dt.date(2025, 3, 1), dt.date(2025, 4, 1), "Europe/Berlin")
    assert previous_period(march) == period_of(dt.date(2025, 2, 1), dt.date(2025, 3, 1), "Europe/Berlin")


@settings(max_examples=100, deadline=None)
@given(ANY_ZONE, DAYS, st.integers(1, 7), st.integers(1, 10_000_000), st.integers(1, 10**6))
def test_a_period_off_midnight_compares_with_the_same_duration_before_and_a_running_one_with_as_much(
        zone, first, n, offset_s, passed_s):
    start = dt.datetime.fromtimestamp(local_midnight(first, zone) / 1000 + offset_s, UTC)
    period = Period(start, start + dt.timedelta(days=n), zone)
    before = previous_period(period)
    if before.start != period.start - period.length:  # a start that fell on a local midnight
        assert dt.datetime.fromtimestamp(before.start.timestamp(), ZoneInfo(zone)).time() == dt.time(0)
    else:
        assert before.end == period.start
    now = period.start + dt.timedelta(seconds=passed_s)
    compared = comparison_period(period, now)
    assert compared.start == before.start
    assert compared.end == min(before.end, before.start + (min(now, period.end) - period.start))


def test_average_messages_per_hour_counts_only_the_hours_that_have_passed(tmp_path):
    conn = create_database(tmp_path / "a.db")
    start = dt.datetime(2025, 3, 10, tzinfo=UTC)
    messages = [(f"m{i}", ORG, "c1", "bot-a", "web", "u1", "in", ms(start) + i * 60_000, None, None, None, 0)
                for i in range(30)]
    conn.execute("BEGIN")
    insert_rows(conn, "messages", messages)
    conn.execute("COMMIT")
    create_indexes(conn)
    conn.close()
    source = SqliteAnalytics(tmp_path / "a.db")
    try:
        day = Period(start, start + dt.timedelta(days=1), "UTC")
        for now, hours in ((start + dt.timedelta(hours=6), 6), (start + dt.timedelta(days=3), 24)):
            ctx = SectionContext(scope=Scope(org_id=None, period=day), source=source, options={},
                                 principal=PRINCIPAL, include_charts=False, now=now)
            assert kpis_of(performance.throughput(ctx))["messages_per_hour"].value == 30 / hours
    finally:
        source.close()
