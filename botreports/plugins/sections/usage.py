"""Usage sections: how much the bots are used (see docs/metrics.md)."""
from __future__ import annotations

import attrs

from ... import hookimpl
from ...core.models import Chart, Column, Option, Section, Series, Table, Text
from ...core.scheduling import days_of
from .kpi_math import kpis_with_change, previous_scope, rate
from .labels import bot_names, pseudonym
from .raw_rows import started
from .recorded import ERROR_FLAGS, LLM_CALLS, blanked, not_recorded_columns, not_recorded_kpis, unrecorded

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

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
    previous = ctx.source.usage_totals(previous_scope(ctx))
    kpis = kpis_with_change(current, previous, SUMMARY_METRICS)
    if LLM_CALLS in unrecorded(ctx):
        kpis = attrs.evolve(kpis, items=not_recorded_kpis(kpis.items, LLM_COLUMNS))
    return [kpis]


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


def peak_hours(ctx):
    metric = ctx.options["metric"]
    grid = {(cell["weekday"], cell["hour"]): cell[metric] for cell in ctx.source.activity_grid(ctx.scope)}
    columns = [Column("weekday", "Weekday", "text")] + [
        Column(f"h{hour:02d}", f"{hour:02d}", "integer") for hour in range(24)] + [
        Column("total", "Total", "integer")]
    rows = []
    for weekday, name in enumerate(WEEKDAYS):
        values = [grid.get((weekday, hour), 0) for hour in range(24)]
        rows.append([name] + values + [sum(values)])
    by_hour = [sum(grid.get((weekday, hour), 0) for weekday in range(7)) for hour in range(24)]
    busiest = max(grid.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]), default=None)
    blocks = []
    if busiest and busiest[1]:
        (weekday, hour), value = busiest
        blocks.append(Text(f"Busiest hour: **{WEEKDAYS[weekday]} {hour:02d}:00-{hour:02d}:59** "
                           f"({value:,} {metric.replace('_', ' ')}, local time {ctx.scope.period.timezone})."))
    blocks.append(Table(f"{metric.replace('_', ' ').capitalize()} by weekday and hour", columns, rows))
    if ctx.include_charts:
        blocks.append(Chart("Activity by hour of day", "bar", [f"{hour:02d}" for hour in range(24)],
                            [Series(metric.replace("_", " ").capitalize(), by_hour)],
                            x_label="Hour (local time)", y_label="Total over the period"))
    return blocks


BREAKDOWN_COLUMNS = (
    Column("conversations", "Conversations", "integer"),
    Column("messages_in", "Messages in", "integer"),
    Column("messages_out", "Messages out", "integer"),
    Column("active_users", "Active users", "integer"),
    Column("tokens", "LLM tokens", "integer"),
    Column("cost_usd", "LLM cost (USD)", "number"),
    Column("share", "Share of messages in", "percent"),
)
#: What LLM calls give the usage tables and KPIs (not recorded when a source has no calls).
LLM_COLUMNS = ("tokens", "cost_usd")


def _breakdown(ctx, dimension, title):
    every = ctx.source.usage_breakdown(ctx.scope, dimension)
    total_in = sum(row["messages_in"] for row in every)  # every message has one bot and one channel
    rows = every[:ctx.options["limit"]]
    if dimension == "bot":
        names = bot_names(ctx)
        head = [Column("bot_id", "Bot id", "text"), Column("bot", "Bot", "text")]
        keys = [[row["key"], names.get(row["key"], row["key"])] for row in rows]
    else:
        head = [Column("channel", "Channel", "text")]
        keys = [[row["key"] if row["key"] is not None else "(none)"] for row in rows]
    table_rows = [key + [row[c.name] for c in BREAKDOWN_COLUMNS[:-1]] + [rate(row["messages_in"], total_in)]
                  for key, row in zip(keys, rows)]
    columns = tuple(head) + BREAKDOWN_COLUMNS
    if LLM_CALLS in unrecorded(ctx):
        columns = not_recorded_columns(columns, LLM_COLUMNS)
    blocks = [Table(title, columns, blanked(table_rows, columns))]
    if ctx.include_charts and rows:
        labels = [key[-1] or "(none)" for key in keys]
        if dimension == "channel":
            blocks.append(Chart("Messages in by channel", "pie", labels,
                                [Series("Messages in", [row["messages_in"] for row in rows])]))
        else:
            blocks.append(Chart("Messages by bot", "stacked_bar", labels,
                                [Series("Messages in", [row["messages_in"] for row in rows]),
                                 Series("Messages out", [row["messages_out"] for row in rows])],
                                x_label="Bot", y_label="Messages"))
    return blocks


def usage_by_bot(ctx):
    return _breakdown(ctx, "bot", "Usage by bot")


def usage_by_channel(ctx):
    return _breakdown(ctx, "channel", "Usage by channel")


def top_users(ctx):
    rows = [[pseudonym(ctx, row["user_id"]), row["messages_in"], row["conversations"], row["first_at"],
             row["last_at"]] for row in ctx.source.top_users(ctx.scope, ctx.options["limit"])]
    return [Table("Most active users (pseudonymous)", (
        Column("user", "User (pseudonym)", "text"), Column("messages_in", "Messages in", "integer"),
        Column("conversations", "Conversations", "integer"), Column("first_at", "First message", "datetime"),
        Column("last_at", "Last message", "datetime")), rows)]


RAW_USAGE_COLUMNS = (
    Column("day", "Day", "date"), Column("bot_id", "Bot id", "text"), Column("bot", "Bot", "text"),
    Column("conversations", "Conversations", "integer"), Column("messages_in", "Messages in", "integer"),
    Column("messages_out", "Messages out", "integer"), Column("active_users", "Active users", "integer"),
    Column("errors", "Errored replies", "integer"), Column("tokens", "LLM tokens", "integer"),
    Column("cost_usd", "LLM cost (USD)", "number"),
)


def usage_raw(ctx):
    names = bot_names(ctx)
    missing = unrecorded(ctx)
    columns = not_recorded_columns(RAW_USAGE_COLUMNS, (("errors",) if ERROR_FLAGS in missing else ())
                                   + (LLM_COLUMNS if LLM_CALLS in missing else ()))

    def rows():
        for row in ctx.source.usage_rows(ctx.scope):
            yield [row["day"], row["bot_id"], names.get(row["bot_id"], row["bot_id"])] + [
                row[c.name] for c in RAW_USAGE_COLUMNS[3:]]

    return [Table("Usage per bot per day", columns, started(blanked(rows(), columns)), raw=True)]


LIMIT = Option("int", 20, "How many rows to show", minimum=1, maximum=1000)


@hookimpl
def register_sections():
    return [
        Section("usage_summary", "Usage summary", usage_summary,
                "Conversations, messages, active and new users, tokens and cost, with the change "
                "against the same span just before (the day, week or month before)."),
        Section("daily_activity", "Daily activity", daily_activity,
                "Conversations, messages and users per day in the report's timezone."),
        Section("peak_hours", "Peak hours", peak_hours,
                "Activity by local weekday and hour of day, to see when users talk to the bots.",
                options={"metric": Option("str", "messages_in", "What to count",
                                          choices=("messages_in", "messages_out", "conversations"))}),
        Section("usage_by_bot", "Usage by bot", usage_by_bot,
                "Conversations, messages, active users, tokens and cost of each bot, busiest first.",
                options={"limit": LIMIT}),
        Section("usage_by_channel", "Usage by channel", usage_by_channel,
                "Conversations, messages, active users, tokens and cost per channel (web, WhatsApp, ...).",
                options={"limit": LIMIT}),
        Section("top_users", "Top users", top_users,
                "The most active users by incoming messages, shown by pseudonym only.",
                options={"limit": Option("int", 10, "How many users", minimum=1, maximum=100)}),
        Section("usage_raw", "Usage data", usage_raw,
                "Raw data: one row per bot per local day (what CSV and XLSX exports carry)."),
    ]
