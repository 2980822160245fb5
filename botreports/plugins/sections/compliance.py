"""Compliance sections: what an auditor must see. The bots' audit events come
from the data source; ``report_access`` reads botreports' own audit log of
who generated, downloaded or deleted which report (see docs/metrics.md)."""
from __future__ import annotations

import datetime as dt

from ... import hookimpl
from ...core.models import Chart, Column, Kpi, Kpis, Option, Section, Series, Table, Text
from ...core.scheduling import wall_clock_text
from .kpi_math import rate
from .labels import bot_label, bot_names

RESULTS = ("allowed", "denied", "error")
#: Audit actions that change configuration, people or permissions (overridable per section).
ADMIN_ACTIONS = ("bot.publish", "bot.update", "user.invite", "user.delete", "settings.change", "role.grant",
                 "api_key.create", "export.data")
#: Actions of the framework's own log that concern reports.
REPORT_ACTIONS = ("report.generate", "report.download", "report.delete", "report.expire", "schedule.create",
                  "schedule.update", "schedule.delete", "template.create")

EVENT_COLUMNS = (
    Column("created_at", "When", "datetime"), Column("actor", "Actor", "text"), Column("action", "Action", "text"),
    Column("resource", "Resource", "text"), Column("result", "Result", "text"), Column("bot", "Bot", "text"),
    Column("ip", "IP address", "text"),
)


def _event_row(names, event):
    resource = "/".join(str(v) for v in (event["resource_type"], event["resource_id"]) if v)
    return [event["created_at"], event["actor"], event["action"], resource, event["result"],
            bot_label(names, event["bot_id"]) if event["bot_id"] else None, event["ip"]]


def audit_summary(ctx):
    rows = ctx.source.audit_summary(ctx.scope)
    by_action: dict = {}
    for row in rows:
        by_action.setdefault(row["action"], {r: 0 for r in RESULTS})[row["result"]] = row["events"]
    totals = {r: sum(counts[r] for counts in by_action.values()) for r in RESULTS}
    total = sum(totals.values())
    blocks = [Kpis([Kpi("events", "Audit events", total)] + [
        Kpi(f"{r}_events", f"{r.capitalize()} events", totals[r]) for r in RESULTS] + [
        Kpi("denial_rate", "Denial rate", rate(totals["denied"], total), "%")])]
    table = sorted(([action] + [counts[r] for r in RESULTS] + [sum(counts.values())]
                    for action, counts in by_action.items()), key=lambda row: (-row[-1], row[0]))
    blocks.append(Table("Events by action and result", [Column("action", "Action", "text")] + [
        Column(r, r.capitalize(), "integer") for r in RESULTS] + [Column("total", "Total", "integer")], table))
    if ctx.include_charts and table:
        blocks.append(Chart("Events by action", "stacked_bar", [row[0] for row in table],
                            [Series(r.capitalize(), [row[1 + i] for row in table]) for i, r in enumerate(RESULTS)],
                            x_label="Action", y_label="Events"))
    return blocks


def access_denials(ctx):
    names = bot_names(ctx)
    actors = [[row["actor"], row["denials"], ", ".join(row["actions"]), row["last_at"]]
              for row in ctx.source.audit_denials(ctx.scope, ctx.options["limit"])]
    blocks = [Table("Denials per actor", (
        Column("actor", "Actor", "text"), Column("denials", "Denials", "integer"),
        Column("actions", "Actions denied", "text"), Column("last_at", "Last denial", "datetime")), actors)]
    recent = [_event_row(names, e) for e in ctx.source.audit_events(ctx.scope, results=("denied",),
                                                                    limit=ctx.options["limit"])]
    blocks.append(Table("Latest denied events", EVENT_COLUMNS, recent))
    return blocks


def admin_actions(ctx):
    names = bot_names(ctx)
    actions = tuple(ctx.options["actions"] or ADMIN_ACTIONS)
    events = ctx.source.audit_events(ctx.scope, actions=actions, limit=ctx.options["limit"])
    summary = [row for row in ctx.source.audit_summary(ctx.scope) if row["action"] in actions]
    counts: dict = {}
    for row in summary:
        counts[row["action"]] = counts.get(row["action"], 0) + row["events"]
    blocks = [Table("Administrative actions", (Column("action", "Action", "text"), Column("events", "Events", "integer")),
                    sorted(([a, n] for a, n in counts.items()), key=lambda row: (-row[1], row[0])))]
    blocks.append(Table(f"Latest administrative actions (up to {ctx.options['limit']})", EVENT_COLUMNS,
                        [_event_row(names, e) for e in events]))
    return blocks


def data_retention(ctx):
    days = ctx.options["retention_days"] or getattr(ctx.settings, "data_retention_days", 365)
    # As of the end of the report's period, so a report of a past month reads the same when re-run.
    cutoff = ctx.scope.period.end - dt.timedelta(days=days)
    tz = ctx.scope.period.timezone
    names = bot_names(ctx)
    rows = [[bot_label(names, row["bot_id"]), row["conversations"], row["oldest_at"]]
            for row in ctx.source.retention_overview(ctx.scope, cutoff)]
    total = sum(row[1] for row in rows)
    verdict = ("No conversation is older than the retention period." if not total else
               f"**{total:,} conversations** started before {wall_clock_text(cutoff, tz)} ({tz}), older than the "
               f"retention period of {days} days; they should be deleted or anonymised.")
    return [Kpis([Kpi("retention_days", "Retention period", days, "days"),
                  Kpi("conversations_past_retention", "Conversations past retention", total)]),
            Text(verdict),
            Table("Conversations past retention, per bot", (
                Column("bot", "Bot", "text"), Column("conversations", "Conversations", "integer"),
                Column("oldest_at", "Oldest started", "datetime")), rows)]


def report_access(ctx):
    store = getattr(ctx.reports, "store", None)
    if store is None:
        return [Text("The audit log of reports is not available to this data source.")]
    period = ctx.scope.period
    events = store.audit_events(ctx.scope.org_id, period.start, period.end, list(REPORT_ACTIONS))
    counts: dict = {}
    for event in events:
        key = (event["actor"], event["action"])
        counts[key] = counts.get(key, 0) + 1
    by_actor = sorted(([actor, action, n] for (actor, action), n in counts.items()),
                      key=lambda row: (-row[2], row[0], row[1]))
    latest = sorted(events, key=lambda e: (e["created_at"], e["id"]), reverse=True)[:ctx.options["limit"]]
    return [
        Table("Report activity per person", (Column("actor", "Who", "text"), Column("action", "Action", "text"),
                                             Column("events", "Times", "integer")), by_actor),
        Table(f"Latest report activity (up to {ctx.options['limit']})", (
            Column("created_at", "When", "datetime"), Column("actor", "Who", "text"),
            Column("action", "Action", "text"), Column("resource", "Report or schedule", "text"),
            Column("result", "Result", "text")),
            [[dt.datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")), e["actor"], e["action"],
              e["resource_id"], e["result"]] for e in latest]),
    ]


def compliance_raw(ctx):
    names = bot_names(ctx)

    def rows():
        for event in ctx.source.audit_rows(ctx.scope):
            yield _event_row(names, event)

    return [Table("Audit events", EVENT_COLUMNS, rows(), raw=True)]


LIMIT = Option("int", 50, "How many rows to show", minimum=1, maximum=1000)


@hookimpl
def register_sections():
    return [
        Section("audit_summary", "Audit summary", audit_summary,
                "Audit events of the bots by action and result (allowed, denied, error)."),
        Section("access_denials", "Access denials", access_denials,
                "Who was denied what, and the latest denied events.", options={"limit": LIMIT}),
        Section("admin_actions", "Administrative actions", admin_actions,
                "Changes to bots, users, roles, settings and keys.",
                options={"limit": LIMIT, "actions": Option("list", None, "Actions that count as administrative")}),
        Section("data_retention", "Data retention", data_retention,
                "Conversations older than the configured retention period, per bot.",
                options={"retention_days": Option("int", None, "Retention in days (default: the instance's "
                                                               "BOTREPORTS_DATA_RETENTION_DAYS)",
                                                  minimum=1, maximum=36500)}),
        Section("report_access", "Report access", report_access,
                "Who generated, downloaded or deleted which report, from botreports' own audit log.",
                options={"limit": LIMIT}),
        Section("compliance_raw", "Audit data", compliance_raw,
                "Raw data: one row per audit event (what CSV and XLSX exports carry)."),
    ]
