"""Performance queries of the SQLite source: reply latency percentiles, error
rates, LLM calls per model, throughput peaks, system health and the
per-bot-per-hour raw rows. Mixed into ``SqliteAnalytics``."""
from __future__ import annotations

import itertools
from typing import Dict, Iterator, List, Optional

from ...core.datasource import LATENCY_GROUPS
from ...core.models import Scope
from .sql_stats import histogram_row, percentile_row, percentile_sql
from .sql_time import day_from_number, epoch_ms, instant_from_ms, local_day_sql, local_hour_sql
from .sqlite_rollups import BUCKET_MS, REPLY_ERRORS, REPLY_LATENCY
from .sqlite_usage import fold_llm

_COLUMNS = {"bot": "bot_id", "channel": "channel"}
#: Groupings of reply latency answered together from one histogram of a scope's replies.
_HISTOGRAM_GROUPS = (None, "day", "bot")


class PerformanceQueries:
    """Performance sections' queries (see ``core.datasource.AnalyticsSource``)."""

    def _group(self, scope: Scope, group: Optional[str], column: str):
        """``(sql, params, to_key)`` of a grouping of ``column``'s table."""
        if group not in LATENCY_GROUPS:
            raise ValueError(f"group must be one of {', '.join(map(str, LATENCY_GROUPS))}")
        if group is None:
            return "NULL", [], lambda value: None
        if group == "day":
            sql, params = local_day_sql(column, scope.period)
            return sql, params, day_from_number
        return _COLUMNS[group], [], lambda value: value

    def reply_latency(self, scope: Scope, group: Optional[str] = None) -> List[dict]:
        rolled = self.rolled(scope)
        if rolled and not self.query(
                f"SELECT 1 FROM rollup_messages WHERE {rolled[0]} AND reply_latency_n > 0 LIMIT 1", rolled[1]):
            self._group(scope, group, "created_at")  # still reject an unknown group
            return []
        if group in _HISTOGRAM_GROUPS:
            # Copies: the kept rows must not change with what a caller does to its answer.
            return [dict(row) for row in self._latency_histogram(scope, rolled)[group]]
        where, params = self.scoped("messages", scope)
        group_sql, group_params, to_key = self._group(scope, group, "created_at")
        if group in _COLUMNS:
            # Grouping by a bare column tempts the planner into a bot index and a lookup of every
            # reply's row; the unary + keeps it on the covering index of replies in time order.
            group_sql = f"+{group_sql}"
        rows = self.query(percentile_sql("messages", "latency_ms", group_sql, f"{where} AND direction = 'out'"),
                          group_params + params)
        return [_latency_stats(row, to_key) for row in sorted(rows, key=lambda r: (r[0] is None, r[0]))]

    def _latency_histogram(self, scope: Scope, rolled) -> Dict[Optional[str], List[dict]]:
        """Reply latency of ``scope`` as a whole, per local day and per bot, from two exact
        histograms of the scope's replies (per day and per bot), read at the same time.

        The latency section asks for the three groupings (and the previous period's total), so
        the answers are kept (``kept``) while the file stays the same.
        """
        return self.kept("reply_latency", scope, lambda: self._read_latency_histograms(scope, rolled))

    def _read_latency_histograms(self, scope: Scope, rolled) -> Dict[Optional[str], List[dict]]:
        walk = self._walk_latency_index(scope, rolled)
        where, params = self.scoped("messages", scope, time_index=not walk)
        day_sql, day_params = local_day_sql("created_at", scope.period)
        replies = (f"FROM {'messages INDEXED BY messages_latency' if walk else 'messages'}"
                   f" WHERE {where} AND direction = 'out' AND latency_ms IS NOT NULL")
        # Two histograms, per local day and per bot, each (group, value) -> count in group order:
        # each is a sort of the replies, so the two run at once, on their own connections (the
        # database releases the interpreter lock); the scope's whole is the days' sum.
        per_day, per_bot = self.at_once(
            (f"SELECT {day_sql} AS g, latency_ms AS v, count(*) {replies} GROUP BY g, v ORDER BY g, v",
             day_params + params),
            (f"SELECT bot_id AS g, latency_ms AS v, count(*) {replies} GROUP BY g, v ORDER BY g, v", params))
        histograms = {"day": per_day, "bot": per_bot}
        whole: Dict = {}
        for _, value, count in histograms["day"]:
            whole[value] = whole.get(value, 0) + count
        histograms[None] = [(None, value, whole[value]) for value in sorted(whole)]
        to_keys = {None: lambda value: None, "day": day_from_number, "bot": lambda value: value}
        result: Dict[Optional[str], List[dict]] = {}
        for group, rows in histograms.items():
            stats = [_latency_stats(histogram_row(key, [(v, c) for _, v, c in bars]), to_keys[group])
                     for key, bars in _grouped(rows)]
            result[group] = sorted(stats, key=lambda row: (row["key"] is None, row["key"]))
        return result

    def _walk_latency_index(self, scope: Scope, rolled) -> bool:
        """Whether to read the scope's replies in latency order (``messages_latency``, every reply
        of the file, no sort) rather than in time order (only the period's, then sorted): the
        first wins once the period holds a good part of the file's replies."""
        if not rolled or not self.has_index("messages_latency"):
            return False
        inside = self.query(f"SELECT coalesce(sum(reply_latency_n), 0) FROM rollup_messages WHERE {rolled[0]}",
                            rolled[1])[0][0]
        everywhere = self.query("SELECT coalesce(sum(reply_latency_n), 0) FROM rollup_messages")[0][0]
        return inside * 3 > everywhere

    def error_counts(self, scope: Scope, group: Optional[str] = None) -> List[dict]:
        rows: Dict = {}

        def row(key):
            return rows.setdefault(key, {"key": key, "replies": 0, "errors": 0, "llm_calls": 0, "llm_failures": 0})

        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            group_sql, group_params, to_key = self._group(scope, group, f"(bucket * {BUCKET_MS})")
            messages = self.query(
                f"SELECT {group_sql} AS g, sum(messages_out), sum(reply_errors) FROM rollup_messages"
                f" WHERE {where} GROUP BY g HAVING sum(messages_out) > 0", group_params + params)
        else:
            where, params = self.scoped("messages", scope)
            group_sql, group_params, to_key = self._group(scope, group, "created_at")
            messages = self.query(
                f"SELECT {group_sql} AS g, count(*), coalesce(sum(is_error), 0) FROM messages"
                f" WHERE {where} AND direction = 'out' GROUP BY g", group_params + params)
        for key, replies, errors in messages:
            row(key).update(replies=replies, errors=errors)
        failures = "count(*), coalesce(sum(l.success = 0), 0)"
        if rolled:
            at = {None: None, "day": 0, "bot": 1, "channel": 2}[group]
            llm = [(key, calls, failed or 0) for key, (calls, failed) in fold_llm(
                self.llm_cells(scope, rolled), lambda cell: None if at is None else cell[at],
                ("calls", "failures")).items()]
        elif group in (None, "day"):
            where, params = self.scoped("llm_calls", scope, alias="l")
            group_sql, group_params, _ = self._group(scope, group, "l.created_at")
            llm = self.query(f"SELECT {group_sql} AS g, {failures} FROM llm_calls l WHERE {where} GROUP BY g",
                             group_params + params)
        else:
            llm = self.llm_grouped(scope, _COLUMNS[group], failures)
        for key, calls, failed in llm:
            row(key).update(llm_calls=calls, llm_failures=failed)
        ordered = sorted(rows.values(), key=lambda r: (r["key"] is None, str(r["key"])))
        return [{**r, "key": to_key(r["key"])} for r in ordered]

    def llm_performance(self, scope: Scope) -> List[dict]:
        # Calls per model and latency come in index order (llm_calls_model_latency), skipping to
        # the period within each: no sort, and no lookup of the table's rows.
        where, params = self.scoped("llm_calls", scope, time_index=False)
        latency = {row[0]: percentile_row(row) for row in self.query(
            percentile_sql("llm_calls", "latency_ms", "model", where), params)}
        result = []
        rolled = self.rolled(scope)
        if rolled:
            per_model = fold_llm(self.llm_cells(scope, rolled), lambda cell: cell[3],
                                 ("calls", "failures", "input_tokens", "output_tokens", "cost_usd"))
            totals = sorted(((model, *(value or 0 for value in sums)) for model, sums in per_model.items()),
                            key=lambda row: (-row[1], row[0]))
        else:
            totals = self.query(
                f"SELECT model, count(*) AS n, coalesce(sum(success = 0), 0), coalesce(sum(input_tokens), 0),"
                f" coalesce(sum(output_tokens), 0), coalesce(sum(cost_usd), 0) FROM llm_calls WHERE {where}"
                f" GROUP BY model ORDER BY n DESC, model", params)
        for model, calls, failures, tokens_in, tokens_out, cost in totals:
            stats = latency.get(model, {})
            result.append({"model": model, "calls": calls, "failures": failures, "input_tokens": tokens_in,
                           "output_tokens": tokens_out, "cost_usd": round(cost, 6),
                           **{k: stats.get(k) for k in ("avg_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms")}})
        return result

    def throughput(self, scope: Scope) -> dict:
        where, params = self.scoped("messages", scope)
        rolled = self.rolled(scope)
        if rolled and not scope.bot_ids and not scope.channel:
            # Minutes are rolled up per organisation only: bot or channel filters read the messages.
            minute_where, minute_params = self.where(scope, "minute", period=False)
            minute = self.query(
                f"SELECT minute AS m, sum(messages) AS n FROM rollup_minutes WHERE {minute_where}"
                f" AND minute >= ? AND minute < ? GROUP BY m ORDER BY n DESC, m LIMIT 1",
                minute_params + [epoch_ms(scope.period.start) // 60000, epoch_ms(scope.period.end) // 60000])
        else:
            minute = self.query(
                f"SELECT created_at / 60000 AS m, count(*) AS n FROM messages WHERE {where}"
                f" GROUP BY m ORDER BY n DESC, m LIMIT 1", params)
        if rolled:
            hour_sql, hour_params = local_hour_sql(f"(bucket * {BUCKET_MS})", scope.period)
            counted = f"SELECT {hour_sql} AS h, sum(messages_in + messages_out) AS n FROM rollup_messages WHERE {rolled[0]} GROUP BY h"
            hour_params = hour_params + rolled[1]
        else:
            hour_sql, hour_params = local_hour_sql("created_at", scope.period)
            counted = f"SELECT {hour_sql} AS h, count(*) AS n FROM messages WHERE {where} GROUP BY h"
            hour_params = hour_params + params
        hours = self.query(
            f"SELECT h, n, count(*) OVER (), sum(n) OVER () FROM ({counted}) ORDER BY n DESC, h LIMIT 1",
            hour_params)
        result = {"messages": 0, "peak_minute_at": None, "peak_minute_messages": 0, "peak_hour_at": None,
                  "peak_hour_messages": 0, "active_hours": 0}
        if minute:
            result.update(peak_minute_at=instant_from_ms(minute[0][0] * 60000), peak_minute_messages=minute[0][1])
        if hours:
            at, n, active, total = hours[0]
            result.update(peak_hour_at=instant_from_ms(at), peak_hour_messages=n, active_hours=active,
                          messages=total)
        return result

    def system_health(self, scope: Scope) -> List[dict]:
        where, params = self.scoped("system_samples", scope)
        keys = ("host", "samples", "cpu_avg", "cpu_max", "mem_avg", "mem_max", "requests", "errors",
                "p95_avg_ms", "p95_max_ms")
        rows = self.query(
            f"SELECT host, count(*), avg(cpu_pct), max(cpu_pct), avg(mem_pct), max(mem_pct),"
            f" coalesce(sum(requests), 0), coalesce(sum(errors), 0), avg(p95_ms), max(p95_ms)"
            f" FROM system_samples WHERE {where} GROUP BY host ORDER BY host", params)
        return [dict(zip(keys, row)) for row in rows]

    def daily_system_health(self, scope: Scope) -> List[dict]:
        where, params = self.scoped("system_samples", scope)
        day_sql, day_params = local_day_sql("created_at", scope.period)
        return [{"day": day_from_number(day), "cpu_avg": cpu, "mem_avg": mem,
                 "requests": requests, "errors": errors}
                for day, cpu, mem, requests, errors in self.query(
                    f"SELECT {day_sql} AS d, avg(cpu_pct), avg(mem_pct), coalesce(sum(requests), 0),"
                    f" coalesce(sum(errors), 0) FROM system_samples WHERE {where} GROUP BY d ORDER BY d",
                    day_params + params)]

    def performance_rows(self, scope: Scope) -> Iterator[dict]:
        cells: Dict[tuple, dict] = {}

        def cell(hour, bot):
            return cells.setdefault((hour, bot), {
                "hour_start": instant_from_ms(hour), "bot_id": bot, "messages_in": 0, "replies": 0, "errors": 0,
                "avg_latency_ms": None, "max_latency_ms": None, "llm_calls": 0, "llm_failures": 0, "tokens": 0})

        rolled = self.rolled(scope)
        if rolled:
            where, params = rolled
            hour_sql, hour_params = local_hour_sql(f"(bucket * {BUCKET_MS})", scope.period)
            sql = (f"SELECT {hour_sql} AS h, bot_id, sum(messages_in), sum(messages_out), sum(reply_errors),"
                   f" sum(reply_latency_n), sum(reply_latency_sum), max(reply_latency_max) FROM rollup_messages"
                   f" WHERE {where}"
                   f" GROUP BY h, bot_id")
        else:
            where, params = self.scoped("messages", scope)
            hour_sql, hour_params = local_hour_sql("created_at", scope.period)
            sql = (f"SELECT {hour_sql} AS h, bot_id, sum(direction = 'in'), sum(direction = 'out'),"
                   f" {REPLY_ERRORS}, count({REPLY_LATENCY}), sum({REPLY_LATENCY}), max({REPLY_LATENCY})"
                   f" FROM messages WHERE {where} GROUP BY h, bot_id")
        for hour, bot, m_in, replies, errors, latency_n, latency_sum, high in self.query(sql, hour_params + params):
            cell(hour, bot).update(messages_in=m_in, replies=replies, errors=errors, max_latency_ms=high,
                                   avg_latency_ms=round(latency_sum / latency_n, 3) if latency_n else None)
        if rolled:
            sql = (f"SELECT {hour_sql} AS h, bot_id, sum(calls), coalesce(sum(failures), 0),"
                   f" coalesce(sum(tokens), 0) FROM rollup_llm WHERE {where} GROUP BY h, bot_id")
        else:
            where, params = self.scoped("llm_calls", scope)
            sql = (f"SELECT {hour_sql} AS h, bot_id, count(*), coalesce(sum(success = 0), 0),"
                   f" coalesce(sum(input_tokens + output_tokens), 0) FROM llm_calls WHERE {where}"
                   f" GROUP BY h, bot_id")
        for hour, bot, calls, failures, tokens in self.query(sql, hour_params + params):
            cell(hour, bot).update(llm_calls=calls, llm_failures=failures, tokens=tokens)
        for key in sorted(cells):
            yield cells[key]


def _grouped(rows: List[tuple]) -> Iterator[tuple]:
    """``(key, rows)`` for each run of rows with the same first column (rows come in group order)."""
    for key, run in itertools.groupby(rows, key=lambda row: row[0]):
        yield key, list(run)


def _latency_stats(row, to_key) -> dict:
    """A percentile row -> ``reply_latency``'s shape (``replies`` rather than ``count``)."""
    stats = percentile_row(row)
    stats["key"] = to_key(stats["key"])
    stats["replies"] = stats.pop("count")
    return stats

