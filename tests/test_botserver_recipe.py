"""The deployment recipe of docs/embedding.md ("Next to a running botserver"), run for real:
a database built from botserver's own migrations and filled the way botserver writes it, the
role of examples/botserver/grants.sql, `botreports serve` started from the variables of
examples/botserver/botreports.env, and the seed's "Request Examples" sent over HTTP in order,
first with a token made the way botserver's JwtManager makes them, then the way a botserver
BASIC script can send them (absolute URL, API key in the query, JSON body, no other header).
The report's numbers are compared with SQL counts on botserver's own tables."""
import datetime as dt
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from botserver_support import DEMO, botserver_db  # noqa: F401 (fixture)
from http_support import make_token

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "botserver"
BASE = "/api/v1/reports"
SECRET = "botserver-JWT_SECRET-of-this-deployment-0123456789"
PUBLIC_URL = "https://bots.example.com"
#: The fixture's synthetic data: 21 days ending on DEMO's end date (spans March 2025's DST changes).
START = DEMO["end_date"] - dt.timedelta(days=DEMO["days"] - 1)
END = DEMO["end_date"]

pytestmark = pytest.mark.postgres


# -- the recipe's files, as a deployer would use them ------------------------------

def env_file() -> dict:
    """``examples/botserver/botreports.env`` as the variables it sets."""
    values = {}
    for line in (RECIPE / "botreports.env").read_text().splitlines():
        match = re.fullmatch(r'(BOTREPORTS_[A-Z_]+)="(.*)"', line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def grants_sql(role: str, database: str) -> str:
    """``examples/botserver/grants.sql`` for this server's names (the role is made unique per run)."""
    text = (RECIPE / "grants.sql").read_text()
    assert "ON DATABASE botserver TO" in text and "ROLE botreports_reader" in text
    text = text.replace("ON DATABASE botserver TO", f'ON DATABASE "{database}" TO')
    return re.sub(r"\bbotreports_reader\b", role, text)


class Deployment:
    """botserver's database, the recipe's role, and `botreports serve` running as the recipe says."""

    def __init__(self, botserver_db, tmp_path):
        import psycopg

        from botreports.plugins.sources.botserver_fixture import create_botserver_database, load_botserver

        self.admin_url = botserver_db.admin_url
        self.url = create_botserver_database(self.admin_url, f"botserver_recipe_{secrets.token_hex(4)}")
        self.database = urlsplit(self.url).path.lstrip("/")
        self.role = f"botreports_reader_{secrets.token_hex(4)}"
        self.process = None
        load_botserver(self.url, botserver_db.canonical_file)
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(grants_sql(self.role, self.database))
        self.role_url = urlunsplit(urlsplit(self.url)._replace(netloc=f"{self.role}@{urlsplit(self.url).hostname}:"
                                                                      f"{urlsplit(self.url).port or 5432}"))
        recipe = env_file()
        data = recipe["BOTREPORTS_DATA"]
        assert data.startswith("postgresql://botreports_reader:change-me@127.0.0.1:5432/botserver?")
        self.env = {**os.environ, **recipe,
                    "BOTREPORTS_DATA_DIR": str(tmp_path / "botreports"),
                    "BOTREPORTS_DATA": self.role_url + "?" + data.split("?", 1)[1],
                    "BOTREPORTS_JWT_SECRET": SECRET,
                    "BOTREPORTS_LOAD_PLUGINS": ""}
        self.env.pop("CI", None)
        self.log = tmp_path / "serve.log"

    def botreports(self, *args, **kwargs) -> subprocess.CompletedProcess:
        """A `botreports` command with the recipe's environment."""
        return subprocess.run([sys.executable, "-m", "botreports.adapters.cli", *args], env=self.env,
                              capture_output=True, text=True, timeout=120, **kwargs)

    def serve(self) -> str:
        """`botreports serve` as botreports.service starts it (port 0 here); its base URL."""
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "botreports.adapters.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                 "--workers", "2"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(r"serving (http://127\.0\.0\.1:\d+)/api/v1/reports", self.log.read_text())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"botreports serve did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        import psycopg

        from botreports.plugins.sources.botserver_fixture import drop_botserver_database

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # as systemd stops it
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        drop_botserver_database(self.admin_url, self.url)
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{self.role}"')


@pytest.fixture(scope="module")
def deployment(botserver_db, tmp_path_factory):
    deployed = Deployment(botserver_db, tmp_path_factory.mktemp("recipe"))
    try:
        deployed.base = deployed.serve()
        yield deployed
    finally:
        deployed.stop()


# -- the client side ------------------------------------------------------------------

def botserver_token(organization, roles=("Admin",), **overrides) -> str:
    """An access token with the claims botserver's ``Claims`` carries (src/security/jwt.rs);
    ``organization`` None leaves ``organization_id`` out."""
    user = str(uuid.uuid4())
    claims = {"sub": user, "org": organization, "roles": list(roles), "permissions": [], "ttl": 15 * 60,
              "nbf": int(time.time()), "jti": str(uuid.uuid4()), "type": "access", "username": "ana",
              "email": "ana@example.com", "session_id": str(uuid.uuid4())}
    claims.update(overrides)
    return make_token(SECRET, **claims)


class Client:
    """HTTP as a client of the proxied API: the path kept, the public address swapped for the server's."""

    def __init__(self, base: str, token: str = None, api_key: str = None):
        self.base, self.session = base, requests.Session()
        self.token, self.api_key = token, api_key

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.api_key:  # a BASIC script can send no header: the key goes in the query
            path += ("&" if "?" in path else "?") + f"api_key={self.api_key}"
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def wait(self, report_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call("GET", f"{BASE}/{report_id}/status")
            assert answer.status_code == 200, answer.text
            status = answer.json()
            assert isinstance(status["progress"], int) and 0 <= status["progress"] <= 100
            if status["state"] in ("completed", "failed", "expired"):
                return status
            assert time.monotonic() < deadline, f"{report_id} still {status['state']}"
            time.sleep(0.2)

    def follow(self, link: str) -> requests.Response:
        """Open a signed link as the proxy would pass it on: same path and query, no credentials."""
        assert link.startswith(PUBLIC_URL + BASE + "/"), link
        return requests.get(self.base + link[len(PUBLIC_URL):], timeout=30)


def kpis(document: dict, section: str) -> dict:
    blocks = next(s for s in document["sections"] if s["name"] == section)["blocks"]
    return {item["name"]: item for block in blocks if block.get("kind") == "kpis" for item in block["items"]}


def usage_by_sql(url: str, org: str, start: dt.datetime, end: dt.datetime) -> dict:
    """Usage counts straight from botserver's tables, written here independently of the source's SQL."""
    import psycopg

    with psycopg.connect(url) as conn:
        conversations = conn.execute(
            "SELECT count(*) FROM user_sessions s JOIN bots b ON b.id = s.bot_id"
            " WHERE b.org_id = %(org)s AND s.created_at >= %(start)s AND s.created_at < %(end)s",
            {"org": org, "start": start, "end": end}).fetchone()[0]
        messages_in, messages_out, active = conn.execute(
            "SELECT count(*) FILTER (WHERE m.role = 1), count(*) FILTER (WHERE m.role = 2),"
            " count(DISTINCT m.user_id) FILTER (WHERE m.role = 1)"
            " FROM message_history m JOIN user_sessions s ON s.id = m.session_id JOIN bots b ON b.id = s.bot_id"
            " WHERE b.org_id = %(org)s AND m.created_at >= %(start)s AND m.created_at < %(end)s",
            {"org": org, "start": start, "end": end}).fetchone()
        new_users = conn.execute(
            "SELECT count(*) FROM (SELECT m.user_id, min(m.created_at) AS first FROM message_history m"
            " JOIN user_sessions s ON s.id = m.session_id JOIN bots b ON b.id = s.bot_id"
            " WHERE b.org_id = %(org)s AND m.role = 1 GROUP BY m.user_id) u"
            " WHERE first >= %(start)s AND first < %(end)s", {"org": org, "start": start, "end": end}).fetchone()[0]
    return {"conversations": conversations, "messages_in": messages_in, "messages_out": messages_out,
            "active_users": active, "new_users": new_users}


def utc_days(first: dt.date, last: dt.date):
    return (dt.datetime.combine(first, dt.time(), dt.timezone.utc),
            dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.timezone.utc))


# -- the recipe ---------------------------------------------------------------------

def test_the_role_of_grants_sql_reads_botserver_and_writes_nothing_of_it(deployment):
    import psycopg

    with psycopg.connect(deployment.role_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM message_history").fetchone()[0] > 0
        for statement in ("DELETE FROM message_history", "UPDATE bots SET name = name",
                          "SELECT count(*) FROM users"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        owner = conn.execute("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'botreports'")
        assert owner.fetchone()[0] == deployment.role


def test_the_seed_request_examples_with_a_botserver_token(deployment, botserver_db):
    org = botserver_db.org("org-acme")
    client = Client(deployment.base, token=botserver_token(org))

    # Generate Usage Report: the seed's object, its dates moved onto the data's weeks.
    report_config = {"type": "usage", "start_date": str(START), "end_date": str(END), "format": "pdf",
                     "include_charts": True}
    answer = client.call("POST", f"{BASE}/generate", json=report_config)
    assert answer.status_code == 202, answer.text
    result = answer.json()
    assert result["report_id"].startswith("rpt-") and result["state"] in ("pending", "running", "completed")

    # Check Report Status, then the download as a link a user can open.
    status = client.wait(result["report_id"])
    assert (status["state"], status["progress"]) == ("completed", 100), status
    link = client.call("GET", f"{BASE}/{result['report_id']}/download?as=link")
    assert link.status_code == 200, link.text
    pdf = client.follow(link.json()["url"])
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    # Schedule Weekly Report: the seed's object as it is.
    schedule = {"type": "conversations", "format": "pdf", "cron": "0 8 * * 1",
                "recipients": ["manager@company.com"], "timezone": "America/New_York"}
    answer = client.call("POST", f"{BASE}/schedule", json=schedule)
    assert answer.status_code == 201, answer.text
    schedule_id = answer.json()["schedule_id"]
    listed = client.call("GET", f"{BASE}/schedule").json()
    assert [s["schedule_id"] for s in listed] == [schedule_id]

    # List Available Templates: an array of objects with a name and a description.
    templates = client.call("GET", f"{BASE}/templates").json()
    assert isinstance(templates, list) and templates
    assert all(isinstance(t["name"], str) and isinstance(t["description"], str) for t in templates)
    assert "tpl-usage-standard" in {t["template_id"] for t in templates}

    # Generate Custom Report: no dates (the last 30 days), the seed's three sections.
    report = {"type": "custom", "title": "Monthly Executive Summary", "format": "pdf",
              "sections": [{"type": "usage_summary"}, {"type": "top_conversations"},
                           {"type": "satisfaction_scores"}]}
    answer = client.call("POST", f"{BASE}/generate", json=report)
    assert answer.status_code == 202, answer.text
    assert client.wait(answer.json()["report_id"])["state"] == "completed"

    # The usage report's numbers, as JSON, against SQL on botserver's tables.
    answer = client.call("POST", f"{BASE}/generate", json={**report_config, "format": "json"})
    assert answer.status_code == 202, answer.text
    report_id = answer.json()["report_id"]
    assert client.wait(report_id)["state"] == "completed"
    document = client.call("GET", f"{BASE}/{report_id}/download").json()
    assert document["organization_id"] == org
    shown = {name: item["value"] for name, item in kpis(document, "usage_summary").items()}
    expected = usage_by_sql(deployment.url, org, *utc_days(START, END))
    assert expected["messages_in"] > 100 and expected["conversations"] > 10  # the data is really there
    assert {name: shown[name] for name in expected} == expected
    # botserver has no writer for llm_metrics: LLM tokens and cost are not recorded, never 0.
    summary = kpis(document, "usage_summary")
    for name in ("tokens", "cost_usd"):
        assert summary[name]["value"] is None and summary[name]["unavailable"] == "not recorded by this source"


def test_rollups_kept_by_the_recipe_role_give_the_same_numbers(deployment, botserver_db):
    """`botreports rollups rebuild` with the recipe's environment writes into the schema grants.sql
    gave the role, and nowhere else; reports then read the rollups, with the same numbers."""
    import psycopg

    built = deployment.botreports("rollups", "rebuild")
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith("rollups rebuilt"), built.stdout
    with psycopg.connect(deployment.url) as conn:
        owners = conn.execute(
            # a table's TOAST storage lives in pg_toast, owned by the table's owner: part of its table
            "SELECT DISTINCT n.nspname, c.relowner::regrole::text FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relowner = %s::regrole"
            " AND n.nspname <> 'pg_toast'",
            [deployment.role]).fetchall()
    assert owners == [("botreports", deployment.role)]
    org = botserver_db.org("org-initech")
    client = Client(deployment.base, token=botserver_token(org))
    answer = client.call("POST", f"{BASE}/generate", json={"type": "usage", "format": "json", "timezone": "UTC",
                                                           "start_date": str(START), "end_date": str(END)})
    assert answer.status_code == 202, answer.text
    report_id = answer.json()["report_id"]
    assert client.wait(report_id)["state"] == "completed"
    document = client.call("GET", f"{BASE}/{report_id}/download").json()
    shown = {name: item["value"] for name, item in kpis(document, "usage_summary").items()}
    expected = usage_by_sql(deployment.url, org, *utc_days(START, END))
    assert expected["messages_in"] > 100
    assert {name: shown[name] for name in expected} == expected


def test_tokens_botserver_issues_today_and_roles_without_a_mapping(deployment, botserver_db):
    org = botserver_db.org("org-acme")
    status = f"{BASE}/templates"
    # No organization_id: botserver's code sets none outside a unit test; refused.
    assert Client(deployment.base, token=botserver_token(None)).call("GET", status).status_code == 401
    # The opaque token of botserver's web sign-in (src/directory/auth_routes.rs) is not a JWT.
    opaque = f"gb_{uuid.uuid4()}_{int(time.time())}"
    assert Client(deployment.base, token=opaque).call("GET", status).status_code == 401
    # Another secret, issuer or audience than botserver's.
    assert Client(deployment.base, token=botserver_token(org, issuer="elsewhere")).call(
        "GET", status).status_code == 401
    # Roles the map does not name: authenticated, allowed nothing.
    assert Client(deployment.base, token=botserver_token(org, roles=("User",))).call(
        "GET", status).status_code == 403
    # BotViewer reads but may not generate.
    viewer = Client(deployment.base, token=botserver_token(org, roles=("BotViewer",)))
    assert viewer.call("GET", status).status_code == 200
    assert viewer.call("POST", f"{BASE}/generate", json={"type": "usage", "format": "json"}).status_code == 403


def test_the_edited_basic_script_as_botserver_sends_it(deployment, botserver_db):
    """docs/embedding.md's script: POST with the key in the query and a JSON body, GET with no header,
    and the status read as text (botserver's GET does not parse JSON)."""
    org = botserver_db.org("org-globex")
    made = deployment.botreports("keys", "create", "--role", "report_creator", "--org", org, "--name", "bot scripts")
    assert made.returncode == 0, made.stderr
    script = Client(deployment.base, api_key=made.stdout.strip())
    report_config = {"type": "usage", "start_date": str(START), "end_date": str(END), "format": "json",
                     "include_charts": True}
    answer = script.call("POST", f"{BASE}/generate", json=report_config)
    # What botserver's POST hands the script: {status, statusText, headers, data}
    assert answer.status_code == 202 and answer.headers["Content-Type"] == "application/json"
    report_id = answer.json()["report_id"]
    deadline = time.monotonic() + 120
    while True:
        status = script.call("GET", f"{BASE}/{report_id}/status").text  # what GET returns: the body as text
        if '"state":"completed"' in status:  # the script's INSTR(status, "\"state\":\"completed\"") > 0
            break
        assert '"state":"failed"' not in status and time.monotonic() < deadline, status
        time.sleep(0.2)
    link = script.call("GET", f"{BASE}/{report_id}/download?as=link").text
    url = re.search(r'"url":"([^"]+)"', link).group(1)
    document = script.follow(url).json()
    shown = {name: item["value"] for name, item in kpis(document, "usage_summary").items()}
    expected = usage_by_sql(deployment.url, org, *utc_days(START, END))
    assert expected["messages_in"] > 100
    assert {name: shown[name] for name in expected} == expected
    # The key is the organisation's: another organisation's report is out of reach.
    other = Client(deployment.base, token=botserver_token(botserver_db.org("org-acme")))
    answer = other.call("GET", f"{BASE}/{report_id}/status")
    assert answer.status_code == 404
