"""Every route x every role x own / other organisation, over real HTTP, against the
seed's "Required Permissions" table (written out here, not read from the code)."""
import json
import re
import shutil

import attrs
import pytest

from botreports import Principal, Reports

from http_support import BASE, LiveServer, RecordingQueue, make_token

SECRET = "matrix-secret-of-at-least-thirty-two-bytes"
OWN, OTHER = "org-acme", "org-globex"
#: Lowest first; None is an authenticated caller holding none of our roles.
ROLES = (None, "report_viewer", "report_creator", "report_admin", "admin")
GEN = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}
SCHEDULE = {"type": "usage", "format": "json", "cron": "0 8 * * 1", "timezone": "America/New_York",
            "recipients": ["manager@company.example"]}
EVENT = {"table": "messages", "id": "m-matrix", "conversation_id": "c1", "bot_id": "bot-001", "channel": "web",
         "user_id": "u1", "direction": "in", "created_at": "2025-01-05T10:00:00Z"}


@attrs.frozen
class Rule:
    """What one route needs and what it answers when allowed."""

    role: str = None            # lowest role allowed (the seed's table); None: public
    ok: int = 200
    kind: str = ""              # the object in the path: report, schedule, template
    lists: str = ""             # a list of these objects
    body: object = None


#: The seed: view/download (and verifying what one may view) -> report_viewer, generate -> report_creator, delete reports and
#: manage schedules and templates -> report_admin; reading templates is part of generating
#: (report_viewer); loading events is the service's own admin task.
MATRIX = {
    ("GET", "/openapi.json"): Rule(),
    ("GET", f"{BASE}/health"): Rule(),
    ("GET", f"{BASE}/openapi.json"): Rule(),
    ("POST", f"{BASE}/generate"): Rule("report_creator", 202, body=GEN),
    ("GET", f"{BASE}/catalog"): Rule("report_viewer"),
    ("GET", BASE): Rule("report_viewer", lists="report"),
    ("GET", f"{BASE}/<report_id>/status"): Rule("report_viewer", kind="report"),
    ("GET", f"{BASE}/<report_id>"): Rule("report_viewer", kind="report"),
    ("GET", f"{BASE}/<report_id>/download"): Rule("report_viewer", kind="report"),
    ("DELETE", f"{BASE}/<report_id>"): Rule("report_admin", 204, kind="report"),
    ("POST", f"{BASE}/<report_id>/verify"): Rule("report_viewer", kind="report"),
    ("POST", f"{BASE}/schedule"): Rule("report_admin", 201, body=SCHEDULE),
    ("GET", f"{BASE}/schedule"): Rule("report_admin", lists="schedule"),
    ("PUT", f"{BASE}/schedule/<schedule_id>"): Rule("report_admin", kind="schedule", body={"enabled": False}),
    ("DELETE", f"{BASE}/schedule/<schedule_id>"): Rule("report_admin", 204, kind="schedule"),
    ("GET", f"{BASE}/templates"): Rule("report_viewer", lists="template"),
    ("POST", f"{BASE}/templates"): Rule("report_admin", 201, body={"name": "Mine", "type": "usage", "format": "json"}),
    ("GET", f"{BASE}/templates/<template_id>"): Rule("report_viewer", kind="template"),
    ("POST", "/api/v1/events"): Rule("admin", body=EVENT),
}
SEED_ROLE_FOR = {"report_viewer": 1, "report_creator": 2, "report_admin": 3, "admin": 4}


def allowed(rule: Rule, role) -> bool:
    if rule.role is None:
        return True
    return role is not None and SEED_ROLE_FOR[role] >= SEED_ROLE_FOR[rule.role]


@pytest.fixture(scope="module")
def server(tmp_path_factory, botreports_demo_db):
    data_dir = tmp_path_factory.mktemp("matrix") / "data"
    data_dir.mkdir()
    shutil.copy(botreports_demo_db, data_dir / "analytics.db")
    rk = Reports(data_dir=data_dir, load_entrypoints=False, queue=RecordingQueue(), jwt_secret=SECRET,
                 rate_limit=0, max_unfinished=0)
    live = LiveServer(rk)
    live.keys = {(role, org): {"X-API-Key": rk.create_api_key(org, role)[0]}
                 for role in ROLES if role for org in (OWN, OTHER)}
    for org in (OWN, OTHER):  # a botserver user whose roles map to none of ours
        live.keys[(None, org)] = {"Authorization": "Bearer " + make_token(SECRET, sub=f"nobody@{org}", org=org,
                                                                         roles=["User"])}
    yield live
    live.stop()
    rk.close()


def fresh_objects(rk):
    """One object of each kind in the own organisation, the report completed."""
    owner = Principal("owner", OWN, {"admin"})
    report = rk.generate(owner, GEN)
    rk.run_report(report.id, worker="matrix")
    return {"report": report.id, "schedule": rk.create_schedule(owner, SCHEDULE).id,
            "template": rk.create_template(owner, {"name": "Ours", "type": "usage", "format": "json"}).id}


def still_exists(rk, kind, object_id) -> bool:
    return {"report": rk.store.get_report, "schedule": rk.store.get_schedule,
            "template": rk.store.get_template}[kind](object_id) is not None


def normalise(rule: str) -> str:
    """Bottle's ``<report_id:re:...>`` -> ``<report_id>``."""
    return re.sub(r"<(\w+)(?::[^>]*)?>", r"<\1>", rule)


def test_every_route_is_in_the_matrix(server):
    routes = {(route.method, normalise(route.rule)) for route in server.reports.wsgi_app().routes}
    assert routes == set(MATRIX), {"missing from the matrix": routes - set(MATRIX),
                                   "not a route": set(MATRIX) - routes}


@pytest.mark.parametrize("org", ["own", "other"])
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "none")
@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_role_organisation(server, route, role, org):
    method, path = route
    rule = MATRIX[route]
    rk = server.reports
    objects = fresh_objects(rk)
    caller_org = OWN if org == "own" else OTHER
    url = path
    for kind, object_id in objects.items():
        url = url.replace(f"<{kind}_id>", object_id)
    kwargs = {"headers": dict(server.keys[(role, caller_org)]) if rule.role else {}}
    if isinstance(rule.body, dict) and path.endswith("/events"):
        # Each organisation writes rows of its own, its message after its conversation (an event may
        # not replace another's row nor join another's conversation: test_ingest_isolation shows that).
        suffix = "" if org == "own" else "-other"
        message = {**rule.body, "id": f"m-matrix{suffix}", "conversation_id": f"c-matrix{suffix}"}
        conversation = {"table": "conversations", "id": message["conversation_id"], "bot_id": message["bot_id"],
                        "user_id": message["user_id"], "channel": message["channel"],
                        "started_at": message["created_at"], "status": "open"}
        kwargs["data"] = json.dumps(conversation) + "\n" + json.dumps(message)
        kwargs["headers"]["Content-Type"] = "application/x-ndjson"
    elif rule.body is not None:
        kwargs["json"] = rule.body
    if rule.lists:  # the module's server accumulates objects: look at the largest page
        kwargs["params"] = {"limit": 100}
    response = server.request(method, url, **kwargs)

    if rule.kind and org == "other":
        # another organisation's object does not exist for this caller, whatever the role
        assert response.status_code == 404, response.text
        assert still_exists(rk, rule.kind, objects[rule.kind])
        return
    if not allowed(rule, role):
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "insufficient_permissions"
        if rule.kind:
            assert still_exists(rk, rule.kind, objects[rule.kind])
        return
    assert response.status_code == rule.ok, response.text
    if rule.ok == 204 and rule.kind:
        assert not still_exists(rk, rule.kind, objects[rule.kind])
    if rule.lists:
        ids = [item[f"{rule.lists}_id"] for item in response.json()]
        assert (objects[rule.lists] in ids) == (org == "own")
        assert all(item.get("organization_id") in (caller_org, None) for item in response.json())
    if rule.ok == 201 or rule.ok == 202:
        assert response.json().get("organization_id", caller_org) == caller_org
        created = response.json().get("report_id") or response.json().get("schedule_id") or response.json()["template_id"]
        kind = {"rpt": "report", "sch": "schedule", "tpl": "template"}[created[:3]]
        stored = {"report": rk.store.get_report, "schedule": rk.store.get_schedule,
                  "template": rk.store.get_template}[kind](created)
        assert stored.org_id == caller_org


@pytest.mark.parametrize("route", sorted(r for r, rule in MATRIX.items() if rule.role), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_without_credentials_is_401(server, route):
    method, path = route
    url = re.sub(r"<\w+_id>", "rpt-anything", path)
    response = server.request(method, url)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "missing_token"
