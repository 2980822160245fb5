"""The conversations raw table on botserver's real schema, written as JSON text by
PostgreSQL: the same bytes as the JSON export writes for its typed rows, with
rollups and without, recorded or blanked columns, awkward channels, ends with
fractions of a second and average latencies on a rounding tie; the numbers equal
SQL over botserver's own rows; the spellings of floats, instants and text agree
with Python's for any value (hypothesis)."""
import datetime as dt
import decimal
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botreports import Reports
from botreports.core.convert import utc_text
from botreports.core.models import Period, Scope
from botreports.core.service import SYSTEM
from botreports.plugins.exporters.json_exporter import _rows, dumps
from botreports.plugins.sources.botserver_conversation_table import BotserverConversationTable, json_sql
from botreports.plugins.sources.botserver_pg import BotserverAnalytics

from botserver_support import connect, fresh_botserver_database, with_options

UTC = dt.timezone.utc
#: The demo data: 8 March to 2 April 2025; the rollups' clock the day after.
PERIOD = Period(dt.datetime(2025, 3, 8, tzinfo=UTC), dt.datetime(2025, 4, 3, tzinfo=UTC), "UTC")
T0 = dt.datetime(2025, 4, 3, tzinfo=UTC)
#: Channels botserver could be given by a client: JSON must escape some of each.
CHANNELS = ['we"b', "back\\slash", "two\nlines", "tab\there", "bell\x07", "línea ü 😀", "/path", ""]
#: A session's end with nine fractional digits, as chrono writes it.
FRACTIONAL_END = "2025-03-20T10:11:12.987654321+00:00"
#: Columns a report blanks when botserver records nothing for them (ended_at, duration,
#: errors, average latency, satisfaction).
BLANKED = (5, 6, 10, 11, 13)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """botserver's schema with demo rows, then what a busy botserver adds: odd channels, ends with
    fractions of a second, reply times (sessions of 16 replies summing to an odd number of ms
    average on a tie at the third decimal)."""
    database = next(gen := fresh_botserver_database(tmp_path_factory))
    with database.connect() as conn:
        sessions = [row[0] for row in conn.execute(
            "SELECT id FROM user_sessions WHERE user_id <> bot_id ORDER BY id LIMIT %s", [3 * len(CHANNELS)])]
        for index, session in enumerate(sessions[:len(CHANNELS)]):
            conn.execute("UPDATE user_sessions SET context_data = jsonb_set(context_data, '{channel}', to_jsonb(%s::text))"
                         " WHERE id = %s", [CHANNELS[index], session])
        conn.execute("UPDATE user_sessions SET context_data = context_data || jsonb_build_object('status', 'resolved',"
                     " 'resolved_at', %s::text) WHERE id = ANY(%s)", [FRACTIONAL_END, sessions[len(CHANNELS):]])
        conn.execute("UPDATE message_history SET processing_time_ms = (message_index * 37 + 11) % 900 WHERE role = 2")
        ties = conn.execute(
            "SELECT session_id FROM message_history WHERE role = 2 GROUP BY session_id HAVING count(*) = 16"
            " AND sum(processing_time_ms) % 2 = 1").fetchall()
        if not ties:  # make one: 16 reply times adding up to an odd number (the session's others unrecorded)
            session = conn.execute("SELECT session_id FROM message_history WHERE role = 2 GROUP BY session_id"
                                   " HAVING count(*) >= 16 ORDER BY session_id LIMIT 1").fetchone()[0]
            conn.execute("UPDATE message_history m SET processing_time_ms = CASE WHEN r.n = 1 THEN 101"
                         " WHEN r.n <= 16 THEN 100 END FROM (SELECT id, row_number() OVER (ORDER BY message_index)"
                         " AS n FROM message_history WHERE session_id = %s AND role = 2) r WHERE m.id = r.id",
                         [session])
        conn.commit()
    yield database
    gen.close()


@pytest.fixture(scope="module")
def sources(db):
    """The source reading botserver's rows, and one reading the rollups just rebuilt."""
    without = BotserverAnalytics(with_options(db.url, rollups="off"))
    with_rollups = BotserverAnalytics(db.url)
    with_rollups.rebuild_rollups(now=T0)
    yield {"rows": without, "rollups": with_rollups}
    without.close()
    with_rollups.close()


def label(user):
    return f'person "{user[:8]}"'


def scopes(db):
    return {"system-wide": Scope(org_id=None, period=PERIOD),
            "one organisation": Scope(org_id=db.org("org-acme"), period=PERIOD)}


@pytest.mark.parametrize("blank", [(), BLANKED], ids=["recorded", "blanked"])
@pytest.mark.parametrize("read", ["rows", "rollups"])
def test_json_text_is_the_bytes_the_exporter_writes_for_the_typed_rows(db, sources, read, blank):
    for name, scope in scopes(db).items():
        table = sources[read].conversation_table_rows(scope, label)
        if blank:
            table = table.blanked(blank)
        typed = list(table)
        assert len(typed) > 100, name
        texts = list(table.json_text(37))
        assert len(texts) == -(-len(typed) // 37)
        assert ",".join(texts) == _rows(typed), name
        assert json.loads("[" + ",".join(texts) + "]") == json.loads(dumps(typed))
        for index in blank:
            assert {row[index] for row in typed} == {None}
        if not blank:
            assert any(row[11] is not None and row[11] != int(row[11]) for row in typed)  # real averages
            assert any(row[6] is not None and row[6] != int(row[6]) for row in typed)  # fractions of a second


def test_rows_hold_botservers_numbers(db, sources):
    """Every row equals SQL over botserver's own rows: the channel as stored, the end cut to the
    second, the duration in seconds, the counts, and the average reply time rounded halves up."""
    table = sources["rollups"].conversation_table_rows(Scope(org_id=None, period=PERIOD), str)
    rows = {row[0]: row for row in table}
    with db.connect() as conn:
        expected = conn.execute(
            "SELECT s.id::text, s.user_id::text, coalesce(nullif(s.context_data->>'channel', ''), 'web'),"
            " (s.context_data->>'resolved_at')::timestamptz, s.created_at,"
            " count(m.id) FILTER (WHERE m.role IN (1, 2)), count(m.id) FILTER (WHERE m.role = 1),"
            " count(m.id) FILTER (WHERE m.role = 2), sum(m.processing_time_ms) FILTER (WHERE m.role = 2),"
            " count(m.processing_time_ms) FILTER (WHERE m.role = 2)"
            " FROM user_sessions s LEFT JOIN message_history m ON m.session_id = s.id"
            " WHERE s.created_at >= %s AND s.created_at < %s GROUP BY s.id", [PERIOD.start, PERIOD.end]).fetchall()
    assert len(rows) == len(expected)
    ties = 0
    for id_, user, channel, end, start, count, m_in, m_out, latency_sum, latency_n in expected:
        row = rows[id_]
        assert (row[2], row[3], row[7], row[8], row[9]) == (channel, user, count, m_in, m_out)
        if end is not None:
            assert row[5] == end
            assert row[6] == round((end - start) / dt.timedelta(milliseconds=1)) / 1000
        if latency_n:
            exact = decimal.Decimal(latency_sum) / latency_n
            assert row[11] == float(exact.quantize(decimal.Decimal("0.001"), decimal.ROUND_HALF_UP))
            ties += latency_n == 16 and latency_sum % 2 == 1
        else:
            assert row[11] is None
    assert ties >= 1  # an average on a tie, rounded up, not to even
    assert {rows[i][2] for i in rows} >= set(c or "web" for c in CHANNELS)
    assert any(row[5] is not None and row[5].microsecond for row in rows.values())


def document_bytes(rk, tmp_path, name):
    body = {"type": "conversations", "format": "json", "start_date": "2025-03-08", "end_date": "2025-04-02",
            "timezone": "America/New_York"}
    text = rk.render(SYSTEM, body, tmp_path / f"{name}.json").read_bytes()
    # What says when the report was made, not what it holds.
    return re.sub(rb'"(report_id|generated_at|computed_as_of)": ("[^"]*"|null)', rb'"\1": "-"', text)


def test_conversations_report_is_the_same_document_through_both_paths(db, tmp_path, monkeypatch):
    rk = Reports(data_dir=tmp_path / "reports", data_source=db.url, load_entrypoints=False, secret="s" * 32)
    spelling = BotserverConversationTable.json_text
    asked = []
    monkeypatch.setattr(BotserverConversationTable, "json_text",
                        lambda self, n: asked.append(self.blank) or spelling(self, n))
    try:
        spelled = document_bytes(rk, tmp_path, "spelled")
        assert asked and asked[0]  # written by PostgreSQL, unrecorded columns blanked in its text
        monkeypatch.setattr(BotserverConversationTable, "json_text", None)  # the exporter encodes typed rows
        typed = document_bytes(rk, tmp_path, "typed")
    finally:
        rk.close()
    assert spelled == typed
    document = json.loads(spelled)
    raw = next(b for s in document["sections"] if s["name"] == "conversations_raw" for b in s["blocks"])
    assert len(raw["rows"]) > 100
    blank = [c["name"] for c in raw["columns"] if c.get("unavailable")]
    assert "satisfaction" in blank and "errors" in blank  # botserver has no place for them
    assert "avg_latency_ms" not in blank  # filled above: it lights up


# -- spellings against Python's, for any value --------------------------------------------------

def spelled(db_conn, kind, sql_type, values):
    """PostgreSQL's JSON text of each value of ``values`` as a cell of ``kind``."""
    db_conn.execute("SET extra_float_digits = 1")
    rows = db_conn.execute(f"SELECT {json_sql('v', kind)} FROM unnest(%s::{sql_type}[]) WITH ORDINALITY AS t(v, n)"
                           " ORDER BY n", [values]).fetchall()
    return [text for (text,) in rows]


@pytest.fixture(scope="module")
def pg(db):
    with connect(db.url) as conn:
        conn.autocommit = True
        yield conn


FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
                   st.integers(-10**12, 10**12).map(lambda ms: ms / 1000),
                   st.floats(min_value=-1e16, max_value=1e16).map(lambda v: float(round(v))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(FLOATS, min_size=1, max_size=60))
def test_floats_are_spelled_as_python_repr(pg, values):
    values = [v + 0.0 for v in values]  # no negative zero: no column holds one
    assert spelled(pg, "float", "float8", values) == [dumps(v) for v in values]


def test_floats_json_cannot_hold_are_null(pg):
    values = [float("nan"), float("inf"), -float("inf"), None, 1e-05, 1.5e-07, 0.0001, 12.0, 1e15, 123.456]
    assert spelled(pg, "float", "float8", values) == ["null"] * 4 + [dumps(v) for v in values[4:]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 30),
                             timezones=st.just(UTC)), min_size=1, max_size=60))
def test_instants_are_spelled_as_the_json_export_writes_them(pg, values):
    assert spelled(pg, "instant", "timestamptz", values) == [f'"{utc_text(v)}"' for v in values]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")), min_size=1,
                max_size=30))
def test_text_is_spelled_as_the_json_export_writes_it(pg, values):
    assert spelled(pg, "text", "text", values) == [dumps(v) for v in values]
