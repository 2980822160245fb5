"""The botserver source's data watermark: the newest instant botserver wrote in each table
an organisation's reports read, and the state of the rollups botreports keeps beside them.

botserver's ids are UUIDs (no ``max(id)``), but every table has an index on its time
column, so each instant is one step down an index: ``ORDER BY ... DESC LIMIT 1``.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, Optional

from .botserver_views import as_uuid

#: The organisation's bots (all bots for the local system), as a condition on ``bot_id``.
_ORG_BOTS = "bot_id IN (SELECT id FROM bots WHERE org_id = %(org)s::uuid)"

#: ``(name, SQL)``: the newest instant of each table, restricted to the organisation by ``{org}``.
NEWEST = (
    ("bots", "SELECT created_at FROM bots WHERE TRUE {org_self} ORDER BY created_at DESC LIMIT 1"),
    ("user_sessions", "SELECT updated_at FROM user_sessions WHERE TRUE {org} ORDER BY updated_at DESC LIMIT 1"),
    ("message_history", "SELECT created_at FROM message_history WHERE TRUE {org_sessions}"
                        " ORDER BY created_at DESC LIMIT 1"),
    ("llm_metrics", "SELECT timestamp FROM llm_metrics WHERE TRUE {org} ORDER BY timestamp DESC LIMIT 1"),
    ("compliance_audit_log", "SELECT created_at FROM compliance_audit_log WHERE TRUE {org}"
                             " ORDER BY created_at DESC LIMIT 1"),
)


def _text(value) -> Optional[str]:
    if not isinstance(value, dt.datetime):
        return None if value is None else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def read_watermark(query: Callable, org_id: Optional[str], rollup_state: Optional[dict]) -> dict:
    """``{"organization", "tables": {table: {"newest"}}, "newest_event", "rollups"}`` through
    ``query(sql, params)``. Rows botserver deletes, or edits without a newer instant, do not move
    it: a verification still computes every number again and compares them."""
    params = {"org": as_uuid(org_id) if org_id is not None else None}
    scoped = org_id is not None
    filters = {
        "org_self": " AND org_id = %(org)s::uuid" if scoped else "",
        "org": f" AND {_ORG_BOTS}" if scoped else "",
        "org_sessions": f" AND session_id IN (SELECT id FROM user_sessions WHERE {_ORG_BOTS})" if scoped else "",
    }
    tables = {}
    for name, sql in NEWEST:
        rows = query(sql.format(**filters), params)
        tables[name] = {"newest": _text(rows[0][0]) if rows else None}
    events = [entry["newest"] for name, entry in tables.items() if name != "bots" and entry["newest"]]
    rollups = None
    if rollup_state:
        rollups = {"generation": rollup_state.get("generation"),
                   "covered_until": _text(rollup_state.get("covered_until"))}
    return {"organization": org_id, "tables": tables, "newest_event": max(events) if events else None,
            "rollups": rollups}
