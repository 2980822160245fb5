"""Usage queries of the SQLite source beyond the totals: the weekday x hour
grid, breakdowns per bot and channel, top users and the per-bot-per-day raw
rows. Mixed into ``SqliteAnalytics``; every query groups in SQLite."""
from __future__ import annotations

from typing import Dict, Iterator, List

from ...core.datasource import BREAKDOWNS
from ...core.models import Scope
from .sqlite_rollups import BUCKET_MS
from .sql_time import day_from_number, instant_from_ms, local_day_sql, local_weekday_hour_sql

_KEYS = {"bot": "bot_id", "channel": "channel"}

#: Aggregates over ``llm_calls l`` and the same aggregate over ``rollup_llm l`` (sums of sums).
_LLM_ROLLED = (
    ("sum(l.input_tokens + l.output_tokens)", "sum(l.tokens)"),
    ("count(*)", "sum(l.calls)"),
    ("coalesce(sum(l.success = 0), 0)", "coalesce(sum(l.failures), 0)"),
)


class UsageQueries:
    """Usage sections' queries (see ``core.datasource.AnalyticsSource``)."""

    def activity_grid(self, scope: Scope) -> List[dict]:
        cells: Dict[tuple, dict] = {}

        def cell(weekday, hour):
            return cells.setdefault((weekday, hour), {"weekday": weekday, "hour": hour, "messages_in": 0,
                                                      "messages_out": 0, "conversations": 0})

        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            weekday, hour, time_params = local_weekday_hour_sql(f"(bucket * {BUCKET_MS})", scope.period)
            sql = (f"SELECT {weekday} AS wd, {hour} AS hr, sum(messages_in), sum(messages_out)"
                   f" FROM rollup_messages WHERE {where} GROUP BY wd, hr")
        else:
            where, params = self.scoped("messages", scope)
            weekday, hour, time_params = local_weekday_hour_sql("created_at", scope.period)
            sql = (f"SELECT {weekday} AS wd, {hour} AS hr, sum(direction = 'in'), sum(direction = 'out')"
                   f" FROM messages WHERE {where} GROUP BY wd, hr")
        for wd, hr, m_in, m_out in self.query(sql, time_params + params):
            cell(wd, hr).update(messages_in=m_in, messages_out=m_out)
        table, start, count, where, params = self.counted_conversations(scope)
        weekday, hour, time_params = local_weekday_hour_sql(start, scope.period)
        for wd, hr, count in self.query(
                f"SELECT {weekday} AS wd, {hour} AS hr, {count} FROM {table} WHERE {where}"
                f" GROUP BY wd, hr", time_params + params):
            cell(wd, hr)["conversations"] = count
        return [cells[key] for key in sorted(cells)]

    def usage_breakdown(self, scope: Scope, dimension: str) -> List[dict]:
        if dimension not in BREAKDOWNS:
            raise ValueError(f"dimension must be one of {', '.join(BREAKDOWNS)}")
        key = _KEYS[dimension]
        rows: Dict[str, dict] = {}

        def row(value):
            return rows.setdefault(value, {"key": value, "conversations": 0, "messages_in": 0, "messages_out": 0,
                                           "active_users": 0, "tokens": 0, "cost_usd": 0.0})

        table, _, count, where, params = self.counted_conversations(scope)
        for value, count in self.query(f"SELECT {key}, {count} FROM {table} WHERE {where} GROUP BY 1", params):
            row(value)["conversations"] = count
        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            for value, m_in, m_out in self.query(
                    f"SELECT {key}, sum(messages_in), sum(messages_out) FROM rollup_messages WHERE {where}"
                    f" GROUP BY 1", params):
                row(value).update(messages_in=m_in, messages_out=m_out)
            for value, users in self.query(self.distinct_users_sql(scope, where, key), params):
                row(value)["active_users"] = users
        else:
            where, params = self.scoped("messages", scope)
            for value, m_in, m_out, users in self.query(
                    f"SELECT {key}, sum(direction = 'in'), sum(direction = 'out'),"
                    f" count(DISTINCT CASE WHEN direction = 'in' THEN user_id END)"
                    f" FROM messages WHERE {where} GROUP BY 1", params):
                row(value).update(messages_in=m_in, messages_out=m_out, active_users=users)
        for value, tokens, cost in self.llm_grouped(scope, key, "sum(l.input_tokens + l.output_tokens),"
                                                               " sum(l.cost_usd)"):
            entry = row(value)
            entry.update(tokens=tokens or 0, cost_usd=round(cost or 0.0, 6))
        return sorted(rows.values(), key=lambda r: (-r["messages_in"], -r["conversations"], str(r["key"])))

    def llm_grouped(self, scope: Scope, key: str, aggregates: str, extra_where: str = "",
                    extra_params=(), group_params=()) -> List[tuple]:
        """``SELECT key, aggregates FROM llm_calls l GROUP BY key``; a channel key comes from the
        call's conversation (calls without one count under channel None). ``aggregates`` name the
        ``l.`` columns of ``llm_calls``; over the rollup each becomes the sum of its cells' sums."""
        rolled = self.rolled(scope)
        if rolled and not extra_where:
            where, params = rolled
            for column, summed in _LLM_ROLLED:
                aggregates = aggregates.replace(column, summed)
            return self.query(f"SELECT {key}, {aggregates} FROM rollup_llm l WHERE {where} GROUP BY 1",
                              list(group_params) + params)
        where, params = self.scoped("llm_calls", scope, alias="l")
        if key == "channel":
            sql = (f"SELECT c.channel, {aggregates} FROM llm_calls l LEFT JOIN conversations c"
                   f" ON c.id = l.conversation_id WHERE {where}{extra_where} GROUP BY 1")
        else:
            sql = f"SELECT l.{key}, {aggregates} FROM llm_calls l WHERE {where}{extra_where} GROUP BY 1"
        return self.query(sql, list(params) + list(extra_params))

    def top_users(self, scope: Scope, limit: int) -> List[dict]:
        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            # In user order the grouping needs no sort; only the users are then ranked.
            walk = " INDEXED BY rollup_users_user" if self.walks_history(scope, "rollup_users_user") else ""
            sql = (f"SELECT user_id, sum(messages_in) AS n, min(first_at), max(last_at) FROM rollup_users{walk}"
                   f" WHERE {where} GROUP BY user_id ORDER BY n DESC, user_id LIMIT ?")
        else:
            where, params = self.scoped("messages", scope)
            sql = (f"SELECT user_id, count(*) AS n, min(created_at), max(created_at) FROM messages"
                   f" WHERE {where} AND direction = 'in' GROUP BY user_id ORDER BY n DESC, user_id LIMIT ?")
        top = self.query(sql, params + [int(limit)])
        if not top:
            return []
        where, params = self.scoped("conversations", scope)
        marks = ", ".join("?" for _ in top)
        conversations = dict(self.query(
            f"SELECT user_id, count(*) FROM conversations WHERE {where} AND user_id IN ({marks})"
            f" GROUP BY user_id", params + [row[0] for row in top]))
        return [{"user_id": user, "messages_in": n, "conversations": conversations.get(user, 0),
                 "first_at": instant_from_ms(first), "last_at": instant_from_ms(last)}
                for user, n, first, last in top]

    def bot_names(self, scope: Scope) -> Dict[str, str]:
        if scope.org_id is None:
            return dict(self.query("SELECT id, name FROM bots"))
        return dict(self.query("SELECT id, name FROM bots WHERE org_id = ?", [scope.org_id]))

    def usage_rows(self, scope: Scope) -> Iterator[dict]:
        cells: Dict[tuple, dict] = {}

        def cell(day, bot):
            return cells.setdefault((day, bot), {
                "day": day_from_number(day), "bot_id": bot, "conversations": 0, "messages_in": 0,
                "messages_out": 0, "active_users": 0, "errors": 0, "tokens": 0, "cost_usd": 0.0})

        table, start, count, where, params = self.counted_conversations(scope)
        day_sql, day_params = local_day_sql(start, scope.period)
        for day, bot, count in self.query(
                f"SELECT {day_sql} AS d, bot_id, {count} FROM {table} WHERE {where} GROUP BY d, bot_id",
                day_params + params):
            cell(day, bot)["conversations"] = count
        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            day_sql, day_params = local_day_sql(f"(bucket * {BUCKET_MS})", scope.period)
            for day, bot, m_in, m_out, errors in self.query(
                    f"SELECT {day_sql} AS d, bot_id, sum(messages_in), sum(messages_out), sum(errors)"
                    f" FROM rollup_messages WHERE {where} GROUP BY d, bot_id", day_params + params):
                cell(day, bot).update(messages_in=m_in, messages_out=m_out, errors=errors)
            for day, bot, users in self.query(
                    f"SELECT {day_sql} AS d, bot_id, count(DISTINCT user_id) FROM rollup_users WHERE {where}"
                    f" GROUP BY d, bot_id", day_params + params):
                cell(day, bot)["active_users"] = users
            llm_sql = (f"SELECT {day_sql} AS d, bot_id, sum(tokens), sum(cost_usd) FROM rollup_llm"
                       f" WHERE {where} GROUP BY d, bot_id")
        else:
            where, params = self.scoped("messages", scope)
            day_sql, day_params = local_day_sql("created_at", scope.period)
            for day, bot, m_in, m_out, users, errors in self.query(
                    f"SELECT {day_sql} AS d, bot_id, sum(direction = 'in'), sum(direction = 'out'),"
                    f" count(DISTINCT CASE WHEN direction = 'in' THEN user_id END), coalesce(sum(is_error), 0)"
                    f" FROM messages WHERE {where} GROUP BY d, bot_id", day_params + params):
                cell(day, bot).update(messages_in=m_in, messages_out=m_out, active_users=users, errors=errors)
            where, params = self.scoped("llm_calls", scope)
            day_sql, day_params = local_day_sql("created_at", scope.period)
            llm_sql = (f"SELECT {day_sql} AS d, bot_id, sum(input_tokens + output_tokens), sum(cost_usd)"
                       f" FROM llm_calls WHERE {where} GROUP BY d, bot_id")
        for day, bot, tokens, cost in self.query(llm_sql, day_params + params):
            cell(day, bot).update(tokens=tokens or 0, cost_usd=round(cost or 0.0, 6))
        for key in sorted(cells):
            yield cells[key]
