"""Measures a data source does not record at all read "not recorded by this source" in
every format (never a 0, never "Replies 0"), and light up by themselves once a value
is written. The file is written through the SQLite source's own writer, without reply
latencies, tokens, error flags, intents, ratings, ends, LLM calls or system samples."""
import csv
import datetime as dt
import io
import json
import sqlite3
from html.parser import HTMLParser

import openpyxl
import pytest

from botreports import Reports
from botreports.core.datasource import MEASURES
from botreports.core.models import NOT_RECORDED
from botreports.core.service import SYSTEM
from botreports.plugins.sources.sqlite import SqliteAnalytics
from botreports.plugins.sources.sqlite_recorded_values import TABLE as RECORDED_VALUES

START = dt.datetime(2025, 3, 3, 9, tzinfo=dt.timezone.utc)
PERIOD = {"start_date": "2025-03-01", "end_date": "2025-03-07", "timezone": "UTC"}
TYPES = ("usage", "conversations", "performance", "compliance")
CUSTOM_METRICS = [
    {"type": "custom_metric", "title": "Messages", "table": "messages", "measure": "count"},
    {"type": "custom_metric", "title": "Slowest reply", "table": "messages", "measure": "max", "field": "latency_ms"},
    {"type": "custom_metric", "title": "Message tokens", "table": "messages", "measure": "sum", "field": "tokens"},
    {"type": "custom_metric", "title": "Errored messages", "table": "messages", "measure": "count",
     "filters": {"is_error": True}},
    {"type": "custom_metric", "title": "Messages per intent", "table": "messages", "measure": "count",
     "group_by": "intent"},
    {"type": "custom_metric", "title": "LLM calls per day", "table": "llm_calls", "measure": "count",
     "group_by": "day"},
    {"type": "custom_metric", "title": "Average duration", "table": "conversations", "measure": "avg",
     "field": "duration_ms"},
]


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def events():
    """Two bots, 12 conversations of 2 to 5 exchanges, audit events; nothing else recorded."""
    rows = [("bots", {"id": f"bot-{b}", "org_id": "org-a", "name": f"Bot {b}", "created_at": ms(START)})
            for b in (1, 2)]
    for c in range(12):
        started = START + dt.timedelta(hours=9 * c)
        bot = f"bot-{1 + c % 2}"
        exchanges = 2 + c % 4
        rows.append(("conversations", {
            "id": f"c{c}", "org_id": "org-a", "bot_id": bot, "user_id": f"u{c % 5}", "channel": "web",
            "started_at": ms(started), "ended_at": None, "status": ("open", "resolved", "handed_off")[c % 3],
            "satisfaction": None, "message_count": 2 * exchanges}))
        for m in range(2 * exchanges):
            rows.append(("messages", {
                "id": f"c{c}-m{m}", "org_id": "org-a", "conversation_id": f"c{c}", "bot_id": bot, "channel": "web",
                "user_id": f"u{c % 5}", "direction": "in" if m % 2 == 0 else "out",
                "created_at": ms(started + dt.timedelta(seconds=30 * m)), "latency_ms": None, "tokens": None,
                "intent": None, "is_error": None}))
    for a in range(6):
        rows.append(("audit_events", {
            "id": f"a{a}", "org_id": "org-a", "bot_id": "bot-1", "created_at": ms(START + dt.timedelta(hours=a)),
            "actor": f"user-{a % 2}", "action": "bot.update", "resource_type": "bot", "resource_id": "bot-1",
            "result": ("allowed", "denied")[a % 2], "ip": None}))
    return rows


def replies_per_bot():
    found = {}
    for table, row in events():
        if table == "messages" and row["direction"] == "out":
            found[row["bot_id"]] = found.get(row["bot_id"], 0) + 1
    return found


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    source = SqliteAnalytics(data / "analytics.db")
    source.write_events(events())
    source.close()
    rk = Reports(data_dir=data, load_entrypoints=False)
    yield rk, tmp_path
    rk.close()


def render(rk, tmp_path, kind, fmt, **extra):
    body = {"type": kind, "format": fmt, **PERIOD, **extra}
    if kind == "custom" and "sections" not in extra:
        body["sections"] = CUSTOM_METRICS
    return rk.render(SYSTEM, body, tmp_path / f"{kind}-{len(list(tmp_path.iterdir()))}.{fmt}")


def sections_of(path):
    return {s["name"] + (f":{s['title']}" if s["name"] == "custom_metric" else ""): s
            for s in json.loads(path.read_text(encoding="utf-8"))["sections"]}


def kpis(section):
    return {k["name"]: k for b in section["blocks"] if b["kind"] == "kpis" for k in b["items"]}


def tables(section):
    return [b for b in section["blocks"] if b["kind"] == "table"]


def texts(section):
    return " ".join(b["markdown"] for b in section["blocks"] if b["kind"] == "text")


def assert_not_recorded(kpi):
    assert kpi["value"] is None and kpi["unavailable"] == NOT_RECORDED, kpi
    assert kpi["previous"] is None and kpi["change"] is None


def column_values(table, name):
    index = [c["name"] for c in table["columns"]].index(name)
    return table["columns"][index], [row[index] for row in table["rows"]]


def test_sqlite_file_says_what_it_does_not_record(setup, tmp_path):
    source = SqliteAnalytics(tmp_path / "data" / "analytics.db")
    assert source.unrecorded() == frozenset(MEASURES)
    source.close()


def test_json_says_null_with_the_reason_in_every_report_type(setup):
    rk, tmp_path = setup
    usage = sections_of(render(rk, tmp_path, "usage", "json"))
    summary = kpis(usage["usage_summary"])
    for name in ("tokens", "cost_usd"):
        assert_not_recorded(summary[name])
    messages_in = sum(1 for t, r in events() if t == "messages" and r["direction"] == "in")
    assert summary["messages_in"]["value"] == messages_in and "unavailable" not in summary["messages_in"]
    assert summary["conversations"]["value"] == 12
    for section in ("usage_by_bot", "usage_by_channel"):
        (table,) = tables(usage[section])
        for name in ("tokens", "cost_usd"):
            column, values = column_values(table, name)
            assert column["unavailable"] == NOT_RECORDED and set(values) == {None}
        assert "unavailable" not in column_values(table, "messages_in")[0]
    (raw,) = tables(usage["usage_raw"])
    for name in ("errors", "tokens", "cost_usd"):
        column, values = column_values(raw, name)
        assert column["unavailable"] == NOT_RECORDED and values and set(values) == {None}
    assert sum(column_values(raw, "messages_out")[1]) == sum(replies_per_bot().values())

    conversations = sections_of(render(rk, tmp_path, "conversations", "json"))
    summary = kpis(conversations["conversation_summary"])
    assert_not_recorded(summary["minutes_median"])
    assert_not_recorded(summary["minutes_p90"])
    assert summary["conversations"]["value"] == 12 and summary["resolution_rate"]["value"] == 4 / 8  # of the 8 closed
    (top,) = tables(conversations["top_conversations"])
    for name in ("duration", "satisfaction"):
        assert column_values(top, name)[0]["unavailable"] == NOT_RECORDED
    assert texts(conversations["top_intents"]) == f"**Intents**: {NOT_RECORDED}."
    assert not tables(conversations["top_intents"])
    satisfaction = conversations["satisfaction_scores"]
    assert all(k["unavailable"] == NOT_RECORDED for k in kpis(satisfaction).values()) and len(kpis(satisfaction)) == 4
    assert not tables(satisfaction) and NOT_RECORDED in texts(satisfaction)
    assert not [b for b in satisfaction["blocks"] if b["kind"] == "chart"]
    (raw,) = tables(conversations["conversations_raw"])
    for name in ("ended_at", "duration", "errors", "avg_latency_ms", "satisfaction"):
        column, values = column_values(raw, name)
        assert column["unavailable"] == NOT_RECORDED and len(values) == 12 and set(values) == {None}, name
    assert sorted(column_values(raw, "messages_out")[1]) == sorted(2 + c % 4 for c in range(12))

    performance = sections_of(render(rk, tmp_path, "performance", "json"))
    latency = performance["latency"]
    assert len(kpis(latency)) == 5 and all(k["unavailable"] == NOT_RECORDED for k in kpis(latency).values())
    assert not tables(latency) and not [b for b in latency["blocks"] if b["kind"] == "chart"]
    assert texts(latency) == f"**Reply latency**: {NOT_RECORDED}."
    errors = kpis(performance["error_rates"])
    for name in ("error_rate", "errors", "llm_failure_rate", "llm_failures"):
        assert_not_recorded(errors[name])
    per_day, per_bot = tables(performance["error_rates"])
    for table in (per_day, per_bot):
        for name in ("errors", "error_rate", "llm_calls", "llm_failures", "llm_failure_rate"):
            column, values = column_values(table, name)
            assert column["unavailable"] == NOT_RECORDED and set(values) == {None}
    # replies are recorded: counted, per bot, as the events have them
    assert dict(zip(column_values(per_bot, "bot")[1], column_values(per_bot, "replies")[1])) == {
        f"Bot {b} (bot-{b})": n for b, n in ((k[-1], v) for k, v in replies_per_bot().items())}
    assert not [b for b in performance["error_rates"]["blocks"] if b["kind"] == "chart"]
    assert NOT_RECORDED in texts(performance["error_rates"])
    assert texts(performance["llm_performance"]) == f"**LLM calls**: {NOT_RECORDED}."
    assert not tables(performance["llm_performance"])
    assert texts(performance["system_health"]).startswith(f"**System samples**: {NOT_RECORDED}")
    (raw,) = tables(performance["performance_raw"])
    for name in ("errors", "avg_latency_ms", "max_latency_ms", "llm_calls", "llm_failures", "tokens"):
        column, values = column_values(raw, name)
        assert column["unavailable"] == NOT_RECORDED and values and set(values) == {None}, name
    assert sum(column_values(raw, "replies")[1]) == sum(replies_per_bot().values())

    compliance = sections_of(render(rk, tmp_path, "compliance", "json"))
    audit = kpis(compliance["audit_summary"])
    assert audit["events"]["value"] == 6 and audit["denied_events"]["value"] == 3
    assert all("unavailable" not in k for k in audit.values())


def test_custom_metrics_over_unrecorded_columns_say_so(setup):
    rk, tmp_path = setup
    found = sections_of(render(rk, tmp_path, "custom", "json"))
    messages = sum(1 for t, _ in events() if t == "messages")
    assert kpis(found["custom_metric:Messages"])["count"]["value"] == messages
    for title in ("Slowest reply", "Message tokens", "Errored messages", "Average duration"):
        (kpi,) = kpis(found[f"custom_metric:{title}"]).values()
        assert_not_recorded(kpi)
        assert kpi["label"] == title
    for title in ("Messages per intent", "LLM calls per day"):
        section = found[f"custom_metric:{title}"]
        assert texts(section) == f"**{title}**: {NOT_RECORDED}." and not tables(section)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.unavailable_cards, self.notes, self.parts, self._in_note = 0, [], [], False

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        self.unavailable_cards += tag == "div" and "kpi" in classes and "unavailable" in classes
        self._in_note = tag == "p" and "not-recorded" in classes

    def handle_data(self, data):
        self.parts.append(data)
        if self._in_note:
            self.notes.append(data.strip())
            self._in_note = False


@pytest.mark.parametrize("kind", TYPES[:3])
def test_html_and_pdf_print_the_reason_never_a_zero(setup, kind):
    from pdfminer.high_level import extract_text

    rk, tmp_path = setup
    document = sections_of(render(rk, tmp_path, kind, "json"))
    unavailable = [k for s in document.values() for k in kpis(s).values() if k.get("unavailable")]
    noted = [t for s in document.values() for t in tables(s) if any(c.get("unavailable") for c in t["columns"])]
    page = _Text()
    page.feed(render(rk, tmp_path, kind, "html").read_text(encoding="utf-8"))
    assert page.unavailable_cards == len(unavailable) > 0
    assert len(page.notes) == len(noted) and all(note.endswith(f"{NOT_RECORDED}.") for note in page.notes)
    pdf = " ".join(extract_text(str(render(rk, tmp_path, kind, "pdf"))).split())
    assert NOT_RECORDED in pdf and "Replies 0" not in pdf
    if kind == "performance":
        assert "Reply latency per day" not in pdf  # no table of replies without a latency
        assert "Errored replies, Error rate, LLM calls, LLM failures, LLM failure rate: not recorded by this source." in pdf
    if kind == "conversations":
        assert "Score distribution" not in pdf and "Intents: not recorded by this source." in pdf


def test_xlsx_leaves_value_cells_empty_and_says_why(setup):
    rk, tmp_path = setup
    book = openpyxl.load_workbook(render(rk, tmp_path, "performance", "xlsx"))
    summary = list(book["Summary"].iter_rows(values_only=True))
    assert summary[0][-1] == "Note"
    latency = [row for row in summary if row[0] == "Reply latency"]
    assert len(latency) == 5 and all(row[2] is None and row[6] == NOT_RECORDED for row in latency)
    throughput = [row for row in summary if row[0] == "Throughput"]
    assert throughput and all(row[6] is None for row in throughput)
    per_bot = list(book["Errors per bot"].iter_rows(values_only=True))
    header, data = per_bot[0], per_bot[1:3]
    assert {row[header.index("Replies")] for row in data} == set(replies_per_bot().values())
    assert all(row[header.index("Errored replies")] is None and row[header.index("LLM calls")] is None for row in data)
    assert per_bot[-1][0] == ("Errored replies, Error rate, LLM calls, LLM failures, LLM failure rate: "
                              "not recorded by this source.") and per_bot[-2] == (None,) * len(header)
    raw = list(book["Raw data"].iter_rows(values_only=True))
    assert all(row[raw[0].index("Average reply latency (ms)")] is None for row in raw[1:]) and len(raw) > 1
    notes = [row[1] for row in book["About"].iter_rows(values_only=True) if row[0] == "Note"]
    assert f"Reply latency: {NOT_RECORDED}." in notes
    assert any(note.startswith("Raw data: Errored replies, Average reply latency (ms)") for note in notes)


def test_csv_leaves_unrecorded_cells_empty(setup):
    rk, tmp_path = setup
    rows = list(csv.DictReader(io.StringIO(render(rk, tmp_path, "usage", "csv").read_text(encoding="utf-8"))))
    assert rows and all(row["errors"] == row["tokens"] == row["cost_usd"] == "" for row in rows)
    assert sum(int(row["messages_out"]) for row in rows) == sum(replies_per_bot().values())


def test_a_measure_lights_up_once_a_value_is_written(setup):
    rk, tmp_path = setup
    source = SqliteAnalytics(tmp_path / "data" / "analytics.db")
    reply = {"id": "late-reply", "org_id": "org-a", "conversation_id": "c0", "bot_id": "bot-1", "channel": "web",
             "user_id": "u0", "direction": "out", "created_at": ms(START + dt.timedelta(minutes=5)),
             "latency_ms": 1234, "tokens": None, "intent": None, "is_error": None}
    call = {"id": "call-1", "org_id": "org-a", "bot_id": "bot-1", "conversation_id": "c0", "model": "gpt-x",
            "created_at": ms(START + dt.timedelta(minutes=5)), "input_tokens": 100, "output_tokens": 20,
            "latency_ms": 800, "success": True, "cost_usd": 0.25}
    source.write_events([("messages", reply), ("llm_calls", call)])
    assert source.unrecorded() == frozenset(MEASURES) - {"messages.latency_ms", "llm_calls"}
    performance = sections_of(render(rk, tmp_path, "performance", "json"))
    latency = kpis(performance["latency"])
    assert {name: k["value"] for name, k in latency.items()} == dict.fromkeys(
        ("avg_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms"), 1234)
    assert all("unavailable" not in k for k in latency.values()) and tables(performance["latency"])
    assert [row[1] for row in performance["llm_performance"]["blocks"][0]["rows"]] == [1]
    (raw,) = tables(performance["performance_raw"])
    assert "unavailable" not in column_values(raw, "max_latency_ms")[0]
    assert 1234 in column_values(raw, "max_latency_ms")[1]
    assert column_values(raw, "errors")[0]["unavailable"] == NOT_RECORDED  # still no error flags
    usage = kpis(sections_of(render(rk, tmp_path, "usage", "json"))["usage_summary"])
    assert usage["tokens"]["value"] == 120 and usage["cost_usd"]["value"] == 0.25
    pdf_text = render(rk, tmp_path, "performance", "pdf")
    from pdfminer.high_level import extract_text
    assert "Average reply latency not recorded" not in " ".join(extract_text(str(pdf_text)).split())
    # the value taken back out (the row replaced without it): not recorded again
    source.write_events([("messages", {**reply, "latency_ms": None})])
    assert "messages.latency_ms" in source.unrecorded()
    source.close()


def test_counts_follow_inserts_replacements_updates_and_deletes(setup, tmp_path):
    path = tmp_path / "data" / "analytics.db"
    source = SqliteAnalytics(path)
    message = {"id": "x", "org_id": "org-a", "conversation_id": "c1", "bot_id": "bot-1", "channel": "web",
               "user_id": "u1", "direction": "in", "created_at": ms(START), "latency_ms": None, "tokens": 7,
               "intent": "greet", "is_error": False}
    source.write_events([("messages", message)])
    assert not {"messages.tokens", "messages.intent", "messages.is_error"} & source.unrecorded()
    assert "messages.latency_ms" in source.unrecorded()  # a latency on an incoming message is not a reply's
    source.write_events([("messages", {**message, "tokens": None})])
    assert "messages.tokens" in source.unrecorded() and "messages.intent" not in source.unrecorded()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE conversations SET satisfaction = 4 WHERE id = 'c3'")
        conn.execute("UPDATE messages SET intent = NULL WHERE id = 'x'")
    assert "conversations.satisfaction" not in source.unrecorded() and "messages.intent" in source.unrecorded()
    with conn:
        conn.execute("DELETE FROM conversations WHERE id = 'c3'")
    assert "conversations.satisfaction" in source.unrecorded()
    counted = dict(conn.execute(f"SELECT measure, n FROM {RECORDED_VALUES}").fetchall())
    assert counted == {"messages.latency_ms": 0, "messages.tokens": 0, "messages.is_error": 1,
                       "messages.intent": 0, "conversations.satisfaction": 0, "conversations.ended_at": 0}
    # a file written before the counts existed is searched instead, to the same answer
    answer = source.unrecorded()
    with conn:
        conn.execute(f"DROP TABLE {RECORDED_VALUES}")
    fresh = SqliteAnalytics(path)
    assert fresh.unrecorded() == answer
    fresh.close()
    source.close()
    conn.close()


def test_a_file_that_records_everything_reads_as_before(reports, system_principal, tmp_path):
    source = SqliteAnalytics(reports.data_dir / "analytics.db")
    assert source.unrecorded() == frozenset()
    source.close()
    path = reports.render(system_principal, {"type": "performance", "format": "json", "start_date": "2025-01-18",
                                             "end_date": "2025-01-31"}, tmp_path / "p.json")
    assert '"unavailable"' not in path.read_text(encoding="utf-8")
