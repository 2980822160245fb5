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
    assert len(texts) == -(-len(typed) // 37)
    assert json.loads("[" + ",".join(texts) + "]") == json.loads(dumps(typed))
    # A file without the kept JSON has SQLite write it at read time: the same text.
    computed = ConversationTableRows(table.source, table.columns, table.rest, table.params, table.user_label)
    assert list(computed.json_text(37)) == texts
    assert any(row[11] is not None and row[11] != int(row[11]) for row in typed)  # real averages compared


def test_histogram_percentiles_are_the_nearest_rank():
    values = [5, 1, 1, 3, 9, 9, 9, 2]
    histogram = [(v, values.count(v)) for v in set(values)] + [(None, 4)]
    ordered = sorted(values)
    expected = {p: ordered[max(0, -(-p * len(values) // 100) - 1)] for p in (1, 50, 90, 100)}
    assert histogram_percentiles(histogram, (1, 50, 90, 100)) == expected
    assert histogram_percentiles([], (50, 90)) == {50: None, 90: None}
