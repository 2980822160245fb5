"""Compiles a validated ``MetricQuery`` into parameterised SQLite SQL.

Only names from the allow-list of ``core.custom_metrics`` are written into
the SQL text, each checked again here against that list; every value a user
gave travels as a parameter.
"""
from __future__ import annotations

from typing import List, Tuple

from ...core.custom_metrics import DERIVED, GROUP_COLUMNS, MetricQuery, fields_of
from ...core.models import Scope
from .sql_stats import percentile_row, percentile_sql
from .sql_time import DAY_MS, day_from_number, instant_from_ms, local_hour_sql, local_offset_case

_DERIVED_SQL = {
    ("conversations", "duration_ms"): "(ended_at - started_at)",
    ("llm_calls", "total_tokens"): "(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))",
}
_COMPARISONS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_AGGREGATES = {"sum": "sum", "avg": "avg", "min": "min", "max": "max"}


def _column(query: MetricQuery, name: str) -> str:
    if name not in fields_of(query.table):
        raise ValueError(f"{name} is not a field of {query.table}")
    if name in DERIVED.get(query.table, {}):
        return _DERIVED_SQL[(query.table, name)]
    return name


def _filters(query: MetricQuery) -> Tuple[str, list]:
    clauses, params = [], []
    for f in query.filters:
        column = _column(query, f.column)
        value = f.value
        if f.op == "is_null":
            clauses.append(f"{column} IS {'' if value else 'NOT '}NULL")
        elif f.op in ("in", "not_in"):
            clauses.append(f"{column} {'NOT ' if f.op == 'not_in' else ''}IN ({', '.join('?' for _ in value)})")
            params += [int(v) if isinstance(v, bool) else v for v in value]
        else:
            clauses.append(f"{column} {_COMPARISONS[f.op]} ?")
            params.append(int(value) if isinstance(value, bool) else value)
    return "".join(f" AND {c}" for c in clauses), params


def _group(query: MetricQuery, scope: Scope):
    """``(sql, params, to_group)`` for the metric's grouping."""
    time = query.time_column
    group = query.group_by
    if group is None:
        return "NULL", [], lambda value: None
    if group == "hour":
        sql, params = local_hour_sql(time, scope.period)
        return sql, params, instant_from_ms
    offset, params = local_offset_case(time, scope.period)
    day = f"(({time} + {offset}) / {DAY_MS})"
    if group == "day":
        return day, params, day_from_number
    if group == "week":  # the Monday of the local week
        return f"({day} - ({day} + 3) % 7)", params * 2, day_from_number
    if group == "month":
        return f"strftime('%Y-%m', ({time} + {offset}) / 1000, 'unixepoch')", params, lambda value: value
    if group == "weekday":
        return f"(({day} + 3) % 7)", params, int
    if group == "hour_of_day":
        return f"((({time} + {offset}) / 3600000) % 24)", params, int
    if group not in GROUP_COLUMNS[query.table]:
        raise ValueError(f"cannot group {query.table} by {group}")
    return group, [], lambda value: value


class CustomMetricQueries:
    """``custom_metric`` (see ``core.datasource.AnalyticsSource``)."""

    def custom_metric(self, scope: Scope, metric: MetricQuery) -> List[dict]:
        where, params = self.scoped(metric.table, scope)
        filter_sql, filter_params = _filters(metric)
        where += filter_sql
        params = params + filter_params
        group_sql, group_params, to_group = _group(metric, scope)
        field = _column(metric, metric.field) if metric.field else None
        order = "g" if metric.is_time_grouped else "v DESC, g"
        limit = "" if metric.is_time_grouped else f" LIMIT {int(metric.limit)}"
        if metric.measure.startswith("p"):
            percentile = int(metric.measure[1:])
            rows = [(r["key"], r[f"p{percentile}"]) for r in map(
                lambda row: percentile_row(row, (percentile,), ""),
                self.query(percentile_sql(metric.table, field, group_sql, where, (percentile,)),
                           group_params + params))]
            rows.sort(key=(lambda r: (r[0] is None, r[0])) if metric.is_time_grouped
                      else (lambda r: (-(r[1] or 0), str(r[0]))))
            if not metric.is_time_grouped:
                rows = rows[:metric.limit]
            if metric.group_by is None and not rows:
                rows = [(None, None)]  # like the other measures: one row for the scope, even when empty
        else:
            if metric.measure == "count":
                value = f"count({field})" if field else "count(*)"
            elif metric.measure == "distinct":
                value = f"count(DISTINCT {field})"
            else:
                value = f"{_AGGREGATES[metric.measure]}({field})"
            # Without a grouping there is no GROUP BY, so an empty scope still gives its one row (0).
            grouping = f" GROUP BY g ORDER BY {order}{limit}" if metric.group_by else ""
            rows = self.query(f"SELECT {group_sql} AS g, {value} AS v FROM {metric.table} WHERE {where}{grouping}",
                              group_params + params)
        return [{"group": to_group(g) if g is not None else None,
                 "value": round(v, 6) if isinstance(v, float) else v} for g, v in rows]
