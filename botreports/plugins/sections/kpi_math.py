"""Changes against the previous period, shared by every section that shows KPIs."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

from ...core.models import Kpi, Kpis


def relative_change(value, previous) -> Optional[float]:
    """``(value - previous) / previous``, or None when there is no base to compare with."""
    if value is None or previous in (None, 0):
        return None
    return round((value - previous) / previous, 4)


def kpis_with_change(current: Mapping, previous: Mapping, metrics: Sequence[Tuple[str, str, str]]) -> Kpis:
    """A ``Kpis`` block of ``(name, label, unit)`` metrics, each with its change."""
    return Kpis([
        Kpi(name=name, label=label, value=current.get(name), unit=unit, previous=previous.get(name),
            change=relative_change(current.get(name), previous.get(name)))
        for name, label, unit in metrics
    ])


def rate(part, whole) -> Optional[float]:
    """``part / whole`` as a fraction rounded to 4 places, None when ``whole`` is 0."""
    if not whole or part is None:
        return None
    return round(part / whole, 4)
