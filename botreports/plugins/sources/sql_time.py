"""SQL for local time: the local-day number of an epoch-millisecond column in
a report's timezone, exact across DST, as a CASE over the few instants at
which the zone's offset changes inside the period."""
from __future__ import annotations

import datetime as dt
from typing import List, Tuple

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


def day_from_number(number: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(number))


def epoch_ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)
