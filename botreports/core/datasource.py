"""The analytics query interface: every method a data source answers for the
section catalog, with its arguments and the shape of what it returns.

Sections call only these methods, so an SQLite file and botserver's
PostgreSQL tables give identical documents. Every method takes a ``Scope``
(organisation, period ``[start, end)`` in UTC, bot ids, channel) and
aggregates in the database. Rules every implementation keeps:

- Days and hours are local to ``scope.period.timezone``, DST included; a day
  is ``datetime.date``, an instant an aware UTC ``datetime``.
- Percentiles (``pX``) are exact nearest-rank percentiles (PostgreSQL's
  ``percentile_disc``): the smallest value whose cumulative count reaches
  ``ceil(p / 100 * n)``. A median is interpolated (PostgreSQL's
  ``percentile_cont(0.5)``): the middle value, or the mean of the two middle
  values of an even count.
- Counts are ``int``; sums of money ``float`` rounded to 6 places; averages
  and medians exact ``float`` (sections round nothing, exporters round what
  they print), or None when there is nothing to average. The raw rows' average
  latencies are rounded to 3 places (microseconds).
- Errored replies and reply latencies count bot replies (``direction`` out)
  only, in every answer: an incoming message's error flag or latency is no
  reply's.
- Methods whose name ends in ``_rows`` return an iterator, read once, for
  the raw-data tables that exporters stream.
- A source that does not record something answers None: the whole answer
  for a method it cannot answer (intents, system samples), or the value of a
  key it has no column for (per-reply error flags); sections say so.
- What a source records at all it may say with ``unrecorded() ->
  frozenset[str]``: the names of ``MEASURES`` it holds no value for anywhere
  (not only in a report's scope), decided from its data each time it is asked
  (a source may keep the answer while its data stays the same), so a measure
  lights up by itself the day a value appears. Sections then show "not
  recorded by this source" (``models.NOT_RECORDED``) where the measure would
  be, never a zero. A source without the method records everything.
- Tables without a ``channel`` column follow the channel filter through
  their conversation (``llm_calls``); tables with neither a bot nor a channel
  (``system_samples``) and audit events ignore filters they cannot apply.
"""
from __future__ import annotations

import datetime as dt
from typing import Dict, FrozenSet, Iterator, List, Optional, Protocol, Sequence, runtime_checkable

from .models import Scope

#: The percentiles every latency-like metric reports, in this order.
PERCENTILES = (50, 90, 95, 99)

#: Dimensions ``usage_breakdown`` and ``handoffs`` accept.
BREAKDOWNS = ("bot", "channel")
#: Groupings ``reply_latency`` and ``error_counts`` accept (None: one row for the scope).
LATENCY_GROUPS = (None, "day", "bot", "channel")

#: The measures ``unrecorded()`` may name, each with what "no value" means for it.
MEASURES = {
    "messages.latency_ms": "no bot reply (direction out) has a latency",
    "messages.tokens": "no message has a token count",
    "messages.is_error": "no message has an error flag",
    "messages.intent": "no message has an intent",
    "conversations.satisfaction": "no conversation has a rating",
    "conversations.ended_at": "no conversation has an end",
    "llm_calls": "there are no LLM calls",
    "system_samples": "there are no system samples",
}


def unrecorded_of(source) -> FrozenSet[str]:
    """The measures ``source`` holds no value for: its ``unrecorded()`` answer, or nothing for a
    source without the method (it records everything)."""
    ask = getattr(source, "unrecorded", None)
    return frozenset(ask()) if ask is not None else frozenset()


@runtime_checkable
class AnalyticsSource(Protocol):
    """What a data source answers. Dict keys are the contract; see each method."""

    # -- usage ----------------------------------------------------------

    def usage_totals(self, scope: Scope) -> Dict[str, float]:
        """``{conversations, messages_in, messages_out, active_users, new_users, llm_calls, tokens,
        cost_usd}`` over the scope."""

    def daily_usage(self, scope: Scope) -> List[dict]:
        """Per local day with activity: ``{day, conversations, messages_in, messages_out,
        active_users, new_users}``, ordered by day."""

    def activity_grid(self, scope: Scope) -> List[dict]:
        """Per local weekday (0 = Monday) and hour (0-23) with activity: ``{weekday, hour,
        messages_in, messages_out, conversations}``."""

    def usage_breakdown(self, scope: Scope, dimension: str) -> List[dict]:
        """Per bot or channel (``dimension`` in BREAKDOWNS): ``{key, conversations, messages_in,
        messages_out, active_users, tokens, cost_usd}``, busiest first."""

    def top_users(self, scope: Scope, limit: int) -> List[dict]:
        """The ``limit`` users with most incoming messages: ``{user_id, messages_in, conversations,
        first_at, last_at}``. Sections show pseudonyms, never these ids."""

    def bot_names(self, scope: Scope) -> Dict[str, str]:
        """``{bot_id: name}`` of the scope's organisation (all bots for the system scope)."""

    def usage_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per bot per local day: ``{day, bot_id, conversations, messages_in, messages_out,
        active_users, errors, tokens, cost_usd}``, ordered by day then bot."""

    # -- conversations --------------------------------------------------

    def conversation_summary(self, scope: Scope) -> dict:
        """Conversations started in the scope: ``{conversations, resolved, abandoned, handed_off,
        open, avg_messages, messages_median, messages_p90, ended, duration_median_ms,
        duration_p90_ms}`` (medians interpolated, p90 nearest rank)."""

    def conversation_outcomes(self, scope: Scope) -> List[dict]:
        """Per local day of start: ``{day, resolved, abandoned, handed_off, open}``."""

    def top_conversations(self, scope: Scope, order_by: str, limit: int) -> List[dict]:
        """Longest (``order_by`` "duration") or with most messages ("messages"): ``{id, bot_id,
        channel, user_id, started_at, duration_ms, message_count, status, satisfaction}``."""

    def top_intents(self, scope: Scope, limit: int) -> dict:
        """``{total, intents: [{intent, messages, conversations, users}]}`` of incoming messages with
        an intent; ``total`` counts every incoming message with an intent."""

    def satisfaction(self, scope: Scope) -> dict:
        """``{closed, rated, rated_closed, average, distribution: {1: n, ..., 5: n}}`` of
        conversations started in the scope (closed = status other than open; ``rated`` counts every
        rating, ``rated_closed`` those of closed conversations)."""

    def daily_satisfaction(self, scope: Scope) -> List[dict]:
        """Per local day of start: ``{day, rated, average}``."""

    def handoffs(self, scope: Scope, dimension: str) -> List[dict]:
        """Per bot or channel: ``{key, conversations, closed, handed_off}``, most hand-offs first."""

    def conversation_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per conversation: ``{id, bot_id, channel, user_id, started_at, ended_at,
        duration_ms, message_count, status, satisfaction, messages_in, messages_out, errors,
        avg_latency_ms}``, ordered by start."""

    # -- performance ----------------------------------------------------

    def reply_latency(self, scope: Scope, group: Optional[str] = None) -> List[dict]:
        """Latency of bot replies (``direction`` out with a latency), per ``group`` in
        LATENCY_GROUPS: ``{key, replies, avg_ms, min_ms, max_ms, p50_ms, p90_ms, p95_ms, p99_ms}``;
        ``key`` None for the whole scope."""

    def error_counts(self, scope: Scope, group: Optional[str] = None) -> List[dict]:
        """Per ``group``: ``{key, replies, errors, llm_calls, llm_failures}``."""

    def llm_performance(self, scope: Scope) -> List[dict]:
        """Per model: ``{model, calls, failures, input_tokens, output_tokens, cost_usd, avg_ms,
        p50_ms, p90_ms, p95_ms, p99_ms}``, most calls first."""

    def throughput(self, scope: Scope) -> dict:
        """``{messages, peak_minute_at, peak_minute_messages, peak_hour_at, peak_hour_messages,
        active_hours}``; hours are local clock hours, ``*_at`` their UTC start."""

    def system_health(self, scope: Scope) -> List[dict]:
        """Per host: ``{host, samples, cpu_avg, cpu_max, mem_avg, mem_max, requests, errors,
        p95_avg_ms, p95_max_ms}``."""

    def daily_system_health(self, scope: Scope) -> List[dict]:
        """Per local day: ``{day, cpu_avg, mem_avg, requests, errors}``."""

    def performance_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per bot per local hour: ``{hour_start, bot_id, messages_in, replies, errors,
        avg_latency_ms, max_latency_ms, llm_calls, llm_failures, tokens}``, ordered by hour then
        bot; ``hour_start`` is an aware UTC datetime."""

    # -- compliance -----------------------------------------------------

    def audit_summary(self, scope: Scope) -> List[dict]:
        """``{action, result, events}`` per action and result, most events first."""

    def audit_denials(self, scope: Scope, limit: int) -> List[dict]:
        """Per actor with denied events: ``{actor, denials, actions, last_at}``, most first."""

    def audit_events(self, scope: Scope, *, actions: Optional[Sequence[str]] = None,
                     results: Optional[Sequence[str]] = None, limit: int = 100) -> List[dict]:
        """The latest events first: ``{created_at, actor, action, resource_type, resource_id,
        result, bot_id, ip}``."""

    def retention_overview(self, scope: Scope, cutoff: dt.datetime) -> List[dict]:
        """Per bot, conversations started before ``cutoff`` (whatever the period):
        ``{bot_id, conversations, oldest_at}``."""

    def audit_rows(self, scope: Scope) -> Iterator[dict]:
        """One row per audit event in the scope, oldest first, with the keys of ``audit_events``."""

    # -- custom metrics -------------------------------------------------

    def custom_metric(self, scope: Scope, metric) -> List[dict]:
        """A validated ``custom_metrics.MetricQuery`` -> ``[{group, value}]`` (``group`` None when
        not grouped; dates for time groupings), ordered by group for time, by value otherwise."""
