"""Every report type in every format, over the demo data: each file parses back
and holds what the JSON export of the same report holds."""
import csv
import datetime as dt
import io
import json
import shutil
from html.parser import HTMLParser

import pytest

from botreports import Reports
from botreports.core.plugin_manager import build_plugin_manager, collect_registry
from botreports.core.service import SYSTEM
from botreports.plugins import DEFAULT_PLUGINS

FORMATS = ("json", "html", "pdf", "xlsx", "csv")
PERIOD = {"start_date": "2025-01-18", "end_date": "2025-01-31", "timezone": "America/New_York"}


def _registered_types():
    pm = build_plugin_manager(DEFAULT_PLUGINS, load_entrypoints=False)
    return {name: item for name, (item, _) in collect_registry(pm, "register_report_types", "name").items()}


TYPES = _registered_types()
CASES = sorted(name for name in TYPES if name != "custom") + ["custom-multi"]


def body_of(case, fmt):
    if case == "custom-multi":
        # one custom report with the first two sections of every standard type
        sections = list(dict.fromkeys(s for t in TYPES.values() for s in t.default_sections[:2]))
        return {"type": "custom", "format": fmt, "title": "All sections <custom>", **PERIOD,
                "sections": [{"type": name} for name in sections]}
    return {"type": case, "format": fmt, **PERIOD}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, botreports_demo_db):
    """Each case rendered once in every format: {(case, format): path}."""
    root = tmp_path_factory.mktemp("exports")
    (root / "data").mkdir()
    shutil.copy(botreports_demo_db, root / "data" / "analytics.db")
    rk = Reports(data_dir=root / "data", load_entrypoints=False)
    files = {}

    def get(case, fmt):
        if (case, fmt) not in files:
            out = root / f"{case}.{fmt}"
            files[case, fmt] = rk.render(SYSTEM, body_of(case, fmt), out)
        return files[case, fmt]

    yield get
    rk.close()


def document_of(rendered, case):
    return json.loads(rendered(case, "json").read_text(encoding="utf-8"))


def kpis_of(document):
    return [item for s in document["sections"] for b in s["blocks"] if b["kind"] == "kpis" for item in b["items"]]


def charts_of(document):
    return [b for s in document["sections"] for b in s["blocks"] if b["kind"] == "chart"]


def tables_of(document):
    return [b for s in document["sections"] for b in s["blocks"] if b["kind"] == "table"]


def expected_kpi_text(item):
    """How a KPI value must read in the PDF, computed here by plain rules."""
    value, unit = item["value"], item.get("unit") or ""
    if value is None:
        return None
    if unit == "%":
        return f"{value * 100:,.1f}%"
    if unit in ("ms", "s"):
        seconds = value / 1000 if unit == "ms" else value
        if seconds < 1:
            return f"{seconds * 1000:,.0f} ms"
        if seconds < 60:
            return f"{seconds:.1f} s"
        return f"{int(round(seconds)) // 60} min"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


@pytest.mark.parametrize("case", CASES)
def test_json_export_parses_with_its_schema(rendered, case):
    document = document_of(rendered, case)
    assert document["schema"] == "botreports/1"
    assert document["period"]["timezone"] == PERIOD["timezone"]
    assert document["sections"] and kpis_of(document), "every report shows KPIs"


@pytest.mark.parametrize("case", CASES)
def test_pdf_text_holds_title_and_kpi_values(rendered, case):
    from pdfminer.high_level import extract_text

    document = document_of(rendered, case)
    path = rendered(case, "pdf")
    assert path.read_bytes().startswith(b"%PDF-")
    text = " ".join(extract_text(str(path)).split())
    assert document["title"] in text
    first_page = " ".join(extract_text(str(path), page_numbers=[0]).split())
    assert document["title"] in first_page and "Page 1 of" in first_page
    for item in kpis_of(document):
        expected = expected_kpi_text(item)
        if expected is not None:
            assert expected in text, (item["name"], expected)


def test_pdf_text_of_titles_in_any_script(botreports_demo_db, tmp_path):
    """Titles in scripts the main font lacks (Japanese, emoji) come out in a fallback font:
    real glyphs, and a text layer that reads back."""
    from pdfminer.high_level import extract_text

    (tmp_path / "data").mkdir()
    shutil.copy(botreports_demo_db, tmp_path / "data" / "analytics.db")
    rk = Reports(data_dir=tmp_path / "data", load_entrypoints=False)
    try:
        title = "Relatório São Paulo — 東京 🤖"
        path = rk.render(SYSTEM, {"type": "custom", "format": "pdf", "title": title, **PERIOD,
                                  "sections": [{"type": "usage_summary"}]}, tmp_path / "t.pdf")
    finally:
        rk.close()
    first_page = " ".join(extract_text(str(path), page_numbers=[0]).split())
    assert title in first_page and "Page 1 of" in first_page


def test_xlsx_about_sheet_keeps_its_name_and_notes_read_as_plain_text(botreports_demo_db, tmp_path):
    import openpyxl

    (tmp_path / "data").mkdir()
    shutil.copy(botreports_demo_db, tmp_path / "data" / "analytics.db")
    rk = Reports(data_dir=tmp_path / "data", load_entrypoints=False)
    try:
        path = rk.render(SYSTEM, {"type": "custom", "format": "xlsx", **PERIOD, "sections": [
            {"type": "peak_hours"},
            {"type": "custom_metric", "title": "About", "table": "messages", "measure": "count", "group_by": "bot"}]},
            tmp_path / "t.xlsx")
    finally:
        rk.close()
    book = openpyxl.load_workbook(path)
    assert book.sheetnames[-1] == "About" and "About (2)" in book.sheetnames
    notes = [row[1].value for row in book["About"].iter_rows() if row[0].value == "Note"]
    assert notes and all("**" not in note for note in notes)
    assert any(note.startswith("Busiest hour: ") for note in notes)


def text_lines(item):
    """The text lines of a pdfminer layout item, however deep."""
    from pdfminer.layout import LTTextLine

    if isinstance(item, LTTextLine):
        yield item
    for child in getattr(item, "_objs", ()):
        yield from text_lines(child)


@pytest.mark.parametrize("case", CASES)
def test_pdf_text_stays_within_the_page(rendered, case):
    """Wide tables (the weekday x hour grid, raw rows of fourteen columns) fit the width of
    the paper: no text line runs off any page."""
    from pdfminer.high_level import extract_pages

    for page in extract_pages(str(rendered(case, "pdf"))):
        for line in text_lines(page):
            assert 0 <= line.x0 and line.x1 <= page.width, line.get_text()


def test_pdf_long_title_stays_on_the_page(botreports_demo_db, tmp_path):
    """A title of 200 characters without a space wraps on the cover and is cut short in the
    running header: no text runs off the page, and the title is printed once per page at most."""
    from pdfminer.high_level import extract_pages

    (tmp_path / "data").mkdir()
    shutil.copy(botreports_demo_db, tmp_path / "data" / "analytics.db")
    rk = Reports(data_dir=tmp_path / "data", load_entrypoints=False)
    try:
        path = rk.render(SYSTEM, {"type": "usage", "format": "pdf", "title": "X" * 200, **PERIOD},
                         tmp_path / "t.pdf")
    finally:
        rk.close()

    pages = list(extract_pages(str(path)))
    for page in pages:
        for line in text_lines(page):
            assert 0 <= line.x0 and line.x1 <= page.width, line.get_text()
    cover = "".join(line.get_text() for line in text_lines(pages[0]))
    assert cover.count("X") == 200  # wrapped, whole, once
    header = "".join(line.get_text() for line in text_lines(pages[1]) if "X" in line.get_text())
    assert header.strip().endswith("…") and header.count("X") < 100


@pytest.mark.parametrize("case", CASES)
def test_xlsx_has_sheets_typed_cells_and_charts(rendered, case):
    import openpyxl

    document = document_of(rendered, case)
    book = openpyxl.load_workbook(rendered(case, "xlsx"))
    assert book.sheetnames[0] == "Summary" and book.sheetnames[-1] == "About"
    summary = book["Summary"]
    assert summary.freeze_panes == "A2"
    got = {(row[1].value): row[2].value for row in summary.iter_rows(min_row=2)}
    for item in kpis_of(document):
        if item["value"] is not None:
            assert got[item["label"]] == pytest.approx(item["value"]), item["name"]
            assert not isinstance(got[item["label"]], str)
    charts = sum(len(sheet._charts) for sheet in book.worksheets)
    assert charts == len(charts_of(document)) and charts >= 1
    # a table's cells are typed: dates are dates, counts are numbers with a number format
    typed = 0
    for table in tables_of(document):
        if table["raw"] or not table["rows"]:
            continue
        sheet = next(book[name] for name in book.sheetnames if name.startswith(table["title"][:25]))
        assert sheet.freeze_panes == "A2"
        assert [c.value for c in sheet[1]] == [c["label"] for c in table["columns"]]
        first = [c for c in sheet[2]]
        for column, cell, value in zip(table["columns"], first, table["rows"][0]):
            if column["type"] == "date":
                assert isinstance(cell.value, dt.datetime) and cell.value.date().isoformat() == value
                typed += 1
            elif column["type"] in ("integer", "number") and value is not None:
                assert cell.value == pytest.approx(value) and cell.data_type == "n"
                assert cell.number_format in ("#,##0", "#,##0.00")
                typed += 1
    assert typed > 0


@pytest.mark.parametrize("case", CASES)
def test_csv_is_the_raw_data_table(rendered, case):
    document = document_of(rendered, case)
    raw = [t for t in tables_of(document) if t["raw"]]
    table = raw[0] if raw else max(tables_of(document), key=lambda t: len(t["rows"]))
    text = rendered(case, "csv").read_bytes().decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [c["name"] for c in table["columns"]]
    assert len(rows) - 1 == len(table["rows"])
    for got, want in zip(rows[1:], table["rows"]):
        for column, cell, value in zip(table["columns"], got, want):
            if value is None:
                assert cell == ""
            elif column["type"] in ("integer", "number", "percent", "duration") and not isinstance(value, str):
                assert float(cell) == value
            elif column["type"] == "date":
                assert cell == value


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.urls, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value and not value.startswith(("#", "data:")):
                self.urls.append(value)

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize("case", CASES)
def test_html_is_self_contained_with_svg_charts(rendered, case):
    document = document_of(rendered, case)
    page = _Collector()
    page.feed(rendered(case, "html").read_text(encoding="utf-8"))
    assert page.tags.count("svg") == len(charts_of(document)) >= 1
    assert "script" not in page.tags and "link" not in page.tags
    assert page.urls == []
    text = " ".join("".join(page.text).split())
    assert document["title"] in text
    for item in kpis_of(document):
        expected = expected_kpi_text(item)
        if expected is not None:
            assert expected in text, item["name"]


def test_every_registered_type_is_covered():
    assert set(CASES) - {"custom-multi"} == set(TYPES) - {"custom"}
    assert "usage" in CASES
