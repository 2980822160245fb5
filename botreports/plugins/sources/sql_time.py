"""SQL for local time: the local-day number of an epoch-millisecond column in
a report's timezone, exact across DST, as a CASE over the few instants at
which the zone's offset changes inside the period."""
from __future__ import annotations

import datetime as dt
from typing import List, Optional, Tuple

from ...core.models import Period
from ...core.scheduling import offset_changes

DAY_MS = 86_400_000
EPOCH = dt.date(1970, 1, 1)


def local_offset_case(column: str, period: Period, margin: dt.timedelta = dt.timedelta(0)) -> Tuple[str, List[int]]:
    """``(sql, params)``: the zone's UTC offset in ms at each value of ``column``."""
    first, changes = offset_changes(period.timezone, period.start - margin, period.end + margin)
    if not changes:
        return "?", [first * 1000]
    parts, params = ["CASE"], []
    previous = first
    for instant, offset in changes:
        parts.append(f"WHEN {column} < ? THEN ?")
        params += [int(instant.timestamp() * 1000), previous * 1000]
        previous = offset
    parts.append("ELSE ? END")
    params.append(previous * 1000)
    return " ".join(parts), params


def local_day_sql(column: str, period: Period, margin: dt.timedelta = dt.timedelta(0)) -> Tuple[str, List[int]]:
    """``(sql, params)``: the local day of ``column`` as days since 1970-01-01."""
    offset, params = local_offset_case(column, period, margin)
    return f"(({column} + {offset}) / {DAY_MS})", params


def local_day_ranges(period: Period) -> Optional[List[Tuple[int, int, int]]]:
    """The period cut wherever its zone's local day changes: ``(local day, start ms, end ms)``
    in time order, each instant in the range whose day ``local_day_sql`` gives it (a day comes
    twice where clocks go back across midnight). None before 1970, where SQLite's division
    truncates towards zero and the days would differ."""
    start, end = epoch_ms(period.start), epoch_ms(period.end)
    first, changes = offset_changes(period.timezone, period.start, period.end)
    cuts = [(start, first * 1000)] + [(epoch_ms(instant), offset * 1000) for instant, offset in changes]
    if start + min(offset for _, offset in cuts) < 0:
        return None
    ranges = []
    for k, (lo, offset) in enumerate(cuts):
        hi = cuts[k + 1][0] if k + 1 < len(cuts) else end
        while lo < hi:
            day = (lo + offset) // DAY_MS
            until = min(hi, (day + 1) * DAY_MS - offset)
            ranges.append((day, lo, until))
            lo = until
    return ranges


def buckets_fit(period: Period, bucket_ms: int = 900_000) -> bool:
    """Whether whole UTC buckets of ``bucket_ms`` tile ``period`` and never straddle an offset change
    of its zone, so that folding buckets into local days and hours is exact."""
    if epoch_ms(period.start) % bucket_ms or epoch_ms(period.end) % bucket_ms:
        return False
    first, changes = offset_changes(period.timezone, period.start, period.end)
    return (first * 1000) % bucket_ms == 0 and all(
        epoch_ms(instant) % bucket_ms == 0 and (offset * 1000) % bucket_ms == 0 for instant, offset in changes)


def day_from_number(number: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(number))


def epoch_ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


HOUR_MS = 3_600_000


def local_hour_sql(column: str, period: Period) -> Tuple[str, List[int]]:
    """``(sql, params)``: the UTC epoch ms at which the local clock hour of ``column`` began.

    Distinct for the two 01:00 hours of an autumn night, and exact for zones
    whose offset is not a whole number of hours (Asia/Kathmandu) or whose clocks
    move by half an hour (Australia/Lord_Howe).
    """
    offset, params = local_offset_case(column, period)
    start, start_params = _hour_start_offset(column, period, offset, params)
    return f"((({column} + {offset}) / {HOUR_MS}) * {HOUR_MS} - {start})", params + start_params


def _hour_start_offset(column: str, period: Period, offset: str, params: List[int]) -> Tuple[str, List[int]]:
    """The offset that turns the local start of ``column``'s hour back into UTC: the offset at
    ``column`` itself, except just after a change that lands off the hour. When Lord Howe's
    clocks go from 02:00 back to 01:30, the hour 01:00 began before the change, at the old
    offset; when they go from 02:00 on to 02:30, the hour 02:00 (never shown) counts from the
    change, at the old offset too, as Python's ``zoneinfo`` reads such a time."""
    first, changes = offset_changes(period.timezone, period.start, period.end)
    parts, extra = ["CASE"], []
    previous = first
    for instant, after in changes:
        at = int(instant.timestamp() * 1000)
        # From the change to the next whole local hour, the hour began at the offset before
        # (where the clock went back past the hour, as in Chatham, the hour began again after it).
        until = at + (-(at + after * 1000)) % HOUR_MS
        if until > at:
            parts.append(f"WHEN {column} >= ? AND {column} < ? THEN ?")
            extra += [at, until, previous * 1000]
        previous = after
    if not extra:
        return offset, params
    return " ".join(parts + [f"ELSE {offset} END"]), extra + params


def local_weekday_hour_sql(column: str, period: Period) -> Tuple[str, str, List[int]]:
    """``(weekday_sql, hour_sql, params)``: local weekday (0 = Monday) and hour (0-23) of ``column``.

    1970-01-01 was a Thursday, hence the ``+ 3``.
    """
    offset, params = local_offset_case(column, period)
    weekday = f"((({column} + {offset}) / {DAY_MS} + 3) % 7)"
    hour = f"((({column} + {offset}) / 3600000) % 24)"
    return weekday, hour, params + params


def instant_from_ms(ms) -> dt.datetime:
    """Epoch ms -> an aware UTC datetime (None stays None)."""
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
