"""Usage sections: how much the bots are used (see docs/metrics.md)."""
from __future__ import annotations

from ... import hookimpl
from ...core.models import Chart, Column, Section, Series, Table
from ...core.scheduling import days_of
from .kpi_math import kpis_with_change

SUMMARY_METRICS = (
    ("conversations", "Conversations", ""),
    ("messages_in", "Messages in", ""),
    ("messages_out", "Messages out", ""),
    ("active_users", "Active users", ""),
    ("new_users", "New users", ""),
    ("tokens", "LLM tokens", ""),
    ("cost_usd", "LLM cost", "USD"),
)


def usage_summary(ctx):
    current = ctx.source.usage_totals(ctx.scope)
    previous = ctx.source.usage_totals(ctx.scope.with_period(ctx.scope.period.previous()))
    return [kpis_with_change(current, previous, SUMMARY_METRICS)]


DAILY_COLUMNS = (
    Column("day", "Day", "date"),
    Column("conversations", "Conversations", "integer"),
    Column("messages_in", "Messages in", "integer"),
    Column("messages_out", "Messages out", "integer"),
    Column("active_users", "Active users", "integer"),
    Column("new_users", "New users", "integer"),
)


def daily_activity(ctx):
    found = {row["day"]: row for row in ctx.source.daily_usage(ctx.scope)}
    # Every day of the period is listed, quiet days as zeros, so charts keep their time axis.
    zero = {column.name: 0 for column in DAILY_COLUMNS[1:]}
    rows = [[day] + [found.get(day, zero)[c.name] for c in DAILY_COLUMNS[1:]]
            for day in days_of(ctx.scope.period)]
    blocks = [Table("Daily activity", DAILY_COLUMNS, rows)]
    if ctx.include_charts:
        blocks.append(Chart(
            "Messages per day", "line", [row[0].isoformat() for row in rows],
            [Series("Messages in", [row[2] for row in rows]), Series("Messages out", [row[3] for row in rows])],
            x_label="Day", y_label="Messages"))
    return blocks


@hookimpl
def register_sections():
    return [
        Section("usage_summary", "Usage summary", usage_summary,
                "Conversations, messages, active and new users, tokens and cost, with the change "
                "against the previous period of equal length."),
        Section("daily_activity", "Daily activity", daily_activity,
                "Conversations, messages and users per day in the report's timezone."),
    ]
