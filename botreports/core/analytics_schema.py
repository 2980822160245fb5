"""The canonical analytics schema (DESIGN §5) that every data source presents.

Timestamps are UTC; in the SQLite source they are integer Unix epoch
milliseconds. Ingest validates events against these definitions, and the
custom-metric compiler uses them as its allow-list.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional

import attrs

from .convert import unicode_problem, unsafe_character_problem


@attrs.frozen
class ColumnSpec:
    """One column: its kind (text, integer, number, boolean, timestamp) and rules."""

    name: str
    kind: str
    required: bool = False
    choices: Optional[tuple] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None


def _cols(*specs):
    return {spec.name: spec for spec in specs}


C = ColumnSpec
TABLES: Dict[str, Dict[str, ColumnSpec]] = {
    "bots": _cols(
        C("id", "text", True), C("org_id", "text", True), C("name", "text", True),
        C("created_at", "timestamp", True)),
    "conversations": _cols(
        C("id", "text", True), C("org_id", "text", True), C("bot_id", "text", True),
        C("user_id", "text", True), C("channel", "text", True), C("started_at", "timestamp", True),
        C("ended_at", "timestamp"),
        C("status", "text", True, ("resolved", "abandoned", "handed_off", "open")),
        C("satisfaction", "integer", False, None, 1, 5), C("message_count", "integer", False, None, 0)),
    "messages": _cols(
        C("id", "text", True), C("org_id", "text", True), C("conversation_id", "text", True),
        C("bot_id", "text", True), C("channel", "text", True), C("user_id", "text", True),
        C("direction", "text", True, ("in", "out")), C("created_at", "timestamp", True),
        C("latency_ms", "integer", False, None, 0), C("tokens", "integer", False, None, 0),
        C("intent", "text"), C("is_error", "boolean")),
    "llm_calls": _cols(
        C("id", "text", True), C("org_id", "text", True), C("bot_id", "text", True),
        C("conversation_id", "text"), C("model", "text", True), C("created_at", "timestamp", True),
        C("input_tokens", "integer", False, None, 0), C("output_tokens", "integer", False, None, 0),
        C("latency_ms", "integer", False, None, 0), C("success", "boolean"),
        C("cost_usd", "number", False, None, 0)),
    "system_samples": _cols(
        C("org_id", "text", True), C("host", "text", True), C("created_at", "timestamp", True),
        C("cpu_pct", "number", False, None, 0, 100), C("mem_pct", "number", False, None, 0, 100),
        C("requests", "integer", False, None, 0), C("errors", "integer", False, None, 0),
        C("p95_ms", "number", False, None, 0)),
    "audit_events": _cols(
        C("id", "text", True), C("org_id", "text", True), C("bot_id", "text"),
        C("created_at", "timestamp", True), C("actor", "text", True), C("action", "text", True),
        C("resource_type", "text"), C("resource_id", "text"),
        C("result", "text", True, ("allowed", "denied", "error")), C("ip", "text")),
}
del C


def to_epoch_ms(value: Any) -> int:
    """An ISO 8601 string (naive = UTC) or epoch milliseconds -> epoch milliseconds."""
    if isinstance(value, bool):
        raise ValueError("must be an ISO 8601 datetime or epoch milliseconds")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 datetime") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return int(parsed.timestamp() * 1000)
    raise ValueError("must be an ISO 8601 datetime or epoch milliseconds")


def validate_value(spec: ColumnSpec, value: Any) -> Any:
    """Check and normalise one value for storage; ``ValueError`` says what is wrong."""
    if value is None:
        if spec.required:
            raise ValueError("is required")
        return None
    if spec.kind == "timestamp":
        return to_epoch_ms(value)
    if spec.kind == "text":
        if not isinstance(value, str):
            raise ValueError("must be a string")
        problem = unicode_problem(value)
        if problem:  # SQLite stores UTF-8: a lone surrogate would fail the whole batch later
            raise ValueError(problem)
        # Ids, names and channels are printed in reports, file names and logs as they are.
        problem = unsafe_character_problem(value)
        if problem:
            raise ValueError(problem)
        if spec.choices and value not in spec.choices:
            raise ValueError(f"must be one of {', '.join(spec.choices)}")
        return value
    if spec.kind == "boolean":
        if not isinstance(value, bool) and value not in (0, 1):
            raise ValueError("must be true or false")
        return int(value)
    if spec.kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be {'an integer' if spec.kind == 'integer' else 'a number'}")
        if spec.kind == "integer" and not float(value).is_integer():
            raise ValueError("must be an integer")
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"must be at least {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"must be at most {spec.maximum:g}")
        return int(value) if spec.kind == "integer" else float(value)
    raise ValueError(f"unsupported kind {spec.kind}")


def validate_event(event: Any) -> tuple:
    """An ingest line ``{"table": ..., col: value, ...}`` -> ``(table, row)``."""
    if not isinstance(event, dict):
        raise ValueError("must be a JSON object")
    table = event.get("table")
    if not isinstance(table, str) or table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}")
    specs = TABLES[table]
    extra = sorted(set(event) - set(specs) - {"table"})
    if extra:
        raise ValueError(f"unknown field(s) for {table}: {', '.join(extra)}")
    row = {}
    for name, spec in specs.items():
        try:
            row[name] = validate_value(spec, event.get(name))
        except ValueError as exc:
            raise ValueError(f"{name} {exc}") from None
    # A conversation cannot end before it starts: its duration would count as negative in
    # every duration metric (percentiles, longest conversations) instead of being refused here.
    if table == "conversations" and row["ended_at"] is not None and row["ended_at"] < row["started_at"]:
        raise ValueError("ended_at must not be before started_at")
    return table, row
