"""Templates end to end: the built-in catalog, a custom look in PDF and HTML, and
hostile templates that fail their own report (never the service) with a clear reason."""
import http.server
import io
import json
import threading
from html.parser import HTMLParser

import pytest

from botreports import ValidationError

PERIOD = {"start_date": "2025-01-20", "end_date": "2025-01-26"}
BRAND = {
    "intro_markdown": "Prepared for the **Lisbon board** by the bots team.",
    "css": ".part { border-top: 3px solid #b45309; padding-top: 4px } h1 { color: #b45309 }",
    "layout": ("<header class=\"brand\"><h2>Board pack: {{ title }}</h2><p>{{ period_start }} to {{ period_end }}"
               " ({{ timezone }})</p></header>{{ intro }}"
               "{% for s in sections|reverse %}<section class=\"part\">{{ s.placeholder }}</section>{% endfor %}"),
}


def pdf_text(data):
    from pdfminer.high_level import extract_text
    return extract_text(io.BytesIO(data))


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def parse(html):
    collector = Collector()
    collector.feed(html)
    return collector


def generate(reports, principal, body):
    report = reports.generate(principal, body)
    return report, (reports.download(principal, report.id).path.read_bytes() if report.state == "completed" else None)


def test_builtin_catalog_is_listed_for_every_organisation(reports, principal_factory):
    ids = [t.id for t in reports.list_templates(principal_factory("report_viewer", "org-globex"))]
    for expected in ("tpl-usage-standard", "tpl-conversations-standard", "tpl-performance-standard",
                     "tpl-compliance-standard", "tpl-executive-summary", "tpl-weekly-operations"):
        assert expected in ids
    executive = reports.get_template(principal_factory("report_viewer"), "tpl-executive-summary")
    assert [s["type"] for s in executive.sections] == ["usage_summary", "conversation_summary",
                                                       "satisfaction_scores", "latency"]
    assert executive.builtin and executive.org_id is None


def test_generate_from_builtin_template_with_overrides(reports, principal_factory):
    creator = principal_factory("report_creator")
    report, data = generate(reports, creator, {"template_id": "tpl-executive-summary", "format": "json", **PERIOD})
    assert report.state == "completed", report.error
    document = json.loads(data)
    assert [s["name"] for s in document["sections"]] == ["usage_summary", "conversation_summary",
                                                          "satisfaction_scores", "latency"]
    assert document["title"] == "Executive summary" and report.template_id == "tpl-executive-summary"
    assert report.template_version == 1


@pytest.mark.parametrize("fmt", ["html", "pdf"])
def test_custom_look_in_html_and_pdf(reports, principal_factory, fmt):
    admin = principal_factory("report_admin")
    template = reports.create_template(admin, {
        "name": "Board pack", "type": "custom", "format": fmt, **BRAND,
        "sections": [{"type": "usage_summary"}, {"type": "satisfaction_scores"}]})
    report, data = generate(reports, principal_factory("report_creator"),
                            {"template_id": template.id, "title": "January board", **PERIOD})
    assert report.state == "completed", report.error
    if fmt == "html":
        html = data.decode()
        page = parse(html)
        text = " ".join(page.text)
        assert "Board pack: January board" in text and "Lisbon board" in text
        # the layout put the sections in reverse order, each wrapped in its part
        assert html.index("Satisfaction") < html.index("Usage summary")
        assert html.count('class="part"') == 2 and "#b45309" in html
        assert page.tags.count("svg") >= 1
    else:
        text = pdf_text(data)
        assert "Board pack: January board" in text and "Lisbon board" in text
        assert text.index("Satisfaction") < text.rindex("Usage summary")


def test_report_records_template_version_and_owner_org(reports, principal_factory):
    template = reports.create_template(principal_factory("admin"), {"name": "v", "type": "usage", "format": "json"})
    report, _ = generate(reports, principal_factory("report_creator"), {"template_id": template.id, **PERIOD})
    stored = reports.get(principal_factory("report_viewer"), report.id)
    assert (stored.template_id, stored.template_version) == (template.id, 1)


# -- attacks: each is refused at creation, or fails its own report with a clear reason -------------

class Listener:
    """A local HTTP server that records every request it gets."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                return None

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def make(reports, principal, **look):
    return reports.create_template(principal, {"name": "t", "type": "custom", "format": "pdf",
                                               "sections": [{"type": "usage_summary"}], **look})


def test_no_fetch_and_no_attachment_from_layout_or_markdown(reports, principal_factory, listener):
    admin = principal_factory("admin")
    hostile = (f"<img src=\"{listener.url}/layout.png\"><link rel=\"attachment\" href=\"file:///etc/passwd\">"
               f"<a href=\"javascript:alert(1)\">x</a><script>alert(1)</script>"
               f"<div style=\"background: url({listener.url}/style.png)\">{{{{ intro }}}}</div>"
               "{% for s in sections %}{{ s.placeholder }}{% endfor %}")
    markdown = (f"![pixel]({listener.url}/md.png) [click](javascript:alert(1)) <script>alert(2)</script>"
                f"<link rel=attachment href=file:///etc/passwd> <iframe src=\"{listener.url}/frame\"></iframe>"
                " Quarterly numbers")
    template = make(reports, admin, layout=hostile, intro_markdown=markdown)
    for fmt in ("pdf", "html"):
        report, data = generate(reports, principal_factory("report_creator"),
                                {"template_id": template.id, "format": fmt, **PERIOD})
        assert report.state == "completed", report.error
        if fmt == "pdf":
            assert b"/EmbeddedFile" not in data and b"root:" not in data
            assert "Quarterly numbers" in pdf_text(data)
        else:
            html = data.decode()
            page = parse(html)
            assert "script" not in page.tags and "iframe" not in page.tags and "link" not in page.tags
            assert not any(value.lower().startswith("javascript") for _, _, value in page.attributes)
            assert not any(listener.url in value for _, _, value in page.attributes)
            assert "Quarterly numbers" in " ".join(page.text)
    assert listener.hits == []


def test_css_with_file_url_is_refused_at_creation(reports, principal_factory):
    with pytest.raises(ValidationError) as caught:
        make(reports, principal_factory("admin"), css="body { background: url(file:///dev/urandom) }")
    assert caught.value.details[0]["field"] == "css"


@pytest.mark.parametrize("layout,reason", [
    ("{{ 7 ** 10**8 }}", "** limited"),
    ("{{ 'x' * 10**9 }}", "limited"),
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{% for i in range(3000) %}<div class=\"pb\">page {{ i }}</div>{% endfor %}", "pages"),
])
def test_hostile_layout_fails_its_report_and_the_service_goes_on(reports, principal_factory, layout, reason):
    admin = principal_factory("admin")
    template = make(reports, admin, layout=layout, css=".pb { page-break-after: always }")
    report, _ = generate(reports, principal_factory("report_creator"), {"template_id": template.id, **PERIOD})
    assert report.state == "failed" and reason in report.error
    assert reports.secret not in report.error
    # the next report is unharmed
    fine, data = generate(reports, principal_factory("report_creator"),
                          {"type": "usage", "format": "json", **PERIOD})
    assert fine.state == "completed" and json.loads(data)["schema"] == "botreports/1"


def test_templates_over_http_page_and_stay_in_their_organisation(reports, principal_factory):
    from http_support import BASE, LiveServer
    server = LiveServer(reports)
    try:
        admin_key, _ = reports.create_api_key("org-acme", "report_admin")
        other_key, _ = reports.create_api_key("org-globex", "report_viewer")
        created = server.request("POST", f"{BASE}/templates", admin_key, json={
            "name": "Board pack", "type": "usage", "format": "json", **BRAND})
        assert created.status_code == 201, created.text
        template_id = created.json()["template_id"]
        assert created.json()["presentation"]["intro_markdown"] == BRAND["intro_markdown"]
        page = server.request("GET", f"{BASE}/templates?limit=2&offset=0", admin_key)
        assert page.status_code == 200 and len(page.json()) == 2
        total = int(page.headers["X-Total-Count"])
        assert total == len(reports.builtin_templates) + 1 and 'rel="next"' in page.headers["Link"]
        everything = server.request("GET", f"{BASE}/templates?limit=100", admin_key).json()
        assert template_id in [t["template_id"] for t in everything]
        theirs = server.request("GET", f"{BASE}/templates?limit=100", other_key).json()
        assert template_id not in [t["template_id"] for t in theirs]
        assert server.request("GET", f"{BASE}/templates/{template_id}", other_key).status_code == 404
        bad = server.request("POST", f"{BASE}/templates", admin_key, json={
            "name": "x", "type": "usage", "layout": "{% for %}"})
        assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "layout"
        assert "line 1" in bad.json()["details"][0]["problem"]
    finally:
        server.stop()
