"""Custom templates: checked at creation, applied at generation, rendered in a sandbox."""
import base64
import json
import time

import pytest

from botreports import ValidationError
from botreports.plugins.templates.sandbox import LayoutError, render_layout

PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
LOOK = {
    "intro_markdown": "Prepared for the **board**. See [the wiki](https://wiki.example/bots).",
    "css": "h1 { color: #0b5394; font-family: 'DejaVu Serif', serif } .kpi { border: 1px solid #ddd }",
    "layout": "<h1>{{ title }}</h1>{{ intro }}{% for s in sections %}{{ s.placeholder }}{% endfor %}",
    "logo": f"data:image/png;base64,{PNG_1PX}",
}


def fields(exc):
    return {d["field"]: d["problem"] for d in exc.value.details}


def test_template_with_look_round_trips(reports, principal_factory):
    admin = principal_factory("report_admin")
    made = reports.create_template(admin, {"name": "Board pack", "description": "monthly", "type": "usage",
                                           "format": "json", "defaults": {"timezone": "Europe/Lisbon"}, **LOOK})
    again = reports.get_template(principal_factory("report_viewer"), made.id)
    assert made.id.startswith("tpl-") and again.presentation == LOOK
    assert again.defaults == {"timezone": "Europe/Lisbon"} and again.version == 1 and not again.builtin


@pytest.mark.parametrize("look,field,words", [
    ({"css": "@import url(http://evil.example/x.css);"}, "css", "@import is not allowed"),
    ({"css": "body { background: url(file:///dev/urandom) }"}, "css", "data:image URL"),
    ({"css": "body { position: fixed }"}, "css", "'position' is not allowed"),
    ({"css": "h1 { font-family: Papyrus }"}, "css", "not bundled"),
    ({"css": "x" * 20_001}, "css", "at most 20,000"),
    ({"layout": "<p>\n{% for x in %}\n"}, "layout", "line 2"),
    ({"intro_markdown": "m" * 20_001}, "intro_markdown", "at most 20,000"),
    ({"logo": "https://cdn.example/logo.png"}, "logo", "data URL of a PNG or SVG"),
    ({"logo": "data:image/png;base64," + base64.b64encode(b"GIF89a....").decode()}, "logo", "not a PNG"),
    ({"logo": "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 200_000).decode()},
     "logo", "at most 102,400"),
    ({"logo": "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"},
     "logo", "<script>"),
    ({"logo": "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg' onload='x()'/>"}, "logo", "onload"),
])
def test_bad_looks_are_refused_at_creation(reports, principal_factory, look, field, words):
    with pytest.raises(ValidationError) as caught:
        reports.create_template(principal_factory("admin"), {"name": "Evil", "type": "usage", **look})
    assert words in fields(caught)[field]
    assert reports.store.db.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


def test_bad_definitions_name_their_field(reports, principal_factory):
    with pytest.raises(ValidationError) as caught:
        reports.create_template(principal_factory("admin"), {
            "name": "x", "type": "custom", "sections": [{"type": "no_such_section"}],
            "defaults": {"timezone": "Atlantis/City", "start_date": "2025-01-01"}, "colour": "red"})
    problems = fields(caught)
    assert "sections[0].type" in problems and "defaults.timezone" in problems
    assert "defaults.start_date" in problems and "colour" in problems


def test_generate_with_template_request_overrides_defaults(reports, principal_factory):
    admin = principal_factory("admin")
    template = reports.create_template(admin, {"name": "Lisbon usage", "type": "usage", "format": "json",
                                               "defaults": {"timezone": "Europe/Lisbon", "title": "From template",
                                                            "period": "last_7_days"}})
    report = reports.generate(principal_factory("report_creator"), {
        "template_id": template.id, "title": "Mine", "start_date": "2025-01-20", "end_date": "2025-01-26"})
    assert report.state == "completed", report.error
    assert report.title == "Mine" and report.template_id == template.id and report.template_version == 1
    assert report.parameters["timezone"] == "Europe/Lisbon"
    document = json.loads(reports.download(admin, report.id).path.read_text())
    assert document["period"]["timezone"] == "Europe/Lisbon"
    assert [s["name"] for s in document["sections"]][:2] == ["usage_summary", "daily_activity"]


def test_report_from_template_is_titled_with_the_template_name(reports, principal_factory):
    template = reports.create_template(principal_factory("admin"), {
        "name": "Board pack", "type": "custom", "format": "json", "defaults": {"period": "last_7_days"},
        "sections": [{"type": "usage_summary"}]})
    creator = principal_factory("report_creator")
    report = reports.generate(creator, {"template_id": template.id})
    assert report.state == "completed", report.error
    assert report.title == "Board pack" and report.parameters["title"] == "Board pack"
    assert report.filename.startswith("board-pack_")
    assert reports.generate(creator, {"template_id": template.id, "title": "Mine"}).title == "Mine"


def test_unknown_or_foreign_template_is_a_400_on_template_id(reports, principal_factory):
    theirs = reports.create_template(principal_factory("admin", "org-globex"),
                                     {"name": "Theirs", "type": "usage", "format": "json"})
    for template_id in ("tpl-nope", theirs.id):
        with pytest.raises(ValidationError) as caught:
            reports.generate(principal_factory("report_creator"), {"template_id": template_id})
        assert "unknown template" in fields(caught)["template_id"]


# -- the layout sandbox: each attack fails its render with a clear reason --------------------------

ATTACKS = [
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ ().__class__.__base__.__subclasses__() }}", "unsafe"),
    ("{{ 7 ** 10**8 }}", "** limited"),
    ("{{ 'x' * 10**9 }}", "limited"),
    ("{{ 'x' * 1000000000 }}", "* may build at most"),
    ("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}", "output above"),
    ("{% for a in range(10**5) %}{% for b in range(10**5) %}{% endfor %}{% endfor %}", "CPU time|longer than"),
]


@pytest.mark.parametrize("source,reason", ATTACKS)
def test_hostile_layout_fails_with_a_clear_reason(source, reason):
    started = time.monotonic()
    with pytest.raises(LayoutError) as caught:
        render_layout(source, {"title": "t"})
    assert any(words in str(caught.value) for words in reason.split("|"))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("source", [
    # the str.format and |attr sandbox escapes fixed in Jinja 3.1.5/3.1.6
    "{{ '{0.__class__.__mro__}'.format(1) }}",
    "{{ ('{0.__globals__}'|attr('format'))(lipsum) }}",
    "{{ ''|attr('__class__') }}",
    "{% set f = '{0.__class__}'.format %}{{ f(1) }}",
])
def test_format_and_attr_escapes_stay_closed(source):
    try:
        out = render_layout(source, {})
    except LayoutError as exc:
        assert "unsafe" in str(exc) or "undefined" in str(exc).lower()
    else:
        assert "class" not in out and "globals" not in out.lower() and "mro" not in out


def test_layout_sees_only_its_context_and_escapes_it():
    out = render_layout("{{ title }}|{{ secret | default('none') }}|{{ config | default('none') }}",
                        {"title": "<script>alert(1)</script>"})
    assert out == "&lt;script&gt;alert(1)&lt;/script&gt;|none|none"
