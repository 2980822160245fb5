"""Local days in SQL equal zoneinfo's answer, for all instants and zones (hypothesis)."""
import datetime as dt
import sqlite3
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from botreports.core.models import Period
from botreports.core.scheduling import (days_of, hours_of, offset_changes, parse_instant, relative_period,
                                         wall_clock_text)
from botreports.plugins.sources.sql_time import day_from_number, local_day_ranges, local_day_sql, local_hour_sql

ZONES = ["UTC", "America/New_York", "Asia/Kathmandu", "Europe/Berlin", "Australia/Lord_Howe",
         "America/Sao_Paulo", "Pacific/Chatham", "Asia/Tehran", "America/St_Johns"]
UTC = dt.timezone.utc


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES),
       start=st.datetimes(min_value=dt.datetime(2015, 1, 1), max_value=dt.datetime(2030, 1, 1)),
       days=st.integers(1, 120),
       offsets=st.lists(st.floats(0, 1), min_size=1, max_size=40))
def test_local_day_sql_matches_zoneinfo(zone, start, days, offsets):
    start = start.replace(tzinfo=UTC)
    period = Period(start, start + dt.timedelta(days=days), zone)
    span = (period.end - period.start).total_seconds() * 1000
    instants = [int(period.start.timestamp() * 1000 + f * (span - 1)) for f in offsets]
    sql, params = local_day_sql("t", period)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE x (t INTEGER)")
    conn.executemany("INSERT INTO x VALUES (?)", [(i,) for i in instants])
    got = [day_from_number(n) for (n,) in conn.execute(f"SELECT {sql} FROM x ORDER BY t", params)]
    want = [dt.datetime.fromtimestamp(i / 1000, ZoneInfo(zone)).date() for i in sorted(instants)]
    assert got == want


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES),
       start=st.datetimes(min_value=dt.datetime(2015, 1, 1), max_value=dt.datetime(2030, 1, 1)),
       days=st.integers(1, 120), minutes=st.lists(st.integers(-150, 150), min_size=1, max_size=20))
def test_local_day_ranges_tile_the_period_with_each_instants_local_day(zone, start, days, minutes):
    """The ranges follow one another from the period's start to its end, and every instant, near
    the period's ends, near its clock changes and at the ranges' own edges, lies in the range of
    its local day (zoneinfo's reading)."""
    start = start.replace(tzinfo=UTC)
    period = Period(start, start + dt.timedelta(days=days), zone)
    ranges = local_day_ranges(period)
    lo, hi = int(period.start.timestamp() * 1000), int(period.end.timestamp() * 1000)
    assert ranges[0][1] == lo and ranges[-1][2] == hi
    assert all(a[2] == b[1] for a, b in zip(ranges, ranges[1:])) and all(r[1] < r[2] for r in ranges)
    _, changes = offset_changes(zone, period.start, period.end)
    anchors = [lo, hi] + [int(instant.timestamp() * 1000) for instant, _ in changes]
    probes = {a + m * 60_000 for a in anchors for m in minutes} | {r[1] for r in ranges} | {r[2] - 1 for r in ranges}
    zi = ZoneInfo(zone)
    for t in sorted(p for p in probes if lo <= p < hi):
        [day] = [d for d, a, b in ranges if a <= t < b]
        assert day_from_number(day) == dt.datetime.fromtimestamp(t / 1000, zi).date()


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), year=st.integers(2016, 2029),
       minutes=st.lists(st.integers(-150, 150), min_size=1, max_size=30), seconds=st.integers(0, 59))
def test_local_hour_sql_matches_zoneinfo_around_offset_changes(zone, year, minutes, seconds):
    """Each instant's local clock hour, as the UTC instant it began, is the last time the clock
    showed that hour's start, for instants within hours of each change of the year: half-hour
    changes (Lord Howe) and changes off the hour (Chatham, at 02:45) included."""
    period = Period(dt.datetime(year, 1, 1, tzinfo=UTC), dt.datetime(year + 1, 1, 1, tzinfo=UTC), zone)
    _, changes = offset_changes(zone, period.start, period.end)
    anchors = [instant for instant, _ in changes] or [period.start + dt.timedelta(days=100)]
    instants = sorted({int((anchor + dt.timedelta(minutes=m, seconds=seconds)).timestamp() * 1000)
                       for anchor in anchors for m in minutes
                       if period.start <= anchor + dt.timedelta(minutes=m) < period.end})
    sql, params = local_hour_sql("t", period)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE x (t INTEGER)")
    conn.executemany("INSERT INTO x VALUES (?)", [(i,) for i in instants])
    got = [ms for (ms,) in conn.execute(f"SELECT {sql} FROM x ORDER BY t", params)]
    zi = ZoneInfo(zone)
    want = [int(local_hour_start(dt.datetime.fromtimestamp(i / 1000, UTC), zi).timestamp() * 1000)
            for i in instants]
    assert got == want


def local_hour_start(instant: dt.datetime, zi: ZoneInfo) -> dt.datetime:
    """The last instant at or before ``instant`` at which the local clock showed the start of its
    hour; for an hour whose start the clock skipped, zoneinfo's reading of that start (the change)."""
    floor = instant.astimezone(zi).replace(minute=0, second=0, microsecond=0, tzinfo=None)
    shown = [u for u in (floor.replace(tzinfo=zi, fold=fold).astimezone(UTC) for fold in (0, 1))
             if u <= instant and u.astimezone(zi).replace(tzinfo=None) == floor]
    return max(shown) if shown else floor.replace(tzinfo=zi).astimezone(UTC)


def test_lord_howe_hour_after_clocks_go_back_half_an_hour_began_before_the_change():
    # 2025-04-06 02:00 local (+11:00) became 01:30 (+10:30) at 15:00 UTC: 01:30 the second
    # time is still in the hour 01:00, which began at 14:00 UTC.
    period = Period(dt.datetime(2025, 4, 1, tzinfo=UTC), dt.datetime(2025, 4, 10, tzinfo=UTC), "Australia/Lord_Howe")
    sql, params = local_hour_sql("t", period)
    at = int(dt.datetime(2025, 4, 5, 15, 0, tzinfo=UTC).timestamp() * 1000)
    (got,) = sqlite3.connect(":memory:").execute(f"SELECT {sql} FROM (SELECT {at} AS t)", params).fetchone()
    assert got == int(dt.datetime(2025, 4, 5, 14, 0, tzinfo=UTC).timestamp() * 1000)


@settings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(ZONES), year=st.integers(2016, 2029))
def test_offset_changes_are_exact(zone, year):
    start = dt.datetime(year, 1, 1, tzinfo=UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=UTC)
    first, changes = offset_changes(zone, start, end)
    zi = ZoneInfo(zone)
    assert first == start.astimezone(zi).utcoffset().total_seconds()
    for instant, offset in changes:
        assert (instant - dt.timedelta(seconds=1)).astimezone(zi).utcoffset() != instant.astimezone(zi).utcoffset()
        assert instant.astimezone(zi).utcoffset().total_seconds() == offset


def test_date_periods_are_whole_local_days_across_dst():
    start = parse_instant("2025-03-09", "America/New_York", end=False)
    end = parse_instant("2025-03-09", "America/New_York", end=True)
    assert end - start == dt.timedelta(hours=23)  # spring forward: a 23-hour day
    assert days_of(Period(start, end, "America/New_York")) == [dt.date(2025, 3, 9)]


@given(zone=st.sampled_from(ZONES), now=st.datetimes(min_value=dt.datetime(2016, 1, 1),
                                                      max_value=dt.datetime(2029, 12, 1)))
@settings(max_examples=60, deadline=None)
def test_relative_periods_end_where_they_should(zone, now):
    now = now.replace(tzinfo=UTC)
    today = now.astimezone(ZoneInfo(zone)).date()
    day = relative_period("previous_day", now, zone)
    assert days_of(day) == [today - dt.timedelta(days=1)]
    week = relative_period("previous_week", now, zone)
    assert [d.weekday() for d in days_of(week)] == list(range(7))
    assert days_of(week)[-1] < today
    month = relative_period("previous_month", now, zone)
    month_days = days_of(month)
    assert month_days[0].day == 1 and (month_days[-1] + dt.timedelta(days=1)).day == 1
    assert len(days_of(relative_period("last_30_days", now, zone))) == 30
    mtd = relative_period("month_to_date", now, zone)
    assert mtd.end == now and mtd.start <= now
    if mtd.end > mtd.start:  # at the very first instant of a month the period is still empty
        assert days_of(mtd)[0] == today.replace(day=1)


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), year=st.integers(2016, 2029), change=st.integers(0, 3),
       before=st.integers(0, 96 * 3), after=st.integers(1, 96 * 3))
def test_hours_of_a_period_are_the_hours_its_instants_fall_in(zone, year, change, before, after):
    """``hours_of`` gives exactly the distinct local hours (``local_hour_sql``) of the period's
    instants, in order, for periods around the year's offset changes (cut anywhere on the
    quarter hour: every zone's offsets and changes lie on it)."""
    _, changes = offset_changes(zone, dt.datetime(year, 1, 1, tzinfo=UTC), dt.datetime(year + 1, 1, 1, tzinfo=UTC))
    anchor = changes[change % len(changes)][0] if changes else dt.datetime(year, 6, 1, tzinfo=UTC)
    quarter = dt.timedelta(minutes=15)
    period = Period(anchor - before * quarter, anchor + after * quarter, zone)
    span_ms = int((period.end - period.start).total_seconds() * 1000)
    start_ms = int(period.start.timestamp() * 1000)
    instants = list(range(start_ms, start_ms + span_ms, 60_000))  # every minute
    sql, params = local_hour_sql("t", period)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE x (t INTEGER)")
    conn.executemany("INSERT INTO x VALUES (?)", [(i,) for i in instants])
    want = [ms for (ms,) in conn.execute(f"SELECT DISTINCT {sql} AS h FROM x ORDER BY h", params)]
    assert [int(h.timestamp() * 1000) for h in hours_of(period)] == want


@settings(max_examples=80, deadline=None)
@given(zone=st.sampled_from(ZONES), year=st.integers(2016, 2029), minutes=st.integers(-180, 180))
def test_wall_clock_text_tells_every_minute_apart(zone, year, minutes):
    """Around each offset change, every minute reads differently: the repeated hour of an
    autumn night carries the zone's abbreviation, so its two readings differ."""
    _, changes = offset_changes(zone, dt.datetime(year, 1, 1, tzinfo=UTC), dt.datetime(year + 1, 1, 1, tzinfo=UTC))
    for instant, _ in changes[:2]:
        base = instant + dt.timedelta(minutes=minutes)
        texts = [wall_clock_text(base + dt.timedelta(minutes=k), zone) for k in range(0, 181)]
        assert len(set(texts)) == len(texts)


def test_new_york_autumn_hours_are_labelled_apart():
    period = Period(dt.datetime(2025, 11, 2, 4, tzinfo=UTC), dt.datetime(2025, 11, 2, 8, tzinfo=UTC),
                    "America/New_York")
    assert [wall_clock_text(h, period.timezone) for h in hours_of(period)] == [
        "2025-11-02 00:00", "2025-11-02 01:00 EDT", "2025-11-02 01:00 EST", "2025-11-02 02:00"]
