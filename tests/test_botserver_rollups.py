"""The botserver source's rollups: every source method answers the same with and
without them (system-wide and per organisation, bot, channel, in several zones, on
and off the quarter-hour grid, automation sessions in or out), after an incremental
refresh that followed new rows, late rows, a cleared history and a deleted session;
a role without the privileges leaves them off; the command and the periodic job."""
import datetime as dt
import logging
import secrets
import uuid
from zoneinfo import ZoneInfo

import pytest

from botreports.core.models import Period, Scope
from botreports.plugins.sources.botserver_pg import BotserverAnalytics
from botreports.plugins.sources.botserver_rollup_reads import Coverage, plan_period
from botreports.plugins.sources.botserver_rollups import BUCKET, SETTLE, RollupSettings, RollupWriter, floor_bucket

from botserver_support import connect, fresh_botserver_database, with_options

UTC = dt.timezone.utc
#: The demo data ends on 2 April 2025; the rollups' clock starts the day after.
T0 = dt.datetime(2025, 4, 3, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    yield from fresh_botserver_database(tmp_path_factory)


def period(first: str, last: str, tz: str) -> Period:
    """The local days ``first`` to ``last`` (inclusive) of ``tz`` as UTC instants."""
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(dt.date.fromisoformat(first), dt.time(0), zone).astimezone(UTC)
    end = dt.datetime.combine(dt.date.fromisoformat(last) + dt.timedelta(days=1), dt.time(0), zone).astimezone(UTC)
    return Period(start=start, end=end, timezone=tz)


def answers(source: BotserverAnalytics, scope: Scope) -> dict:
    """Every answer of the source for ``scope``, iterators read."""
    cutoff = scope.period.start + dt.timedelta(days=3)
    calls = {
        "usage_totals": lambda: source.usage_totals(scope),
        "daily_usage": lambda: source.daily_usage(scope),
        "activity_grid": lambda: source.activity_grid(scope),
        "usage_breakdown_bot": lambda: source.usage_breakdown(scope, "bot"),
        "usage_breakdown_channel": lambda: source.usage_breakdown(scope, "channel"),
        "top_users": lambda: source.top_users(scope, 10),
        "bot_names": lambda: source.bot_names(scope),
        "usage_rows": lambda: list(source.usage_rows(scope)),
        "conversation_summary": lambda: source.conversation_summary(scope),
        "conversation_outcomes": lambda: source.conversation_outcomes(scope),
        "top_conversations_duration": lambda: source.top_conversations(scope, "duration", 10),
        "top_conversations_messages": lambda: source.top_conversations(scope, "messages", 10),
        "top_intents": lambda: source.top_intents(scope, 10),
        "satisfaction": lambda: source.satisfaction(scope),
        "daily_satisfaction": lambda: source.daily_satisfaction(scope),
        "handoffs_bot": lambda: source.handoffs(scope, "bot"),
        "handoffs_channel": lambda: source.handoffs(scope, "channel"),
        "conversation_rows": lambda: list(source.conversation_rows(scope)),
        "conversation_table_rows": lambda: list(source.conversation_table_rows(scope, lambda user: f"u:{user}")),
        "llm_performance": lambda: source.llm_performance(scope),
        "throughput": lambda: source.throughput(scope),
        "system_health": lambda: source.system_health(scope),
        "daily_system_health": lambda: source.daily_system_health(scope),
        "performance_rows": lambda: list(source.performance_rows(scope)),
        "audit_summary": lambda: source.audit_summary(scope),
        "audit_denials": lambda: source.audit_denials(scope, 10),
        "audit_events": lambda: source.audit_events(scope),
        "retention_overview": lambda: source.retention_overview(scope, cutoff),
        "audit_rows": lambda: list(source.audit_rows(scope)),
        "unrecorded": lambda: sorted(source.unrecorded()),
    }
    for group in (None, "day", "bot", "channel"):
        calls[f"reply_latency_{group}"] = lambda group=group: source.reply_latency(scope, group)
        calls[f"error_counts_{group}"] = lambda group=group: source.error_counts(scope, group)
    return {name: call() for name, call in calls.items()}


def assert_same(with_rollups: dict, without: dict):
    for name in without:
        assert with_rollups[name] == without[name], name


class Sources:
    """The same database read with rollups (``on``) and without (``off``)."""

    def __init__(self, url: str):
        self.on = BotserverAnalytics(url)
        self.off = BotserverAnalytics(with_options(url, rollups="off"))

    def compare(self, scope: Scope) -> dict:
        self.on.forget(), self.off.forget()
        on, off = answers(self.on, scope), answers(self.off, scope)
        assert_same(on, off)
        return on

    def close(self):
        self.on.close()
        self.off.close()


@pytest.fixture
def sources(db):
    both = Sources(db.url)
    yield both
    both.close()


def scopes(db):
    whole = "2025-03-08", "2025-04-03"
    yield Scope(org_id=None, period=period(*whole, "America/New_York"))
    yield Scope(org_id=db.org("org-acme"), period=period(*whole, "Europe/Berlin"))
    yield Scope(org_id=db.org("org-globex"), period=period("2025-03-09", "2025-03-30", "Asia/Kolkata"))
    yield Scope(org_id=None, period=period(*whole, "UTC"), channel="whatsapp")
    yield Scope(org_id=None, period=period(*whole, "Asia/Kathmandu"), bot_ids=(db.bot("bot-002"), db.bot("bot-005")))


def test_every_method_answers_the_same_with_rollups_as_without(db, sources):
    result = sources.on.rebuild_rollups(now=T0)
    assert result.action == "rebuilt" and result.covered_until == floor_bucket(T0 - SETTLE)
    for scope in scopes(db):
        plan = plan_period(scope.period.start, scope.period.end, scope.period.timezone, sources.on.coverage())
        assert plan.covered is not None, scope  # the rollups are read, not bypassed
        on = sources.compare(scope)
        assert on["usage_totals"]["messages_in"] > 0 and on["throughput"]["peak_minute_messages"] > 0


def test_periods_off_the_quarter_hour_grid_read_their_edges_raw(db, sources):
    sources.on.rebuild_rollups(now=T0)
    odd = Period(start=dt.datetime(2025, 3, 10, 10, 7, 13, tzinfo=UTC),
                 end=dt.datetime(2025, 3, 20, 3, 1, 59, tzinfo=UTC), timezone="UTC")
    plan = plan_period(odd.start, odd.end, odd.timezone, sources.on.coverage())
    assert plan.covered == (dt.datetime(2025, 3, 10, 10, 15, tzinfo=UTC), dt.datetime(2025, 3, 20, 3, 0, tzinfo=UTC))
    assert plan.raw == ((odd.start, plan.covered[0]), (plan.covered[1], odd.end))
    sources.compare(Scope(org_id=None, period=odd))
    sources.compare(Scope(org_id=db.org("org-initech"), period=odd))


def test_a_zone_off_the_grid_is_read_raw():
    # Liberia kept -0:44:30 until 1972: quarter-hour buckets do not fold into its days.
    coverage_until = dt.datetime(2030, 1, 1, tzinfo=UTC)
    start, end = dt.datetime(1971, 1, 1, 0, 44, 30, tzinfo=UTC), dt.datetime(1971, 2, 1, 0, 44, 30, tzinfo=UTC)
    plan = plan_period(start, end, "Africa/Monrovia", Coverage(coverage_until, 0, 0))
    assert plan.covered is None and plan.raw == ((start, end),)


def test_automation_sessions_left_out_alike(db):
    both = Sources(with_options(db.url, automation="exclude"))
    try:
        both.on.rebuild_rollups(now=T0)
        scope = Scope(org_id=None, period=period("2025-03-08", "2025-04-03", "America/New_York"))
        with_automation = BotserverAnalytics(db.url)
        try:
            assert both.compare(scope)["usage_totals"] != with_automation.usage_totals(scope)
        finally:
            with_automation.close()
    finally:
        both.close()


# -- incremental refresh ---------------------------------------------------------------


class Botserver:
    """Rows written as botserver's code writes them (save_message: the next message_index)."""

    def __init__(self, db):
        self.conn = db.connect()

    def sessions(self, count: int):
        return self.conn.execute(
            "SELECT s.id, s.user_id FROM user_sessions s WHERE s.user_id <> s.bot_id"
            " AND EXISTS (SELECT 1 FROM message_history m WHERE m.session_id = s.id AND m.role = 1)"
            " ORDER BY s.id LIMIT %s", [count]).fetchall()

    def say(self, session, user, role: int, at: dt.datetime):
        index = self.conn.execute("SELECT count(*) FROM message_history WHERE session_id = %s", [session]).fetchone()[0]
        self.conn.execute(
            "INSERT INTO message_history (id, session_id, user_id, role, content_encrypted, message_type,"
            " message_index, created_at) VALUES (%s, %s, %s, %s, 'enc:v1:new', 0, %s, %s)",
            [uuid.uuid4(), session, user, role, index, at])
        self.conn.commit()

    def new_session(self, bot_org: str, at: dt.datetime):
        """A new user writing to a bot of organisation ``bot_org`` for the first time."""
        user = uuid.uuid4()
        self.conn.execute("INSERT INTO users (id, username, email, password_hash) VALUES (%s, %s, %s, 'x')",
                          [user, f"new-{user}", f"{user}@example.org"])
        bot = self.conn.execute("SELECT id FROM bots WHERE org_id = %s ORDER BY id LIMIT 1", [bot_org]).fetchone()[0]
        session = uuid.uuid4()
        self.conn.execute("INSERT INTO user_sessions (id, user_id, bot_id, title, context_data, created_at,"
                          " updated_at) VALUES (%s, %s, %s, 'New Conversation', '{\"channel\": \"whatsapp\"}',"
                          " %s, %s)", [session, user, bot, at, at])
        self.conn.commit()
        return session, user

    def messages(self) -> int:
        return self.conn.execute("SELECT count(*) FROM message_history WHERE role IN (1, 2)").fetchone()[0]


def whole(db):
    return [Scope(org_id=None, period=period("2025-03-08", "2025-04-03", "America/New_York")),
            Scope(org_id=db.org("org-acme"), period=period("2025-03-08", "2025-04-03", "UTC"))]


def test_an_incremental_refresh_follows_new_late_cleared_and_deleted_rows(db, sources):
    botserver = Botserver(db)
    sources.on.rebuild_rollups(now=T0)
    watermark = sources.on.coverage().covered_until
    scope = whole(db)[0]

    # New rows after the watermark: read from botserver's rows until a refresh takes them in.
    (s1, u1), (s2, u2) = botserver.sessions(2)
    new_session, new_user = botserver.new_session(db.org("org-acme"), watermark + dt.timedelta(minutes=3))
    for minute in range(3, 40, 2):
        at = watermark + dt.timedelta(minutes=minute)
        botserver.say(s1, u1, 1, at)
        botserver.say(s1, u1, 2, at + dt.timedelta(seconds=20))
        botserver.say(new_session, new_user, 1, at + dt.timedelta(seconds=30))
    botserver.say(s2, u2, 3, watermark + dt.timedelta(minutes=5))  # a system row: never a message
    before = sources.compare(scope)
    for s in whole(db):
        sources.compare(s)

    result = sources.on.refresh_rollups(now=T0 + dt.timedelta(hours=1))
    assert result.action == "refreshed" and result.covered_until == floor_bucket(T0 + dt.timedelta(hours=1) - SETTLE)
    assert result.rows > 0  # the new rows are in the rollups now
    after = sources.compare(scope)
    assert after["usage_totals"]["messages_in"] == before["usage_totals"]["messages_in"]
    assert after["usage_totals"]["new_users"] == before["usage_totals"]["new_users"]

    # A row committed late, inside the lateness window: missing until the next refresh reads it.
    watermark = sources.on.coverage().covered_until
    botserver.say(s2, u2, 1, watermark - dt.timedelta(minutes=50))
    missing = sources.on.usage_totals(scope)["messages_in"]
    assert sources.off.usage_totals(scope)["messages_in"] == missing + 1
    sources.on.refresh_rollups(now=T0 + dt.timedelta(hours=1))
    for s in whole(db):
        sources.compare(s)

    # Later than the lateness window (2 hours by default): only a rebuild takes it in.
    botserver.say(s2, u2, 1, watermark - dt.timedelta(hours=3))
    sources.on.refresh_rollups(now=T0 + dt.timedelta(hours=1))
    assert sources.off.usage_totals(scope)["messages_in"] == sources.on.usage_totals(scope)["messages_in"] + 1
    sources.on.rebuild_rollups(now=T0 + dt.timedelta(hours=1))
    sources.compare(scope)

    # A cleared history (WhatsApp's "clear"): its rows go, the next one is numbered 0 again.
    cleared, cleared_user = botserver.sessions(3)[2]
    botserver.conn.execute("DELETE FROM message_history WHERE session_id = %s", [cleared])
    botserver.conn.commit()
    later = T0 + dt.timedelta(hours=1, minutes=10)
    botserver.say(cleared, cleared_user, 1, later)
    sources.on.refresh_rollups(now=T0 + dt.timedelta(hours=2))
    for s in whole(db):
        sources.compare(s)

    # A deleted session (its messages go with it): gone from the rollups at the next refresh.
    botserver.conn.execute("DELETE FROM user_sessions WHERE id = %s", [s1])
    botserver.conn.commit()
    sources.on.refresh_rollups(now=T0 + dt.timedelta(hours=2))
    for s in whole(db):
        sources.compare(s)
    botserver.conn.close()


def test_a_refresh_while_another_runs_returns_at_once(db):
    settings = RollupSettings()
    writer = RollupWriter(db.url, settings)
    with connect(db.url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [settings.lock_key])
        assert writer.refresh(now=T0).action == "busy"
        holder.execute("SELECT pg_advisory_unlock(%s)", [settings.lock_key])
    assert writer.refresh(now=T0).action in ("refreshed", "rebuilt")


def test_rollups_in_a_schema_of_ones_choice(db):
    schema = f"reports_{secrets.token_hex(3)}"
    both = Sources(with_options(db.url, rollup_schema=schema))
    try:
        assert both.on.coverage() is None  # nothing there yet: botserver's rows are read
        assert both.on.rebuild_rollups(now=T0).action == "rebuilt"
        assert both.on.coverage() is not None
        both.compare(whole(db)[1])
    finally:
        both.close()
        with connect(db.url) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- privileges ------------------------------------------------------------------------


@pytest.fixture
def reader_role(db):
    """A role that may read botserver's tables and nothing more (``role_url(role)`` connects as it)."""
    role = f"botreports_reader_{secrets.token_hex(3)}"
    database = db.url.rsplit("/", 1)[1]
    with connect(db.url) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    url = db.url.replace("postgres@", f"{role}@", 1)
    yield role, url
    with connect(db.url) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_a_role_without_privileges_leaves_the_rollups_off(db, reader_role, caplog):
    role, url = reader_role
    BotserverAnalytics(db.url).rebuild_rollups(now=T0)
    source = BotserverAnalytics(url)
    try:
        with caplog.at_level(logging.INFO, logger="botreports"):
            result = source.refresh_rollups()
            assert result.action == "off" and "CREATE" in result.reason
            assert source.refresh_rollups().action == "off"
            assert source.coverage() is None  # no USAGE on the schema: botserver's rows are read
            scope = whole(db)[0]
            raw = BotserverAnalytics(with_options(db.url, rollups="off"))
            try:
                assert source.usage_totals(scope) == raw.usage_totals(scope)
            finally:
                raw.close()
        said = [r for r in caplog.records if "rollups off" in r.getMessage()]
        assert len(said) == 1  # one line, not one per refresh
    finally:
        source.close()

    # Allowed to read the schema but not to write in it: reports read the rollups, a refresh is refused.
    with connect(db.url) as conn:
        conn.execute(f'GRANT USAGE ON SCHEMA botreports TO "{role}"')
        conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA botreports TO "{role}"')
    source = BotserverAnalytics(url)
    try:
        assert source.coverage() is not None
        assert source.refresh_rollups().action == "off"
    finally:
        source.close()


# -- the command and the periodic job ---------------------------------------------------


def test_rollups_command(db, tmp_path, capsys, monkeypatch):
    from botreports.adapters.cli import main

    monkeypatch.delenv("BOTREPORTS_DATA", raising=False)
    assert main(["rollups", "rebuild", "--data-dir", str(tmp_path), "--data", db.url]) == 0
    assert "rollups rebuilt" in capsys.readouterr().out
    assert main(["rollups", "refresh", "--data-dir", str(tmp_path), "--data", db.url]) == 0
    assert "rollups refreshed" in capsys.readouterr().out
    assert main(["rollups", "refresh", "--data-dir", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["rollups", "refresh", "--data-dir", str(tmp_path),
                 "--data", with_options(db.url, rollup_lateness="soon")]) == 2
    assert "rollup_lateness" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["rollups", "--data-dir", str(tmp_path)])
    assert exit_.value.code == 2


def test_the_periodic_job_refreshes_the_rollups(db, tmp_path):
    from botreports import Reports
    from botreports.adapters.queue import make_queue, refresh_rollups

    queue = make_queue("sqlite", tmp_path, workers=1)
    rk = Reports(data_dir=tmp_path, data_source=db.url, queue=queue, load_entrypoints=False)
    try:
        assert "botreports.rollups" in {task.name for task in queue.huey._registry.periodic_tasks}
        with connect(db.url) as conn:
            conn.execute("UPDATE botreports.rollup_state SET covered_until = covered_until - interval '1 hour'")
        before = rk.source.coverage().covered_until
        refresh_rollups(rk)
        assert rk.source.coverage().covered_until > before
    finally:
        rk.close()


def test_the_periodic_job_leaves_an_sqlite_file_alone(tmp_path):
    from botreports import Reports
    from botreports.adapters.queue import refresh_rollups

    rk = Reports(data_dir=tmp_path, load_entrypoints=False)
    try:
        refresh_rollups(rk)  # the SQLite file keeps its rollups by triggers: nothing to do
    finally:
        rk.close()


def test_settings_from_the_url_and_the_environment(monkeypatch):
    from botreports.core.errors import ValidationError

    monkeypatch.setenv("BOTREPORTS_PG_ROLLUP_SCHEMA", "analytics")
    monkeypatch.setenv("BOTREPORTS_PG_ROLLUP_LATENESS", "30min")
    settings = RollupSettings.from_options({})
    assert settings.schema == "analytics" and settings.lateness == dt.timedelta(minutes=30)
    settings = RollupSettings.from_options({"rollup_schema": "ours", "rollups": "off", "rollup_rebuild": "never"})
    assert (settings.schema, settings.enabled, settings.rebuild_after) == ("ours", False, None)
    for options in ({"rollup_schema": "bad-name"}, {"rollups": "maybe"}, {"rollup_lateness": "120"},
                    {"rollup_rebuild": "daily"}):
        with pytest.raises(ValidationError):
            RollupSettings.from_options(options)
    assert BUCKET == dt.timedelta(minutes=15)
