"""The ``custom_metric`` section: a metric declared in the request, never coded.

``{"type": "custom_metric", "title": "Slow replies per bot", "table": "messages",
"measure": "count", "filters": {"direction": "out", "latency_ms": {"gt": 3000}},
"group_by": "bot", "chart": "bar"}`` is checked against the allow-list of
``core.custom_metrics`` when the request arrives (a 400 naming the option),
then compiled by the data source into parameterised SQL.
"""
from __future__ import annotations

from ... import hookimpl
from ...core.analytics_schema import TABLES
from ...core.custom_metrics import CHARTS, MEASURES, TIME_COLUMNS, parse_metric, validate_options
from ...core.models import Chart, Column, Kpi, Kpis, Option, Section, Series, Table
from ...core.scheduling import days_of, hours_of, wall_clock_text
from .labels import bot_label, bot_names
from .recorded import (ENDS, ERROR_FLAGS, INTENTS, LATENCY, LLM_CALLS, MESSAGE_TOKENS, SATISFACTION,
                       SYSTEM_SAMPLES, not_recorded_text, unavailable, unrecorded)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MEASURE_WORDS = {"count": "Count", "distinct": "Distinct", "sum": "Sum", "avg": "Average", "min": "Minimum",
                 "max": "Maximum"}


def words_of(name: str) -> str:
    """A column's name as words for a heading: ``latency_ms`` as ``latency (ms)``, ``bot_id`` as ``bot``."""
    name = name[:-3] if name.endswith("_id") else name
    if name.endswith("_ms"):
        return name[:-3].replace("_", " ") + " (ms)"
    return name.replace("_", " ")


def value_label_of(metric) -> str:
    """``Count of messages``, ``p95 of latency (ms)``, ``Distinct user``."""
    measure = MEASURE_WORDS.get(metric.measure, metric.measure)
    return f"{measure} of {words_of(metric.field) if metric.field else metric.table}"


#: The measure (``core.datasource.MEASURES``) each column a metric may read comes from.
COLUMN_MEASURES = {
    ("messages", "latency_ms"): LATENCY, ("messages", "tokens"): MESSAGE_TOKENS,
    ("messages", "is_error"): ERROR_FLAGS, ("messages", "intent"): INTENTS,
    ("conversations", "satisfaction"): SATISFACTION, ("conversations", "ended_at"): ENDS,
    ("conversations", "duration_ms"): ENDS,
}
TABLE_MEASURES = {"llm_calls": LLM_CALLS, "system_samples": SYSTEM_SAMPLES}


def measures_read(metric) -> set:
    """The measures a metric reads: its table's, and those of the columns it measures, groups
    by or filters on (a count of errored messages where no message has an error flag is no 0)."""
    columns = {metric.field, metric.group_by} | {f.column for f in metric.filters}
    found = {COLUMN_MEASURES[metric.table, column] for column in columns if (metric.table, column) in COLUMN_MEASURES}
    if metric.table in TABLE_MEASURES:
        found.add(TABLE_MEASURES[metric.table])
    return found


def _is_boolean(metric) -> bool:
    spec = TABLES[metric.table].get(metric.group_by)
    return spec is not None and spec.kind == "boolean"


def _label(metric, names, group, timezone):
    if group is None:
        return "(none)"
    if metric.group_by == "hour":  # the local clock hour, as the table shows it
        return wall_clock_text(group, timezone)
    if metric.group_by == "bot_id":
        return bot_label(names, group)
    if metric.group_by == "weekday":
        return WEEKDAYS[group]
    if metric.group_by == "hour_of_day":
        return f"{group:02d}:00"
    if _is_boolean(metric):  # stored as 0 and 1
        return "yes" if int(group) else "no"
    if hasattr(group, "isoformat"):
        return group.isoformat()
    return str(group)


def custom_metric(ctx):
    metric, problems = parse_metric(ctx.options)
    if problems:  # validated at request time; a stored request re-checked here for safety
        raise ValueError("; ".join(f"{field} {problem}" for field, problem in problems))
    value_name = metric.measure if not metric.field else f"{metric.measure}_{metric.field}"
    value_label = value_label_of(metric)
    # A measure of milliseconds (latency, duration) reads as a duration, not as a bare number.
    unit = "ms" if (metric.field or "").endswith("_ms") and metric.measure not in ("count", "distinct") else ""
    title = ctx.options.get("title") or value_label
    # What the source does not record is not measured (not the same as zero).
    rows = None if measures_read(metric) & unrecorded(ctx) else ctx.source.custom_metric(ctx.scope, metric)
    if rows is None:
        if metric.group_by is None:
            return [Kpis([unavailable(Kpi(value_name, title, None, unit))])]
        return [not_recorded_text(title)]
    if metric.group_by is None:
        value = rows[0]["value"] if rows else None
        return [Kpis([Kpi(value_name, title, value, unit)])]
    if metric.group_by in ("day", "hour"):
        # every local day (hour) of the period, quiet ones as zeros (or empty for min/max/avg/percentiles)
        found = {row["group"]: row["value"] for row in rows}
        empty = 0 if metric.measure in ("count", "distinct", "sum") else None
        every = days_of if metric.group_by == "day" else hours_of
        rows = [{"group": group, "value": found.get(group, empty)} for group in every(ctx.scope.period)]
    names = bot_names(ctx) if metric.group_by == "bot_id" else {}
    timezone = ctx.scope.period.timezone
    group_type = {"day": "date", "week": "date", "hour": "datetime"}.get(metric.group_by, "text")
    group_value = ((lambda row: row["group"]) if group_type != "text"
                   else (lambda row: _label(metric, names, row["group"], timezone)))
    number_type = "integer" if metric.measure in ("count", "distinct") else "number"
    group_label = words_of(metric.group_by).capitalize()
    blocks = [Table(title, (Column("group", group_label, group_type), Column(value_name, value_label, number_type)),
                    [[group_value(row), row["value"]] for row in rows])]
    chart = ctx.options.get("chart") or ("line" if metric.is_time_grouped and metric.group_by != "weekday" else "bar")
    if ctx.include_charts and chart != "none" and rows:
        blocks.append(Chart(title, chart, [_label(metric, names, row["group"], timezone) for row in rows],
                            [Series(value_label, [row["value"] for row in rows])],
                            x_label=group_label, y_label=value_label))
    return blocks


@hookimpl
def register_sections():
    return Section(
        "custom_metric", "Custom metric", custom_metric,
        "A metric declared in the request: a measure of a field of one table, filtered and grouped.",
        options={
            "title": Option("str", None, "Heading of the section"),
            "table": Option("str", None, "Table to measure", choices=tuple(TIME_COLUMNS)),
            "measure": Option("str", "count", "What to compute", choices=MEASURES),
            "field": Option("str", None, "The field measured (required except for count)"),
            "filters": Option("dict", None, 'Conditions: {"field": value, "field": [values], '
                                            '"field": {"gt": 10}}'),
            "group_by": Option("str", None, "hour, day, week, month, weekday, hour_of_day or a column "
                                            "such as bot, channel, model, intent, status"),
            "chart": Option("str", None, "bar, line or none (default: line over time, else bar)",
                            choices=CHARTS),
            "limit": Option("int", 50, "Most groups shown (largest values first)", minimum=1, maximum=1000),
        },
        validate=validate_options)
