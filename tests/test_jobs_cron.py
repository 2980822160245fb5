"""Cron expressions in IANA timezones: parsing, and fire times checked against
a brute-force scan of every minute (hypothesis), DST gaps and repeats included."""
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from botreports.core.cron import Cron, CronError, fire_times_between, local_to_utc, next_fire_time

UTC = dt.timezone.utc
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo",
         "Asia/Kathmandu", "America/St_Johns"]
#: Instants near real DST changes, so the property test meets gaps and repeats often.
NEAR_CHANGES = [dt.datetime(2025, 3, 29, tzinfo=UTC), dt.datetime(2025, 10, 25, tzinfo=UTC),
                dt.datetime(2025, 3, 8, tzinfo=UTC), dt.datetime(2025, 11, 1, tzinfo=UTC),
                dt.datetime(2025, 4, 5, tzinfo=UTC), dt.datetime(2025, 10, 4, tzinfo=UTC),
                dt.datetime(2018, 11, 3, tzinfo=UTC), dt.datetime(2019, 2, 16, tzinfo=UTC)]


def brute_force(fields, tz, start, end):
    """Fire instants in (start, end] by scanning every UTC minute: a matching local minute fires at
    its first occurrence; matching local minutes skipped by a gap fire when the gap ends."""
    minutes, hours, weekdays = fields
    zi = ZoneInfo(tz)

    def matches(local):
        return local.minute in minutes and local.hour in hours and (local.isoweekday() % 7) in weekdays

    fires = set()
    seen_local = set()
    instant = start.replace(second=0, microsecond=0) - dt.timedelta(hours=6)
    previous = instant.astimezone(zi)
    while instant <= end + dt.timedelta(minutes=1):
        local = instant.astimezone(zi)
        wall = local.replace(tzinfo=None)
        if matches(local) and wall not in seen_local:
            fires.add(instant)
        seen_local.add(wall)
        jump = wall - previous.replace(tzinfo=None)
        if jump > dt.timedelta(minutes=1):  # a gap: local minutes in between never happened
            skipped = previous.replace(tzinfo=None) + dt.timedelta(minutes=1)
            while skipped < wall:
                if matches(skipped):
                    fires.add(instant)
                skipped += dt.timedelta(minutes=1)
        previous = local
        instant += dt.timedelta(minutes=1)
    return sorted(f for f in fires if start < f <= end)


@settings(max_examples=40, deadline=None)
@given(tz=st.sampled_from(ZONES), base=st.sampled_from(NEAR_CHANGES), shift=st.integers(0, 48),
       minutes=st.sets(st.sampled_from([0, 15, 30, 45, 59]), min_size=1, max_size=2),
       hours=st.one_of(st.just(frozenset(range(24))), st.sets(st.integers(0, 23), min_size=1, max_size=4)),
       weekdays=st.one_of(st.just(frozenset(range(7))), st.sets(st.integers(0, 6), min_size=1, max_size=3)))
def test_fire_times_match_a_minute_by_minute_scan(tz, base, shift, minutes, hours, weekdays):
    expression = " ".join([",".join(map(str, sorted(minutes))),
                           "*" if len(hours) == 24 else ",".join(map(str, sorted(hours))), "*", "*",
                           "*" if len(weekdays) == 7 else ",".join(map(str, sorted(weekdays)))])
    start = base + dt.timedelta(hours=shift)
    end = start + dt.timedelta(days=2)
    got = fire_times_between(Cron.parse(expression), tz, start, end)
    assert got == brute_force((minutes, hours, weekdays), tz, start, end)
    assert all(b > a for a, b in zip(got, got[1:]))  # strictly increasing: nothing fires twice


@settings(max_examples=60, deadline=None)
@given(tz=st.sampled_from(ZONES), day=st.dates(dt.date(2016, 1, 1), dt.date(2030, 12, 31)),
       hour=st.integers(0, 23), minute=st.integers(0, 59))
def test_local_time_maps_to_an_instant_at_or_after_it(tz, day, hour, minute):
    wall = dt.datetime.combine(day, dt.time(hour, minute))
    instant = local_to_utc(wall, tz)
    local = instant.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    assert local >= wall  # never earlier than asked; later only inside a gap
    if local != wall:
        before = (instant - dt.timedelta(seconds=1)).astimezone(ZoneInfo(tz)).replace(tzinfo=None)
        assert before < wall < local  # the instant right after a gap that swallowed ``wall``


def test_weekly_schedule_fires_at_8am_new_york_across_dst():
    cron = Cron.parse("0 8 * * MON")
    got = fire_times_between(cron, "America/New_York", dt.datetime(2025, 2, 28, tzinfo=UTC),
                             dt.datetime(2025, 3, 18, tzinfo=UTC))
    assert [t.isoformat() for t in got] == ["2025-03-03T13:00:00+00:00", "2025-03-10T12:00:00+00:00",
                                            "2025-03-17T12:00:00+00:00"]
    autumn = fire_times_between(cron, "America/New_York", dt.datetime(2025, 10, 26, tzinfo=UTC),
                                dt.datetime(2025, 11, 11, tzinfo=UTC))
    assert [t.hour for t in autumn] == [12, 13, 13]


def test_time_skipped_by_spring_forward_fires_once_at_three():
    cron = Cron.parse("30 2 * * *")
    got = fire_times_between(cron, "Europe/Berlin", dt.datetime(2025, 3, 29, tzinfo=UTC),
                             dt.datetime(2025, 3, 31, 12, tzinfo=UTC))
    local = [t.astimezone(ZoneInfo("Europe/Berlin")).strftime("%m-%d %H:%M") for t in got]
    assert local == ["03-29 02:30", "03-30 03:00", "03-31 02:30"]


def test_repeated_hour_fires_once():
    got = fire_times_between(Cron.parse("30 1 * * *"), "America/New_York", dt.datetime(2025, 11, 2, tzinfo=UTC),
                             dt.datetime(2025, 11, 3, tzinfo=UTC))
    assert got == [dt.datetime(2025, 11, 2, 5, 30, tzinfo=UTC)]  # 01:30 EDT, not again at 01:30 EST


def test_names_ranges_steps_and_the_classic_day_or_weekday_rule():
    assert Cron.parse("0 9 * JAN-MAR MON-FRI").months == {1, 2, 3}
    assert Cron.parse("*/20 8-10/2 * * sun,7").weekdays == {0}
    assert Cron.parse("0 0 1-5/2 * *").days == {1, 3, 5}
    # Both day fields restricted: either one fires (1st of the month OR a Friday).
    got = fire_times_between(Cron.parse("0 12 1 * FRI"), "UTC", dt.datetime(2025, 5, 28, tzinfo=UTC),
                             dt.datetime(2025, 6, 10, tzinfo=UTC))
    assert [t.day for t in got] == [30, 1, 6]
    assert next_fire_time(Cron.parse("0 0 29 FEB *"), "UTC", dt.datetime(2025, 3, 1, tzinfo=UTC)) == \
        dt.datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize("text,words", [
    ("61 * * * *", "minute field: 61 is out of range 0-59"),
    ("0 24 * * *", "hour field: 24 is out of range 0-23"),
    ("0 8 * * 1 2025", "must have 5 fields"),
    ("0 8 * * FUNDAY", "day of week field"),
    ("0 8 * XYZ *", "month field"),
    ("*/0 * * * *", "step '0' must be a positive number"),
    ("10-5 * * * *", "runs backwards"),
    ("0 0 31 FEB *", "no month in the month field has such a day"),
    ("0 8 ,1 * *", "empty item"),
])
def test_bad_cron_names_the_field(text, words):
    with pytest.raises(CronError) as caught:
        Cron.parse(text)
    assert words in str(caught.value)


def test_shortest_interval():
    assert Cron.parse("*/5 * * * *").shortest_interval() == dt.timedelta(minutes=5)
    assert Cron.parse("0,50 23 * * *").shortest_interval() == dt.timedelta(minutes=50)
    assert Cron.parse("59 23 * * *").shortest_interval() == dt.timedelta(days=1)
