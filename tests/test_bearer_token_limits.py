"""Bearer tokens that must not work, written as the attacks they stop: a guessable signing key,
a token minted to live for decades, and a stolen token after its revocation."""
import datetime as dt
import shutil
import subprocess
import sys
import time

import jwt
import pytest

from botreports import Reports, Unauthorized
from botreports.core.models import RequestInfo
from botreports.core.store import Store
from botreports.core.token_revocations import FRESH_FOR, TokenRevocations

from http_support import BASE, LiveServer, RecordingQueue, make_token

SECRET = "botserver-signing-key-of-at-least-32-bytes"
YEARS_31 = 31 * 365 * 86400


def _reports(tmp_path, demo_db, **settings):
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(demo_db, data_dir / "analytics.db")
    return Reports(data_dir=data_dir, load_entrypoints=False, queue=RecordingQueue(), **settings)


@pytest.fixture
def rk(tmp_path, botreports_demo_db):
    instance = _reports(tmp_path, botreports_demo_db, jwt_secret=SECRET)
    yield instance
    instance.close()


def who(rk, token):
    return rk.authenticate(RequestInfo(headers={"Authorization": f"Bearer {token}"}))


def refused(rk, token) -> str:
    with pytest.raises(Unauthorized) as caught:
        who(rk, token)
    assert caught.value.code == "invalid_token"
    return caught.value.message


def botreports_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "botreports.adapters.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


# -- signing keys -------------------------------------------------------------------


@pytest.mark.parametrize("setting, variable", [("jwt_secret", "BOTREPORTS_JWT_SECRET"),
                                               ("secret", "BOTREPORTS_SECRET")])
def test_a_short_signing_key_stops_start_up(tmp_path, botreports_demo_db, setting, variable):
    """A one-byte key is found offline from a single token or link in 256 guesses."""
    for short in ("k", "x" * 31, "é" * 15):  # 1, 31 and 30 bytes
        with pytest.raises(ValueError, match=f"^{variable} is {len(short.encode())} bytes long; .*at least 32 bytes"):
            _reports(tmp_path, botreports_demo_db, **{setting: short})
    _reports(tmp_path, botreports_demo_db, **{setting: "x" * 32}).close()


def test_a_short_key_in_the_environment_stops_the_command_naming_the_variable(tmp_path):
    import os
    env = {**os.environ, "BOTREPORTS_JWT_SECRET": "k", "BOTREPORTS_DATA_DIR": str(tmp_path)}
    done = botreports_cli("keys", "list", env=env)
    assert done.returncode == 1
    assert "BOTREPORTS_JWT_SECRET is 1 bytes long" in done.stderr and "Traceback" not in done.stderr


# -- lifetimes ----------------------------------------------------------------------


def test_a_token_living_31_years_is_refused(rk):
    message = refused(rk, make_token(SECRET, roles=["Admin"], ttl=YEARS_31))
    assert "BOTREPORTS_JWT_MAX_LIFETIME" in message and "86,400" in message


def test_a_long_lived_token_without_iat_is_measured_from_now(rk):
    now = int(time.time())
    token = jwt.encode({"sub": "eve", "organization_id": "org-acme", "roles": ["Admin"], "iss": "general-bots",
                        "aud": "general-bots-api", "exp": now + YEARS_31}, SECRET, algorithm="HS256")
    assert "BOTREPORTS_JWT_MAX_LIFETIME" in refused(rk, token)
    short = jwt.encode({"sub": "ana", "organization_id": "org-acme", "roles": ["Admin"], "iss": "general-bots",
                        "aud": "general-bots-api", "exp": now + 600}, SECRET, algorithm="HS256")
    assert who(rk, short).roles == {"admin"}


def test_botservers_15_minute_tokens_pass_and_the_maximum_is_configurable(tmp_path, botreports_demo_db, rk):
    assert who(rk, make_token(SECRET, roles=["Admin"], ttl=900)).roles == {"admin"}
    assert who(rk, make_token(SECRET, roles=["Admin"], ttl=86400)).roles == {"admin"}
    strict = _reports(tmp_path / "strict", botreports_demo_db, jwt_secret=SECRET, jwt_max_lifetime=600)
    try:
        assert "600 s" in refused(strict, make_token(SECRET, roles=["Admin"], ttl=900))
        assert who(strict, make_token(SECRET, roles=["Admin"], ttl=600)).roles == {"admin"}
    finally:
        strict.close()


# -- revocation ---------------------------------------------------------------------


def test_a_revoked_token_is_refused_by_a_running_server_within_seconds(tmp_path, botreports_demo_db):
    """The revocation is made by another process (the command line), as an operator would."""
    import os
    instance = _reports(tmp_path, botreports_demo_db, jwt_secret=SECRET)
    server = LiveServer(instance)
    env = {**os.environ, "BOTREPORTS_DATA_DIR": str(instance.data_dir), "BOTREPORTS_JWT_SECRET": SECRET}
    stolen = make_token(SECRET, roles=["Admin"], jti="jti-stolen", session_id="s-stolen")
    other = make_token(SECRET, roles=["Admin"], jti="jti-other", session_id="s-other")

    def status(token):
        return server.request("GET", BASE, headers={"Authorization": f"Bearer {token}"}).status_code

    def refused_within(token, seconds):
        deadline = time.monotonic() + seconds
        while status(token) != 401:
            assert time.monotonic() < deadline, "still accepted"
            time.sleep(0.1)
        return server.request("GET", BASE, headers={"Authorization": f"Bearer {token}"}).json()["message"]

    try:
        assert status(stolen) == status(other) == 200
        done = botreports_cli("tokens", "revoke", "--jti", "jti-stolen", "--reason", "laptop lost", env=env)
        assert done.returncode == 0, done.stderr
        assert "jti was revoked" in refused_within(stolen, FRESH_FOR + 3)
        assert status(other) == 200
        done = botreports_cli("tokens", "revoke", "--session", "s-other", env=env)
        assert done.returncode == 0, done.stderr
        assert "session_id was revoked" in refused_within(other, FRESH_FOR + 3)
        listed = botreports_cli("tokens", "list", env=env).stdout.splitlines()
        assert [line.split()[1:3] for line in listed] == [["jti", "jti-stolen"], ["session", "s-other"]]
        assert listed[0].endswith("laptop lost")
        audit = instance.store.audit_events(None, actions=["tokens.revoke"])
        assert [row["resource_id"] for row in audit] == ["jti:jti-stolen", "session:s-other"]
    finally:
        server.stop()
        instance.close()


def test_revoking_a_subject_refuses_its_earlier_tokens_only(rk):
    now = int(time.time())
    before = make_token(SECRET, sub="u-7", roles=["Admin"], iat=now - 60)
    no_iat = jwt.encode({"sub": "u-7", "organization_id": "org-acme", "roles": ["Admin"], "iss": "general-bots",
                         "aud": "general-bots-api", "exp": now + 600}, SECRET, algorithm="HS256")
    someone_else = make_token(SECRET, sub="u-8", roles=["Admin"], iat=now - 60)
    rk.revoke_tokens("subject", "u-7", dt.datetime.fromtimestamp(now - 30, dt.timezone.utc))
    assert "subject" in refused(rk, before)
    assert "subject" in refused(rk, no_iat)  # cannot show it was issued after
    assert who(rk, someone_else).id == "u-8"
    after = make_token(SECRET, sub="u-7", roles=["Admin"], iat=now - 10)
    assert who(rk, after).id == "u-7"


def test_revocations_of_another_process_are_seen_after_fresh_for_seconds(tmp_path):
    clock = [1000.0]
    store = Store(tmp_path / "botreports.db")
    seen_here = TokenRevocations(store, clock=lambda: clock[0])
    elsewhere = TokenRevocations(Store(tmp_path / "botreports.db"))
    assert seen_here.revoked({"jti": "j-1"}) is None
    elsewhere.revoke("jti", "j-1")
    assert seen_here.revoked({"jti": "j-1"}) is None  # its copy is still fresh
    clock[0] += FRESH_FOR
    assert seen_here.revoked({"jti": "j-1"}) == "its jti was revoked"


@pytest.mark.parametrize("args, field", [
    (("jti", ""), "jti"), (("session", "s\n1"), "session"), (("token", "x"), "kind"),
    (("jti", "j", dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)), "issued_before")])
def test_revocation_requests_are_checked(rk, args, field):
    from botreports import ValidationError
    with pytest.raises(ValidationError) as caught:
        rk.revoke_tokens(*args)
    assert caught.value.details[0]["field"] == field


def test_revoke_command_wants_exactly_one_target(tmp_path):
    import os
    env = {**os.environ, "BOTREPORTS_DATA_DIR": str(tmp_path)}
    for args in ((), ("--jti", "a", "--session", "b"), ("--jti", "a", "--issued-before", "2025-01-01")):
        done = botreports_cli("tokens", "revoke", *args, env=env)
        assert done.returncode == 2 and "--" in done.stderr, (args, done.stderr)
