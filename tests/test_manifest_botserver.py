"""The botserver source's data watermark (per organisation, from botserver's own tables) and a
report verified over botserver's PostgreSQL: unchanged, then the new message named."""
import datetime as dt
import shutil
import uuid

import pytest

from botreports import Reports
from botreports.core.models import Period, Principal, Scope
from botreports.plugins.sources.botserver_pg import BotserverAnalytics

from botserver_support import fresh_botserver_database

pytestmark = pytest.mark.postgres
UTC = dt.timezone.utc
#: The last week of the fixture's data (8 March to 2 April 2025), whole UTC days.
BODY = {"type": "usage", "format": "json", "start_date": "2025-03-27", "end_date": "2025-04-02", "timezone": "UTC"}
PERIOD_END = dt.datetime(2025, 4, 3, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    yield from fresh_botserver_database(tmp_path_factory)


def newest_message(conn, org):
    """The newest message of ``org``'s bots, by a plain join (what the watermark must say)."""
    return conn.execute("SELECT max(m.created_at) FROM message_history m JOIN user_sessions s ON s.id = m.session_id"
                        " JOIN bots b ON b.id = s.bot_id WHERE b.org_id = %s", [org]).fetchone()[0]


def say(conn, org, at):
    """One user message in a session of ``org``, as botserver's save_message writes it."""
    session, user = conn.execute(
        "SELECT s.id, s.user_id FROM user_sessions s JOIN bots b ON b.id = s.bot_id WHERE b.org_id = %s"
        " AND s.user_id <> s.bot_id AND EXISTS (SELECT 1 FROM message_history m WHERE m.session_id = s.id)"
        " ORDER BY s.id LIMIT 1", [org]).fetchone()
    index = conn.execute("SELECT count(*) FROM message_history WHERE session_id = %s", [session]).fetchone()[0]
    conn.execute("INSERT INTO message_history (id, session_id, user_id, role, content_encrypted, message_type,"
                 " message_index, created_at) VALUES (%s, %s, %s, 1, 'enc:v1:new', 0, %s, %s)",
                 [uuid.uuid4(), session, user, index, at])
    conn.commit()


def stamp(value):
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_watermark_and_verify_over_botserver(db, tmp_path):
    acme, globex = db.org("org-acme"), db.org("org-globex")
    period = Period(dt.datetime(2025, 3, 27, tzinfo=UTC), PERIOD_END, "UTC")
    source = BotserverAnalytics(db.url)
    conn = db.connect()
    rk = Reports(data_dir=tmp_path, data_source=db.url, load_entrypoints=False)
    principal = Principal(id="alice", org_id=acme, roles={"admin"})
    try:
        before = {org: source.watermark(Scope(org, period)) for org in (acme, globex)}
        for org in (acme, globex):
            assert before[org]["organization"] == org
            assert before[org]["tables"]["message_history"]["newest"] == stamp(newest_message(conn, org))

        report = rk.generate(principal, BODY)
        assert report.state == "completed", report.error
        result = rk.verify(principal, report.id)
        assert result["unchanged"] and result["data_changed"] is False and result["numbers_compared"] > 50

        latest = max(newest_message(conn, acme), newest_message(conn, globex))
        at = latest + dt.timedelta(seconds=1)
        assert at < PERIOD_END  # a message botserver writes now: the newest, inside the period
        say(conn, acme, at)

        after = {org: source.watermark(Scope(org, period)) for org in (acme, globex)}
        assert after[acme]["tables"]["message_history"]["newest"] == stamp(at)
        assert after[acme]["newest_event"] == max(entry["newest"] for name, entry in after[acme]["tables"].items()
                                                  if name != "bots" and entry["newest"])
        assert after[globex] == before[globex]

        result = rk.verify(principal, report.id)
        assert result["verdict"] == "changed" and result["data_changed"] is True
        kpi = next(d for d in result["differences"] if d["metric"] == "messages_in" and d["field"] == "value")
        assert kpi["new"] == kpi["old"] + 1
    finally:
        rk.close()
        source.close()
        conn.close()
