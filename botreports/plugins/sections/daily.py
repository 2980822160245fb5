"""Charts over every local day of a report's period, quiet days included, so a
time axis never skips a day."""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence, Tuple

from ...core.models import Chart, Series
from ...core.scheduling import days_of


def daily_line_chart(title: str, period, rows: Iterable[Mapping], series: Sequence[Tuple[str, str]],
                     y_label: str, missing=0) -> Chart:
    """A line chart of ``rows`` (each with a ``day``) over the period's days.

    ``series`` is ``[(label, key), ...]``; a day without a row shows ``missing``
    (0 for counts, None where "no value" differs from zero).
    """
    found = {row["day"]: row for row in rows}
    days = days_of(period)
    return Chart(title, "line", [day.isoformat() for day in days],
                 [Series(label, [found.get(day, {}).get(key, missing) for day in days]) for label, key in series],
                 x_label="Day", y_label=y_label)
