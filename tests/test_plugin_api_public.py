"""botreports.plugin_api is the one import path plugin authors need: its names are the ones the
core uses, the example plugins import nothing else, register_* hooks go through pluggy (tracing
and hook wrappers see them), and TransientError gets a report retried."""
import ast
import shutil
from pathlib import Path

import pytest

import botreports
from botreports import plugin_api
from botreports.plugin_api import Exporter, Principal, Section, TransientError, hookimpl
from botreports.testing import DEMO

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGINS = sorted(ROOT.glob("examples/botreports-*/**/*.py"))


def test_every_public_name_is_the_one_the_core_uses():
    from botreports.core import errors, models
    assert len(set(plugin_api.__all__)) == len(plugin_api.__all__)
    for name in plugin_api.__all__:
        value = getattr(plugin_api, name)
        core = getattr(models, name, None) or getattr(errors, name, None)
        if core is not None:
            assert value is core, name
    assert plugin_api.hookimpl is botreports.hookimpl and plugin_api.PLUGIN_API == botreports.PLUGIN_API == 1


@pytest.mark.parametrize("path", EXAMPLE_PLUGINS, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_plugins_import_only_the_public_api(path):
    tree = ast.parse(path.read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    ours = [name for name in imported if name == "botreports" or name.startswith("botreports.")]
    assert ours and set(ours) <= {"botreports.plugin_api"}, ours


def test_register_hooks_are_traced_and_wrapped(tmp_path, monkeypatch, capfd):
    seen = []

    class Counting:
        @hookimpl(wrapper=True)
        def register_exporters(self):
            result = yield
            seen.append(result)
            return result

    class Plain:
        @hookimpl
        def register_exporters(self):
            return Exporter("plain", ".txt", "text/plain", lambda document, stream, options: None)

    monkeypatch.setenv("BOTREPORTS_TRACE_PLUGINS", "1")
    rk = botreports.Reports(data_dir=tmp_path, load_entrypoints=False, plugins=[Counting(), Plain()])
    try:
        implementing = [impl for impl in rk.pm.hook.register_exporters.get_hookimpls() if not impl.wrapper]
        # the wrapper saw each plugin's call on its own, in registration order
        assert len(seen) == len(implementing) > 1
        assert all(len(result) == 1 for result in seen) and seen[-1][0].format == "plain"
        rk._build_registries()
        assert "register_exporters" in capfd.readouterr().err  # BOTREPORTS_TRACE_PLUGINS sees them
    finally:
        rk.close()


class DelayRecordingQueue:
    name = "recording"

    def __init__(self):
        self.enqueued = []

    def bind(self, reports):
        self.reports = reports

    def enqueue(self, report_id, delay=None):
        self.enqueued.append((report_id, delay))

    def start(self):
        return None

    def stop(self):
        return None


def test_a_transient_error_from_a_section_retries_the_report(tmp_path, botreports_demo_db):
    class Flaky:
        @hookimpl
        def register_sections(self):
            def collect(ctx):
                raise TransientError("the warehouse is restarting")
            return Section("flaky", "Flaky", collect)

    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    queue = DelayRecordingQueue()
    rk = botreports.Reports(data_dir=tmp_path, load_entrypoints=False, queue=queue, plugins=[Flaky()])
    try:
        owner = Principal("ana", "org-acme", {"admin"})
        report = rk.generate(owner, {"type": "custom", "format": "json", "sections": [{"type": "flaky"}],
                                     "start_date": "2025-01-25", "end_date": str(DEMO["end_date"])})
        rk.run_report(report.id, worker="w1")
        again = rk.get(owner, report.id)
        assert again.state == "pending" and "the warehouse is restarting" in again.error and "retrying" in again.error
        assert queue.enqueued[-1][0] == report.id and queue.enqueued[-1][1] > 0
    finally:
        rk.close()
