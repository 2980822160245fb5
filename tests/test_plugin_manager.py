"""One plugin manager per instance, entry points, environment switches, duplicates, pending hooks."""
import importlib.metadata
import sys
import types

import pytest

from botreports import Exporter, PluginError, Reports, ReportType, hookimpl


def make_module(name, **hooks):
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, hookimpl(fn))
    return module


class FakeEntryPoint:
    def __init__(self, name, module):
        self.name, self.value, self._module = name, module.__name__, module
        self.dist = types.SimpleNamespace(metadata={"name": f"botreports-{name}"}, version="1.2.3",
                                          project_name=f"botreports-{name}")

    def load(self):
        return self._module


@pytest.fixture
def entry_points(monkeypatch):
    """Pretend some packages declared entry points in the ``botreports`` group."""
    installed = []

    def fake(group=None, **kwargs):
        return list(installed) if group == "botreports" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    return installed


def csv_like(fmt):
    return make_module(f"plugin_{fmt}", register_exporters=lambda: Exporter(fmt, f".{fmt}", "text/plain",
                                                                            lambda d, s, o: None))


def test_each_instance_has_its_own_plugin_manager(tmp_path):
    a = Reports(data_dir=tmp_path / "a", load_entrypoints=False, plugins=[csv_like("aaa")])
    b = Reports(data_dir=tmp_path / "b", load_entrypoints=False)
    assert a.pm is not b.pm
    assert "aaa" in a.exporters and "aaa" not in b.exporters


def test_entry_points_load_and_show_their_distribution(tmp_path, entry_points):
    entry_points.append(FakeEntryPoint("tsv", csv_like("tsv")))
    rk = Reports(data_dir=tmp_path)
    assert "tsv" in rk.exporters
    origins = {p["name"]: p["origin"] for p in rk.plugin_list()}
    assert origins["tsv"] == "botreports-tsv 1.2.3"
    assert "tsv" not in Reports(data_dir=tmp_path, load_entrypoints=False).exporters


def test_load_plugins_allow_list(tmp_path, entry_points, monkeypatch):
    entry_points.extend([FakeEntryPoint("tsv", csv_like("tsv")), FakeEntryPoint("psv", csv_like("psv"))])
    monkeypatch.setenv("BOTREPORTS_LOAD_PLUGINS", "psv")
    rk = Reports(data_dir=tmp_path)
    assert "psv" in rk.exporters and "tsv" not in rk.exporters
    monkeypatch.setenv("BOTREPORTS_LOAD_PLUGINS", "")
    rk = Reports(data_dir=tmp_path)
    assert "psv" not in rk.exporters and "json" in rk.exporters  # built-ins stay


def test_disable_plugins_blocks_builtins_too(tmp_path, monkeypatch):
    monkeypatch.setenv("BOTREPORTS_DISABLE_PLUGINS", "botreports.plugins.exporters.json_exporter")
    rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    assert "json" not in rk.exporters
    assert "usage" in rk.report_types


def test_trace_plugins_writes_hook_calls(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BOTREPORTS_TRACE_PLUGINS", "1")
    Reports(data_dir=tmp_path, load_entrypoints=False)
    assert "startup" in capsys.readouterr().err


def test_duplicate_names_fail_naming_both_plugins(tmp_path):
    first = make_module("first_plugin", register_report_types=lambda: ReportType("usage", "Usage again"))
    with pytest.raises(PluginError) as caught:
        Reports(data_dir=tmp_path, load_entrypoints=False, plugins=[first])
    message = str(caught.value)
    assert "'usage'" in message and "botreports.plugins.types.builtin_types" in message and "first_plugin" in message


def test_duplicate_exporter_between_two_third_parties(tmp_path):
    with pytest.raises(PluginError) as caught:
        Reports(data_dir=tmp_path, load_entrypoints=False, plugins=[csv_like("md"), make_module(
            "other_md", register_exporters=lambda: Exporter("md", ".md", "text/markdown", lambda d, s, o: None))])
    assert "plugin_md" in str(caught.value) and "other_md" in str(caught.value)


def test_misspelled_hook_is_an_error(tmp_path):
    typo = make_module("typo_plugin", register_exporter=lambda: None)
    with pytest.raises(PluginError) as caught:
        Reports(data_dir=tmp_path, load_entrypoints=False, plugins=[typo])
    assert "register_exporter" in str(caught.value)


def test_embedder_plugins_are_asked_first(tmp_path):
    from botreports import Principal, RequestInfo
    host = make_module("host_auth", authenticate=lambda request, reports: Principal("host", "org-acme", {"admin"}))
    rk = Reports(data_dir=tmp_path, load_entrypoints=False, plugins=[host])
    plain, _ = rk.create_api_key("org-acme", "report_viewer")
    assert rk.authenticate(RequestInfo(headers={"X-API-Key": plain})).id == "host"


def test_importing_the_package_loads_no_heavy_library():
    import subprocess
    code = ("import sys, botreports; r = botreports.Reports; "
            "print(','.join(m for m in ('weasyprint', 'openpyxl', 'huey', 'bottle', 'matplotlib', 'pygal') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
