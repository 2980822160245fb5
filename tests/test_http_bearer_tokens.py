"""Bearer tokens compatible with botserver: HS256, issuer, audience, expiry, claims and the
configurable mapping of botserver roles and permissions to ours."""
import shutil

import pytest
from hypothesis import given, strategies as st

from botreports import Reports
from botreports.core.models import RequestInfo
from botreports.core.security import ROLES
from botreports.plugins.auth.bearer_tokens import DEFAULT_ROLE_MAP, map_roles, parse_role_map

from http_support import BASE, LiveServer, RecordingQueue, make_token

SECRET = "botserver-signing-key-of-at-least-32-bytes"
GEN = {"type": "usage", "format": "json", "start_date": "2025-01-20", "end_date": "2025-01-21"}


def _reports(tmp_path, demo_db, **settings):
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    shutil.copy(demo_db, data_dir / "analytics.db")
    return Reports(data_dir=data_dir, load_entrypoints=False, queue=RecordingQueue(), **settings)


@pytest.fixture
def rk(tmp_path, botreports_demo_db):
    instance = _reports(tmp_path, botreports_demo_db, jwt_secret=SECRET)
    yield instance
    instance.close()


def who(rk, token, **headers):
    return rk.authenticate(RequestInfo(headers={"Authorization": f"Bearer {token}", **headers}))


def test_botserver_roles_and_permissions_map_to_ours(rk):
    assert who(rk, make_token(SECRET, roles=["Admin"])).roles == {"admin"}
    assert who(rk, make_token(SECRET, roles=["SuperAdmin", "User"])).roles == {"admin"}
    assert who(rk, make_token(SECRET, roles=["User"], permissions=["reports.schedule"])).roles == {"report_admin"}
    assert who(rk, make_token(SECRET, roles=["BotViewer"])).roles == {"report_viewer"}
    assert who(rk, make_token(SECRET, roles=["reports_reader"])).roles == {"report_viewer"}
    assert who(rk, make_token(SECRET, permissions=["reports.read"])).roles == {"report_viewer"}
    assert who(rk, make_token(SECRET, roles=["report_creator"])).roles == {"report_creator"}  # ours as-is
    assert who(rk, make_token(SECRET, roles=["User", "Bot"])).roles == set()
    principal = who(rk, make_token(SECRET, sub="u-42", org="org-globex", roles=["Admin"],
                                   permissions=["reports.read"]))
    assert (principal.id, principal.org_id, principal.via) == ("u-42", "org-globex", "bearer")
    assert principal.permissions == {"reports.read"}


@pytest.mark.parametrize("token, problem", [
    (lambda: make_token(SECRET, ttl=-120), "expired"),
    (lambda: make_token(SECRET, issuer="someone-else"), "issuer"),
    (lambda: make_token(SECRET, audience="another-api"), "audience"),
    (lambda: make_token("a-different-key-of-at-least-32-bytes!!"), "signature"),
    (lambda: make_token(SECRET, org=None), "organization_id"),
    (lambda: make_token(SECRET, roles=["Admin"], type="refresh"), "not an access token"),
    (lambda: "not.a.jwt", "not valid"),
    (lambda: "3f0c2a77-session-id-without-dots", "not valid"),
])
def test_bad_tokens_are_rejected_with_invalid_token(rk, token, problem):
    from botreports import Unauthorized

    with pytest.raises(Unauthorized) as caught:
        who(rk, token())
    assert caught.value.code == "invalid_token"
    assert problem in caught.value.message.lower()


def test_botserver_access_tokens_with_their_type_claim_are_accepted(rk):
    assert who(rk, make_token(SECRET, roles=["Admin"], type="access", jti="j-1", nbf=0)).roles == {"admin"}


def test_unsigned_tokens_are_refused(rk):
    import jwt
    from botreports import Unauthorized

    forged = jwt.encode({"sub": "eve", "organization_id": "org-acme", "roles": ["Admin"], "iss": "general-bots",
                         "aud": "general-bots-api", "exp": 2_000_000_000}, key=None, algorithm="none")
    with pytest.raises(Unauthorized):
        who(rk, forged)


def test_roles_claim_must_be_a_list_of_strings(rk):
    from botreports import Unauthorized

    with pytest.raises(Unauthorized) as caught:
        who(rk, make_token(SECRET, roles=[{"name": "Admin"}]))
    assert "roles" in caught.value.message


def test_api_key_header_comes_before_the_bearer_token(rk):
    key, stored = rk.create_api_key("org-acme", "report_viewer")
    principal = who(rk, make_token(SECRET, roles=["Admin"]), **{"X-API-Key": key})
    assert (principal.id, principal.roles) == (stored.id, {"report_viewer"})


def test_without_a_secret_bearer_tokens_are_refused_clearly(tmp_path, botreports_demo_db):
    from botreports import Unauthorized

    instance = _reports(tmp_path, botreports_demo_db)
    try:
        with pytest.raises(Unauthorized) as caught:
            who(instance, make_token(SECRET, roles=["Admin"]))
        assert "X-API-Key" in caught.value.message
    finally:
        instance.close()


def test_role_map_is_configurable(tmp_path, botreports_demo_db):
    instance = _reports(tmp_path, botreports_demo_db, jwt_secret=SECRET, jwt_issuer="my-bots", jwt_audience="reports",
                        jwt_role_map="BotOwner=report_creator, Moderator=report_admin")
    server = LiveServer(instance)
    try:
        owner = make_token(SECRET, roles=["BotOwner"], issuer="my-bots", audience="reports")
        response = server.request("POST", f"{BASE}/generate", json=GEN, headers={"Authorization": f"Bearer {owner}"})
        assert response.status_code == 202, response.text
        # the configured map replaces the default one: Admin means nothing here
        admin = make_token(SECRET, roles=["Admin"], issuer="my-bots", audience="reports")
        denied = server.request("POST", f"{BASE}/generate", json=GEN, headers={"Authorization": f"Bearer {admin}"})
        assert denied.status_code == 403
        expired = make_token(SECRET, roles=["BotOwner"], issuer="my-bots", audience="reports", ttl=-3600)
        response = server.request("GET", BASE, headers={"Authorization": f"Bearer {expired}"})
        assert response.status_code == 401 and response.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    finally:
        server.stop()
        instance.close()


def test_a_broken_role_map_stops_start_up(tmp_path, botreports_demo_db):
    with pytest.raises(ValueError, match="JWT_ROLE_MAP"):
        _reports(tmp_path, botreports_demo_db, jwt_role_map="Admin=superuser")


def test_role_map_from_the_environment(tmp_path, botreports_demo_db, monkeypatch):
    monkeypatch.setenv("BOTREPORTS_JWT_SECRET", SECRET)
    monkeypatch.setenv("BOTREPORTS_JWT_ROLE_MAP", "Moderator=report_admin")
    instance = _reports(tmp_path, botreports_demo_db)
    try:
        assert who(instance, make_token(SECRET, roles=["Moderator"])).roles == {"report_admin"}
    finally:
        instance.close()


NAMES = st.text(alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters="._-"),
                min_size=1, max_size=20)


@given(st.dictionaries(NAMES, st.sampled_from(ROLES), max_size=6), st.lists(NAMES, max_size=8))
def test_mapped_roles_are_always_ours_and_follow_the_map(mapping, names):
    text = ",".join(f"{k}={v}" for k, v in mapping.items())
    assert parse_role_map(text) == mapping
    roles = map_roles(names, mapping)
    assert roles <= set(ROLES)
    assert roles == {mapping[n] for n in names if n in mapping} | {n for n in names if n not in mapping and n in ROLES}


def test_default_map_targets_are_roles():
    assert set(DEFAULT_ROLE_MAP.values()) <= set(ROLES)
