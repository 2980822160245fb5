"""SQL for exact statistics that SQLite has no function for.

Percentiles are computed from a per-group histogram of exact values
(``GROUP BY group, value``) and a running sum over it: the nearest-rank
percentile is the smallest value whose cumulative count reaches
``ceil(p * n / 100)``, i.e. ``cum * 100 >= p * n``. The histogram is read
from a covering index in value order, so the cost is a scan of the index,
and the sort happens over distinct values (a few thousand), not events.
This is PostgreSQL's ``percentile_disc``, value for value.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

from ...core.datasource import PERCENTILES


def percentile_sql(table: str, value: str, group: str, where: str,
                   percentiles: Sequence[int] = PERCENTILES) -> str:
    """``SELECT g, n, avg, min, max, p...`` per group ``group`` of the non-null ``value``s.

    ``where`` is a parameterised clause; the query takes the group's and the
    where clause's parameters, in that order.
    """
    picks = ", ".join(f"min(CASE WHEN cum * 100 >= n * {int(p)} THEN v END)" for p in percentiles)
    return (
        f"WITH h AS (SELECT {group} AS g, {value} AS v, count(*) AS c FROM {table}"
        f" WHERE {where} AND {value} IS NOT NULL GROUP BY g, v),"
        f" r AS (SELECT g, v, c, sum(c) OVER (PARTITION BY g ORDER BY v ROWS UNBOUNDED PRECEDING) AS cum,"
        f" sum(c) OVER (PARTITION BY g) AS n FROM h)"
        f" SELECT g, max(n), sum(v * c) * 1.0 / max(n), min(v), max(v), {picks} FROM r GROUP BY g"
    )


def histogram_percentiles(histogram: Iterable[Sequence], percentiles: Sequence[int]) -> dict:
    """``{p: value}`` of an exact histogram, rows ``(value, count)`` (a null value is skipped).

    The same nearest rank as ``percentile_sql`` (smallest value whose cumulative count reaches
    ``p * n / 100``), folded in Python where the histogram is small or is read anyway; every
    percentile is None when there are no values.
    """
    bars = sorted((value, count) for value, count in histogram if value is not None)
    n = sum(count for _, count in bars)
    result = dict.fromkeys(percentiles)
    if not n:
        return result
    wanted = sorted(percentiles)
    cum = 0
    for value, count in bars:
        cum += count
        while wanted and cum * 100 >= n * wanted[0]:
            result[wanted.pop(0)] = value
        if not wanted:
            break
    return result


def histogram_median(histogram: Iterable[Sequence]) -> Optional[float]:
    """The median of an exact histogram, rows ``(value, count)`` (a null value is skipped): the
    middle value of an odd count, the mean of the two middle values of an even one (what
    PostgreSQL's ``percentile_cont(0.5)`` gives); None when there are no values."""
    bars = sorted((value, count) for value, count in histogram if value is not None)
    n = sum(count for _, count in bars)
    if not n:
        return None
    lower_rank, upper_rank = (n + 1) // 2, n // 2 + 1  # 1-based ranks of the two middle values
    lower = upper = None
    cum = 0
    for value, count in bars:
        cum += count
        if lower is None and cum >= lower_rank:
            lower = value
        if cum >= upper_rank:
            upper = value
            break
    return (lower + upper) / 2


def histogram_row(key, bars: Sequence[Sequence], percentiles: Sequence[int] = PERCENTILES) -> tuple:
    """The row ``percentile_sql`` gives for a group, from the group's exact histogram: ``(key, n,
    avg, min, max, p...)``; ``bars`` are ``(value, count)`` in value order, nulls left out."""
    n = sum(count for _, count in bars)
    found = histogram_percentiles(bars, percentiles)
    return (key, n, sum(value * count for value, count in bars) / n, bars[0][0], bars[-1][0],
            *(found[p] for p in percentiles))


def percentile_row(row: Sequence, percentiles: Sequence[int] = PERCENTILES, suffix: str = "_ms") -> dict:
    """A row of ``percentile_sql`` -> ``{key, count, avg, min, max, p50, ...}`` (with ``suffix``)."""
    key, n, avg, low, high, *values = row
    result = {"key": key, "count": n, f"avg{suffix}": avg,
              f"min{suffix}": low, f"max{suffix}": high}
    for p, value in zip(percentiles, values):
        result[f"p{p}{suffix}"] = value
    return result
