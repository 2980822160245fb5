"""Local days in SQL equal zoneinfo's answer, for all instants and zones (hypothesis)."""
import datetime as dt
import sqlite3
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from botreports.core.models import Period
from botreports.core.scheduling import days_of, offset_changes, parse_instant, relative_period
from botreports.plugins.sources.sql_time import day_from_number, local_day_sql

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
