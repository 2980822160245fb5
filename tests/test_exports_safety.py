"""Cell safety, number round trips, streaming, limits and the locked-down PDF
fetcher of the built-in exporters, over documents built in the tests."""
import csv
import datetime as dt
import http.server
import io
import json
import threading
from html.parser import HTMLParser
import zipfile

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botreports import (Chart, Column, Kpi, Kpis, Period, ReportDocument, SectionResult, Series, Table, Text,
                        ValidationError)
from botreports.plugins.exporters import csv_exporter, html_exporter, pdf_exporter, xlsx_exporter
from botreports.plugins.exporters.cell_safety import FORMULA_TRIGGERS, escape_text

UTC = dt.timezone.utc
PERIOD = Period(dt.datetime(2025, 1, 1, tzinfo=UTC), dt.datetime(2025, 2, 1, tzinfo=UTC), "Europe/Lisbon")


def document(*blocks, sections=None, **changes):
    sections = sections or [SectionResult("main", "Main", blocks)]
    doc = ReportDocument(title="Test report", type="custom", period=PERIOD,
                         generated_at=dt.datetime(2025, 2, 1, 8, 0, tzinfo=UTC),
                         parameters={"bot_id": None, "channel": None}, sections=sections)
    return attrs.evolve(doc, **changes) if changes else doc


def export(exporter_module, doc, **options):
    out = io.BytesIO()
    name = [n for n in dir(exporter_module) if n.startswith("export_")][0]
    getattr(exporter_module, name)(doc, out, options)
    return out.getvalue()


class OnceOnly:
    """A row iterator that fails if anyone reads it twice (raw tables are streamed once)."""

    def __init__(self, rows):
        self.rows, self.used = rows, False

    def __iter__(self):
        assert not self.used, "raw rows read twice"
        self.used = True
        return iter(self.rows)


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
dangerous = st.builds(lambda t, s: t + s, st.sampled_from(FORMULA_TRIGGERS), texts)
any_text = st.one_of(texts, dangerous)
numbers = st.one_of(st.integers(min_value=-(2 ** 53), max_value=2 ** 53),
                    st.floats(allow_nan=False, allow_infinity=False, width=64))


@given(any_text)
def test_escaped_text_never_starts_a_formula(text):
    escaped = escape_text(text)
    assert not escaped or escaped[0] not in FORMULA_TRIGGERS
    if text and text[0] in FORMULA_TRIGGERS:
        assert escaped == "'" + text
    else:
        assert escaped == text


MIXED = (Column("label", "Label"), Column("count", "Count", "integer"), Column("value", "Value", "number"))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(any_text, st.integers(-(2 ** 53), 2 ** 53),
                          st.floats(allow_nan=False, allow_infinity=False)), min_size=1, max_size=15),
       st.sampled_from(["comma", "semicolon"]))
def test_csv_cells_are_safe_and_numbers_survive(rows, dialect):
    doc = document(Table("Raw", MIXED, OnceOnly(rows), raw=True))
    text = export(csv_exporter, doc, csv_dialect=dialect).decode("utf-8")
    parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=";" if dialect == "semicolon" else ","))
    assert parsed[0] == ["label", "count", "value"]
    assert len(parsed) == len(rows) + 1
    for (label, count, value), (got_label, got_count, got_value) in zip(rows, parsed[1:]):
        assert not got_label or got_label[0] not in FORMULA_TRIGGERS
        assert got_label == escape_text(label)
        assert int(got_count) == count
        # the semicolon dialect writes a decimal comma, as its spreadsheets read it
        assert float(got_value.replace(",", ".") if dialect == "semicolon" else got_value) == value


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(any_text, st.integers(-(2 ** 53), 2 ** 53),
                          st.floats(allow_nan=False, allow_infinity=False)), min_size=1, max_size=12))
def test_xlsx_cells_are_safe_and_numbers_survive(rows):
    import openpyxl

    doc = document(Table("Raw", MIXED, OnceOnly(rows), raw=True))
    book = openpyxl.load_workbook(io.BytesIO(export(xlsx_exporter, doc)))
    sheet = book["Raw data"]
    got = list(sheet.iter_rows(min_row=2))
    assert len(got) == len(rows)
    for (label, count, value), (c_label, c_count, c_value) in zip(rows, got):
        if c_label.value is not None:
            assert c_label.data_type == "s" and c_label.value[0] not in FORMULA_TRIGGERS
        assert (c_label.value or "") == xlsx_exporter.safe_text(label)
        assert c_count.value == count and c_count.data_type == "n"
        assert c_value.value == value and c_value.data_type == "n"


def test_xlsx_writes_no_formula_even_for_formula_text():
    import openpyxl

    doc = document(Table("Raw", MIXED, [["=HYPERLINK(\"http://x\",\"y\")", 1, 2.5], ["@SUM(A1)", -3, -0.5],
                                         ["-2+3", 0, 0.0], ["\x00=1", 4, 1e-9]], raw=True))
    data = export(xlsx_exporter, doc)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
        assert not any(b"<f>" in archive.read(n) for n in sheets)
    sheet = openpyxl.load_workbook(io.BytesIO(data))["Raw data"]
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == [
        "'=HYPERLINK(\"http://x\",\"y\")", "'@SUM(A1)", "'-2+3", "'\ufffd=1"]
    assert [row[1].value for row in sheet.iter_rows(min_row=2)] == [1, -3, 0, 4]


def test_xlsx_raw_data_continues_on_next_sheets(monkeypatch):
    import openpyxl

    monkeypatch.setattr(xlsx_exporter, "MAX_DATA_ROWS", 5)
    rows = [[f"row {i}", i, i / 2] for i in range(12)]
    book = openpyxl.load_workbook(io.BytesIO(export(xlsx_exporter, document(Table("Raw", MIXED, iter(rows),
                                                                                   raw=True)))))
    sheets = [name for name in book.sheetnames if name.startswith("Raw data")]
    assert sheets == ["Raw data", "Raw data (2)", "Raw data (3)"]
    counts = [book[name].max_row - 1 for name in sheets]
    assert counts == [5, 5, 2]
    assert [c.value for c in book["Raw data (2)"][1]] == ["Label", "Count", "Value"]
    assert [r[1].value for name in sheets for r in book[name].iter_rows(min_row=2)] == list(range(12))
    # exactly a full sheet makes no empty continuation
    exact = openpyxl.load_workbook(io.BytesIO(export(xlsx_exporter, document(
        Table("Raw", MIXED, iter(rows[:10]), raw=True)))))
    assert [n for n in exact.sheetnames if n.startswith("Raw data")] == ["Raw data", "Raw data (2)"]


def test_xlsx_text_keeps_spaces_markup_and_line_breaks():
    import openpyxl

    texts = ["  padded  ", "a & b <c> \"d\"", "line\r\nbreak\rcr", "tab\tinside", "\n", "bad \ufffe\x01 chars",
             "<row r=\"9\"><c/></row>", "]]>"]
    columns = (Column("text", "Text"),)
    sheet = openpyxl.load_workbook(io.BytesIO(export(xlsx_exporter, document(
        Table("Raw", columns, iter([[t] for t in texts]), raw=True)))))["Raw data"]
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == [
        "  padded  ", "a & b <c> \"d\"", "line\r\nbreak\rcr", "tab\tinside", "\n", "bad \ufffd\ufffd chars",
        "<row r=\"9\"><c/></row>", "]]>"]


def test_xlsx_types_values_that_differ_from_their_column():
    import openpyxl

    columns = (Column("n", "N", "integer"), Column("at", "At", "datetime"), Column("day", "Day", "date"),
               Column("label", "Label"))
    rows = [[True, "2025-07-01T12:00:00Z", "2025-01-05", dt.datetime(2025, 1, 2, 9, 30, tzinfo=UTC)],
            [2.5, "not a time", dt.datetime(2025, 7, 1, 23, 30, tzinfo=UTC), 7],
            [float("nan"), None, "someday", dt.date(2025, 3, 4)],
            ["=1+1", dt.datetime(2025, 1, 1, 0, 0), dt.date(2025, 2, 3), float("inf")]]
    sheet = openpyxl.load_workbook(io.BytesIO(export(xlsx_exporter, document(
        Table("Raw", columns, iter(rows), raw=True)))))["Raw data"]
    got = [[(cell.value, cell.number_format) for cell in row] for row in sheet.iter_rows(min_row=2, max_col=4)]
    stamp = "yyyy-mm-dd hh:mm:ss"
    assert got[0] == [(True, "General"), (dt.datetime(2025, 7, 1, 13, 0), stamp),
                      (dt.datetime(2025, 1, 5), "yyyy-mm-dd"), (dt.datetime(2025, 1, 2, 9, 30), stamp)]
    assert got[1] == [(2.5, "#,##0"), ("not a time", "General"), (dt.datetime(2025, 7, 2, 0, 30), "yyyy-mm-dd"),
                      (7, "General")]
    assert got[2] == [(None, "General"), (None, "General"), ("someday", "General"),
                      (dt.datetime(2025, 3, 4), "yyyy-mm-dd")]
    assert got[3] == [("'=1+1", "General"), (dt.datetime(2025, 1, 1, 0, 0), stamp),
                      (dt.datetime(2025, 2, 3), "yyyy-mm-dd"), (None, "General")]


def test_xlsx_rows_stay_in_order_across_chunks_and_sheets(monkeypatch):
    import openpyxl

    from botreports.plugins.exporters import xlsx_rows

    monkeypatch.setattr(xlsx_rows, "CHUNK_ROWS", 3)
    monkeypatch.setattr(xlsx_exporter, "MAX_DATA_ROWS", 10)
    rows = [[f"row {i}", i, i / 4] for i in range(25)]
    book = openpyxl.load_workbook(io.BytesIO(export(xlsx_exporter, document(
        Table("Raw", MIXED, OnceOnly(rows), raw=True)))))
    sheets = [book[name] for name in book.sheetnames if name.startswith("Raw data")]
    assert [sheet.max_row for sheet in sheets] == [11, 11, 6]
    got = [[cell.value for cell in row] for sheet in sheets for row in sheet.iter_rows(min_row=2)]
    assert got == rows
    for sheet in sheets:
        assert sheet.freeze_panes == "A2" and sheet["A1"].font.b and sheet.column_dimensions["A"].width > 8


def test_xlsx_types_dates_percentages_and_local_datetimes():
    import openpyxl

    columns = (Column("day", "Day", "date"), Column("at", "At", "datetime"), Column("share", "Share", "percent"),
               Column("took", "Took", "duration"))
    rows = [[dt.date(2025, 1, 5), dt.datetime(2025, 7, 1, 12, 0, tzinfo=UTC), 0.25, 1.5]]
    sheet = openpyxl.load_workbook(io.BytesIO(export(xlsx_exporter, document(Table("Typed", columns, rows)))))["Typed"]
    day, at, share, took = sheet[2]
    assert day.value == dt.datetime(2025, 1, 5) and day.is_date
    assert at.value == dt.datetime(2025, 7, 1, 13, 0) and at.is_date  # Lisbon summer time, UTC+1
    assert share.value == 0.25 and share.number_format == "0.0%"
    assert took.value == 1.5 and took.data_type == "n"


def test_csv_header_labels_bom_and_local_datetimes():
    columns = (Column("at", "Started at", "datetime"), Column("n", "Number", "number"))
    rows = [[dt.datetime(2025, 1, 5, 10, 0, tzinfo=UTC), 1.5]]
    data = export(csv_exporter, document(Table("Raw", columns, rows, raw=True)), csv_header="labels", csv_bom=True)
    assert data.startswith("\ufeff".encode("utf-8"))
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert parsed == [["Started at", "Number"], ["2025-01-05T10:00:00+00:00", "1.5"]]


def test_csv_streams_a_large_raw_table_once():
    rows = OnceOnly([[f"user-{i}", i, i * 0.5] for i in range(30_000)])
    out = io.BytesIO()
    csv_exporter.export_csv(document(Table("Raw", MIXED, rows, raw=True)), out, {})
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 30_001 and lines[-1] == "user-29999,29999,14999.5"


@pytest.mark.parametrize("options,field", [({"csv_dialect": "tab"}, "options.csv_dialect"),
                                           ({"csv_dialekt": "comma"}, "options.csv_dialekt"),
                                           ({"csv_bom": "yes"}, "options.csv_bom")])
def test_bad_export_options_name_their_field(reports, system_principal, tmp_path, options, field):
    body = {"type": "usage", "format": "csv", "start_date": "2025-01-20", "end_date": "2025-01-31",
            "options": options}
    with pytest.raises(ValidationError) as caught:
        reports.render(system_principal, body, tmp_path / "x.csv")
    assert [d["field"] for d in caught.value.details] == [field]


def test_options_of_another_format_are_refused(reports, system_principal, tmp_path):
    body = {"type": "usage", "format": "csv", "start_date": "2025-01-20", "end_date": "2025-01-31",
            "options": {"page_size": "Letter", "csv_dialect": "semicolon"}}
    with pytest.raises(ValidationError) as caught:
        reports.render(system_principal, body, tmp_path / "x.csv")
    assert caught.value.details == [{"field": "options.page_size", "problem": "not an option of format csv"}]
    assert not (tmp_path / "x.csv").exists()
    out = reports.render(system_principal, {**body, "options": {"csv_dialect": "semicolon"}}, tmp_path / "x.csv")
    header = out.read_text().splitlines()[0]
    assert header.count(";") >= 2 and "," not in header


def test_without_charts_no_chart_anywhere(reports, system_principal, tmp_path):
    import openpyxl

    base = {"type": "usage", "start_date": "2025-01-20", "end_date": "2025-01-31", "include_charts": False}
    html = reports.render(system_principal, {**base, "format": "html"}, tmp_path / "r.html").read_text()
    assert "<svg" not in html
    book = openpyxl.load_workbook(reports.render(system_principal, {**base, "format": "xlsx"}, tmp_path / "r.xlsx"))
    assert sum(len(s._charts) for s in book.worksheets) == 0


HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>'


def test_html_escapes_every_text_of_the_document():
    doc = document(Kpis([Kpi("n", HOSTILE, 3)]), Table(HOSTILE, (Column("a", HOSTILE),), [[HOSTILE]]),
                   Chart(HOSTILE, "bar", [HOSTILE, "b"], [Series(HOSTILE, [1, 2])]),
                   Text(f"**bold** {HOSTILE} ![pixel](http://127.0.0.1:9/p.png) [link](javascript:alert(3))"),
                   title=HOSTILE)
    html = export(html_exporter, doc).decode()
    tags, attributes = [], []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append(tag)
            attributes.extend(attrs)

    Collector().feed(html)
    assert "script" not in tags and "img" not in tags
    assert not [name for name, _ in attributes if name.startswith("on")]
    assert not [value for _, value in attributes if value and ("javascript:" in value or "127.0.0.1" in value)]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<strong>bold</strong>" in html


def test_tables_are_capped_in_pdf_with_a_note():
    from pdfminer.high_level import extract_text

    rows = [[f"item {i}", i, i / 3] for i in range(500)]
    doc = document(Table("Long table", MIXED, rows), Table("Raw", MIXED, iter(rows), raw=True))
    data = export(pdf_exporter, doc, max_table_rows=20)
    text = " ".join(extract_text(io.BytesIO(data)).split())
    assert "Showing the first 20 of 500 rows" in text
    assert "Showing the first 10 rows. The complete data is in the CSV and XLSX exports" in text
    assert "item 19" in text and "item 20" not in text


def test_pdf_is_a4_paginated_with_running_header_toc_and_vector_charts():
    from pdfminer.high_level import extract_pages, extract_text
    from pdfminer.layout import LTFigure, LTImage

    chart = Chart("Messages per day", "line", [f"2025-01-{d:02d}" for d in range(1, 32)],
                  [Series("Messages in", list(range(31)))], x_label="Day", y_label="Messages")
    rows = [[f"item {i}", i, i / 3] for i in range(80)]
    sections = [SectionResult(f"s{i}", f"Section number {i}", [Kpis([Kpi("n", "Count", 1000 + i)]),
                                                               Table("Rows", MIXED, rows), chart])
                for i in range(3)]
    data = export(pdf_exporter, document(sections=sections))
    pages = list(extract_pages(io.BytesIO(data)))
    assert len(pages) >= 4
    assert [round(v) for v in pages[0].bbox[2:]] == [595, 842]  # A4 in points
    texts = [" ".join(extract_text(io.BytesIO(data), page_numbers=[i]).split()) for i in range(len(pages))]
    for number, text in enumerate(texts, start=1):
        assert f"Page {number} of {len(pages)}" in text
    assert all("Test report" in text for text in texts[1:])  # running header
    assert "Contents" in texts[0] and all(f"Section number {i}" in texts[0] for i in range(3))
    assert "1,001" in " ".join(texts)
    # chart text is real text too (WeasyPrint places SVG glyphs one by one, so spaces are not extracted)
    assert "Messagesperday" in "".join("".join(texts).split())
    # charts are vector drawings: no raster image anywhere
    def images(item):
        if isinstance(item, LTImage):
            yield item
        for child in getattr(item, "_objs", []) if isinstance(item, LTFigure) or hasattr(item, "_objs") else []:
            yield from images(child)
    assert not [image for page in pages for image in images(page)]
    assert b"/Subtype /Image" not in data and b"/Subtype/Image" not in data


def test_pdf_letter_size_option():
    from pdfminer.high_level import extract_pages

    data = export(pdf_exporter, document(Kpis([Kpi("n", "Count", 1)])), page_size="Letter")
    assert [round(v) for v in next(extract_pages(io.BytesIO(data))).bbox[2:]] == [612, 792]


def test_pdf_fetches_nothing_but_data_urls_and_own_assets():
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        css = (f"body {{ background: url(http://127.0.0.1:{port}/bg.png) }} "
               f".kpi {{ background: url(file:///etc/passwd) }}")
        logo = ("data:image/svg+xml;base64,"
                "PHN2ZyB4bWxucz0naHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmcnIHdpZHRoPScxMCcgaGVpZ2h0PScxMCcvPg==")
        doc = document(Kpis([Kpi("n", "Count", 1)]), Text(f"[x](http://127.0.0.1:{port}/link)"),
                       presentation={"css": css, "logo": logo})
        assert export(pdf_exporter, doc).startswith(b"%PDF")
    finally:
        server.shutdown()
    assert hits == []
    from botreports.plugins.exporters.document_html import TEMPLATES_DIR
    allowed = pdf_exporter.allowed_url
    assert allowed("data:image/png;base64,AAAA", TEMPLATES_DIR)
    assert allowed((TEMPLATES_DIR / "report.css").as_uri(), TEMPLATES_DIR)
    assert not allowed("file:///etc/passwd", TEMPLATES_DIR)
    assert not allowed((TEMPLATES_DIR / ".." / ".." / "setup.py").as_uri(), TEMPLATES_DIR)
    assert not allowed(f"http://127.0.0.1:{port}/", TEMPLATES_DIR)
    assert not allowed("https://example.com/x.png", TEMPLATES_DIR)


@settings(max_examples=300, deadline=None)
@given(instant=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                            timezones=st.just(dt.timezone.utc)))
def test_json_spells_every_utc_instant_as_the_document_model_does(instant):
    from botreports.core.convert import unstructure
    from botreports.plugins.exporters.json_exporter import dumps

    assert dumps([instant]) == json.dumps([unstructure(instant)])


def test_pseudonyms_are_keyed_hmac_sha256():
    import hashlib
    import hmac
    from types import SimpleNamespace

    from botreports.plugins.sections.labels import pseudonym

    ctx = SimpleNamespace(reports=SimpleNamespace(secret="s3cret"))
    expected = hmac.new(b"s3cret", b"usr-42", hashlib.sha256).hexdigest()[:10]
    assert pseudonym(ctx, "usr-42") == "user-" + expected and pseudonym(ctx, None) is None


@settings(max_examples=200)
@given(secret=st.text(max_size=150), user_id=st.text(max_size=80))
def test_pseudonyms_equal_the_hmac_module_for_any_key_and_id(secret, user_id):
    """Keys shorter and longer than SHA-256's 64-byte block (then hashed first), empty ones and
    non-ASCII text included."""
    import hashlib
    import hmac
    from types import SimpleNamespace

    from botreports.plugins.sections.labels import pseudonyms

    label = pseudonyms(SimpleNamespace(reports=SimpleNamespace(secret=secret)))
    key = (secret or "botreports").encode("utf-8")
    assert label(user_id) == "user-" + hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:10]
