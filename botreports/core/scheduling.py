"""Time maths: report periods in an IANA timezone, relative periods, and the
offset changes of a zone inside a period (for exact local-day bucketing)."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import List, Tuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from .models import Period

UTC = dt.timezone.utc
RELATIVE_PERIODS = (
    "previous_day",
    "previous_week",
    "previous_month",
    "last_7_days",
    "last_30_days",
    "month_to_date",
)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` for an unknown or unsafe name."""
    # Checked before the cache, which would fail on an unhashable value (a JSON list or object).
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown timezone {name!r}")
    return _zone(name)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {name!r}") from None


def known_timezones() -> List[str]:
    return sorted(available_timezones())


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    """The UTC instant at which ``day`` begins in ``tz``."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone(tz)).astimezone(UTC)


#: The years a date may name. Outside them a period's end (the day after), its previous period
#: (for changes) or its conversion to UTC would leave what ``datetime`` can hold; before 1970
#: there is no bot data (timestamps are Unix epoch milliseconds).
SUPPORTED_YEARS = (1970, 9998)


def parse_instant(text: str, tz: str, *, end: bool) -> dt.datetime:
    """A date (whole local day; inclusive as an end) or an ISO datetime (naive = local).

    ``ValueError`` for text that is neither, or that names a year outside ``SUPPORTED_YEARS``.
    """
    if not isinstance(text, str):
        raise ValueError("must be a date (YYYY-MM-DD) or an ISO 8601 datetime")
    text = text.strip()
    try:
        value = (dt.date.fromisoformat(text) if len(text) == 10
                 else dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime") from None
    # The year as written, on the text's own clock: within the supported years every offset and
    # zone converts to UTC (a year-1 datetime at +14:00 would not).
    first, last = SUPPORTED_YEARS
    if not first <= value.year <= last:
        raise ValueError(f"{text!r} is out of range: dates must be from {first}-01-01 to {last}-12-31")
    if not isinstance(value, dt.datetime):  # a whole local day
        return local_midnight(value + dt.timedelta(days=1) if end else value, tz)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone(tz))
    return value.astimezone(UTC)


def relative_period(name: str, now: dt.datetime, tz: str) -> Period:
    """The period ``name`` (one of RELATIVE_PERIODS) as seen at instant ``now`` in ``tz``."""
    today = now.astimezone(zone(tz)).date()
    if name == "previous_day":
        start, end = today - dt.timedelta(days=1), today
    elif name == "previous_week":
        monday = today - dt.timedelta(days=today.weekday())
        start, end = monday - dt.timedelta(days=7), monday
    elif name == "previous_month":
        first = today.replace(day=1)
        start, end = (first - dt.timedelta(days=1)).replace(day=1), first
    elif name == "last_7_days":
        start, end = today - dt.timedelta(days=7), today
    elif name == "last_30_days":
        start, end = today - dt.timedelta(days=30), today
    elif name == "month_to_date":
        return Period(local_midnight(today.replace(day=1), tz), now.astimezone(UTC), tz)
    else:
        raise ValueError(f"unknown period {name!r}; expected one of {', '.join(RELATIVE_PERIODS)}")
    return Period(local_midnight(start, tz), local_midnight(end, tz), tz)


def offset_changes(tz: str, start: dt.datetime, end: dt.datetime) -> Tuple[int, List[Tuple[dt.datetime, int]]]:
    """The UTC offset (seconds) of ``tz`` at ``start`` and every change inside ``[start, end)``.

    Returns ``(first_offset, [(instant, new_offset), ...])``. Changes are found
    by hourly probing and then bisected to the second, so the result is exact
    for every real zone (offsets change at most a few times a year).
    """
    zi = zone(tz)

    def offset_at(instant):
        return int(instant.astimezone(zi).utcoffset().total_seconds())

    first = offset_at(start)
    changes = []
    step = dt.timedelta(hours=1)
    previous_instant, previous_offset = start, first
    probe = start + step
    while previous_instant < end:
        probe = min(probe, end)
        current = offset_at(probe)
        if current != previous_offset:
            lo, hi = previous_instant, probe
            while (hi - lo) > dt.timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if offset_at(mid) == previous_offset:
                    lo = mid
                else:
                    hi = mid
            hi = hi.replace(microsecond=0)
            if hi < end:
                changes.append((hi, current))
            previous_offset = current
        previous_instant = probe
        probe = probe + step
    return first, changes


def local_date(instant: dt.datetime, tz: str) -> dt.date:
    return instant.astimezone(zone(tz)).date()


def hours_of(period: Period) -> List[dt.datetime]:
    """Every local clock hour that a period touches, in order, as the aware UTC instant it
    began (none for an empty period): the hours an hourly grouping of the period's events can
    give. Where clocks go back an hour comes twice (two instants); where they go forward one
    is skipped. An hour holding an offset change off the hour began at the offset before it
    (Lord Howe's 01:00 when clocks go from 02:00 back to 01:30), as ``zoneinfo`` reads it."""
    if period.end <= period.start:
        return []
    hour = 3_600_000
    start, end = _ms(period.start), _ms(period.end)
    first, changes = offset_changes(period.timezone, period.start, period.end)
    cuts = [(start, first * 1000)] + [(_ms(instant), offset * 1000) for instant, offset in changes]
    # From a change to the next whole local hour, the hour began at the offset before the change.
    early = [(at, at + (-(at + after)) % hour, before)
             for (at, after), (_, before) in zip(cuts[1:], cuts)]

    def began(t: int, offset: int) -> int:
        hour_offset = next((before for at, until, before in early if at <= t < until), offset)
        return (t + offset) // hour * hour - hour_offset

    found = set()
    for k, (lo, offset) in enumerate(cuts):
        hi = cuts[k + 1][0] if k + 1 < len(cuts) else end
        # The hour is the same between two local hour marks: one look in each stretch suffices.
        marks = {lo} | {until for at, until, _ in early if lo <= until < hi}
        mark = lo + (-(lo + offset)) % hour
        while mark < hi:
            marks.add(mark)
            mark += hour
        found.update(began(t, offset) for t in marks)
    return [dt.datetime.fromtimestamp(ms / 1000, UTC) for ms in sorted(found)]


def _ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def wall_clock_text(instant: dt.datetime, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``instant`` as a clock in ``tz`` reads it (``fmt``), with the zone's abbreviation where
    that reading comes twice because clocks went back: ``2025-11-02 01:30 EDT`` and
    ``2025-11-02 01:30 EST`` are an hour apart. A naive ``instant`` is UTC."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    local = instant.astimezone(zone(tz))
    text = local.strftime(fmt)
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        text += f" {local.tzname()}"
    return text


def inclusive_days(period: Period) -> Tuple[dt.date, dt.date]:
    """The first and the last local date of ``period`` (its end is exclusive, so the last date is
    the one just before it): the ``YYYY-MM-DD`` pair a user asked for, or would have."""
    first = local_date(period.start, period.timezone)
    last = local_date(max(period.end - dt.timedelta(microseconds=1), period.start), period.timezone)
    return first, last


def days_of(period: Period) -> List[dt.date]:
    """Every local date that a period touches, in order (none for an empty period)."""
    if period.end <= period.start:
        return []
    first, last = inclusive_days(period)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def previous_period(period: Period) -> Period:
    """The period a report's changes compare with: the same local calendar span just before.

    - whole calendar months (from a 1st to a 1st, local midnights): as many months before
      (March compares with February, a quarter with the quarter before);
    - whole local days: as many local days before (a day with the day before, a week with the
      week before, a 23- or 25-hour DST day with the local day before, whatever its length);
    - anything else (a start or an end off local midnight): the same duration just before.
    """
    tz = zone(period.timezone)
    start, end = period.start.astimezone(tz), period.end.astimezone(tz)
    midnight = dt.time(0)
    if period.end <= period.start or start.time() != midnight or end.time() != midnight:
        length = period.end - period.start
        return Period(period.start - length, period.start, period.timezone)
    first, last = start.date(), end.date()
    if first.day == 1 and last.day == 1:
        months = (last.year - first.year) * 12 + last.month - first.month
        index = first.year * 12 + first.month - 1 - months
        before = dt.date(index // 12, index % 12 + 1, 1)
    else:
        before = first - (last - first)
    return Period(local_midnight(before, period.timezone), period.start, period.timezone)


def elapsed_part(period: Period, now: dt.datetime) -> Period:
    """The part of ``period`` that has happened by ``now``: the period itself when it is over,
    ``[start, now)`` while it runs, empty (``[start, start)``) before it starts."""
    end = min(period.end, max(period.start, now.astimezone(UTC)))
    return Period(period.start, end, period.timezone)
