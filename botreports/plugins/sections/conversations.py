"""Conversation sections: how conversations go, from length and outcome to
intents, satisfaction and hand-offs to people (see docs/metrics.md)."""
from __future__ import annotations

from ... import hookimpl
from ...core.models import Chart, Column, Kpi, Kpis, Option, Section, Series, Table, Text
from ...core.scheduling import days_of
from .daily import daily_line_chart
from .kpi_math import previous_scope, rate, relative_change
from .labels import bot_label, bot_names, pseudonym, pseudonyms
from .recorded import (ENDS, ERROR_FLAGS, INTENTS, LATENCY, SATISFACTION, blanked, not_recorded_columns,
                       not_recorded_kpis, not_recorded_text, unrecorded)

OUTCOMES = (("resolved", "Resolved"), ("abandoned", "Abandoned"), ("handed_off", "Handed off"), ("open", "Open"))


#: The outcomes of a conversation that is over: the denominators of the outcome rates.
CLOSED = ("resolved", "abandoned", "handed_off")


def _minutes(ms):
    """Milliseconds as exact minutes (exporters round when they print them)."""
    return None if ms is None else ms / 60000


def _summary_values(summary) -> dict:
    closed = sum(summary[status] for status in CLOSED)
    return {
        "conversations": summary["conversations"],
        "closed": closed,
        "avg_messages": summary["avg_messages"],
        "messages_median": summary["messages_median"],
        "messages_p90": summary["messages_p90"],
        "minutes_median": _minutes(summary["duration_median_ms"]),
        "minutes_p90": _minutes(summary["duration_p90_ms"]),
        "resolution_rate": rate(summary["resolved"], closed),
        "containment_rate": rate(summary["resolved"] + summary["abandoned"], closed),
        "abandonment_rate": rate(summary["abandoned"], closed),
        "handoff_rate": rate(summary["handed_off"], closed),
    }


SUMMARY_METRICS = (
    ("conversations", "Conversations", ""),
    ("closed", "Closed conversations", ""),
    ("avg_messages", "Average length", "messages"),
    ("messages_median", "Median length", "messages"),
    ("messages_p90", "p90 length", "messages"),
    ("minutes_median", "Median duration", "min"),
    ("minutes_p90", "p90 duration", "min"),
    ("resolution_rate", "Resolution rate (of closed)", "%"),
    ("containment_rate", "Containment rate (of closed)", "%"),
    ("abandonment_rate", "Abandonment rate (of closed)", "%"),
    ("handoff_rate", "Hand-off rate (of closed)", "%"),
)


def conversation_summary(ctx):
    current = _summary_values(ctx.source.conversation_summary(ctx.scope))
    previous = _summary_values(ctx.source.conversation_summary(previous_scope(ctx)))
    kpis = [Kpi(name, label, current[name], unit, previous[name], relative_change(current[name], previous[name]))
            for name, label, unit in SUMMARY_METRICS]
    if ENDS in unrecorded(ctx):  # no conversation has an end: no duration either
        kpis = not_recorded_kpis(kpis, ("minutes_median", "minutes_p90"))
    return [Kpis(kpis)]


def conversation_outcomes(ctx):
    found = {row["day"]: row for row in ctx.source.conversation_outcomes(ctx.scope)}
    rows = []
    for day in days_of(ctx.scope.period):
        row = found.get(day, {})
        counts = [row.get(key) or 0 for key, _ in OUTCOMES]
        rows.append([day] + counts + [sum(counts), rate(counts[0], sum(counts[:3]))])
    columns = [Column("day", "Day", "date")] + [Column(key, label, "integer") for key, label in OUTCOMES] + [
        Column("conversations", "Conversations", "integer"),
        Column("resolution_rate", "Resolution rate (of closed)", "percent")]
    blocks = [Table("Outcomes per day (by day of start)", columns, rows)]
    if ctx.include_charts:
        blocks.append(Chart("Conversation outcomes per day", "stacked_bar", [row[0].isoformat() for row in rows],
                            [Series(label, [row[1 + i] for row in rows]) for i, (_, label) in enumerate(OUTCOMES)],
                            x_label="Day", y_label="Conversations"))
    return blocks


def top_conversations(ctx):
    names = bot_names(ctx)
    rows = [[row["id"], bot_label(names, row["bot_id"]), row["channel"], pseudonym(ctx, row["user_id"]),
             row["started_at"], row["message_count"],
             None if row["duration_ms"] is None else round(row["duration_ms"] / 1000, 3),
             row["status"], row["satisfaction"]]
            for row in ctx.source.top_conversations(ctx.scope, ctx.options["order_by"], ctx.options["limit"])]
    title = "Conversations with most messages" if ctx.options["order_by"] == "messages" else "Longest conversations"
    missing = unrecorded(ctx)
    columns = not_recorded_columns(TOP_COLUMNS, (("duration",) if ENDS in missing else ())
                                   + (("satisfaction",) if SATISFACTION in missing else ()))
    return [Table(title, columns, blanked(rows, columns))]


TOP_COLUMNS = (
    Column("conversation_id", "Conversation", "text"), Column("bot", "Bot", "text"),
    Column("channel", "Channel", "text"), Column("user", "User (pseudonym)", "text"),
    Column("started_at", "Started", "datetime"), Column("message_count", "Messages", "integer"),
    Column("duration", "Duration", "duration"), Column("status", "Outcome", "text"),
    Column("satisfaction", "CSAT", "integer"))


def top_intents(ctx):
    if INTENTS in unrecorded(ctx):
        return [not_recorded_text("Intents")]
    result = ctx.source.top_intents(ctx.scope, ctx.options["limit"])
    if result is None:  # a source that answers None for what it does not record
        return [not_recorded_text("Intents")]
    rows = [[row["intent"], row["messages"], rate(row["messages"], result["total"]), row["conversations"],
             row["users"]] for row in result["intents"]]
    blocks = [Table("Top intents of incoming messages", (
        Column("intent", "Intent", "text"), Column("messages_in", "Messages in", "integer"),
        Column("share", "Share", "percent"), Column("conversations", "Conversations", "integer"),
        Column("users", "Users", "integer")), rows)]
    if ctx.include_charts and rows:
        blocks.append(Chart("Top intents", "bar", [row[0] for row in rows], [Series("Messages", [row[1] for row in rows])],
                            x_label="Intent", y_label="Messages"))
    return blocks


SATISFACTION_METRICS = (("average", "Average score (1-5)", ""), ("csat", "CSAT (share of 4 and 5)", "%"),
                        ("rated", "Rated conversations", ""),
                        ("response_rate", "Response rate (rated of closed)", "%"))


def satisfaction_scores(ctx):
    if SATISFACTION in unrecorded(ctx):  # no rating anywhere: no distribution of zeros either
        return [Kpis(not_recorded_kpis([Kpi(name, label, None, unit) for name, label, unit in SATISFACTION_METRICS],
                                       [name for name, _, _ in SATISFACTION_METRICS])),
                not_recorded_text("Satisfaction ratings")]
    current = ctx.source.satisfaction(ctx.scope)
    previous = ctx.source.satisfaction(previous_scope(ctx))

    def values(result):
        return {"average": result["average"], "rated": result["rated"],
                "response_rate": rate(result["rated_closed"], result["closed"]),
                "csat": rate(result["distribution"][4] + result["distribution"][5], result["rated"])}

    now, before = values(current), values(previous)
    blocks = [Kpis([Kpi(name, label, now[name], unit, before[name], relative_change(now[name], before[name]))
                    for name, label, unit in SATISFACTION_METRICS])]
    distribution = current["distribution"]
    blocks.append(Table("Score distribution", (
        Column("score", "Score", "integer"), Column("conversations", "Conversations", "integer"),
        Column("share", "Share", "percent")),
        [[score, distribution[score], rate(distribution[score], current["rated"])] for score in range(1, 6)]))
    found = {row["day"]: row for row in ctx.source.daily_satisfaction(ctx.scope)}
    daily = [[day, found.get(day, {}).get("rated", 0), found.get(day, {}).get("average")]
             for day in days_of(ctx.scope.period)]
    blocks.append(Table("Satisfaction per day", (
        Column("day", "Day", "date"), Column("rated", "Rated", "integer"), Column("average", "Average", "number")),
        daily))
    if ctx.include_charts:
        blocks.append(Chart("Score distribution", "bar", [str(score) for score in range(1, 6)],
                            [Series("Conversations", [distribution[score] for score in range(1, 6)])],
                            x_label="Score", y_label="Conversations"))
        blocks.append(Chart("Average satisfaction per day", "line", [row[0].isoformat() for row in daily],
                            [Series("Average score", [row[2] for row in daily])], x_label="Day", y_label="Score"))
    return blocks


def handoff_sentence(handed: int, closed: int) -> str:
    """The hand-offs of a period in words; no rate where no conversation has closed (the
    hand-off rate KPI is none then, not 0 %)."""
    if not closed:
        return "No conversation of this period has closed: no hand-off rate."
    return (f"{handed:,} of {closed:,} closed conversations were handed off to a person "
            f"({handed / closed:.1%}).")


def handoffs(ctx):
    names = bot_names(ctx)
    blocks = []
    for dimension, title, label in (("bot", "Hand-offs by bot", lambda key: bot_label(names, key)),
                                    ("channel", "Hand-offs by channel", lambda key: key or "(none)")):
        every = ctx.source.handoffs(ctx.scope, dimension)
        if dimension == "bot":  # every conversation has one bot: the totals are the sums
            closed, handed = sum(r["closed"] for r in every), sum(r["handed_off"] for r in every)
            blocks.append(Text(handoff_sentence(handed, closed)))
        rows = [[label(row["key"]), row["conversations"], row["closed"], row["handed_off"],
                 rate(row["handed_off"], row["closed"])]
                for row in every[:ctx.options["limit"]]]
        blocks.append(Table(title, (
            Column(dimension, title.split(" by ")[1].capitalize(), "text"),
            Column("conversations", "Conversations", "integer"), Column("closed", "Closed", "integer"),
            Column("handed_off", "Handed off", "integer"),
            Column("handoff_rate", "Hand-off rate (of closed)", "percent")), rows))
    if ctx.include_charts:
        blocks.append(daily_line_chart("Hand-offs per day", ctx.scope.period,
                                       ctx.source.conversation_outcomes(ctx.scope),
                                       [("Handed off", "handed_off")], "Conversations"))
    return blocks


RAW_COLUMNS = (
    Column("conversation_id", "Conversation", "text"), Column("bot_id", "Bot id", "text"),
    Column("channel", "Channel", "text"), Column("user", "User (pseudonym)", "text"),
    Column("started_at", "Started", "datetime"), Column("ended_at", "Ended", "datetime"),
    Column("duration", "Duration", "duration"), Column("message_count", "Messages", "integer"),
    Column("messages_in", "Messages in", "integer"), Column("messages_out", "Messages out", "integer"),
    Column("errors", "Errored replies", "integer"), Column("avg_latency_ms", "Average reply latency (ms)", "number"),
    Column("status", "Outcome", "text"), Column("satisfaction", "CSAT", "integer"),
)


def conversations_raw(ctx):
    label = pseudonyms(ctx)

    def rows():
        known = {}  # users come back: one HMAC per user, not per conversation
        for row in ctx.source.conversation_rows(ctx.scope):
            user = row["user_id"]
            if user not in known:
                known[user] = label(user)
            yield [row["id"], row["bot_id"], row["channel"], known[user], row["started_at"],
                   row["ended_at"], None if row["duration_ms"] is None else row["duration_ms"] / 1000,
                   row["message_count"], row["messages_in"], row["messages_out"], row["errors"],
                   row["avg_latency_ms"], row["status"], row["satisfaction"]]

    # A source may hand the rows over in this table's column order (a row per conversation
    # makes every step per row count); the same rows as ``conversation_rows`` either way.
    in_order = getattr(ctx.source, "conversation_table_rows", None)
    table_rows = in_order(ctx.scope, label) if in_order else None
    table_rows = rows() if table_rows is None else table_rows
    missing = unrecorded(ctx)
    columns = not_recorded_columns(RAW_COLUMNS, [name for measure, names in RAW_MEASURES if measure in missing
                                                 for name in names])
    # A source's rows blank their columns themselves when they can (keeping their JSON text).
    return [Table("Conversations", columns, blanked(table_rows, columns), raw=True)]


#: The measures the raw columns come from.
RAW_MEASURES = ((ENDS, ("ended_at", "duration")), (ERROR_FLAGS, ("errors",)), (LATENCY, ("avg_latency_ms",)),
                (SATISFACTION, ("satisfaction",)))


LIMIT = Option("int", 10, "How many rows to show", minimum=1, maximum=1000)


@hookimpl
def register_sections():
    return [
        Section("conversation_summary", "Conversation summary", conversation_summary,
                "How many conversations, how long (median and p90, in messages and minutes) and how they "
                "ended, with the change against the previous period."),
        Section("conversation_outcomes", "Conversation outcomes", conversation_outcomes,
                "Resolved, abandoned, handed-off and open conversations per local day of start."),
        Section("top_conversations", "Top conversations", top_conversations,
                "The longest conversations, or those with most messages.",
                options={"order_by": Option("str", "messages", "Rank by", choices=("messages", "duration")),
                         "limit": LIMIT}),
        Section("top_intents", "Top intents", top_intents,
                "The intents most often recognised in incoming messages.", options={"limit": LIMIT}),
        Section("satisfaction_scores", "Satisfaction", satisfaction_scores,
                "CSAT: the distribution of 1-5 scores, average, response rate and trend per day."),
        Section("handoffs", "Hand-offs", handoffs,
                "Conversations handed off to a person, per bot, per channel and per day.",
                options={"limit": LIMIT}),
        Section("conversations_raw", "Conversation data", conversations_raw,
                "Raw data: one row per conversation with its metrics (what CSV and XLSX exports carry)."),
    ]
