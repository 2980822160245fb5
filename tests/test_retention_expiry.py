"""Retention enforced when a file is asked for, not only by the hourly sweep: a report past its
``expires_at`` answers 410 Gone (by key and by signed link), links never outlive the file, and
the retention setting takes fractions of a day and says which variable is wrong."""
import datetime as dt
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from botreports import Reports
from botreports.core.errors import Gone
from botreports.core.settings import Settings
from http_support import BASE, LiveServer

UTC = dt.timezone.utc
BODY = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}


@pytest.fixture
def served(reports):
    key, _ = reports.create_api_key("org-acme", "report_creator")
    server = LiveServer(reports)
    yield server, key
    server.stop()


def test_report_past_expires_at_is_gone_before_the_sweep_runs(served):
    # The fault: the file was served until the next hourly sweep (21 minutes late in the campaign).
    server, key = served
    rk = server.reports
    report_id = server.request("POST", f"{BASE}/generate", key, json=BODY).json()["report_id"]
    link = server.request("GET", f"{BASE}/{report_id}/download?as=link", key).json()["url"]
    assert server.session.get(link, timeout=30).status_code == 200
    path = rk.data_dir / rk.store.get_report(report_id).artifact_path
    rk.store.update_report(report_id, expires_at=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
    assert path.exists()  # the sweep has not run: the file is still on disk ...
    by_key = server.request("GET", f"{BASE}/{report_id}/download", key)
    by_link = server.session.get(link, timeout=30)
    for answer in (by_key, by_link):  # ... and is not served
        assert answer.status_code == 410, answer.text
        assert answer.json()["error"] == "expired" and "expired at" in answer.json()["message"]
    assert server.request("GET", f"{BASE}/{report_id}/download?as=link", key).status_code == 410
    assert rk.sweep_expired() == 1 and not path.exists()
    swept = server.request("GET", f"{BASE}/{report_id}/download", key)
    assert swept.status_code == 410 and swept.json()["error"] == "expired"
    assert server.request("GET", f"{BASE}/{report_id}/status", key).json()["state"] == "expired"


def test_report_not_yet_expired_downloads_and_a_running_one_is_still_409(served):
    server, key = served
    rk = server.reports
    report_id = server.request("POST", f"{BASE}/generate", key, json=BODY).json()["report_id"]
    expected = hashlib.sha256((rk.data_dir / rk.store.get_report(report_id).artifact_path).read_bytes()).hexdigest()
    rk.store.update_report(report_id, expires_at=dt.datetime.now(UTC) + dt.timedelta(minutes=5))
    got = server.request("GET", f"{BASE}/{report_id}/download", key)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == expected
    rk.store.update_report(report_id, state="running", expires_at=None)
    assert server.request("GET", f"{BASE}/{report_id}/download", key).status_code == 409


def test_signed_link_never_outlives_the_report(reports, principal_factory):
    viewer = principal_factory("report_creator")
    report = reports.generate(viewer, BODY)
    soon = dt.datetime.now(UTC) + dt.timedelta(seconds=90)
    reports.store.update_report(report.id, expires_at=soon)
    expires, _signature = reports.download_link(viewer, report.id, ttl=3600)
    assert soon.timestamp() - 5 <= expires <= soon.timestamp() + 1  # capped at the report's expiry, not an hour


def test_expired_state_is_gone_for_the_facade_too(reports, principal_factory):
    viewer = principal_factory("report_creator")
    report = reports.generate(viewer, BODY)
    reports.store.update_report(report.id, expires_at=dt.datetime.now(UTC) - dt.timedelta(days=1))
    with pytest.raises(Gone):
        reports.download(viewer, report.id)
    assert reports.store.get_report(report.id).state == "completed"  # until the sweep marks it expired


@pytest.mark.parametrize("days, hours", [("0.5", 12), ("0.25", 6), ("2", 48)])
def test_retention_days_may_be_a_fraction_of_a_day(monkeypatch, tmp_path, botreports_demo_db, days, hours):
    import shutil
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    monkeypatch.setenv("BOTREPORTS_RETENTION_DAYS", days)
    rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    try:
        report = rk.generate(rk_system(), BODY)
        kept = report.expires_at - report.completed_at
        assert kept == dt.timedelta(hours=hours)
    finally:
        rk.close()


def rk_system():
    from botreports.core.service import SYSTEM
    return SYSTEM


@pytest.mark.parametrize("name, value, words", [
    ("RETENTION_DAYS", "abc", "BOTREPORTS_RETENTION_DAYS must be a number, not 'abc'"),
    ("RETENTION_DAYS", "0", "BOTREPORTS_RETENTION_DAYS must be at least one minute"),
    ("RETENTION_DAYS", "nan", "BOTREPORTS_RETENTION_DAYS must be a finite number"),
    ("RATE_LIMIT", "1.5", "BOTREPORTS_RATE_LIMIT must be a whole number, not '1.5'"),
    ("LEASE_SECONDS", "soon", "BOTREPORTS_LEASE_SECONDS must be a number"),
    ("HTTP_CONNECTION_LIMIT", "many", "BOTREPORTS_HTTP_CONNECTION_LIMIT must be a whole number"),
    ("SMTP_PORT", "25a", "BOTREPORTS_SMTP_PORT must be a whole number"),
])
def test_a_numeric_setting_that_is_not_a_number_names_its_variable(monkeypatch, name, value, words):
    monkeypatch.setenv(f"BOTREPORTS_{name}", value)
    with pytest.raises(ValueError) as caught:
        Settings.from_env(data_dir="unused")
    assert words in str(caught.value)


def test_every_numeric_setting_names_its_variable_when_wrong(monkeypatch):
    # Whatever numeric settings exist now or later, none fails with a bare "invalid literal".
    import attrs
    numeric = [f.name for f in attrs.fields(Settings) if f.type in ("int", "float", int, float)]
    assert len(numeric) >= 20
    for field in numeric:
        variable = f"BOTREPORTS_{field.upper()}"
        monkeypatch.setenv(variable, "twelve")
        with pytest.raises(ValueError) as caught:
            Settings.from_env(data_dir="unused")
        assert f"{variable} must be" in str(caught.value), field
        monkeypatch.delenv(variable)


def test_cli_reports_a_bad_numeric_setting_naming_it(monkeypatch, tmp_path, capsys):
    from botreports.adapters.cli import main
    monkeypatch.setenv("BOTREPORTS_RETENTION_DAYS", "half")
    assert main(["keys", "list", "--data-dir", str(tmp_path)]) == 1
    assert "BOTREPORTS_RETENTION_DAYS must be a number, not 'half'" in capsys.readouterr().err


def test_link_from_http_is_signed_for_at_most_the_time_left(served):
    server, key = served
    rk = server.reports
    report_id = server.request("POST", f"{BASE}/generate", key, json=BODY).json()["report_id"]
    left = dt.datetime.now(UTC) + dt.timedelta(seconds=120)
    rk.store.update_report(report_id, expires_at=left)
    answer = server.request("GET", f"{BASE}/{report_id}/download?as=link", key).json()
    expires = int(parse_qs(urlsplit(answer["url"]).query)["expires"][0])
    assert abs(expires - left.timestamp()) < 5
