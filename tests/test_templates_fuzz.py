"""Fuzzing a template's stylesheet and layout: whatever a user writes, the HTML export holds the
report's own elements (those of the same report exported without the template) and, from a layout,
only its plain wrapper elements; never a tag the attacker brought."""
import datetime as dt
import io
from html.parser import HTMLParser

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botreports import Column, Kpi, Kpis, Period, ReportDocument, SectionResult, Table, Text
from botreports.plugins.exporters.html_exporter import export_html
from botreports.plugins.templates.layout import LAYOUT_TAGS
from botreports.plugins.templates.sandbox import LayoutError, check_syntax
from botreports.plugins.templates.stylesheet import check_css, safe_stylesheet
from botreports.plugins.templates.validation import check_presentation

UTC = dt.timezone.utc
DOCUMENT = ReportDocument(
    title="Fuzzed report", type="custom",
    period=Period(dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 2, 1, tzinfo=UTC), "Europe/Lisbon"),
    generated_at=dt.datetime(2025, 2, 1, 8, 0, tzinfo=UTC), parameters={"bot_id": None, "channel": None},
    sections=[SectionResult("usage", "Usage", [Kpis([Kpi("messages", "Messages", 1200)]),
                                               Text("Numbers for **January**.")]),
              SectionResult("bots", "Bots", [Table("Per bot", [Column("bot", "Bot", "text"),
                                                               Column("n", "Messages", "integer")],
                                                   [["bot-1", 700], ["bot-2", 500]])])])
LISTENER = "http://127.0.0.1:9/steal"
MARKUP = [f'<meta http-equiv="refresh" content="0;url={LISTENER}">', f'<base href="{LISTENER}/">',
          f'<form action="{LISTENER}"><input name="k">', "<script>alert(1)</script>", "<style>", "</style>",
          "</STYLE >", "</</stylestyle>", "<img src=x onerror=alert(1)>", f'<a href="{LISTENER}">x</a>',
          f'<link rel="stylesheet" href="{LISTENER}.css">', "<iframe src=x></iframe>", "<svg><foreignObject>",
          "<!--", "-->", "<![CDATA[", "]]>", "<textarea>", "<noscript>", "<template>", "<math><mi>", "<table><tr><td>"]
CSS_PIECES = ["h1 { color: red }", ".kpi { border: 1px solid #ddd }", "@media print {", "@media ", "@page {",
              "@page :first { margin: 1cm }", "@top-center {", "{", "}", ";", "/*", "*/", '"', "'", "\\",
              "url(", ")", "h1[title=", "font-family:", "content:", "@import ", "\n", " "]
LAYOUT_PIECES = ['<div class="box">', "</div>", "<section>", "</section>", "<h2>", "</h2>", "<p>", "</p>",
                 "<span class=x>", "</span>", "{{ title }}", "{{ intro }}", "{{ '<base href=x>' }}",
                 "{{ '<meta http-equiv=refresh content=0>'|safe }}",
                 "{% for s in sections %}<section class=\"part\">{{ s.placeholder }}</section>{% endfor %}",
                 "{% for i in range(45) %}<div>{% endfor %}", "{% for i in range(6000) %}<p>.</p>{% endfor %}",
                 "{% for i in range(3) %}<span>{% endfor %}"]

css_texts = st.lists(st.one_of(st.sampled_from(CSS_PIECES), st.sampled_from(MARKUP),
                               st.text(max_size=8)), max_size=14).map("".join)
layouts = st.lists(st.one_of(st.sampled_from(LAYOUT_PIECES), st.sampled_from(MARKUP)), max_size=10).map("".join)


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, tuple(sorted(attrs))))

    handle_startendtag = handle_starttag


def elements_of(html: str) -> list:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def export(presentation: dict) -> str:
    out = io.BytesIO()
    export_html(attrs.evolve(DOCUMENT, presentation=presentation), out, {})
    return out.getvalue().decode("utf-8")


WITHOUT_TEMPLATE = elements_of(export({}))
WITH_A_STYLESHEET = elements_of(export({"css": "h1 { color: red }"}))
OWN_ELEMENTS = set(WITHOUT_TEMPLATE) | set(WITH_A_STYLESHEET)


def is_layout_wrapper(element) -> bool:
    tag, attributes = element
    return tag in LAYOUT_TAGS and all(name == "class" for name, _ in attributes)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(css=css_texts)
def test_any_stylesheet_leaves_the_report_structure_as_it_is(css):
    # Rendered whatever the checks would say of it (a template stored under older rules).
    expected = WITH_A_STYLESHEET if safe_stylesheet(css) else WITHOUT_TEMPLATE
    assert elements_of(export({"css": css})) == expected
    if not check_css(css):
        # What the checks accept stays in a style element even printed as it was written.
        assert elements_of(f"<style>{css}</style><p>after</p>") == [("style", ()), ("p", ())]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layouts, css=css_texts)
def test_any_layout_adds_only_plain_wrappers_to_the_report(layout, css):
    _, problems = check_presentation({"layout": layout, "css": css})
    if check_syntax(layout) is not None:
        assert any(field == "layout" for field, _ in problems)
        return
    try:
        # Rendered even when the checks refuse it: the render path must hold on its own.
        html = export({"layout": layout, "css": css})
    except LayoutError as exc:
        assert exc.message.startswith("the template layout")
        return
    foreign = [e for e in elements_of(html) if e not in OWN_ELEMENTS and not is_layout_wrapper(e)]
    assert foreign == []
