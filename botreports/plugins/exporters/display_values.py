"""Values as a person reads them in HTML and PDF: thousands separators,
percentages, durations, local dates and times in the report's timezone.

Conventions of the document model these rely on: ``percent`` columns and KPIs
with unit ``%`` hold fractions (0.25 is 25 %); ``duration`` columns hold
seconds; KPI units ``ms`` and ``s`` are durations; any other unit (``USD``,
``tokens``) is printed after the number.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Optional

from ...core.scheduling import inclusive_days, wall_clock_text, zone

MISSING = "–"
NUMERIC_TYPES = ("integer", "number", "percent", "duration")


def as_local_datetime(value, timezone: str) -> Optional[dt.datetime]:
    """A datetime (aware, naive UTC, or ISO text) in the report's timezone."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(zone(timezone))


def as_date(value) -> Optional[dt.date]:
    """A date from a date, a datetime or ISO text."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def format_number(value, decimals: int = 2) -> str:
    """``12,345`` for whole numbers, ``1,234.57`` otherwise."""
    if not _finite(value):
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{decimals}f}"


def format_percent(fraction) -> str:
    if not _finite(fraction):
        return MISSING
    return f"{fraction * 100:,.1f}%"


def format_duration(seconds) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if not _finite(seconds):
        return MISSING
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{seconds * 1000:,.0f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    if seconds < 3600:
        minutes, rest = divmod(int(round(seconds)), 60)
        return f"{sign}{minutes} min {rest:02d} s"
    hours, rest = divmod(int(round(seconds)), 3600)
    return f"{sign}{hours:,} h {rest // 60:02d} min"


def format_cell(value, column_type: str, timezone: str = "UTC") -> str:
    """One table cell as text, by its column's type."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column_type == "integer" and _finite(value):
        return f"{int(round(value)):,}"
    if column_type == "number":
        return format_number(value)
    if column_type == "percent":
        return format_percent(value)
    if column_type == "duration":
        return format_duration(value)
    if column_type == "datetime":
        local = as_local_datetime(value, timezone)
        return wall_clock_text(local, timezone, "%Y-%m-%d %H:%M:%S") if local else str(value)
    if column_type == "date":
        day = as_date(value)
        return day.isoformat() if day else str(value)
    if _finite(value):
        return format_number(value)
    return str(value)


def format_kpi_value(kpi) -> str:
    """A KPI's value with its unit: ``12,345``, ``25.0%``, ``1.2 s``, ``1,234.57 USD``; the reason
    it has none when it has none at all (``not recorded by this source``)."""
    if getattr(kpi, "unavailable", None):
        return kpi.unavailable
    value, unit = kpi.value, (kpi.unit or "").strip()
    if not _finite(value):
        return MISSING
    if unit == "%":
        return format_percent(value)
    if unit == "ms":
        return format_duration(value / 1000)
    if unit == "s":
        return format_duration(value)
    text = format_number(value)
    return f"{text} {unit}" if unit else text


#: Metrics where a rise is bad news (name fragments): their arrows are coloured the other way round.
LOWER_IS_BETTER = ("error", "cost", "latency", "abandon", "denied", "fail", "handoff", "handed_off",
                   "p50", "p95", "p99", "wait", "duration", "incident")


def kpi_parts(kpi) -> tuple:
    """``(number, unit)`` to print a KPI with its unit set smaller: ``("1,234.57", "USD")``."""
    unit = (kpi.unit or "").strip()
    if unit in ("%", "ms", "s") or not _finite(kpi.value) or getattr(kpi, "unavailable", None):
        return format_kpi_value(kpi), ""
    return format_number(kpi.value), unit


def change_of(kpi) -> Optional[dict]:
    """The change against the previous period: text, arrow, direction and whether it is good news."""
    change = kpi.change
    if not _finite(change):
        return None
    if abs(change) < 0.0005:
        return {"text": "0.0%", "direction": "flat", "arrow": "→", "tone": "neutral"}
    rising = change > 0
    lower_better = any(fragment in kpi.name.lower() for fragment in LOWER_IS_BETTER)
    tone = "good" if rising != lower_better else "bad"
    return {"text": f"{change * 100:+,.1f}%", "direction": "up" if rising else "down",
            "arrow": "▲" if rising else "▼", "tone": tone}


def period_text(period) -> str:
    """``1 Jan 2025 – 31 Jan 2025``: the first and last local day covered."""
    first, last = inclusive_days(period)
    if first == last:
        return _day(first)
    return f"{_day(first)} – {_day(last)}"


def _day(day: dt.date) -> str:
    return f"{day.day} {day.strftime('%b %Y')}"
