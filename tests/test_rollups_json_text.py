"""The conversations raw table read as JSON text holds the same cells as its typed rows."""
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from botreports.core.models import Period, Scope
from botreports.plugins.exporters.json_exporter import dumps
from botreports.plugins.sources.sql_stats import histogram_percentiles
from botreports.plugins.sources.sqlite import SqliteAnalytics
from botreports.plugins.sources.sqlite_conversation_table import ConversationTableRows
from botreports.plugins.sources.synthetic import generate

UTC = dt.timezone.utc


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kathmandu"])
def test_conversation_json_text_equals_the_typed_rows_as_json(tmp_path, zone):
    path = tmp_path / "a.db"
    generate(path, days=10, bots=4, messages=5_000, seed=7, end_date=dt.date(2025, 1, 31))
    tz = ZoneInfo(zone)
    period = Period(dt.datetime(2025, 1, 22, tzinfo=tz).astimezone(UTC),
                    dt.datetime(2025, 2, 1, tzinfo=tz).astimezone(UTC), zone)
    # Labels with a quote, a backslash, a control character and non-ASCII text must stay JSON.
    table = SqliteAnalytics(path).conversation_table_rows(Scope(org_id=None, period=period),
                                                          lambda u: f'<{u}> "ü\\\n'.replace("u7", "\x01"))
    typed = list(table)
    assert len(typed) > 100
    assert table.stored_json  # the file keeps each row's JSON ready
    texts = list(table.json_text(37))
    assert len(texts) > len(typed) // 100  # in stretches of tens of rows
    assert json.loads("[" + ",".join(texts) + "]") == json.loads(dumps(typed))
    # A file without the kept JSON has SQLite write it at read time: the same text.
    computed = ConversationTableRows(table.source, table.columns, table.from_where, table.params, table.user_label,
                                     table.span)
    assert ",".join(computed.json_text(37)) == ",".join(texts)
    assert any(row[11] is not None and row[11] != int(row[11]) for row in typed)  # real averages compared


def test_histogram_percentiles_are_the_nearest_rank():
    values = [5, 1, 1, 3, 9, 9, 9, 2]
    histogram = [(v, values.count(v)) for v in set(values)] + [(None, 4)]
    ordered = sorted(values)
    expected = {p: ordered[max(0, -(-p * len(values) // 100) - 1)] for p in (1, 50, 90, 100)}
    assert histogram_percentiles(histogram, (1, 50, 90, 100)) == expected
    assert histogram_percentiles([], (50, 90)) == {50: None, 90: None}


def test_json_text_of_a_user_id_holding_the_mark_is_still_each_row(tmp_path):
    """A stretch whose text cannot be split back (a user's id holding the control character
    that marks ids) is read again row by row: same rows, same order."""
    path = tmp_path / "a.db"
    generate(path, days=3, bots=2, messages=2_000, seed=3, end_date=dt.date(2025, 1, 31))
    source = SqliteAnalytics(path)
    started = int(dt.datetime(2025, 1, 30, 12, tzinfo=UTC).timestamp() * 1000)
    source.write_events([("conversations", {
        "id": f"c-odd-{n}", "org_id": "org-acme", "bot_id": "bot-001", "user_id": f"odd\x1fuser\x1f{n}",
        "channel": "web", "started_at": started + n, "ended_at": None, "status": "open", "satisfaction": None,
        "message_count": 0}) for n in range(3)])
    period = Period(dt.datetime(2025, 1, 29, tzinfo=UTC), dt.datetime(2025, 2, 1, tzinfo=UTC), "UTC")
    table = source.conversation_table_rows(Scope(org_id=None, period=period), lambda u: u.replace("\x1f", "|"))
    typed = list(table)
    assert [row[3] for row in typed if row[0].startswith("c-odd-")] == ["odd|user|0", "odd|user|1", "odd|user|2"]
    assert json.loads("[" + ",".join(table.json_text(50)) + "]") == json.loads(dumps(typed))


def test_read_ahead_keeps_order_passes_errors_on_and_stops_its_producer():
    import threading

    from botreports.plugins.sources.read_ahead import read_ahead

    assert list(read_ahead(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("broken stretch")

    items = read_ahead(failing())
    assert next(items) == 1
    with pytest.raises(ValueError, match="broken stretch"):
        next(items)

    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    items = read_ahead(endless(), depth=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()  # the caller stops early: the producer is told, closes its source and ends
    assert closed.is_set()
    assert not any(t.name == "botreports-read-ahead" for t in threading.enumerate())
