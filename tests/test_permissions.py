"""The seed's permission table, for every operation and every role, and organisation isolation."""
import pytest

from botreports import NotFound, PermissionDenied
from botreports.core.security import PERMISSIONS, ROLES

GEN = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}
SCHEDULE = {"type": "conversations", "format": "json", "cron": "0 8 * * 1", "timezone": "America/New_York",
            "recipients": ["manager@company.example"]}
SCHEDULE = {**SCHEDULE, "type": "usage"}

# The seed: "Required Permissions" -> lowest role allowed for each facade operation.
SEED_TABLE = {
    "generate": "report_creator",
    "status": "report_viewer",
    "get": "report_viewer",
    "list": "report_viewer",
    "download": "report_viewer",
    "delete": "report_admin",
    "create_schedule": "report_admin",
    "list_schedules": "report_admin",
    "update_schedule": "report_admin",
    "delete_schedule": "report_admin",
    "list_templates": "report_viewer",
    "get_template": "report_viewer",
    "create_template": "report_admin",
}


@pytest.fixture
def objects(reports, principal_factory):
    admin = principal_factory("admin")
    report = reports.generate(admin, GEN)
    schedule = reports.create_schedule(admin, SCHEDULE)
    template = reports.create_template(admin, {"name": "Mine", "type": "usage", "format": "json"})
    return {"report": report.id, "schedule": schedule.id, "template": template.id}


def call(reports, principal, operation, objects):
    ops = {
        "generate": lambda: reports.generate(principal, GEN),
        "status": lambda: reports.status(principal, objects["report"]),
        "get": lambda: reports.get(principal, objects["report"]),
        "list": lambda: reports.list(principal),
        "download": lambda: reports.download(principal, objects["report"]),
        "delete": lambda: reports.delete(principal, objects["report"]),
        "create_schedule": lambda: reports.create_schedule(principal, SCHEDULE),
        "list_schedules": lambda: reports.list_schedules(principal),
        "update_schedule": lambda: reports.update_schedule(principal, objects["schedule"], {"enabled": False}),
        "delete_schedule": lambda: reports.delete_schedule(principal, objects["schedule"]),
        "list_templates": lambda: reports.list_templates(principal),
        "get_template": lambda: reports.get_template(principal, objects["template"]),
        "create_template": lambda: reports.create_template(principal, {"name": "Theirs", "type": "usage", "format": "json"}),
    }
    return ops[operation]()


@pytest.mark.parametrize("operation", sorted(SEED_TABLE))
@pytest.mark.parametrize("role", (None,) + ROLES)
def test_permission_table(reports, principal_factory, objects, operation, role):
    principal = principal_factory(role)
    needed = ROLES.index(SEED_TABLE[operation])
    if role is not None and ROLES.index(role) >= needed:
        call(reports, principal, operation, objects)
    else:
        with pytest.raises(PermissionDenied):
            call(reports, principal, operation, objects)


def test_every_facade_action_is_in_the_permission_table():
    assert set(SEED_TABLE.values()) <= set(ROLES)
    for action in ("report.generate", "report.view", "report.list", "report.download", "report.delete",
                   "schedule.create", "schedule.update", "schedule.delete", "template.create"):
        assert action in PERMISSIONS


def test_viewer_cannot_generate(reports, principal_factory):
    with pytest.raises(PermissionDenied) as caught:
        reports.generate(principal_factory("report_viewer"), GEN)
    assert "report_creator" in caught.value.message


def test_creator_cannot_delete_report(reports, principal_factory):
    report = reports.generate(principal_factory("report_creator"), GEN)
    with pytest.raises(PermissionDenied):
        reports.delete(principal_factory("report_creator"), report.id)
    assert reports.get(principal_factory("report_viewer"), report.id).state == "completed"


@pytest.mark.parametrize("operation", ["status", "get", "download", "delete", "update_schedule",
                                       "delete_schedule", "get_template"])
def test_other_organisation_gets_not_found(reports, principal_factory, objects, operation):
    outsider = principal_factory("admin", "org-globex")
    with pytest.raises(NotFound):
        call(reports, outsider, operation, objects)


def test_lists_show_only_own_organisation(reports, principal_factory, objects):
    outsider = principal_factory("admin", "org-globex")
    reports.generate(outsider, GEN)
    items, total = reports.list(outsider)
    assert total == 1 and all(r.org_id == "org-globex" for r in items)
    assert objects["schedule"] not in [s.id for s in reports.list_schedules(outsider)[0]]
    assert objects["template"] not in [t.id for t in reports.list_templates(outsider)]
    mine, total_mine = reports.list(principal_factory("report_viewer"))
    assert total_mine == 1 and mine[0].id == objects["report"]


def test_report_covers_only_own_organisation(reports, principal_factory):
    import json, sqlite3
    from independent import instant
    report = reports.generate(principal_factory("report_creator", "org-initech"), GEN)
    document = json.loads(reports.download(principal_factory("report_viewer", "org-initech"), report.id)
                          .path.read_text())
    messages_in = {i["name"]: i["value"] for i in document["sections"][0]["blocks"][0]["items"]}["messages_in"]
    conn = sqlite3.connect(reports.data_dir / "analytics.db")
    expected = conn.execute(
        "SELECT count(*) FROM messages WHERE org_id = 'org-initech' AND direction = 'in'"
        " AND created_at >= ? AND created_at < ?",
        [instant("2025-01-20", "UTC"), instant("2025-01-21", "UTC", 1)]).fetchone()[0]
    assert messages_in == expected > 0


def test_denials_and_changes_are_audited(reports, principal_factory, objects):
    with pytest.raises(PermissionDenied):
        reports.delete(principal_factory("report_viewer"), objects["report"])
    reports.download(principal_factory("report_viewer"), objects["report"])
    reports.delete(principal_factory("report_admin"), objects["report"])
    events = reports.store.audit_events("org-acme")
    seen = {(e["action"], e["result"], e["resource_id"]) for e in events}
    assert ("report.delete", "denied", objects["report"]) in seen
    assert ("report.download", "allowed", objects["report"]) in seen
    assert ("report.delete", "allowed", objects["report"]) in seen
    assert ("report.generate", "allowed", objects["report"]) in seen
    assert ("schedule.create", "allowed", objects["schedule"]) in seen
    assert ("template.create", "allowed", objects["template"]) in seen
