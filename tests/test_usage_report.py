"""The usage report's numbers equal an independent computation over the analytics file."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from botreports import Reports
from botreports.core.service import SYSTEM
from botreports.plugins.sources.synthetic import generate

from independent import usage

BIN = Path(sys.executable).with_name("botreports")

CASES = [
    # seed, timezone, first day, last day: each crosses the zone's DST change where it has one
    (11, "America/New_York", "2025-03-03", "2025-03-14"),
    (12, "Asia/Kathmandu", "2025-03-01", "2025-03-12"),
    (13, "Europe/Berlin", "2025-03-25", "2025-04-02"),
    (14, "UTC", "2025-03-05", "2025-03-05"),
]


def kpis(document):
    block = document["sections"][0]["blocks"][0]
    return {item["name"]: item["value"] for item in block["items"]}


def daily(document):
    table = next(b for b in document["sections"][1]["blocks"] if b["kind"] == "table")
    names = [c["name"] for c in table["columns"]]
    return {row[0]: dict(zip(names[1:], row[1:])) for row in table["rows"]}


def check(document, expected_totals, expected_daily, first, last):
    got = kpis(document)
    for name in ("conversations", "messages_in", "messages_out", "active_users", "new_users", "tokens"):
        assert got[name] == expected_totals[name], name
    assert got["cost_usd"] == pytest.approx(expected_totals["cost_usd"], abs=1e-4)
    got_daily = daily(document)
    # every day of the period is listed, in order, quiet days as zeros
    assert list(got_daily) == sorted(got_daily) and min(got_daily) == first and max(got_daily) == last
    for day, row in got_daily.items():
        want = expected_daily.get(day, {k: 0 for k in row})
        assert row == want, day
    assert sum(r["messages_in"] for r in got_daily.values()) == expected_totals["messages_in"]


@pytest.mark.parametrize("seed,tz,first,last", CASES)
def test_usage_report_equals_independent_computation(tmp_path, seed, tz, first, last):
    import datetime as dt
    data_dir = tmp_path / "data"
    generate(data_dir / "analytics.db", days=20, bots=5, messages=4000, seed=seed,
             end_date=dt.date.fromisoformat(last) + dt.timedelta(days=3))
    rk = Reports(data_dir=data_dir, load_entrypoints=False)
    out = rk.render(SYSTEM, {"type": "usage", "format": "json", "start_date": first, "end_date": last,
                             "timezone": tz}, tmp_path / "usage.json")
    document = json.loads(out.read_text())
    assert document["schema"] == "botreports/1"
    assert document["period"]["timezone"] == tz
    totals, per_day = usage(data_dir / "analytics.db", first, last, tz)
    assert totals["messages_in"] > 50
    check(document, totals, per_day, first, last)


def test_cli_demo_data_then_generate_matches_sql(tmp_path):
    """The README's two CLI steps, as a user runs them, per organisation."""
    data_dir = tmp_path / "data"
    env = {**os.environ, "BOTREPORTS_DATA_DIR": str(data_dir)}
    subprocess.run([str(BIN), "demo-data", "--days", "30", "--bots", "6", "--messages", "5000", "--seed", "5",
                    "--end-date", "2025-01-31"], check=True, env=env, capture_output=True)
    out = tmp_path / "usage.json"
    done = subprocess.run([str(BIN), "generate", "--type", "usage", "--start", "2025-01-01", "--end", "2025-01-31",
                           "--format", "json", "--out", str(out), "--timezone", "America/Sao_Paulo",
                           "--org", "org-globex"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    totals, per_day = usage(data_dir / "analytics.db", "2025-01-01", "2025-01-31", "America/Sao_Paulo",
                            org="org-globex")
    assert totals["conversations"] > 20
    check(document, totals, per_day, "2025-01-01", "2025-01-31")


def test_change_against_previous_period(reports, system_principal, tmp_path):
    out = reports.render(system_principal, {"type": "usage", "format": "json", "start_date": "2025-01-25",
                                            "end_date": "2025-01-31"}, tmp_path / "u.json")
    items = {i["name"]: i for i in json.loads(out.read_text())["sections"][0]["blocks"][0]["items"]}
    previous, _ = usage(reports.data_dir / "analytics.db", "2025-01-18", "2025-01-24", "UTC")
    for name in ("conversations", "messages_in", "active_users"):
        item = items[name]
        assert item["previous"] == previous[name]
        assert item["change"] == pytest.approx((item["value"] - previous[name]) / previous[name], abs=1e-4)


def test_bot_and_channel_filters(reports, system_principal, tmp_path):
    import sqlite3
    body = {"type": "usage", "format": "json", "start_date": "2025-01-18", "end_date": "2025-01-31",
            "bot_id": ["bot-001", "bot-002"], "channel": "web"}
    document = json.loads(reports.render(system_principal, body, tmp_path / "f.json").read_text())
    from independent import instant
    conn = sqlite3.connect(reports.data_dir / "analytics.db")
    expected = conn.execute(
        "SELECT count(*) FROM messages WHERE direction = 'in' AND bot_id IN ('bot-001', 'bot-002')"
        " AND channel = 'web' AND created_at >= ? AND created_at < ?",
        [instant("2025-01-18", "UTC"), instant("2025-01-31", "UTC", 1)]).fetchone()[0]
    assert expected > 0
    assert kpis(document)["messages_in"] == expected
