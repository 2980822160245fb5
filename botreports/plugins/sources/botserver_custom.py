"""Custom metrics (core/custom_metrics.py) compiled to PostgreSQL over the
botserver views. Only allow-listed names reach the SQL text; every value is a
named parameter."""
from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Tuple

from ...core.custom_metrics import DERIVED, MetricQuery
from .botserver_views import Views, local, local_day, local_hour_start, scope_where

#: The tables a custom metric may read (system samples live in InfluxDB, not here).
TABLES = ("messages", "conversations", "llm_calls", "audit_events")
#: How each table takes the channel filter (see ``scope_where``).
CHANNEL_MODE = {"messages": "column", "conversations": "column", "llm_calls": "conversation",
                "audit_events": "none"}
#: Expressions of derived and boolean fields (booleans count as 0/1, as in SQLite).
EXPRESSIONS = {
    ("conversations", "duration_ms"): "(extract(epoch FROM (ended_at - started_at)) * 1000)::bigint",
    ("llm_calls", "total_tokens"): "(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))",
    ("llm_calls", "success"): "success::int",
}
TIMESTAMPS = {"created_at", "started_at", "ended_at"}
COMPARE = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _column(table: str, name: str) -> str:
    expression = EXPRESSIONS.get((table, name))
    if expression:
        return expression
    if name in TIMESTAMPS:
        # Filters compare timestamps as epoch milliseconds, as the canonical schema stores them.
        return f"(extract(epoch FROM {name}) * 1000)::bigint"
    return name


def _group(metric: MetricQuery) -> str:
    t = metric.time_column
    return {
        "hour": local_hour_start(t),
        "day": local_day(t),
        "week": f"date_trunc('week', {local(t)})::date",
        "month": f"to_char({local(t)}, 'YYYY-MM')",
        "weekday": f"(extract(isodow FROM {local(t)})::int - 1)",
        "hour_of_day": f"extract(hour FROM {local(t)})::int",
    }.get(metric.group_by, metric.group_by)


def _measure(metric: MetricQuery) -> str:
    if metric.measure == "count":
        return f"count({_column(metric.table, metric.field)})" if metric.field else "count(*)"
    field = _column(metric.table, metric.field)
    if metric.measure == "distinct":
        return f"count(DISTINCT {field})"
    if metric.measure == "avg":
        return f"sum({field})::float8 / nullif(count({field}), 0)"
    if metric.measure in ("sum", "min", "max"):
        return f"{metric.measure}({field})"
    fraction = int(metric.measure[1:]) / 100 - 1e-9  # the exact nearest rank, see botserver_pg.FRACTIONS
    return f"percentile_disc({fraction!r}::float8) WITHIN GROUP (ORDER BY {field})"


def compile_metric(scope, metric: MetricQuery, views: Views,
                   unrecorded: FrozenSet[str] = frozenset()) -> Optional[Tuple[str, Dict]]:
    """``(sql, extra params)`` selecting ``(group, value)`` rows; None if botserver lacks the data.

    ``unrecorded`` holds the measures the source has no value for (``table.column``
    or a whole table): a metric reading one of them has no data, rather than a zero.
    """
    if metric.table not in TABLES or metric.table in unrecorded:
        return None
    used = {metric.field, metric.group_by} | {f.column for f in metric.filters}
    read = set(used) | {c for name in used for c in DERIVED.get(metric.table, {}).get(name, ("", ()))[1]}
    if any(f"{metric.table}.{column}" in unrecorded for column in read if column):
        return None
    where = scope_where(scope, metric.time_column, alias="t", channel=CHANNEL_MODE[metric.table])
    params: Dict = {}
    for index, item in enumerate(metric.filters):
        column, name = _column(metric.table, item.column), f"f{index}"
        value = int(item.value) if isinstance(item.value, bool) and item.column in ("success",) else item.value
        if item.op == "is_null":
            where += f" AND {column} IS {'' if item.value else 'NOT '}NULL"
            continue
        if item.op in ("in", "not_in"):
            where += f" AND {'NOT ' if item.op == 'not_in' else ''}({column} = ANY(%({name})s))"
            params[name] = list(value)
            continue
        where += f" AND {column} {COMPARE[item.op]} %({name})s"
        params[name] = value
    group = _group(metric) if metric.group_by else "NULL::text"
    if metric.group_by and not metric.is_time_grouped:
        group = _column(metric.table, metric.group_by)
    measure = _measure(metric)
    # Without a grouping there is no GROUP BY: an empty scope still gives its one row.
    grouping = " GROUP BY g ORDER BY g" if metric.is_time_grouped else (" GROUP BY g" if metric.group_by else "")
    table = getattr(views, metric.table)
    if metric.table == "conversations" and "message_count" in used:
        # Counted from the messages (botserver never fills user_sessions.message_count).
        table = views.counted_conversations(
            "AND session_id IN (SELECT s.id FROM user_sessions s WHERE s.created_at >= %(start)s"
            " AND s.created_at < %(end)s)")
    sql = f"SELECT {group} AS g, {measure} AS v FROM {table} t WHERE {where}{grouping}"
    return sql, params


def order_groups(metric: MetricQuery, rows):
    """Rows of a grouping by value, largest first (ties by group as text), cut at the metric's limit.

    Sorted here rather than in SQL so that text ties order by code point
    whatever the database's collation.
    """
    if metric.is_time_grouped or not metric.group_by:
        return rows
    ordered = sorted(rows, key=lambda r: (r[1] is None, -(r[1] or 0), r[0] is not None, str(r[0])))
    return ordered[:metric.limit]
