"""Bad requests give field-level errors, and nothing is written for a rejected request."""
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


def test_missing_dates_name_the_field(reports, principal_factory):
    problems = problems_of(reports, principal_factory("report_creator"), {"type": "usage", "format": "json"})
    assert "start_date" in problems and "end_date" in problems


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


@pytest.mark.parametrize("params,field", [
    ({"limit": 101}, "limit"), ({"limit": "ten"}, "limit"), ({"offset": -1}, "offset"),
    ({"sort": "size"}, "sort"), ({"order": "up"}, "order"), ({"status": "done"}, "status"),
    ({"type": "weird"}, "type"), ({"created_after": "soon"}, "created_after"), ({"page": 2}, "page"),
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
