"""Usage queries of the SQLite source beyond the totals: the weekday x hour
grid, breakdowns per bot and channel, top users and the per-bot-per-day raw
rows. Mixed into ``SqliteAnalytics``; every query groups in SQLite."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Sequence, Tuple

from ...core.datasource import BREAKDOWNS
from ...core.models import Scope
from .sqlite_rollups import BUCKET_MS, REPLY_ERRORS
from .sql_time import day_from_number, instant_from_ms, local_day_sql, local_weekday_hour_sql

_KEYS = {"bot": "bot_id", "channel": "channel"}

#: The sums of a cell of ``UsageQueries.llm_cells``, by position after its four keys.
LLM_SUMS = {name: 4 + k for k, name in enumerate(
    ("calls", "failures", "input_tokens", "output_tokens", "tokens", "cost_usd"))}


def fold_llm(cells: Iterable[tuple], key: Callable[[tuple], Any], columns: Sequence[str]) -> Dict[Any, list]:
    """The sums of ``columns`` of LLM cells per ``key(cell)``, as SQL's ``sum`` gives them: NULLs
    skipped, None where every value was NULL. No cells, no keys (as GROUP BY of no rows)."""
    at = [LLM_SUMS[name] for name in columns]
    sums: Dict[Any, list] = {}
    for cell in cells:
        group = key(cell)
        acc = sums.get(group)
        if acc is None:
            acc = sums[group] = [None] * len(at)
        for j, i in enumerate(at):
            if cell[i] is not None:
                acc[j] = cell[i] if acc[j] is None else acc[j] + cell[i]
    return sums


class UsageQueries:
    """Usage sections' queries (see ``core.datasource.AnalyticsSource``)."""

    def llm_cells(self, scope: Scope, rolled: Tuple[str, list]) -> List[tuple]:
        """``(local day, bot, channel, model, calls, failures, input tokens, output tokens, tokens,
        cost)`` of a scope's LLM calls, from the rollup (``rolled``: its WHERE clause for the
        scope). Usage and performance fold these few thousand sums per total, bot, channel,
        day and model, so the rollup's cells of the period are read (and sorted) once for all
        of them (``kept``) instead of once per question."""
        def read():
            where, params = rolled
            day_sql, day_params = local_day_sql(f"(bucket * {BUCKET_MS})", scope.period)
            return self.query(
                f"SELECT {day_sql} AS d, bot_id, channel, model, sum(calls), sum(failures), sum(input_tokens),"
                f" sum(output_tokens), sum(tokens), sum(cost_usd) FROM rollup_llm WHERE {where}"
                f" GROUP BY d, bot_id, channel, model", day_params + params)

        return self.kept("llm_cells", scope, read)

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
        if rolled:
            at = 1 if key == "bot_id" else 2
            llm = [(value, *sums) for value, sums in fold_llm(
                self.llm_cells(scope, rolled), lambda cell: cell[at], ("tokens", "cost_usd")).items()]
        else:
            llm = self.llm_grouped(scope, key, "sum(l.input_tokens + l.output_tokens), sum(l.cost_usd)")
        for value, tokens, cost in llm:
            entry = row(value)
            entry.update(tokens=tokens or 0, cost_usd=round(cost or 0.0, 6))
        return sorted(rows.values(), key=lambda r: (-r["messages_in"], -r["conversations"], str(r["key"])))

    def llm_grouped(self, scope: Scope, key: str, aggregates: str) -> List[tuple]:
        """``SELECT key, aggregates FROM llm_calls l GROUP BY key`` over the scope's calls themselves
        (the rollup's answers are folded from ``llm_cells``); a channel key comes from the call's
        conversation (calls without one count under channel None). ``aggregates`` name the ``l.``
        columns of ``llm_calls``."""
        where, params = self.scoped("llm_calls", scope, alias="l")
        if key == "channel":
            sql = (f"SELECT c.channel, {aggregates} FROM llm_calls l LEFT JOIN conversations c"
                   f" ON c.id = l.conversation_id WHERE {where} GROUP BY 1")
        else:
            sql = f"SELECT l.{key}, {aggregates} FROM llm_calls l WHERE {where} GROUP BY 1"
        return self.query(sql, params)

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
                    f"SELECT {day_sql} AS d, bot_id, sum(messages_in), sum(messages_out), sum(reply_errors)"
                    f" FROM rollup_messages WHERE {where} GROUP BY d, bot_id", day_params + params):
                cell(day, bot).update(messages_in=m_in, messages_out=m_out, errors=errors)
            for day, bot, users in self.query(
                    f"SELECT {day_sql} AS d, bot_id, count(DISTINCT user_id) FROM rollup_users WHERE {where}"
                    f" GROUP BY d, bot_id", day_params + params):
                cell(day, bot)["active_users"] = users
            llm = [(*key, *sums) for key, sums in fold_llm(
                self.llm_cells(scope, rolled), lambda cell: cell[:2], ("tokens", "cost_usd")).items()]
        else:
            where, params = self.scoped("messages", scope)
            day_sql, day_params = local_day_sql("created_at", scope.period)
            for day, bot, m_in, m_out, users, errors in self.query(
                    f"SELECT {day_sql} AS d, bot_id, sum(direction = 'in'), sum(direction = 'out'),"
                    f" count(DISTINCT CASE WHEN direction = 'in' THEN user_id END), {REPLY_ERRORS}"
                    f" FROM messages WHERE {where} GROUP BY d, bot_id", day_params + params):
                cell(day, bot).update(messages_in=m_in, messages_out=m_out, active_users=users, errors=errors)
            where, params = self.scoped("llm_calls", scope)
            day_sql, day_params = local_day_sql("created_at", scope.period)
            llm = self.query(f"SELECT {day_sql} AS d, bot_id, sum(input_tokens + output_tokens), sum(cost_usd)"
                             f" FROM llm_calls WHERE {where} GROUP BY d, bot_id", day_params + params)
        for day, bot, tokens, cost in llm:
            cell(day, bot).update(tokens=tokens or 0, cost_usd=round(cost or 0.0, 6))
        for key in sorted(cells):
            yield cells[key]
