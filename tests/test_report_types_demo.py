"""Each report type over the demo data: every section present with plausible
values that agree with plain SQL, raw-data tables, custom reports and their
field-by-field validation errors."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from botreports import ValidationError

BIN = Path(sys.executable).with_name("botreports")
PERIOD = {"start_date": "2025-01-18", "end_date": "2025-01-31"}
TYPES = {
    "usage": ["usage_summary", "daily_activity", "peak_hours", "usage_by_bot", "usage_by_channel", "top_users",
              "usage_raw"],
    "conversations": ["conversation_summary", "conversation_outcomes", "top_conversations", "top_intents",
                      "satisfaction_scores", "handoffs", "conversations_raw"],
    "performance": ["latency", "error_rates", "llm_performance", "throughput", "system_health", "performance_raw"],
    "compliance": ["audit_summary", "access_denials", "admin_actions", "data_retention", "report_access",
                   "compliance_raw"],
}


def render(reports, principal, tmp_path, body):
    out = reports.render(principal, {"format": "json", **PERIOD, **body}, tmp_path / "r.json")
    return json.loads(out.read_text())


def section(document, name):
    return next(s for s in document["sections"] if s["name"] == name)


def kpis(document, name):
    block = next(b for b in section(document, name)["blocks"] if b["kind"] == "kpis")
    return {item["name"]: item["value"] for item in block["items"]}


def tables(document, name):
    return [b for b in section(document, name)["blocks"] if b["kind"] == "table"]


def as_dicts(table):
    names = [c["name"] for c in table["columns"]]
    return [dict(zip(names, row)) for row in table["rows"]]


def sql(reports, query, args=()):
    conn = sqlite3.connect(reports.data_dir / "analytics.db")
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


LO, HI = 1737158400000, 1738368000000  # 2025-01-18 and 2025-02-01, UTC midnights


@pytest.mark.parametrize("report_type", sorted(TYPES))
def test_every_type_has_every_section_with_values(reports, principal_factory, tmp_path, report_type):
    admin = principal_factory("report_admin", "org-acme")
    if report_type == "compliance":
        # a download inside the (past) period for report_access, and a short retention for data_retention
        reports.store.db["audit_log"].insert({
            "created_at": "2025-01-20T09:30:00.000000Z", "org_id": "org-acme", "actor": "ana@acme",
            "action": "report.download", "resource_type": "report", "resource_id": "rpt-old", "result": "allowed",
            "ip": "", "details": "{}"})
        reports.settings.data_retention_days = 7
    document = render(reports, admin, tmp_path, {"type": report_type})
    assert [s["name"] for s in document["sections"]] == TYPES[report_type]
    for s in document["sections"]:
        assert s["blocks"], s["name"]
        for block in s["blocks"]:
            if block["kind"] == "table":
                assert block["rows"], (s["name"], block["title"])
            if block["kind"] == "kpis":
                assert all(item["value"] is not None for item in block["items"]), s["name"]
    raw = [b for s in document["sections"] for b in s["blocks"] if b.get("raw")]
    assert len(raw) == 1 and raw[0]["rows"]


def test_usage_sections_agree_with_sql(reports, principal_factory, tmp_path):
    document = render(reports, principal_factory("report_creator", "org-acme"), tmp_path, {"type": "usage"})
    totals = kpis(document, "usage_summary")
    expected_in = sql(reports, "SELECT count(*) FROM messages WHERE org_id = 'org-acme' AND direction = 'in'"
                               " AND created_at >= ? AND created_at < ?", [LO, HI])[0][0]
    assert totals["messages_in"] == expected_in > 100
    raw = as_dicts(tables(document, "usage_raw")[0])
    assert sum(r["messages_in"] for r in raw) == expected_in
    assert sum(r["conversations"] for r in raw) == totals["conversations"]
    by_bot = as_dicts(tables(document, "usage_by_bot")[0])
    assert sum(r["messages_in"] for r in by_bot) == expected_in
    assert sum(r["share"] for r in by_bot) == pytest.approx(1, abs=1e-3)
    grid = as_dicts(tables(document, "peak_hours")[0])
    assert sum(r["total"] for r in grid) == expected_in
    users = as_dicts(tables(document, "top_users")[0])
    real_ids = {u for (u,) in sql(reports, "SELECT DISTINCT user_id FROM messages")}
    assert users and all(u["user"].startswith("user-") and u["user"] not in real_ids for u in users)
    top = sql(reports, "SELECT count(*) AS n FROM messages WHERE org_id = 'org-acme' AND direction = 'in'"
                       " AND created_at >= ? AND created_at < ? GROUP BY user_id ORDER BY n DESC LIMIT 1", [LO, HI])
    assert users[0]["messages_in"] == top[0][0]


def test_conversation_sections_agree_with_sql(reports, system_principal, tmp_path):
    document = render(reports, system_principal, tmp_path, {"type": "conversations"})
    summary = kpis(document, "conversation_summary")
    counts = dict(sql(reports, "SELECT status, count(*) FROM conversations WHERE started_at >= ? AND started_at < ?"
                               " GROUP BY status", [LO, HI]))
    total = sum(counts.values())
    closed = total - counts.get("open", 0)
    assert summary["conversations"] == total and summary["closed"] == closed
    assert summary["resolution_rate"] == pytest.approx(counts["resolved"] / closed, rel=1e-12)
    assert summary["handoff_rate"] == pytest.approx(counts["handed_off"] / closed, rel=1e-12)
    assert summary["containment_rate"] == pytest.approx(1 - counts["handed_off"] / closed, rel=1e-12)
    lengths = sorted(n for (n,) in sql(reports, "SELECT message_count FROM conversations WHERE started_at >= ?"
                                                " AND started_at < ?", [LO, HI]))
    middle = len(lengths) // 2
    assert summary["messages_median"] == (lengths[middle] if len(lengths) % 2
                                          else (lengths[middle - 1] + lengths[middle]) / 2)
    assert summary["minutes_median"] > 0
    raw = as_dicts(tables(document, "conversations_raw")[0])
    assert len(raw) == total
    assert sum(r["messages_in"] + r["messages_out"] for r in raw) == sum(lengths)
    scores = as_dicts(tables(document, "satisfaction_scores")[0])
    rated = dict(sql(reports, "SELECT satisfaction, count(*) FROM conversations WHERE started_at >= ?"
                              " AND started_at < ? AND satisfaction IS NOT NULL GROUP BY 1", [LO, HI]))
    assert {r["score"]: r["conversations"] for r in scores} == {s: rated.get(s, 0) for s in range(1, 6)}


def test_performance_latency_percentiles_are_exact(reports, system_principal, tmp_path):
    document = render(reports, system_principal, tmp_path, {"type": "performance", "timezone": "Asia/Kathmandu",
                                                            "bot_id": ["bot-001", "bot-002", "bot-003"]})
    values = sorted(v for (v,) in sql(
        reports, "SELECT latency_ms FROM messages WHERE direction = 'out' AND bot_id IN ('bot-001', 'bot-002',"
                 " 'bot-003') AND created_at >= ? AND created_at < ?",
        [LO - 20_700_000, HI - 20_700_000]))  # Kathmandu is UTC+05:45
    latency = kpis(document, "latency")
    for p in (50, 90, 95, 99):
        assert latency[f"p{p}_ms"] == values[-(-len(values) * p // 100) - 1]
    raw = as_dicts(tables(document, "performance_raw")[0])
    assert sum(r["replies"] for r in raw) == len(values)
    assert all(r["hour_start"].endswith(("T00:15:00Z", ":15:00Z")) for r in raw)  # local hours start at :15 UTC


def test_compliance_report_access_lists_the_framework_audit_log(reports, principal_factory, tmp_path):
    creator = principal_factory("report_admin", "org-acme", id="ana@acme")
    report = reports.generate(creator, {"type": "usage", "format": "json", "period": "last_7_days"})
    reports.download(creator, report.id)
    import datetime as dt
    today = dt.datetime.now(dt.timezone.utc).date()
    body = {"type": "compliance", "format": "json", "start_date": str(today - dt.timedelta(days=1)),
            "end_date": str(today)}
    document = json.loads(reports.render(creator, body, tmp_path / "c.json").read_text())
    latest = as_dicts(tables(document, "report_access")[1])
    mine = {(row["actor"], row["action"], row["resource"]) for row in latest}
    assert ("ana@acme", "report.download", report.id) in mine
    assert ("ana@acme", "report.generate", report.id) in mine
    audit = as_dicts(tables(document, "compliance_raw")[0])
    assert all(r["actor"] for r in audit)


def test_data_retention_counts_conversations_older_than_the_retention(reports, system_principal, tmp_path):
    document = render(reports, system_principal, tmp_path, {
        "type": "custom", "sections": [{"type": "data_retention", "retention_days": 7}]})
    end = HI  # the period ends 2025-02-01 00:00 UTC
    expected = sql(reports, "SELECT count(*) FROM conversations WHERE started_at < ?", [end - 7 * 86_400_000])[0][0]
    assert expected > 0
    assert kpis(document, "data_retention")["conversations_past_retention"] == expected


def test_custom_report_with_custom_metric(reports, system_principal, tmp_path):
    document = render(reports, system_principal, tmp_path, {"type": "custom", "title": "Executive summary", "sections": [
        {"type": "usage_summary"}, {"type": "top_conversations"}, {"type": "satisfaction_scores"},
        {"type": "custom_metric", "title": "Slow replies per bot", "table": "messages", "measure": "count",
         "filters": {"direction": "out", "latency_ms": {"gt": 1500}}, "group_by": "bot", "chart": "bar"},
        {"type": "custom_metric", "title": "p95 LLM latency of gpt-4o", "table": "llm_calls", "measure": "p95",
         "field": "latency_ms", "filters": {"model": "gpt-4o"}},
    ]})
    assert document["title"] == "Executive summary"
    names = [s["name"] for s in document["sections"]]
    assert names == ["usage_summary", "top_conversations", "satisfaction_scores", "custom_metric", "custom_metric"]
    slow = document["sections"][3]
    assert slow["title"] == "Slow replies per bot"
    table = as_dicts(slow["blocks"][0])
    expected = dict(sql(reports, "SELECT bot_id, count(*) FROM messages WHERE direction = 'out' AND latency_ms > 1500"
                                 " AND created_at >= ? AND created_at < ? GROUP BY bot_id", [LO, HI]))
    assert {row["group"].split("(")[-1].rstrip(")"): row["count"] for row in table} == expected
    assert [b["kind"] for b in slow["blocks"]] == ["table", "chart"]
    latencies = sorted(v for (v,) in sql(reports, "SELECT latency_ms FROM llm_calls WHERE model = 'gpt-4o'"
                                                  " AND created_at >= ? AND created_at < ?", [LO, HI]))
    p95 = document["sections"][4]["blocks"][0]["items"][0]
    assert p95["label"] == "p95 LLM latency of gpt-4o"
    assert p95["value"] == latencies[-(-len(latencies) * 95 // 100) - 1]


def test_custom_metric_per_hour_has_every_local_hour_labelled_locally(reports, system_principal, tmp_path):
    """Messages per hour in Asia/Kathmandu (+05:45) over two days, the second after the demo
    data ends: 48 hours, quiet ones as zeros, each labelled by the local clock and counted
    from the messages of that local hour."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    document = render(reports, system_principal, tmp_path, {
        "type": "custom", "start_date": "2025-01-31", "end_date": "2025-02-01", "timezone": "Asia/Kathmandu",
        "sections": [{"type": "custom_metric", "title": "Messages per hour", "table": "messages",
                      "measure": "count", "group_by": "hour"}]})
    table, chart = section(document, "custom_metric")["blocks"]
    zone = ZoneInfo("Asia/Kathmandu")
    start = dt.datetime(2025, 1, 31, tzinfo=zone)
    hours = [start + dt.timedelta(hours=k) for k in range(48)]
    assert chart["categories"] == [h.strftime("%Y-%m-%d %H:00") for h in hours]
    counts = {}
    for (created,) in sql(reports, "SELECT created_at FROM messages WHERE created_at >= ? AND created_at < ?",
                          [int(hours[0].timestamp() * 1000), int((hours[-1] + dt.timedelta(hours=1)).timestamp() * 1000)]):
        local = dt.datetime.fromtimestamp(created / 1000, zone).replace(minute=0, second=0, microsecond=0)
        counts[local] = counts.get(local, 0) + 1
    assert chart["series"][0]["values"] == [counts.get(h, 0) for h in hours]
    assert counts and min(chart["series"][0]["values"]) == 0  # the quiet hours are there, as zeros
    assert [dt.datetime.fromisoformat(row[0].replace("Z", "+00:00")) for row in table["rows"]] == hours


def test_custom_metric_labels_read_as_words(reports, system_principal, tmp_path):
    document = render(reports, system_principal, tmp_path, {"type": "custom", "sections": [
        {"type": "custom_metric", "table": "messages", "measure": "count", "group_by": "is_error",
         "filters": {"direction": "out"}},
        {"type": "custom_metric", "table": "messages", "measure": "p95", "field": "latency_ms"}]})
    errors, latency = [s["blocks"] for s in document["sections"]]
    table, chart = errors
    assert [c["label"] for c in table["columns"]] == ["Is error", "Count of messages"]
    counts = dict(sql(reports, "SELECT is_error, count(*) FROM messages WHERE direction = 'out'"
                               " AND created_at >= ? AND created_at < ? GROUP BY is_error", [LO, HI]))
    assert {row[0]: row[1] for row in table["rows"]} == {"no": counts[0], "yes": counts[1]}
    assert chart["x_label"] == "Is error" and chart["y_label"] == "Count of messages"
    kpi = latency[0]["items"][0]
    assert (kpi["label"], kpi["unit"]) == ("p95 of latency (ms)", "ms")


def problems(reports, principal, body):
    with pytest.raises(ValidationError) as caught:
        reports.generate(principal, {"format": "json", **PERIOD, **body})
    return {d["field"]: d["problem"] for d in caught.value.details}


def test_unknown_section_lists_the_valid_ones(reports, principal_factory):
    found = problems(reports, principal_factory("report_creator"), {"type": "custom", "sections": [{"type": "nope"}]})
    listed = found["sections[0].type"]
    for name in sum(TYPES.values(), []) + ["custom_metric"]:
        assert name in listed


@pytest.mark.parametrize("metric,field,words", [
    ({"table": "users"}, "table", "must be one of messages"),
    ({"table": "messages", "measure": "median"}, "measure", "must be one of count"),
    ({"table": "messages", "measure": "sum", "field": "channel"}, "field", "needs a numeric field"),
    ({"table": "messages", "measure": "avg"}, "field", "is required for measure avg"),
    ({"table": "messages", "measure": "sum", "field": "latency_ms; DROP TABLE messages"}, "field", "unknown field"),
    ({"table": "messages", "group_by": "user_id"}, "group_by", "must be one of"),
    ({"table": "messages", "filters": {"1=1 OR channel": "web"}}, "filters.1=1 OR channel", "unknown field"),
    ({"table": "messages", "filters": {"channel": {"like": "%"}}}, "filters.channel.like", "unknown operator"),
    ({"table": "messages", "filters": {"channel": {"gt": "a"}}}, "filters.channel.gt", "compares numbers only"),
    ({"table": "messages", "filters": {"latency_ms": "slow"}}, "filters.latency_ms.eq", "must be of type integer"),
    ({"table": "messages", "filters": ["channel"]}, "filters", "must be an object"),
    ({"table": "messages", "chart": "radar"}, "chart", "must be one of bar, line, none"),
])
def test_custom_metric_errors_name_the_option(reports, principal_factory, metric, field, words):
    found = problems(reports, principal_factory("report_creator"),
                     {"type": "custom", "sections": [{"type": "usage_summary"}, {"type": "custom_metric", **metric}]})
    assert words in found[f"sections[1].{field}"], found


def test_cli_custom_report_with_title_and_sections(reports, tmp_path):
    out = tmp_path / "custom.json"
    env = {**os.environ, "BOTREPORTS_DATA_DIR": str(reports.data_dir)}
    done = subprocess.run([str(BIN), "generate", "--type", "custom", "--title", "Weekly digest", "--sections",
                           "usage_summary,top_intents,latency", "--start", "2025-01-25", "--end", "2025-01-31",
                           "--format", "json", "--out", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["title"] == "Weekly digest"
    assert [s["name"] for s in document["sections"]] == ["usage_summary", "top_intents", "latency"]
    bad = subprocess.run([str(BIN), "generate", "--type", "custom", "--sections", "usage_summary,bogus",
                          "--start", "2025-01-25", "--end", "2025-01-31", "--format", "json", "--out", str(out)],
                         env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "bogus" in bad.stderr and "usage_by_channel" in bad.stderr
