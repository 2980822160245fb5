"""Control characters (NUL, CR/LF, C1) and bidirectional overrides (U+202E) in bot ids,
channels and ingested names: refused with the field named, never printed in a report."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from botreports import ValidationError
from botreports.core.analytics_schema import validate_event

UNSAFE = ["\x00", "\r", "\n", "\t", "\u202e", "\x85", "\x9b", "\x1b", "\u2066", "\x7f"]


def lines(*events):
    return [json.dumps(e) + "\n" for e in events]


@pytest.mark.parametrize("character", UNSAFE)
def test_ingested_names_with_control_or_bidi_characters_are_refused(reports, principal_factory, character):
    """A bot named ``Support\\u202eexe.pdf`` would print reversed in every report that names it."""
    bot = {"table": "bots", "id": "bot-new", "name": f"Support{character}fdp.exe", "created_at": "2025-01-30T10:00:00Z"}
    conversation = {"table": "conversations", "id": "conv-new", "bot_id": "bot-new", "user_id": "u-1",
                    "channel": f"web{character}", "started_at": "2025-01-30T10:00:00Z", "status": "open"}
    result = reports.ingest(principal_factory("admin"), lines(bot, conversation), batch_size=1)
    assert result["inserted"] == {}
    code = f"U+{ord(character):04X}"
    assert [(e["line"], e["problem"].split(" ", 1)[0]) for e in result["errors"]] == [(1, "name"), (2, "channel")]
    assert all(code in e["problem"] for e in result["errors"])


@pytest.mark.parametrize("character", UNSAFE)
@pytest.mark.parametrize("field, value, named", [
    ("bot_id", "bot-001{}", "bot_id"), ("bot_id", ["bot-001", "bot{}"], "bot_id[1]"), ("channel", "web{}", "channel")])
def test_report_parameters_with_control_or_bidi_characters_are_refused(reports, character, field, value, named):
    value = value.format(character) if isinstance(value, str) else [v.format(character) for v in value]
    with pytest.raises(ValidationError) as caught:
        reports.validate({"type": "usage", "period": "last_7_days", "format": "json", field: value})
    assert [d["field"] for d in caught.value.details] == [named]
    assert f"U+{ord(character):04X}" in caught.value.details[0]["problem"]


def test_ordinary_names_in_any_script_are_accepted(reports):
    spec = reports.validate({"type": "usage", "period": "last_7_days", "format": "json",
                             "bot_id": ["Атака-бот", "ボット", "بوت"], "channel": "WhatsApp Business"})
    assert spec.bot_ids == ("Атака-бот", "ボット", "بوت")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_every_ingested_text_that_is_accepted_prints_as_itself(text):
    """For all text: either refused naming the field, or free of controls and bidi controls."""
    event = {"table": "bots", "id": "b", "org_id": "o", "name": text, "created_at": 0}
    try:
        _, row = validate_event(event)
    except ValueError as exc:
        assert str(exc).startswith("name ")
        return
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e
                   or 0x2066 <= ord(c) <= 0x2069 for c in row["name"])
