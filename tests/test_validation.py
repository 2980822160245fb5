"""Bad requests give field-level errors, and nothing is written for a rejected request."""
import datetime as dt

import pytest

from botreports import ValidationError

OK = {"type": "usage", "format": "json", "start_date": "2025-01-01", "end_date": "2025-01-31"}


def problems_of(reports, principal, body):
    with pytest.raises(ValidationError) as caught:
        reports.generate(principal, body)
    return {d["field"]: d["problem"] for d in caught.value.details}


@pytest.mark.parametrize("change,field,words", [
    ({"type": "usgae"}, "type", "unknown report type 'usgae'; valid: compliance, conversations, custom, performance, usage"),
    ({"type": None}, "type", "is required"),
    ({"format": "docx"}, "format", "unknown format 'docx'"),
    ({"start_date": "2025-13-01"}, "start_date", "is not a date"),
    ({"end_date": "yesterday"}, "end_date", "is not a date"),
    ({"start_date": "2025-02-01"}, "end_date", "must not be before start_date"),
    ({"start_date": "2020-01-01"}, "end_date", "longer than the maximum of 400 days"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone", "unknown timezone"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"include_charts": "false"}, "include_charts", "must be true or false"),
    ({"start_date": 20250101}, "start_date", "must be a string"),
    ({"bot_id": [1, 2]}, "bot_id", "list of at most"),
    ({"title": ""}, "title", "1 to 200 characters"),
    ({"type": "custom"}, "sections", "needs a list of sections"),
    ({"type": "custom", "sections": [{"type": "top_secret"}]}, "sections[0].type", "unknown section 'top_secret'"),
    ({"type": "custom", "sections": [{"type": "usage_summary", "size": 3}]}, "sections[0].size", "unknown option"),
    ({"period": "last_7_days"}, "period", "either period or start_date"),
    ({"start_date": None, "end_date": None, "period": "fortnight"}, "period", "must be one of"),
    ({"start_date": "9999-12-31", "end_date": "9999-12-31"}, "start_date", "from 1970-01-01 to 9998-12-31"),
    ({"start_date": "0001-01-01T00:00:00+14:00"}, "start_date", "from 1970-01-01 to 9998-12-31"),
    ({"start_date": "0001-01-01", "end_date": "0001-01-02"}, "end_date", "from 1970-01-01 to 9998-12-31"),
    ({"start_date": "1969-12-31"}, "start_date", "out of range"),
    ({"sections": "usage_summary"}, "sections", "must be a list of objects"),
    ({"sections": {"type": "usage_summary"}}, "sections", "must be a list of objects"),
    ({"options": "compact"}, "options", "must be an object"),
    ({"template_id": ["tpl-usage-standard"]}, "template_id", "must be a string"),
])
def test_field_level_errors(reports, principal_factory, change, field, words):
    body = {**OK, **change}
    body = {k: v for k, v in body.items() if v is not None or k == "type"}
    if change.get("type", "x") is None:
        body.pop("type")
    problems = problems_of(reports, principal_factory("report_creator"), body)
    assert field in problems, problems
    assert words in problems[field]


def test_several_problems_are_reported_together(reports, principal_factory):
    problems = problems_of(reports, principal_factory("report_creator"),
                           {"type": "nope", "format": "nope", "start_date": "x", "end_date": "2025-01-01"})
    assert {"type", "format", "start_date"} <= set(problems)


def test_without_dates_or_period_a_report_covers_the_last_30_days(reports, principal_factory):
    at = dt.datetime(2025, 3, 10, 15, tzinfo=dt.timezone.utc)
    for kind, extra in [("usage", {}), ("conversations", {}), ("performance", {}), ("compliance", {}),
                        ("custom", {"sections": [{"type": "usage_summary"}]})]:
        spec = reports.validate({"type": kind, "format": "json", "timezone": "Asia/Tokyo", **extra}, at)
        tokyo = dt.timezone(dt.timedelta(hours=9))
        assert (spec.period.start, spec.period.end) == (dt.datetime(2025, 2, 9, tzinfo=tokyo),
                                                        dt.datetime(2025, 3, 11, tzinfo=tokyo)), kind
        assert spec.period == reports.validate({"type": kind, "format": "json", "timezone": "Asia/Tokyo",
                                                "period": "last_30_days", **extra}, at).period


def test_one_date_without_the_other_names_the_missing_one(reports, principal_factory):
    creator = principal_factory("report_creator")
    assert set(problems_of(reports, creator, {"type": "usage", "start_date": "2025-01-01"})) == {"end_date"}
    assert set(problems_of(reports, creator, {"type": "usage", "end_date": "2025-01-31"})) == {"start_date"}


@pytest.mark.parametrize("fmt,options,name", [
    ("csv", {"max_table_rows": "many"}, "max_table_rows"),
    ("json", {"max_table_rows": -5}, "max_table_rows"),
    ("json", {"csv_dialect": "tab"}, "csv_dialect"),
    ("xlsx", {"csv_bom": True}, "csv_bom"),
])
def test_options_of_another_format_are_refused(reports, principal_factory, fmt, options, name):
    problems = problems_of(reports, principal_factory("report_creator"), {**OK, "format": fmt, "options": options})
    assert problems == {f"options.{name}": f"not an option of format {fmt}"}


def test_options_of_the_requested_format_are_still_checked(reports, principal_factory):
    creator = principal_factory("report_creator")
    assert problems_of(reports, creator, {**OK, "format": "pdf", "options": {"max_table_rows": -5}}) == {
        "options.max_table_rows": "must be at least 1"}
    assert "unknown option" in problems_of(reports, creator, {**OK, "options": {"colour": "red"}})["options.colour"]
    assert reports.validate({**OK, "format": "pdf", "options": {"max_table_rows": 5}}).options == {"max_table_rows": 5}


def test_template_options_of_another_format_are_left_out_when_the_request_changes_format(reports, principal_factory):
    admin = principal_factory("admin")
    template = reports.create_template(admin, {"name": "Board pack", "type": "usage", "format": "pdf",
                                               "defaults": {"options": {"page_size": "Letter"}}})
    report = reports.generate(admin, {**OK, "template_id": template.id, "format": "json"})
    assert report.format == "json" and report.parameters["options"] == {}
    report = reports.generate(admin, {**OK, "template_id": template.id, "format": "pdf"})
    assert report.parameters["options"] == {"page_size": "Letter"}


@pytest.mark.parametrize("text", ["a\u0000b", "two\rlines", "two\nlines", "tab\there", "a\x7fb", "a\x85b",
                                  "a\u202eb", "a\u202ab", "a\u2066b", "a\u2069b"])
def test_titles_refuse_control_and_bidi_override_characters(reports, principal_factory, text):
    admin = principal_factory("admin")
    problem = "must not contain control or bidirectional-override characters"
    assert problems_of(reports, admin, {**OK, "title": text}) == {"title": problem}
    for call, body, field in [
        (reports.create_template, {"name": text, "type": "usage"}, "name"),
        (reports.create_schedule, {"type": "usage", "cron": "0 8 * * 1", "name": text}, "name"),
        (reports.create_schedule, {"type": "usage", "cron": "0 8 * * 1", "title": text}, "title"),
    ]:
        with pytest.raises(ValidationError) as caught:
            call(admin, body)
        assert {d["field"]: d["problem"] for d in caught.value.details} == {field: problem}
    assert reports.validate({**OK, "title": "Relatório «Q1» — 日本 😀"}).title == "Relatório «Q1» — 日本 😀"


def test_lone_surrogates_are_refused_wherever_they_are(reports, principal_factory):
    admin = principal_factory("admin")
    problems = problems_of(reports, admin, {**OK, "title": "\ud800", "channel": "web\udfff",
                                            "options": {"\ud800": 1}})
    assert problems["title"].startswith("must be valid Unicode text") and "channel" in problems
    assert problems["options"] == "has a field name that is not valid Unicode text"
    for call, body, field in [
        (reports.create_template, {"name": "\ud800", "type": "usage"}, "name"),
        (reports.create_template, {"name": "ok", "type": "usage", "defaults": {"title": "\ud800"}}, "defaults.title"),
        (reports.create_schedule, {"type": "usage", "cron": "0 8 * * 1", "title": "\ud800"}, "title"),
        (reports.create_schedule, {"type": "usage", "cron": "0 8 * * 1", "subject": "\ud800"}, "subject"),
    ]:
        with pytest.raises(ValidationError) as caught:
            call(admin, body)
        details = [(d["field"], d["problem"]) for d in caught.value.details]
        assert [f for f, _ in details] == [field], details
    assert reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == 0


def test_body_must_be_an_object(reports, principal_factory):
    problems = problems_of(reports, principal_factory("report_creator"), ["usage"])
    assert problems == {"body": "must be a JSON object"}


def test_rejected_request_writes_nothing(reports, principal_factory):
    before = reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0]
    files_before = sorted(reports.reports_dir.iterdir())
    problems_of(reports, principal_factory("report_creator"), {**OK, "format": "docx"})
    assert reports.store.db.execute("SELECT count(*) FROM reports").fetchone()[0] == before
    assert sorted(reports.reports_dir.iterdir()) == files_before


def test_schedule_and_template_validation_name_fields(reports, principal_factory):
    admin = principal_factory("admin")
    with pytest.raises(ValidationError) as caught:
        reports.create_schedule(admin, {"type": "usage", "format": "json", "cron": "every monday",
                                        "timezone": "Nowhere/City", "recipients": ["not-an-address"]})
    fields = {d["field"] for d in caught.value.details}
    assert {"cron", "timezone", "recipients"} <= fields
    with pytest.raises(ValidationError) as caught:
        reports.create_template(admin, {"type": "usage"})
    assert "name" in {d["field"] for d in caught.value.details}
    assert reports.store.db.execute("SELECT count(*) FROM schedules").fetchone()[0] == 0
    assert reports.store.db.execute("SELECT count(*) FROM templates").fetchone()[0] == 0


@pytest.mark.parametrize("field", ["recipients", "webhooks", "timezone", "cron", "period", "name", "subject"])
@pytest.mark.parametrize("value", [{"a": 1}, [{"a": 1}], [["x"]], 7, None, True])
def test_schedule_fields_of_any_json_shape_are_named_not_crashed_on(reports, principal_factory, field, value):
    """Any JSON value in a schedule's field is either accepted or named in a ValidationError;
    an object inside a list (unhashable) once escaped as a TypeError."""
    body = {"type": "usage", "format": "json", "cron": "0 8 * * 1", "timezone": "UTC",
            "recipients": ["manager@company.example"], field: value}
    try:
        reports.create_schedule(principal_factory("admin"), body)
    except ValidationError as exc:
        assert field in {d["field"].split("[")[0] for d in exc.details}


@pytest.mark.parametrize("params,field", [
    ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": -1}, "offset"),
    ({"sort": "size"}, "sort"), ({"order": "up"}, "order"), ({"status": "done"}, "status"),
    ({"type": "weird"}, "type"), ({"created_after": "soon"}, "created_after"), ({"page": 2}, "page"),
    ({"created_after": "9999-12-31T23:59:59-12:00"}, "created_after"),
    ({"created_before": "0001-01-01T00:00:00+14:00"}, "created_before"),
    ({"created_after": "2026-11-27", "created_before": "2026-11-01"}, "created_before"),
])
def test_list_parameters_are_validated(reports, principal_factory, params, field):
    with pytest.raises(ValidationError) as caught:
        reports.list(principal_factory("report_viewer"), **params)
    assert field in {d["field"] for d in caught.value.details}


def test_list_filters_sort_and_paging(reports, principal_factory):
    creator = principal_factory("report_creator")
    made = [reports.generate(creator, {**OK, "title": f"Report {letter}"}) for letter in "CAB"]
    viewer = principal_factory("report_viewer")
    items, total = reports.list(viewer, sort="name", order="asc", limit=2)
    assert total == 3 and [r.title for r in items] == ["Report A", "Report B"]
    items, _ = reports.list(viewer, sort="name", order="asc", limit=2, offset=2)
    assert [r.title for r in items] == ["Report C"]
    items, _ = reports.list(viewer)  # newest first by default
    assert [r.id for r in items] == [r.id for r in reversed(made)]
    assert reports.list(viewer, status="failed")[1] == 0
    assert reports.list(viewer, type="usage", status="completed")[1] == 3
    assert reports.list(viewer, created_after="2999-01-01")[1] == 0
    assert reports.list(viewer, created_before="2999-01-01T00:00:00Z")[1] == 3
