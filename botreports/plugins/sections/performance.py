"""Performance sections: how fast and how reliably the bots answer, their
LLM calls, traffic peaks and the health of the hosts (see docs/metrics.md)."""
from __future__ import annotations

from ... import hookimpl
from ...core.datasource import PERCENTILES
from ...core.models import NOT_RECORDED, Chart, Column, Kpi, Kpis, Section, Series, Table, Text
from ...core.scheduling import days_of, elapsed_part
from .daily import daily_line_chart
from .kpi_math import previous_scope, rate, relative_change, report_now
from .labels import bot_label, bot_names
from .raw_rows import started
from .recorded import (ERROR_FLAGS, LATENCY, LLM_CALLS, SYSTEM_SAMPLES, blanked, not_recorded_columns,
                       not_recorded_kpis, not_recorded_text, unrecorded)

PERCENTILE_COLUMNS = tuple(Column(f"p{p}_ms", f"p{p} (ms)", "integer") for p in PERCENTILES)


def _latency_row(row):
    return [row["replies"], row["avg_ms"]] + [row[f"p{p}_ms"] for p in PERCENTILES] + [row["max_ms"]]


#: "Replies" are every bot reply (the error tables); the latency tables count those with a latency.
LATENCY_COLUMNS = ((Column("timed_replies", "Replies with a latency", "integer"),
                    Column("avg_ms", "Average (ms)", "number"))
                   + PERCENTILE_COLUMNS + (Column("max_ms", "Max (ms)", "integer"),))


def latency(ctx):
    keys = ["avg_ms"] + [f"p{p}_ms" for p in PERCENTILES]
    labels = ["Average"] + [f"p{p}" for p in PERCENTILES]
    if LATENCY in unrecorded(ctx):  # no reply has a latency: no tables of replies without one either
        return [Kpis(not_recorded_kpis([Kpi(key, f"{label} reply latency", None, "ms")
                                        for key, label in zip(keys, labels)], keys)),
                not_recorded_text("Reply latency")]
    overall = (ctx.source.reply_latency(ctx.scope) or [None])[0]
    previous = (ctx.source.reply_latency(previous_scope(ctx)) or [None])[0]
    blocks = [Kpis([Kpi(key, f"{label} reply latency", overall and overall[key], "ms", previous and previous[key],
                        relative_change(overall and overall[key], previous and previous[key]))
                    for key, label in zip(keys, labels)])]
    found = {row["key"]: row for row in ctx.source.reply_latency(ctx.scope, "day")}
    days = days_of(ctx.scope.period)
    daily = [[day] + (_latency_row(found[day]) if day in found else [0] + [None] * (len(LATENCY_COLUMNS) - 1))
             for day in days]
    blocks.append(Table("Reply latency per day", (Column("day", "Day", "date"),) + LATENCY_COLUMNS, daily))
    names = bot_names(ctx)
    per_bot = [[bot_label(names, row["key"])] + _latency_row(row)
               for row in ctx.source.reply_latency(ctx.scope, "bot")]
    blocks.append(Table("Reply latency per bot", (Column("bot", "Bot", "text"),) + LATENCY_COLUMNS, per_bot))
    if ctx.include_charts:
        index = {p: 3 + i for i, p in enumerate(PERCENTILES)}
        blocks.append(Chart("Reply latency per day", "line", [day.isoformat() for day in days],
                            [Series(f"p{p}", [row[index[p]] for row in daily]) for p in (50, 95, 99)],
                            x_label="Day", y_label="Milliseconds"))
    return blocks


ERROR_COLUMNS = (
    Column("replies", "Replies", "integer"), Column("errors", "Errored replies", "integer"),
    Column("error_rate", "Error rate", "percent"), Column("llm_calls", "LLM calls", "integer"),
    Column("llm_failures", "LLM failures", "integer"), Column("llm_failure_rate", "LLM failure rate", "percent"),
)


#: The columns (and KPIs) of the error tables each unrecordable measure gives.
ERROR_MEASURES = ((ERROR_FLAGS, ("errors", "error_rate")), (LLM_CALLS, ("llm_calls", "llm_failures", "llm_failure_rate")))


def _error_row(row):
    return [row["replies"], row["errors"], rate(row["errors"], row["replies"]), row["llm_calls"],
            row["llm_failures"], rate(row["llm_failures"], row["llm_calls"])]


def error_rates(ctx):
    def values(scope):
        rows = ctx.source.error_counts(scope)
        row = rows[0] if rows else {"replies": 0, "errors": 0, "llm_calls": 0, "llm_failures": 0}
        return {"errors": row["errors"], "error_rate": rate(row["errors"], row["replies"]),
                "llm_failures": row["llm_failures"], "llm_failure_rate": rate(row["llm_failures"], row["llm_calls"])}

    now, before = values(ctx.scope), values(previous_scope(ctx))
    metrics = (("error_rate", "Error rate of replies", "%"), ("errors", "Errored replies", ""),
               ("llm_failure_rate", "LLM failure rate", "%"), ("llm_failures", "LLM failures", ""))
    missing = unrecorded(ctx)
    lacking = [name for measure, names in ERROR_MEASURES if measure in missing for name in names]
    blocks = [Kpis(not_recorded_kpis(
        [Kpi(name, label, now[name], unit, before[name], relative_change(now[name], before[name]))
         for name, label, unit in metrics], lacking))]
    found = {row["key"]: row for row in ctx.source.error_counts(ctx.scope, "day")}
    zero = {"replies": 0, "errors": 0, "llm_calls": 0, "llm_failures": 0}
    days = days_of(ctx.scope.period)
    daily = [[day] + _error_row(found.get(day, zero)) for day in days]
    day_columns = not_recorded_columns((Column("day", "Day", "date"),) + ERROR_COLUMNS, lacking)
    blocks.append(Table("Errors per day", day_columns, blanked(daily, day_columns)))
    names = bot_names(ctx)
    per_bot = [[bot_label(names, row["key"])] + _error_row(row) for row in ctx.source.error_counts(ctx.scope, "bot")]
    per_bot.sort(key=lambda row: (-(row[3] or 0), row[0]))
    bot_columns = not_recorded_columns((Column("bot", "Bot", "text"),) + ERROR_COLUMNS, lacking)
    blocks.append(Table("Errors per bot", bot_columns, blanked(per_bot, bot_columns)))
    if ctx.include_charts:
        title = "Error rate per day"
        series = [(measure, Series(label, [row[index] for row in daily]))
                  for measure, label, index in ((ERROR_FLAGS, "Replies", 3), (LLM_CALLS, "LLM calls", 6))]
        shown = [item for measure, item in series if measure not in missing]
        if shown:
            blocks.append(Chart(title, "line", [day.isoformat() for day in days], shown,
                                x_label="Day", y_label="Error rate"))
        left_out = [item.name for measure, item in series if measure in missing]
        if left_out:  # say which lines are missing and why, rather than draw them flat at zero
            blocks.append(Text(f"*{title}*: {' and '.join(left_out)} left out, {NOT_RECORDED}."))
    return blocks


def llm_performance(ctx):
    if LLM_CALLS in unrecorded(ctx):
        return [not_recorded_text("LLM calls")]
    rows = [[row["model"], row["calls"], row["failures"], rate(row["failures"], row["calls"]), row["avg_ms"]]
            + [row[f"p{p}_ms"] for p in PERCENTILES]
            + [row["input_tokens"], row["output_tokens"], row["cost_usd"]]
            for row in ctx.source.llm_performance(ctx.scope)]
    blocks = [Table("LLM calls per model", (
        Column("model", "Model", "text"), Column("calls", "Calls", "integer"),
        Column("failures", "Failures", "integer"), Column("failure_rate", "Failure rate", "percent"),
        Column("avg_ms", "Average latency (ms)", "number")) + PERCENTILE_COLUMNS + (
        Column("input_tokens", "Input tokens", "integer"), Column("output_tokens", "Output tokens", "integer"),
        Column("cost_usd", "Cost (USD)", "number")), rows)]
    if ctx.include_charts and rows:
        blocks.append(Chart("LLM cost per model", "pie", [row[0] for row in rows],
                            [Series("Cost (USD)", [row[-1] for row in rows])]))
    return blocks


def throughput(ctx):
    result = ctx.source.throughput(ctx.scope)
    # Hours that have not happened yet hold no messages: a running period counts those passed.
    passed = elapsed_part(ctx.scope.period, report_now(ctx)).length.total_seconds() / 3600
    average = result["messages"] / passed if passed > 0 else None
    blocks = [Kpis([
        Kpi("peak_minute_messages", "Peak messages per minute", result["peak_minute_messages"]),
        Kpi("peak_hour_messages", "Peak messages per hour", result["peak_hour_messages"]),
        Kpi("messages_per_hour", "Average messages per hour (hours passed)", average),
        Kpi("active_hours", "Hours with traffic", result["active_hours"]),
    ])]
    rows = [["Busiest minute", result["peak_minute_at"], result["peak_minute_messages"]],
            ["Busiest hour (local clock)", result["peak_hour_at"], result["peak_hour_messages"]]]
    blocks.append(Table("Peaks", (Column("peak", "Peak", "text"), Column("starts_at", "Starts at", "datetime"),
                                  Column("messages", "Messages", "integer")), rows))
    return blocks


def system_health(ctx):
    hosts = None if SYSTEM_SAMPLES in unrecorded(ctx) else ctx.source.system_health(ctx.scope)
    if hosts is None:  # the source does not record them at all (not the same as a quiet period)
        return [Text(f"**System samples**: {NOT_RECORDED} (botserver, for one, keeps its system metrics "
                     f"outside its database; ingest them as system samples to report on them).")]
    if not hosts:
        return [Text("No system samples in this period.")]
    rows = [[h["host"], h["samples"], h["cpu_avg"], h["cpu_max"], h["mem_avg"], h["mem_max"], h["requests"],
             h["errors"], rate(h["errors"], h["requests"]), h["p95_avg_ms"], h["p95_max_ms"]] for h in hosts]
    blocks = [Table("Hosts", (
        Column("host", "Host", "text"), Column("samples", "Samples", "integer"),
        Column("cpu_avg", "CPU avg (%)", "number"), Column("cpu_max", "CPU max (%)", "number"),
        Column("mem_avg", "Memory avg (%)", "number"), Column("mem_max", "Memory max (%)", "number"),
        Column("requests", "Requests", "integer"), Column("request_errors", "Request errors", "integer"),
        Column("request_error_rate", "Request error rate", "percent"), Column("p95_avg_ms", "p95 avg (ms)", "number"),
        Column("p95_max_ms", "p95 max (ms)", "number")), rows)]
    if ctx.include_charts:
        blocks.append(daily_line_chart("CPU and memory per day (average over hosts)", ctx.scope.period,
                                       ctx.source.daily_system_health(ctx.scope) or [],
                                       [("CPU %", "cpu_avg"), ("Memory %", "mem_avg")], "%", missing=None))
    return blocks


RAW_COLUMNS = (
    Column("hour_start", "Hour (local clock)", "datetime"), Column("bot_id", "Bot id", "text"),
    Column("messages_in", "Messages in", "integer"), Column("replies", "Replies", "integer"),
    Column("errors", "Errored replies", "integer"), Column("avg_latency_ms", "Average reply latency (ms)", "number"),
    Column("max_latency_ms", "Max reply latency (ms)", "integer"), Column("llm_calls", "LLM calls", "integer"),
    Column("llm_failures", "LLM failures", "integer"), Column("tokens", "LLM tokens", "integer"),
)


#: The raw columns each unrecordable measure gives.
RAW_MEASURES = ((ERROR_FLAGS, ("errors",)), (LATENCY, ("avg_latency_ms", "max_latency_ms")),
                (LLM_CALLS, ("llm_calls", "llm_failures", "tokens")))


def performance_raw(ctx):
    missing = unrecorded(ctx)
    columns = not_recorded_columns(RAW_COLUMNS, [name for measure, names in RAW_MEASURES if measure in missing
                                                 for name in names])

    def rows():
        for row in ctx.source.performance_rows(ctx.scope):
            yield [row[c.name] for c in RAW_COLUMNS]

    return [Table("Performance per bot per hour", columns, started(blanked(rows(), columns)), raw=True)]


@hookimpl
def register_sections():
    return [
        Section("latency", "Reply latency", latency,
                "Exact p50, p90, p95 and p99 of bot reply latency: overall, per day and per bot."),
        Section("error_rates", "Error rates", error_rates,
                "Errored replies and failed LLM calls, per day and per bot."),
        Section("llm_performance", "LLM performance", llm_performance,
                "Per model: calls, failures, latency percentiles, tokens and cost."),
        Section("throughput", "Throughput", throughput,
                "Peak messages per minute and per local clock hour, and the average rate."),
        Section("system_health", "System health", system_health,
                "CPU, memory, requests, errors and p95 latency of each host, from system samples."),
        Section("performance_raw", "Performance data", performance_raw,
                "Raw data: one row per bot per local hour (what CSV and XLSX exports carry)."),
    ]
