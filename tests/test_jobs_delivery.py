"""Delivery of scheduled reports: e-mail to a real local SMTP server (aiosmtpd)
with the file attached or a signed link, retries that send nobody anything
twice, and webhooks that refuse private addresses."""
import datetime as dt
import email
import email.policy
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from botreports.core import schedules, security
from botreports.core.errors import ValidationError
from botreports.core.service import download_resource
from botreports.plugins.delivery.webhook import RefusedAddress, post_json, public_addresses

UTC = dt.timezone.utc
BODY = {"type": "usage", "format": "json", "cron": "0 8 * * 1", "timezone": "America/New_York",
        "period": "previous_week", "subject": "Weekly bots", "message": "Numbers for the week."}


class Inbox:
    """An aiosmtpd handler keeping every message; refuses a recipient the first ``refuse`` times."""

    def __init__(self, refuse=None, times=1):
        self.messages, self.refuse, self.times = [], refuse, times

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.refuse and self.times > 0:
            self.times -= 1
            return "450 mailbox busy, try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 Message accepted"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller
    import socket
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (the controller checks readiness by connecting to it)
        probe.bind(("127.0.0.1", 0))
        inbox.port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


def fire_once(reports, principal, body):
    schedule = reports.create_schedule(principal, body)
    reports.run_due_schedules(schedule.next_run_at + dt.timedelta(seconds=5))
    report_id = reports.store.runs_of(schedule.id)[0]["report_id"]
    return schedule, reports.store.get_report(report_id)


def configure(reports, smtp, **extra):
    reports.settings.smtp_host, reports.settings.smtp_port = "127.0.0.1", smtp.port
    reports.settings.retry_backoff = 0.01
    for name, value in extra.items():
        setattr(reports.settings, name, value)


def test_email_arrives_with_the_report_attached(reports, principal_factory, smtp):
    configure(reports, smtp)
    schedule, report = fire_once(reports, principal_factory("admin"),
                                 {**BODY, "recipients": ["ana@example.com", "bo@example.com"]})
    assert report.state == "completed"
    assert sorted(to for tos, _ in smtp.messages for to in tos) == ["ana@example.com", "bo@example.com"]
    for tos, message in smtp.messages:
        assert message["Subject"] == "Weekly bots" and message["To"] == tos[0]
        parts = [p for p in message.walk() if p.get_filename()]
        assert [p.get_filename() for p in parts] == [report.filename]
        payload = parts[0].get_payload(decode=True)
        assert hashlib.sha256(payload).hexdigest() == report.artifact_sha256
        assert json.loads(payload)["schema"] == "botreports/1"
        assert "Numbers for the week." in message.get_body(("plain",)).get_content()
    rows = reports.store.deliveries_of(report.id)
    assert [(r["channel"], r["state"], r["attempt"]) for r in rows] == [("email", "sent", 1)] * 2


def test_email_carries_a_signed_link_when_the_file_is_too_big(reports, principal_factory, smtp):
    configure(reports, smtp, max_attachment_bytes=100, public_url="https://reports.example.com")
    _, report = fire_once(reports, principal_factory("admin"), {**BODY, "recipients": ["ana@example.com"]})
    assert report.artifact_size > 100
    (_, message), = smtp.messages
    assert not [p for p in message.walk() if p.get_filename()]
    text = message.get_body(("plain",)).get_content()
    url = re.search(r"https://\S+", text).group(0)
    parts = urlsplit(url)
    assert parts.netloc == "reports.example.com"
    assert parts.path == f"/api/v1/reports/{report.id}/download"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert set(query) == {"expires", "signature"}
    assert security.check_signature(reports.secret, download_resource(report.id), query["expires"],
                                    query["signature"])
    file = reports.download_signed(report.id, query["expires"], query["signature"])
    assert hashlib.sha256(file.path.read_bytes()).hexdigest() == report.artifact_sha256
    assert int(query["expires"]) > dt.datetime.now(UTC).timestamp() + 6 * 86400  # a week for mail


def test_failed_recipient_is_retried_and_nobody_gets_it_twice(reports, principal_factory, smtp):
    configure(reports, smtp)
    smtp.refuse, smtp.times = "bo@example.com", 1
    _, report = fire_once(reports, principal_factory("admin"),
                          {**BODY, "recipients": ["ana@example.com", "bo@example.com"]})
    got = sorted(to for tos, _ in smtp.messages for to in tos)
    assert got == ["ana@example.com", "bo@example.com"]  # bo's came with the retry, ana's only once
    rows = [(r["recipient"], r["state"], r["attempt"]) for r in reports.store.deliveries_of(report.id)]
    assert sorted(rows) == [("ana@example.com", "sent", 1), ("bo@example.com", "failed", 1),
                            ("bo@example.com", "sent", 2)]
    assert "450" in [r for r in reports.store.deliveries_of(report.id) if r["state"] == "failed"][0]["detail"]
    reports.deliver(report.id)  # a late duplicate retry sends nothing more
    assert len(smtp.messages) == 2


def test_unreachable_mail_server_gives_up_after_the_configured_attempts(reports, principal_factory, smtp):
    configure(reports, smtp, delivery_attempts=2)
    reports.settings.smtp_port = 1  # nothing listens there
    _, report = fire_once(reports, principal_factory("admin"), {**BODY, "recipients": ["ana@example.com"]})
    rows = reports.store.deliveries_of(report.id)
    assert [(r["state"], r["attempt"]) for r in rows] == [("failed", 1), ("failed", 2)]
    assert "mail server" in rows[0]["detail"]


def test_schedule_run_shows_report_and_delivery_outcome(reports, principal_factory, smtp):
    configure(reports, smtp)
    smtp.refuse, smtp.times = "bo@example.com", 1
    admin = principal_factory("admin")
    schedule, report = fire_once(reports, admin, {**BODY, "recipients": ["ana@example.com", "bo@example.com"]})
    (run,) = reports.schedule_info(admin, schedule.id)["last_runs"]
    assert (run["state"], run["report_state"], run["report_id"]) == ("completed", "completed", report.id)
    assert (run["delivery"]["delivered"], run["delivery"]["failed"]) == (2, 0)
    assert [(r["recipient"], r["state"], r["attempts"]) for r in run["delivery"]["recipients"]] == [
        ("ana@example.com", "sent", 1), ("bo@example.com", "sent", 2)]


def test_schedule_run_shows_deliveries_that_failed(reports, principal_factory, smtp):
    configure(reports, smtp, delivery_attempts=2)
    reports.settings.smtp_port = 1  # nothing listens there
    admin = principal_factory("admin")
    schedule, _ = fire_once(reports, admin, {**BODY, "recipients": ["ana@example.com"]})
    (run,) = reports.schedule_info(admin, schedule.id)["last_runs"]
    assert run["state"] == "completed"
    assert (run["delivery"]["delivered"], run["delivery"]["failed"]) == (0, 1)
    (ana,) = run["delivery"]["recipients"]
    assert (ana["channel"], ana["state"], ana["attempts"]) == ("email", "failed", 2)
    assert "mail server" in ana["detail"]


class Hook(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_posts_json_with_a_signed_link(reports, principal_factory):
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received = []
    try:
        url = f"http://127.0.0.1:{server.server_port}/hooks/reports?team=ops"
        reports.settings.retry_backoff = 0.01
        # Saved while private webhooks were allowed, the hook is refused at delivery once they are not.
        reports.settings.webhook_allow_private = True
        schedule = reports.create_schedule(principal_factory("admin"), {**BODY, "webhooks": [url]})
        reports.settings.webhook_allow_private = False
        reports.run_due_schedules(schedule.next_run_at + dt.timedelta(seconds=5))
        refused = reports.store.get_report(reports.store.runs_of(schedule.id)[0]["report_id"])
        rows = reports.store.deliveries_of(refused.id)
        # refused for good: recorded once as refused, never retried
        assert [r["state"] for r in rows] == ["refused"] and "loopback" in rows[0]["detail"]
        assert reports.deliver(refused.id) == {"sent": 0, "failed": 0}
        assert len(reports.store.deliveries_of(refused.id)) == 1 and Hook.received == []
        reports.settings.webhook_allow_private = True
        _, report = fire_once(reports, principal_factory("admin"), {**BODY, "cron": "0 9 * * 1", "webhooks": [url]})
    finally:
        server.shutdown()
    (notice,) = Hook.received
    assert notice["event"] == "report.completed" and notice["report_id"] == report.id
    assert notice["state"] == "completed" and notice["file_size"] == report.artifact_size
    query = {k: v[0] for k, v in parse_qs(urlsplit(notice["download_url"]).query).items()}
    assert reports.download_signed(report.id, query["expires"], query["signature"]).sha256 == report.artifact_sha256


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.10", "172.16.5.5",
                                  "169.254.169.254", "::1", "fe80::1", "100.64.0.1", "0.0.0.0"])
def test_webhook_refuses_private_loopback_and_link_local(host):
    with pytest.raises(RefusedAddress):
        public_addresses(host, 80, allow_private=False)
    with pytest.raises(RefusedAddress):
        post_json(f"http://[{host}]/x" if ":" in host else f"http://{host}/x", {}, allow_private=False)


def test_webhook_allows_public_addresses_and_private_when_configured():
    assert public_addresses("93.184.215.14", 443, allow_private=False) == ["93.184.215.14"]
    assert public_addresses("10.0.0.1", 80, allow_private=True) == ["10.0.0.1"]


#: IPv6 forms that wrap a private IPv4 address (each reached a connect() before they were unwrapped).
WRAPPED_PRIVATE = {
    "NAT64 64:ff9b::/96 around 127.0.0.1": "64:ff9b::7f00:1",
    "NAT64 around the metadata service": "64:ff9b::a9fe:a9fe",
    "6to4 2002::/16 around 127.0.0.1": "2002:7f00:1::1",
    "6to4 around 10.0.0.1": "2002:a00:1::",
    "mapped ::ffff:0:0/96 around 127.0.0.1": "::ffff:7f00:1",
    "IPv4-compatible ::/96 around 127.0.0.1": "::7f00:1",
    "IPv4-compatible ::/96 around a public address": "::808:808",
    "SIIT ::ffff:0:0:0/96 around 192.168.0.1": "::ffff:0:c0a8:1",
    "NAT64 local use 64:ff9b:1::/48": "64:ff9b:1::808:808",
    "Teredo 2001::/32": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
}


@pytest.mark.parametrize("address", list(WRAPPED_PRIVATE.values()), ids=list(WRAPPED_PRIVATE))
def test_webhook_to_an_ipv6_form_wrapping_a_private_ipv4_is_refused_before_any_connection(address, monkeypatch):
    import socket
    connects = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connects.append(a) or (_ for _ in ()).throw(
        AssertionError("connected")))
    with pytest.raises(RefusedAddress):
        public_addresses(address, 80, allow_private=False)
    with pytest.raises(RefusedAddress):
        post_json(f"http://[{address}]:8080/hook", {}, allow_private=False)
    # A name resolving to the wrapped form is refused the same way.
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, **kw: [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))])
    with pytest.raises(RefusedAddress):
        post_json("https://hooks.example.com/hook", {}, allow_private=False)
    assert connects == []


@pytest.mark.parametrize("address", list(WRAPPED_PRIVATE.values()), ids=list(WRAPPED_PRIVATE))
def test_schedule_with_a_webhook_to_a_wrapped_private_address_is_a_400(reports, principal_factory, address):
    reports.settings.webhook_allow_private = False
    with pytest.raises(ValidationError) as caught:
        reports.create_schedule(principal_factory("admin"), {**BODY, "webhooks": [f"http://[{address}]/h"]})
    assert [d["field"] for d in caught.value.details] == ["webhooks[0]"]


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"])
def test_webhook_to_an_ipv6_form_of_a_public_address_is_allowed(address):
    assert public_addresses(address, 443, allow_private=False) == [address]
