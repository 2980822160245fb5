"""Start-up refuses each bad declaration with a message naming the plugin (and the nearest valid
name when one was misspelt); a section's result is checked when it is collected."""
import shutil

import pytest
from hypothesis import given, strategies as st

from botreports import (Chart, Column, Exporter, Kpi, Kpis, Option, Principal, ReportType, Reports, Section,
                        Series, Table, hookimpl)
from botreports.core.declarations import OPTION_TYPES, did_you_mean, option_problems
from botreports.core.errors import PluginError
from botreports.testing import DEMO

ADMIN = Principal("admin", "org-acme", {"admin"})


def nothing(*args, **kwargs):
    return []


def start(tmp_path, plugin):
    return Reports(data_dir=tmp_path, load_entrypoints=False, queue="immediate", plugins=[plugin])


def refused(tmp_path, plugin) -> str:
    with pytest.raises(PluginError) as error:
        start(tmp_path, plugin)
    return str(error.value)


def section_with(**options):
    class SectionPlugin:
        @hookimpl
        def register_sections(self):
            return Section("tuned", "Tuned", nothing, options=options)
    return SectionPlugin()


def test_an_option_type_that_does_not_exist_is_refused_with_the_near_miss(tmp_path):
    message = refused(tmp_path, section_with(top=Option("integer", default=5)))
    assert message == ("plugin 'SectionPlugin': register_sections name 'tuned': option 'top' has unknown type "
                       "'integer'; did you mean 'int'? (types: str, int, float, bool, list, dict)")
    assert "did you mean 'bool'?" in refused(tmp_path, section_with(flag=Option("boolen")))


def test_a_default_that_fails_its_own_declaration_is_refused(tmp_path):
    assert "option 'top' has default 'ten', which must be of type int" in refused(
        tmp_path, section_with(top=Option("int", default="ten")))
    assert "option 'top' has default 500, which must be at most 100" in refused(
        tmp_path, section_with(top=Option("int", default=500, minimum=1, maximum=100)))
    assert "option 'order' has default 'up', which must be one of asc, desc" in refused(
        tmp_path, section_with(order=Option("str", default="up", choices=("asc", "desc"))))
    assert "option 'n' has minimum 10 above maximum 1" in refused(
        tmp_path, section_with(n=Option("int", minimum=10, maximum=1)))
    assert "option 'n' lists choice '3', which is not of type int" in refused(
        tmp_path, section_with(n=Option("int", choices=(1, 2, "3"))))
    assert "option 'n' must be an Option, not dict" in refused(tmp_path, section_with(n={"type": "int"}))


def test_exporter_declarations_are_checked(tmp_path):
    class NoDot:
        @hookimpl
        def register_exporters(self):
            return Exporter("plain", "txt", "text/plain", nothing)

    assert refused(tmp_path, NoDot()) == ("plugin 'NoDot': register_exporters format 'plain': extension 'txt' "
                                          "must start with a dot, e.g. '.txt'")

    class NoMediaType:
        @hookimpl
        def register_exporters(self):
            return Exporter("plain", ".txt", "text", nothing, options={"width": Option("int", default=1.5)})

    message = refused(tmp_path, NoMediaType())
    assert "media_type 'text' must be a media type such as 'text/plain'" in message
    assert "option 'width' has default 1.5, which must be of type int" in message


def test_a_contribution_returned_by_the_wrong_hook_is_refused(tmp_path):
    class Misplaced:
        @hookimpl
        def register_exporters(self):
            return [Section("oops", "Oops", nothing)]

    message = refused(tmp_path, Misplaced())
    assert message.startswith("plugin 'Misplaced': register_exporters: returned Section")
    assert message.endswith("expected Exporter (a Section belongs in register_sections)")


def test_a_report_type_listing_sections_as_one_string_is_refused(tmp_path):
    class OneString:
        @hookimpl
        def register_report_types(self):
            return ReportType("weekly", "Weekly", default_sections="usage_summary")

    assert refused(tmp_path, OneString()) == ("plugin 'OneString': register_report_types name 'weekly': "
                                              "default_sections must be a list of section names, not "
                                              "'usage_summary'")


def test_a_misspelt_hook_is_refused_with_the_hook_meant(tmp_path):
    class Typo:
        @hookimpl
        def register_exporter(self):
            return []

    assert refused(tmp_path, Typo()) == ("plugin 'Typo' implements unknown hook 'register_exporter'; "
                                         "did you mean 'register_exporters'?")


def test_sound_declarations_of_every_kind_start(tmp_path):
    class Sound:
        @hookimpl
        def register_sections(self):
            return Section("tuned", "Tuned", nothing, options={
                "top": Option("int", default=5, minimum=1, maximum=10), "order": Option("str", "asc", choices=("asc",)),
                "ratio": Option("float", default=1), "tags": Option("list", default=[])})

        @hookimpl
        def register_exporters(self):
            return Exporter("plain", ".txt", "text/plain", nothing)

    rk = start(tmp_path, Sound())
    assert "tuned" in rk.sections and "plain" in rk.exporters
    rk.close()


def hook_names():
    from botreports import hookspecs
    return sorted(name for name in dir(hookspecs) if name.startswith(("register_", "authenticate", "authorize",
                                                                       "report_finished", "startup")))


@given(st.data())
def test_one_slip_of_the_keyboard_in_a_hook_name_suggests_that_hook(data):
    names = hook_names()
    name = data.draw(st.sampled_from([n for n in names if n.startswith("register_")]))
    at = data.draw(st.integers(0, len(name) - 1))
    slip = data.draw(st.sampled_from(["drop", "double", "swap"]))
    typo = {"drop": name[:at] + name[at + 1:], "double": name[:at] + name[at] + name[at:],
            "swap": name[:at] + name[at + 1:at + 2] + name[at:at + 1] + name[at + 2:]}[slip]
    if typo != name:
        assert did_you_mean(typo, names) == f"; did you mean {name!r}?"


@given(kind=st.sampled_from(OPTION_TYPES), default=st.one_of(st.none(), st.booleans(), st.integers(), st.floats(
    allow_nan=False), st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                                                   st.integers())))
def test_a_default_is_accepted_exactly_when_a_request_could_send_it(kind, default):
    from botreports.core.params import check_option
    option = Option(kind, default=default)
    request_problems: list = []
    check_option(request_problems, "options.x", option, default)
    assert (option_problems("x", option) == []) == (default is None or request_problems == [])


# -- section results, checked at collect time ----------------------------------------------------


class BadResults:
    @hookimpl
    def register_sections(self):
        return [Section("stringy", "Stringy", lambda ctx: "42 messages"),
                Section("loose_kpi", "Loose KPI", lambda ctx: [Kpi("messages", "Messages", 42)]),
                Section("ragged_chart", "Ragged", lambda ctx: [Chart("Per day", "bar", ["a", "b"], [Series("n", [1])])]),
                Section("dict_columns", "Columns", lambda ctx: [Table("T", [{"name": "a"}], [])]),
                Section("fine", "Fine", lambda ctx: [Kpis([Kpi("messages", "Messages", 42)]),
                                                     Table("T", [Column("a", "A", "integer")], [[1]])])]


@pytest.fixture
def reports(tmp_path, botreports_demo_db):
    shutil.copy(botreports_demo_db, tmp_path / "analytics.db")
    rk = start(tmp_path, BadResults())
    yield rk
    rk.close()


@pytest.mark.parametrize("section,problem", [
    ("stringy", "returned str, expected a list of blocks (Kpis, Table, Chart, Text)"),
    ("loose_kpi", ": block 0 is Kpi, expected Kpis, Table, Chart or Text"),
    ("ragged_chart", ": block 0 (chart 'Per day') needs Series with one value per category (2)"),
    ("dict_columns", ": block 0 (table 'T') has a column of type dict, expected Column"),
])
def test_a_section_result_that_is_not_blocks_fails_naming_section_and_plugin(reports, section, problem):
    report = reports.generate(ADMIN, {"type": "custom", "format": "json", "sections": [{"type": section}],
                                      "start_date": "2025-01-25", "end_date": str(DEMO["end_date"])})
    report = reports.get(ADMIN, report.id)
    assert report.state == "failed"
    assert report.error == f"section {section!r} of plugin BadResults {problem}".replace(" :", ":")


def test_a_section_returning_blocks_completes(reports):
    import json
    report = reports.generate(ADMIN, {"type": "custom", "format": "json", "sections": [{"type": "fine"}],
                                      "start_date": "2025-01-25", "end_date": str(DEMO["end_date"])})
    report = reports.get(ADMIN, report.id)
    assert report.state == "completed", report.error
    document = json.loads(reports.download(ADMIN, report.id).path.read_bytes())
    assert document["sections"][0]["blocks"][0]["items"][0]["value"] == 42


def test_a_plugin_template_naming_unknown_names_is_refused_at_start_up(tmp_path):
    from botreports import Template

    class Templates:
        @hookimpl
        def register_templates(self):
            return Template(id="tpl-weekly", name="Weekly", type="usge", format="pfd",
                            sections=[{"type": "usage_sumary"}], builtin=True)

    assert refused(tmp_path, Templates()) == (
        "plugin 'Templates': register_templates id 'tpl-weekly': names unknown report type 'usge'; did you mean "
        "'usage'?; names unknown format 'pfd'; did you mean 'pdf'?; names unknown section 'usage_sumary'; did "
        "you mean 'usage_summary'?")


def test_a_report_type_naming_an_unknown_section_names_its_plugin(tmp_path):
    class Weekly:
        @hookimpl
        def register_report_types(self):
            return ReportType("weekly", "Weekly", default_sections=("usage_sumary",))

    assert refused(tmp_path, Weekly()) == ("plugin 'Weekly': report type 'weekly' names unknown section "
                                           "'usage_sumary'; did you mean 'usage_summary'?")


def test_a_plugin_added_later_is_checked_and_removed_again(tmp_path):
    from botreports.testing import registered

    class Typo:
        @hookimpl
        def register_section(self):
            return []

    rk = start(tmp_path, section_with())
    with pytest.raises(PluginError, match="unknown hook 'register_section'; did you mean 'register_sections'"):
        with registered(rk, Typo()):
            pass
    assert "tuned" in rk.sections
    rk.close()


def test_disabling_a_plugin_that_does_not_exist_is_said_with_the_near_miss(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BOTREPORTS_DISABLE_PLUGINS", "botreports.plugins.exporters.json_exportr")
    with caplog.at_level("WARNING", logger="botreports.plugins"):
        rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    assert "json" in rk.exporters  # the typo disabled nothing, and says so
    assert [r.getMessage() for r in caplog.records if r.name == "botreports.plugins"] == [
        "BOTREPORTS_DISABLE_PLUGINS names 'botreports.plugins.exporters.json_exportr', which is no built-in or "
        "installed plugin; did you mean 'botreports.plugins.exporters.json_exporter'?"]
    caplog.clear()
    monkeypatch.setenv("BOTREPORTS_DISABLE_PLUGINS", "botreports.plugins.exporters.json_exporter")
    with caplog.at_level("WARNING", logger="botreports.plugins"):
        rk.close()
        rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    assert "json" not in rk.exporters and not [r for r in caplog.records if r.name == "botreports.plugins"]
    rk.close()
