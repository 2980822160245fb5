"""Independent computations over an analytics file, for checking report numbers.

Deliberately naive: plain SQL over whole tables plus Python's zoneinfo per row,
sharing no code with the data source being checked.
"""
import datetime as dt
import sqlite3
from collections import defaultdict
from zoneinfo import ZoneInfo


def instant(day: str, tz: str, plus_days: int = 0) -> int:
    """Epoch ms of local midnight of ``day`` (+ days) in ``tz``."""
    d = dt.date.fromisoformat(day) + dt.timedelta(days=plus_days)
    return int(dt.datetime.combine(d, dt.time(0), tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def local_day(ms: int, tz: str) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).date().isoformat()


def usage(path, start_day, end_day, tz, org=None):
    """Totals and per-day usage of ``[start_day, end_day]`` (inclusive local dates)."""
    lo, hi = instant(start_day, tz), instant(end_day, tz, 1)
    conn = sqlite3.connect(path)
    org_clause, org_args = ("AND org_id = ?", [org]) if org else ("", [])
    totals = {
        "conversations": conn.execute(
            f"SELECT count(*) FROM conversations WHERE started_at >= ? AND started_at < ? {org_clause}",
            [lo, hi, *org_args]).fetchone()[0],
        "messages_in": conn.execute(
            f"SELECT count(*) FROM messages WHERE direction = 'in' AND created_at >= ? AND created_at < ? {org_clause}",
            [lo, hi, *org_args]).fetchone()[0],
        "messages_out": conn.execute(
            f"SELECT count(*) FROM messages WHERE direction = 'out' AND created_at >= ? AND created_at < ? {org_clause}",
            [lo, hi, *org_args]).fetchone()[0],
        "active_users": conn.execute(
            f"SELECT count(DISTINCT user_id) FROM messages WHERE direction = 'in' AND created_at >= ?"
            f" AND created_at < ? {org_clause}", [lo, hi, *org_args]).fetchone()[0],
    }
    first_seen = dict(conn.execute(
        f"SELECT user_id, min(created_at) FROM messages WHERE direction = 'in' {org_clause} GROUP BY user_id",
        org_args).fetchall())
    new = [ms for ms in first_seen.values() if lo <= ms < hi]
    totals["new_users"] = len(new)
    tokens, cost = conn.execute(
        f"SELECT coalesce(sum(input_tokens + output_tokens), 0), coalesce(sum(cost_usd), 0) FROM llm_calls"
        f" WHERE created_at >= ? AND created_at < ? {org_clause}", [lo, hi, *org_args]).fetchone()
    totals["tokens"], totals["cost_usd"] = tokens, cost

    daily = defaultdict(lambda: {"conversations": 0, "messages_in": 0, "messages_out": 0, "users": set(),
                                 "new_users": 0})
    for (started,) in conn.execute(
            f"SELECT started_at FROM conversations WHERE started_at >= ? AND started_at < ? {org_clause}",
            [lo, hi, *org_args]):
        daily[local_day(started, tz)]["conversations"] += 1
    for created, direction, user in conn.execute(
            f"SELECT created_at, direction, user_id FROM messages WHERE created_at >= ? AND created_at < ? {org_clause}",
            [lo, hi, *org_args]):
        row = daily[local_day(created, tz)]
        row["messages_" + direction] += 1
        if direction == "in":
            row["users"].add(user)
    for ms in new:
        daily[local_day(ms, tz)]["new_users"] += 1
    conn.close()
    per_day = {day: {"conversations": v["conversations"], "messages_in": v["messages_in"],
                     "messages_out": v["messages_out"], "active_users": len(v["users"]),
                     "new_users": v["new_users"]} for day, v in daily.items()}
    return totals, per_day
