"""Conversation queries of the SQLite source: outcomes, lengths, intents,
satisfaction, hand-offs and the per-conversation raw rows. Mixed into
``SqliteAnalytics``; every query groups in SQLite."""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable, Dict, Iterator, List, Optional

from ...core.datasource import BREAKDOWNS
from ...core.models import Scope
from .sql_stats import histogram_median, histogram_percentiles
from .sql_time import day_from_number, epoch_ms, instant_from_ms, local_day_ranges, local_day_sql
from .sqlite_conversation_keys import TABLE as KEYS
from .sqlite_conversation_keys import counts_sql
from .sqlite_conversation_rows import JSON_COLUMNS, REPLY, conversation_rows_current, table_columns
from .sqlite_conversation_rows import TABLE as CONVERSATION_ROWS
from .sqlite_conversation_table import ConversationTableRows

STATUSES = ("resolved", "abandoned", "handed_off", "open")
#: The outcomes of a conversation that is over (every status but open).
CLOSED_STATUSES = ("resolved", "abandoned", "handed_off")
#: Local days (ranges) up to which conversations are counted per key and day: each costs a seek
#: per key, so a period of years is grouped the plain way (a sort of its conversations) instead.
MAX_KEYED_DAYS = 400


class ConversationQueries:
    """Conversation sections' queries (see ``core.datasource.AnalyticsSource``)."""

    def conversation_summary(self, scope: Scope) -> dict:
        # A period holding much of the file is read along the length and duration indexes
        # (every conversation ever, already grouped, the period a filter) rather than sorted.
        walk = self.walks_history(scope, "conversations_length", "conversations_duration")
        where, params = self.scoped("conversations", scope, time_index=not walk)
        by_length_from, by_duration_from = (
            ("conversations INDEXED BY conversations_length", "conversations INDEXED BY conversations_duration")
            if walk else ("conversations", "conversations"))
        # Outcomes come from the counts per day and key that other sections fold too (kept);
        # lengths and durations are two exact histograms, whose percentiles Python folds.
        by_status = dict.fromkeys(STATUSES, 0)
        total = 0
        for _day, _bot, _channel, status, _score, n in self._conversation_counts(scope):
            total += n
            if status in by_status:
                by_status[status] += n
        lengths = [(length, n) for length, n in self.query(
            f"SELECT message_count, count(*) FROM {by_length_from} WHERE {where} GROUP BY message_count", params)
            if length is not None]
        counted = sum(n for _, n in lengths)
        # Integer sums are exact in a double far beyond any count of messages: SQLite's avg, bit for bit.
        avg_messages = sum(length * n for length, n in lengths) / counted if counted else None
        durations = self.query(f"SELECT ended_at - started_at, count(*) FROM {by_duration_from} WHERE {where}"
                               f" AND ended_at IS NOT NULL GROUP BY 1", params)
        result = {"conversations": total, **by_status, "avg_messages": avg_messages,
                  "ended": sum(n for _, n in durations)}
        result.update(messages_median=histogram_median(lengths), messages_p90=histogram_percentiles(lengths, (90,))[90])
        result.update(duration_median_ms=histogram_median(durations),
                      duration_p90_ms=histogram_percentiles(durations, (90,))[90])
        return result

    def conversation_outcomes(self, scope: Scope) -> List[dict]:
        by_day: Dict[int, Dict[str, int]] = {}
        for day, _bot, _channel, status, _score, n in self._conversation_counts(scope):
            counts = by_day.setdefault(day, dict.fromkeys(STATUSES, 0))
            if status in counts:
                counts[status] += n
        return [{"day": day_from_number(day), **by_day[day]} for day in sorted(by_day)]

    def _conversation_counts(self, scope: Scope) -> List[tuple]:
        """``(local day, bot, channel, status, satisfaction, conversations)`` of a scope: outcomes,
        satisfaction and hand-offs all fold these few thousand counts, so the conversations of
        the period are read once for them (``kept``) rather than once per question. A day and
        key may come on more than one row (organisations, a day cut by a clock change): the
        folds add them up."""
        def read():
            ranges = local_day_ranges(scope.period)
            if ranges is not None and len(ranges) <= MAX_KEYED_DAYS and self.has_table(KEYS):
                # Each key's conversations of each local day: one index stretch each, no sort.
                where, params = self.where(scope, "started_at", period=False, alias="k")
                rows = self.query(counts_sql(where), [json.dumps(ranges)] + params
                                  + [epoch_ms(scope.period.start), epoch_ms(scope.period.end)])
                return [row for row in rows if row[5]]
            where, params = self.scoped("conversations", scope)
            day_sql, day_params = local_day_sql("started_at", scope.period)
            return self.query(
                f"SELECT {day_sql} AS d, bot_id, channel, status, satisfaction, count(*) FROM conversations"
                f" WHERE {where} GROUP BY d, bot_id, channel, status, satisfaction", day_params + params)

        return self.kept("conversation_counts", scope, read)

    def top_conversations(self, scope: Scope, order_by: str, limit: int) -> List[dict]:
        if order_by not in ("messages", "duration"):
            raise ValueError("order_by must be messages or duration")
        columns = ("id, bot_id, channel, user_id, started_at, ended_at - started_at, message_count, status,"
                   " satisfaction")
        rows = None
        if self.walks_history(scope, "conversations_length", "conversations_duration"):
            # The longest first, down the length (or duration) index: the walk stops once ``limit``
            # are found, ties sorted by start as they come. Only conversations longer than the
            # plain order's floor (no messages, no end) are on it in that order: with fewer than
            # ``limit`` of those, the plain sort below decides.
            index, value, above_floor = (
                ("conversations_length", "message_count", "message_count > 0") if order_by == "messages"
                else ("conversations_duration", "ended_at - started_at", "ended_at - started_at >= 0"))
            where, params = self.scoped("conversations", scope, time_index=False)
            rows = self.query(
                f"SELECT {columns} FROM conversations INDEXED BY {index} WHERE {where} AND {above_floor}"
                f"{' AND ended_at IS NOT NULL' if order_by == 'duration' else ''}"
                f" ORDER BY {value} DESC, started_at, id LIMIT ?", params + [int(limit)])
            rows = rows if len(rows) == int(limit) else None
        if rows is None:
            where, params = self.scoped("conversations", scope)
            order = ("coalesce(message_count, 0) DESC" if order_by == "messages"
                     else "coalesce(ended_at - started_at, -1) DESC")
            rows = self.query(f"SELECT {columns} FROM conversations WHERE {where} ORDER BY {order}, started_at, id"
                              f" LIMIT ?", params + [int(limit)])
        return [{"id": id_, "bot_id": bot, "channel": channel, "user_id": user,
                 "started_at": instant_from_ms(started), "duration_ms": duration, "message_count": count,
                 "status": status, "satisfaction": satisfaction}
                for id_, bot, channel, user, started, duration, count, status, satisfaction in rows]

    def top_intents(self, scope: Scope, limit: int) -> dict:
        # Intent order along the intent indexes counts both distinct columns without a sort.
        if self.walks_history(scope, "messages_intent_conversations", "messages_intent_users"):
            return self._top_intents_by_index(scope, limit)
        where, params = self.scoped("messages", scope)
        where += " AND direction = 'in' AND intent IS NOT NULL"
        total = self.query(f"SELECT count(*) FROM messages WHERE {where}", params)[0][0]
        intents = [{"intent": intent, "messages": n, "conversations": conversations, "users": users}
                   for intent, n, conversations, users in self.query(
                       f"SELECT intent, count(*) AS n, count(DISTINCT conversation_id), count(DISTINCT user_id)"
                       f" FROM messages WHERE {where} GROUP BY intent ORDER BY n DESC, intent LIMIT ?",
                       params + [int(limit)])]
        return {"total": total, "intents": intents}

    def _top_intents_by_index(self, scope: Scope, limit: int) -> dict:
        """Top intents from the intent-ordered indexes, one intent at a time: with the intent
        fixed, each index holds its conversations (or users) in order, so SQLite counts them
        distinct as they pass instead of sorting them (about twice as fast as grouping every
        intent in one walk, which sorts each group's values)."""
        where, params = self.scoped("messages", scope, time_index=False)
        where += " AND direction = 'in'"

        def per_intent(index: str, *aggregates: str) -> str:
            # The file's intents, found by seeking from one to the next (a handful of index
            # probes), then each intent's aggregates over its stretch of the index.
            probe = f"SELECT min(intent) FROM messages INDEXED BY {index} WHERE direction = 'in' AND intent"
            counts = ", ".join(f"(SELECT {aggregate} FROM messages INDEXED BY {index}"
                               f" WHERE intent = intents.name AND {where})" for aggregate in aggregates)
            return (f"WITH RECURSIVE intents (name) AS (SELECT ({probe} IS NOT NULL)"
                    f" UNION ALL SELECT ({probe} > intents.name) FROM intents WHERE intents.name IS NOT NULL)"
                    f" SELECT name, {counts} FROM intents WHERE name IS NOT NULL")

        # The two walks are read at the same time, on connections of their own.
        by_user, by_conversation = self.at_once(
            (per_intent("messages_intent_users", "count(*)", "count(DISTINCT user_id)"), params + params),
            (per_intent("messages_intent_conversations", "count(DISTINCT conversation_id)"), params))
        # (Two connections: an intent written between the reads counts no conversations.)
        conversations = dict(by_conversation)
        rows = sorted(((intent, n, conversations.get(intent, 0), users)
                       for intent, n, users in by_user if n), key=lambda row: (-row[1], row[0]))
        return {"total": sum(row[1] for row in rows),
                "intents": [{"intent": intent, "messages": n, "conversations": conversations, "users": users}
                            for intent, n, conversations, users in rows[:int(limit)]]}

    def satisfaction(self, scope: Scope) -> dict:
        closed = rated = rated_closed = total = 0
        distribution = {score: 0 for score in range(1, 6)}
        for _day, _bot, _channel, status, score, n in self._conversation_counts(scope):
            is_closed = status in CLOSED_STATUSES
            closed += n if is_closed else 0
            if score is not None:
                rated += n
                rated_closed += n if is_closed else 0
                total += score * n
                distribution[int(score)] = distribution.get(int(score), 0) + n
        return {"closed": closed, "rated": rated, "rated_closed": rated_closed, "distribution": distribution,
                "average": total / rated if rated else None}

    def daily_satisfaction(self, scope: Scope) -> List[dict]:
        by_day: Dict[int, List[int]] = {}
        for day, _bot, _channel, _status, score, n in self._conversation_counts(scope):
            rated_total = by_day.setdefault(day, [0, 0])
            if score is not None:
                rated_total[0] += n
                rated_total[1] += score * n
        return [{"day": day_from_number(day), "rated": rated,
                 "average": total / rated if rated else None}
                for day, (rated, total) in sorted(by_day.items())]

    def handoffs(self, scope: Scope, dimension: str) -> List[dict]:
        if dimension not in BREAKDOWNS:
            raise ValueError(f"dimension must be one of {', '.join(BREAKDOWNS)}")
        column = 1 if dimension == "bot" else 2
        by_key: Dict[Optional[str], List[int]] = {}
        for row in self._conversation_counts(scope):
            counts = by_key.setdefault(row[column], [0, 0, 0])
            counts[0] += row[5]
            counts[1] += row[5] if row[3] == "handed_off" else 0
            counts[2] += row[5] if row[3] in CLOSED_STATUSES else 0
        # Most hand-offs first, then by key (no key first, as SQLite orders NULL).
        ordered = sorted(by_key.items(), key=lambda item: (-item[1][1], item[0] is not None, item[0] or ""))
        return [{"key": key, "conversations": n, "closed": closed, "handed_off": handed}
                for key, (n, handed, closed) in ordered]

    def conversation_rows(self, scope: Scope) -> Iterator[dict]:
        where, params = self.scoped("conversations", scope, alias="c")
        if self.rollups:
            # Each conversation's message counts were summed on ingest: one key lookup per row.
            # What SQLite computes exactly (a difference, a default, a quotient of integers) it
            # computes here, so the Python loop that builds each row stays short.
            sql = (f"SELECT c.id, c.bot_id, c.channel, c.user_id, c.started_at, c.ended_at,"
                   f" c.ended_at - c.started_at, c.message_count, c.status, c.satisfaction,"
                   f" coalesce(r.messages_in, 0), coalesce(r.messages_out, 0), coalesce(r.errors, 0),"
                   f" CASE WHEN r.latency_n > 0 THEN r.latency_sum * 1.0 / r.latency_n END"
                   f" FROM conversations c LEFT JOIN rollup_conversation_messages r ON r.conversation_id = c.id"
                   f" WHERE {where} ORDER BY c.started_at, c.id")
        else:
            # One index walk per conversation (messages_conversation) instead of grouping every message;
            # the five numbers travel packed in one string.
            sql = (f"SELECT c.id, c.bot_id, c.channel, c.user_id, c.started_at, c.ended_at,"
                   f" c.ended_at - c.started_at, c.message_count,"
                   f" c.status, c.satisfaction, (SELECT sum(m.direction = 'in') || ',' || sum(m.direction = 'out')"
                   f" || ',' || coalesce(sum({REPLY % 'is_error'}), 0) || ',' || count({REPLY % 'latency_ms'})"
                   f" || ',' || coalesce(sum({REPLY % 'latency_ms'}), 0) FROM messages m"
                   f" WHERE m.conversation_id = c.id)"
                   f" FROM conversations c WHERE {where} ORDER BY c.started_at, c.id")
            return self._conversation_rows(
                row[:10] + _unpack_counts(row[10]) for row in self.conn.execute(sql, params))
        return self._conversation_rows(self.conn.execute(sql, params))

    def conversation_table_rows(self, scope: Scope,
                                user_label: Callable[[str], str]) -> Optional[ConversationTableRows]:
        """The rows of ``conversation_rows`` as lists in the raw-data table's column order: id, bot_id,
        channel, user (``user_label`` of the user id, asked once per user), started_at, ended_at,
        duration in seconds, message_count, messages_in, messages_out, errors, avg_latency_ms,
        status, satisfaction. None when the file has no rollups (the section then maps
        ``conversation_rows``).

        A raw table has a row per conversation, so each row costs as few Python steps as
        possible: SQLite puts the columns in order, divides (the same IEEE quotients as
        Python's) and rounds the average latency to 3 decimals (halves away from zero, in
        every format alike), and the loop only makes datetimes and looks up the user's label.
        The rows also come as JSON text written by SQLite (``ConversationTableRows.json_text``).
        """
        where, params = self.scoped("conversations", scope, alias="c", period=False)
        average = "round(CASE WHEN {0}.latency_n > 0 THEN {0}.latency_sum * 1.0 / {0}.latency_n END, 3)"
        span = (epoch_ms(scope.period.start), epoch_ms(scope.period.end))
        if self.has_index(f"{CONVERSATION_ROWS}_id") and self.conversation_rows_current:
            # Each conversation's row is kept ready in start order: one range of one table.
            stored = None
            if self.has_column(CONVERSATION_ROWS, JSON_COLUMNS[0]):  # files written before them lack them
                stored = tuple(f"c.{name}" for name in JSON_COLUMNS)
            return ConversationTableRows(self, table_columns("c."), f"FROM {CONVERSATION_ROWS} c WHERE {where}",
                                         params, user_label, span, stored)
        if not self.rollups:
            return None
        columns = ["c.id", "c.bot_id", "c.channel", "c.user_id", "c.started_at", "c.ended_at",
                   "(c.ended_at - c.started_at) / 1000.0", "c.message_count", "coalesce(r.messages_in, 0)",
                   "coalesce(r.messages_out, 0)", "coalesce(r.errors, 0)", average.format("r"), "c.status",
                   "c.satisfaction"]
        return ConversationTableRows(
            self, columns, f"FROM conversations c LEFT JOIN rollup_conversation_messages r"
                           f" ON r.conversation_id = c.id WHERE {where}", params, user_label, span)

    @property
    def conversation_rows_current(self) -> bool:
        """Whether the file's ready conversation rows count as today's definitions do (asked once
        per change of the file's schema, like ``rollups``)."""
        found = self.__dict__.get("_conversation_rows_current")
        if found is None:
            found = self.__dict__["_conversation_rows_current"] = conversation_rows_current(self.conn)
        return found

    def _conversation_rows(self, rows) -> Iterator[dict]:
        utc = dt.timezone.utc
        from_ms = dt.datetime.fromtimestamp
        for (id_, bot, channel, user, started, ended, duration, count, status, satisfaction, m_in, m_out, errors,
             latency) in rows:
            yield {"id": id_, "bot_id": bot, "channel": channel, "user_id": user,
                   "started_at": from_ms(started / 1000, utc),
                   "ended_at": None if ended is None else from_ms(ended / 1000, utc),
                   "duration_ms": duration, "message_count": count,
                   "status": status, "satisfaction": satisfaction, "messages_in": m_in,
                   "messages_out": m_out, "errors": errors,
                   "avg_latency_ms": None if latency is None else round(latency, 3)}


def _unpack_counts(packed) -> tuple:
    """``"in,out,errors,latency_n,latency_sum"`` -> ``(in, out, errors, average latency or None)``."""
    if not packed:
        return (0, 0, 0, None)
    m_in, m_out, errors, latency_n, latency_sum = (int(v) for v in packed.split(","))
    return (m_in, m_out, errors, latency_sum / latency_n if latency_n else None)
