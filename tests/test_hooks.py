"""One test per hook, each through a tiny plugin registered the way a third party would."""
import json

import pytest

from botreports import (Column, DataSourceFactory, DeliveryChannel, Exporter, InvalidCredentials, Kpi, Kpis,
                        PermissionDenied, Principal, ReportType, RequestInfo, Section, Table, Template,
                        Unauthorized, hookimpl)
from botreports.testing import registered


class TinyTypeAndExporter:
    """A plugin adding a report type, its section and an exporter."""

    @hookimpl
    def register_sections(self):
        def collect(ctx):
            totals = ctx.source.usage_totals(ctx.scope)
            return [Kpis([Kpi("messages", "Messages", totals["messages_in"] + totals["messages_out"])]),
                    Table("Echo", [Column("greeting", "Greeting")], [[ctx.options["greeting"]]])]
        from botreports import Option
        return Section("echo", "Echo", collect, options={"greeting": Option("str", "hello")})

    @hookimpl
    def register_report_types(self):
        return ReportType("echo", "Echo", "messages and a greeting", default_sections=("echo",))

    @hookimpl
    def register_exporters(self):
        def export(document, stream, options):
            for _, block in document.blocks("kpis"):
                for item in block.items:
                    stream.write(f"{item.name}={item.value}\n".encode())
        return Exporter("kv", ".txt", "text/plain", export)


def test_hook_register_report_types(reports, system_principal, tmp_path):
    with registered(reports, TinyTypeAndExporter()):
        assert "echo" in reports.report_types
        out = reports.render(system_principal, {"type": "echo", "format": "json",
                                                "start_date": "2025-01-18", "end_date": "2025-01-31"},
                             tmp_path / "echo.json")
        doc = json.loads(out.read_text())
        assert [s["name"] for s in doc["sections"]] == ["echo"]
    assert "echo" not in reports.report_types


def test_hook_register_sections(reports, system_principal, tmp_path):
    with registered(reports, TinyTypeAndExporter()):
        body = {"type": "custom", "format": "json", "start_date": "2025-01-18", "end_date": "2025-01-31",
                "sections": [{"type": "echo", "greeting": "olá"}]}
        doc = json.loads(reports.render(system_principal, body, tmp_path / "s.json").read_text())
        table = doc["sections"][0]["blocks"][1]
        assert table["rows"] == [["olá"]]


def test_hook_register_exporters(reports, system_principal, tmp_path):
    with registered(reports, TinyTypeAndExporter()):
        out = reports.render(system_principal, {"type": "echo", "format": "kv", "start_date": "2025-01-18",
                                                "end_date": "2025-01-31"}, tmp_path / "echo.txt")
        totals = reports.source.usage_totals(_scope("2025-01-18", "2025-01-31"))
        assert out.read_text() == f"messages={totals['messages_in'] + totals['messages_out']}\n"
        assert totals["messages_in"] > 0


def _scope(start, end, tz="UTC"):
    from botreports import Period, Scope
    from botreports.core.scheduling import parse_instant
    return Scope(None, Period(parse_instant(start, tz, end=False), parse_instant(end, tz, end=True), tz))


def test_hook_register_data_sources(reports, system_principal, tmp_path):
    class Constant:
        def usage_totals(self, scope):
            return {"conversations": 3, "messages_in": 5, "messages_out": 4, "active_users": 2, "new_users": 1,
                    "llm_calls": 0, "tokens": 0, "cost_usd": 0.0}

    class ConstantSource:
        @hookimpl
        def register_data_sources(self):
            return DataSourceFactory("const", lambda url: Constant())

    with registered(reports, ConstantSource()):
        source = reports.open_source("const://anything")
        assert source.usage_totals(None)["messages_in"] == 5


def test_hook_register_templates(reports, principal_factory):
    class Catalog:
        @hookimpl
        def register_templates(self):
            return Template(id="tpl-tiny", name="Tiny", description="just usage", type="usage", builtin=True)

    with registered(reports, Catalog()):
        listed = [t.id for t in reports.list_templates(principal_factory("report_viewer"))]
        assert "tpl-tiny" in listed
        assert reports.get_template(principal_factory("report_viewer", "org-globex"), "tpl-tiny").name == "Tiny"


def test_hook_register_delivery_channels(reports):
    sent = []

    class Pigeon:
        @hookimpl
        def register_delivery_channels(self):
            return DeliveryChannel("pigeon", lambda report, path, recipients, reports: sent.append(recipients))

    with registered(reports, Pigeon()):
        reports.delivery_channels["pigeon"].deliver(None, None, ["a@b.example"], reports)
    assert sent == [["a@b.example"]]
    assert "pigeon" not in reports.delivery_channels


def test_hook_authenticate(reports):
    class HostSession:
        @hookimpl
        def authenticate(self, request, reports):
            if request.header("Cookie") == "session=abc":
                return Principal("host-user", "org-acme", {"report_viewer"}, via="host")
            return None

    plain, _ = reports.create_api_key("org-acme", "report_creator")
    with registered(reports, HostSession()):
        assert reports.authenticate(RequestInfo(headers={"cookie": "session=abc"})).id == "host-user"
        # the built-in API key plugin still answers when the host's plugin does not
        assert reports.authenticate(RequestInfo(headers={"X-API-Key": plain})).roles == {"report_creator"}
        assert reports.authenticate(RequestInfo(query={"api_key": plain})).org_id == "org-acme"
        with pytest.raises(InvalidCredentials):
            reports.authenticate(RequestInfo(headers={"X-API-Key": "brk_wrong"}))
        with pytest.raises(Unauthorized):
            reports.authenticate(RequestInfo())


def test_hook_authorize(reports, principal_factory):
    class NoDeletesOnFriday:
        @hookimpl
        def authorize(self, principal, action, resource, reports):
            if action == "report.generate" and principal.id == "blocked":
                return False
            if action == "report.generate" and principal.id == "promoted":
                return True
            return None

    with registered(reports, NoDeletesOnFriday()):
        body = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}
        with pytest.raises(PermissionDenied):
            reports.generate(Principal("blocked", "org-acme", {"admin"}), body)
        report = reports.generate(Principal("promoted", "org-acme", {"report_viewer"}), body)
        assert report.state == "completed"
        # without an opinion, the role table decides
        with pytest.raises(PermissionDenied):
            reports.generate(principal_factory("report_viewer"), body)


def test_hook_report_finished(reports, principal_factory):
    finished = []

    class Notifier:
        @hookimpl
        def report_finished(self, report, reports):
            finished.append((report.id, report.state))

    with registered(reports, Notifier()):
        body = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}
        report = reports.generate(principal_factory("report_creator"), body)
    assert finished == [(report.id, "completed")]


def test_hook_startup(tmp_path):
    from botreports import Reports
    seen = []

    class Warmup:
        @hookimpl
        def startup(self, reports):
            seen.append(sorted(reports.exporters))

    Reports(data_dir=tmp_path, plugins=[Warmup()], load_entrypoints=False)
    assert seen and "json" in seen[0]
