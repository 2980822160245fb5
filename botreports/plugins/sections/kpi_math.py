"""Rates and changes against the previous period, shared by every section that shows KPIs.

Every derived figure is computed from exact values and never rounded here: each exporter
rounds when it presents a value (HTML and PDF print one decimal of a percentage, JSON carries
the full precision), so a change is never computed from a rounded rate.
"""
from __future__ import annotations

import datetime as dt
from typing import Mapping, Optional, Sequence, Tuple

from ...core.models import Kpi, Kpis, Period, Scope


def relative_change(value, previous) -> Optional[float]:
    """``(value - previous) / previous`` of the exact values, or None when there is no base to
    compare with (no previous value, or a previous value of 0)."""
    if value is None or previous in (None, 0):
        return None
    return (value - previous) / previous


def kpis_with_change(current: Mapping, previous: Mapping, metrics: Sequence[Tuple[str, str, str]]) -> Kpis:
    """A ``Kpis`` block of ``(name, label, unit)`` metrics, each with its change."""
    return Kpis([
        Kpi(name=name, label=label, value=current.get(name), unit=unit, previous=previous.get(name),
            change=relative_change(current.get(name), previous.get(name)))
        for name, label, unit in metrics
    ])


def rate(part, whole) -> Optional[float]:
    """``part / whole`` as an exact fraction, None when ``whole`` is 0 or unknown."""
    if not whole or part is None:
        return None
    return part / whole


def comparison_period(period: Period, now: Optional[dt.datetime] = None) -> Period:
    """What a period's changes compare with: the same local calendar span just before
    (``Period.previous``), cut to as long as the part of the period that has passed when the
    period is still running (today so far compares with yesterday until the same hour)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    previous = period.previous()
    if now >= period.end:
        return previous
    passed = max(now - period.start, dt.timedelta(0))
    return Period(previous.start, min(previous.end, previous.start + passed), previous.timezone)


def report_now(ctx) -> dt.datetime:
    """The instant the report is computed as of (``SectionContext.now``; the clock without one)."""
    return getattr(ctx, "now", None) or dt.datetime.now(dt.timezone.utc)


def previous_scope(ctx) -> Scope:
    """The report's scope over its comparison period (``comparison_period``)."""
    return ctx.scope.with_period(comparison_period(ctx.scope.period, report_now(ctx)))
