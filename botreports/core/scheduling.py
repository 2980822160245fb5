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


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` for an unknown or unsafe name."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"unknown timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {name!r}") from None


def known_timezones() -> List[str]:
    return sorted(available_timezones())


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    """The UTC instant at which ``day`` begins in ``tz``."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone(tz)).astimezone(UTC)


def parse_instant(text: str, tz: str, *, end: bool) -> dt.datetime:
    """A date (whole local day; inclusive as an end) or an ISO datetime (naive = local)."""
    if not isinstance(text, str):
        raise ValueError("must be a date (YYYY-MM-DD) or an ISO 8601 datetime")
    text = text.strip()
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return local_midnight(day + dt.timedelta(days=1) if end else day, tz)
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 datetime") from None
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


def days_of(period: Period) -> List[dt.date]:
    """Every local date that a period touches, in order (none for an empty period)."""
    if period.end <= period.start:
        return []
    first = local_date(period.start, period.timezone)
    last = local_date(period.end - dt.timedelta(microseconds=1), period.timezone)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
