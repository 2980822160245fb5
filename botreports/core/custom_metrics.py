"""Custom metrics declared as data: an allow-list of tables, fields, measures,
filter operators and groupings over the canonical schema, and the validation
that turns a request's ``custom_metric`` section into a ``MetricQuery``.

A data source compiles a ``MetricQuery`` into parameterised SQL from these
names alone; no text of the request ever reaches SQL.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

import attrs

from .analytics_schema import TABLES

MEASURES = ("count", "distinct", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99")
#: Measures that need a numeric field.
NUMERIC_MEASURES = ("sum", "avg", "min", "max", "p50", "p90", "p95", "p99")
TIME_GROUPS = ("hour", "day", "week", "month", "weekday", "hour_of_day")
OPERATORS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null")
CHARTS = ("bar", "line", "none")
MAX_FILTERS = 10
MAX_IN_VALUES = 100

#: The time column each table is bucketed and filtered by.
TIME_COLUMNS = {"messages": "created_at", "conversations": "started_at", "llm_calls": "created_at",
                "system_samples": "created_at", "audit_events": "created_at"}

#: Columns a custom metric may group by, per table, with short aliases (bot -> bot_id).
#: Identifiers of people (user_id, actor, ip) and of single records are left out on purpose.
GROUP_COLUMNS = {
    "messages": ("bot_id", "channel", "direction", "intent", "is_error"),
    "conversations": ("bot_id", "channel", "status", "satisfaction"),
    "llm_calls": ("bot_id", "model", "success"),
    "system_samples": ("host",),
    "audit_events": ("bot_id", "action", "result", "resource_type"),
}
ALIASES = {"bot": "bot_id"}

#: Derived fields: name -> (kind, the columns it is computed from). Sources know their formulas.
DERIVED = {
    "conversations": {"duration_ms": ("integer", ("started_at", "ended_at"))},
    "llm_calls": {"total_tokens": ("integer", ("input_tokens", "output_tokens"))},
}


@attrs.frozen
class Filter:
    """``column op value``; ``value`` is a tuple for ``in``/``not_in``, a bool for ``is_null``."""

    column: str
    op: str
    value: Any


@attrs.frozen
class MetricQuery:
    """A validated custom metric: what to measure over which rows, grouped how."""

    table: str
    measure: str
    field: Optional[str] = None
    filters: Tuple[Filter, ...] = ()
    group_by: Optional[str] = None
    limit: int = 50

    @property
    def time_column(self) -> str:
        return TIME_COLUMNS[self.table]

    @property
    def is_time_grouped(self) -> bool:
        return self.group_by in TIME_GROUPS


def fields_of(table: str) -> Dict[str, str]:
    """``{field: kind}`` a custom metric may use on ``table`` (stored and derived)."""
    kinds = {name: spec.kind for name, spec in TABLES[table].items()}
    kinds.update({name: kind for name, (kind, _cols) in DERIVED.get(table, {}).items()})
    return kinds


def _value_ok(kind: str, value: Any) -> bool:
    if kind in ("text",):
        return isinstance(value, str) and len(value) <= 200
    if kind == "boolean":
        return isinstance(value, bool) or value in (0, 1)
    if kind in ("integer", "number", "timestamp"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return False


def _filters(table: str, raw: Any, problems: list) -> Tuple[Filter, ...]:
    if raw in (None, {}):
        return ()
    if not isinstance(raw, Mapping):
        problems.append(("filters", 'must be an object such as {"channel": "web", "latency_ms": {"gt": 1000}}'))
        return ()
    if len(raw) > MAX_FILTERS:
        problems.append(("filters", f"at most {MAX_FILTERS} filters"))
        return ()
    kinds = fields_of(table)
    result = []
    for column, condition in raw.items():
        where = f"filters.{column}"
        column = ALIASES.get(column, column)
        if column not in kinds:
            problems.append((where, f"unknown field of {table}; valid: {', '.join(sorted(kinds))}"))
            continue
        kind = kinds[column]
        if not isinstance(condition, Mapping):
            # a scalar means equality, a list means one of
            condition = {"in": condition} if isinstance(condition, list) else {"eq": condition}
        for op, value in condition.items():
            if op not in OPERATORS:
                problems.append((f"{where}.{op}", f"unknown operator; valid: {', '.join(OPERATORS)}"))
                continue
            if op == "is_null":
                if not isinstance(value, bool):
                    problems.append((f"{where}.{op}", "must be true or false"))
                    continue
                result.append(Filter(column, op, value))
                continue
            if op in ("in", "not_in"):
                if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
                    problems.append((f"{where}.{op}", f"must be a list of 1 to {MAX_IN_VALUES} values"))
                    continue
                if not all(_value_ok(kind, v) for v in value):
                    problems.append((f"{where}.{op}", f"every value must be of type {kind}"))
                    continue
                result.append(Filter(column, op, tuple(value)))
                continue
            if op in ("gt", "gte", "lt", "lte") and kind not in ("integer", "number", "timestamp"):
                problems.append((f"{where}.{op}", f"compares numbers only; {column} is {kind}"))
                continue
            if not _value_ok(kind, value):
                problems.append((f"{where}.{op}", f"must be of type {kind}"))
                continue
            result.append(Filter(column, op, value))
    return tuple(result)


def parse_metric(options: Mapping[str, Any]) -> Tuple[Optional[MetricQuery], List[Tuple[str, str]]]:
    """``(MetricQuery, [])`` for valid options, else ``(None, [(field, problem), ...])``."""
    problems: List[Tuple[str, str]] = []
    table = options.get("table")
    if table not in TIME_COLUMNS:
        problems.append(("table", f"must be one of {', '.join(TIME_COLUMNS)}"))
        return None, problems
    kinds = fields_of(table)
    measure = options.get("measure", "count")
    if measure not in MEASURES:
        problems.append(("measure", f"must be one of {', '.join(MEASURES)}"))
    field = options.get("field")
    if field is not None:
        field = ALIASES.get(field, field)
        if field not in kinds:
            problems.append(("field", f"unknown field of {table}; valid: {', '.join(sorted(kinds))}"))
            field = None
    if measure in NUMERIC_MEASURES:
        if field is None and not any(p[0] == "field" for p in problems):
            problems.append(("field", f"is required for measure {measure}"))
        elif field is not None and kinds[field] not in ("integer", "number", "boolean"):
            problems.append(("field", f"measure {measure} needs a numeric field; {field} is {kinds[field]}"))
    elif measure == "distinct" and field is None and not any(p[0] == "field" for p in problems):
        problems.append(("field", "is required for measure distinct"))
    group_by = options.get("group_by")
    if group_by is not None and group_by != "none":
        group_by = ALIASES.get(group_by, group_by)
        allowed = TIME_GROUPS + GROUP_COLUMNS[table]
        if group_by not in allowed:
            shown = TIME_GROUPS + tuple("bot" if c == "bot_id" else c for c in GROUP_COLUMNS[table])
            problems.append(("group_by", f"must be one of {', '.join(shown)} for {table}"))
    else:
        group_by = None
    filters = _filters(table, options.get("filters"), problems)
    limit = options.get("limit", 50)
    if problems:
        return None, problems
    return MetricQuery(table=table, measure=measure, field=field, filters=filters, group_by=group_by,
                       limit=limit), []


def validate_options(options: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """The ``Section.validate`` callable of ``custom_metric``: problems only."""
    return parse_metric(options)[1]
