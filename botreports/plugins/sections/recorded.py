"""What a section shows for a measure its data source does not record at all: a KPI
without a value, an empty column or a note saying "not recorded by this source",
never a zero (see ``core.datasource.MEASURES``)."""
from __future__ import annotations

from typing import FrozenSet, Iterable, Iterator, Sequence

import attrs

from ...core.datasource import unrecorded_of
from ...core.models import NOT_RECORDED, Column, Kpi, Text

LATENCY = "messages.latency_ms"
MESSAGE_TOKENS = "messages.tokens"
ERROR_FLAGS = "messages.is_error"
INTENTS = "messages.intent"
SATISFACTION = "conversations.satisfaction"
ENDS = "conversations.ended_at"
LLM_CALLS = "llm_calls"
SYSTEM_SAMPLES = "system_samples"


def unrecorded(ctx) -> FrozenSet[str]:
    """The measures the report's source holds no value for. Each section asks once; sources
    keep their answer while their data stays the same, so a report asks its data once."""
    return unrecorded_of(ctx.source)


def unavailable(kpi: Kpi) -> Kpi:
    """``kpi`` without a value, previous value or change, saying it is not recorded."""
    return attrs.evolve(kpi, value=None, previous=None, change=None, unavailable=NOT_RECORDED)


def not_recorded_kpis(kpis: Iterable[Kpi], names: Iterable[str]) -> list:
    """``kpis`` with those named in ``names`` made unavailable."""
    names = set(names)
    return [unavailable(kpi) if kpi.name in names else kpi for kpi in kpis]


def not_recorded_columns(columns: Sequence[Column], names: Iterable[str]) -> tuple:
    """``columns`` with those named in ``names`` marked as not recorded."""
    names = set(names)
    return tuple(attrs.evolve(c, unavailable=NOT_RECORDED) if c.name in names else c for c in columns)


def blanked(rows: Iterable, columns: Sequence[Column]) -> Iterable:
    """``rows`` with the cells of unavailable columns empty (whatever a source put there, a sum
    of nothing is 0, is not a value): a list for a list, lazily for a raw table's iterator.

    A raw table whose rows can blank columns themselves (``rows.blanked(indexes)``, a source
    leaving them out of its query) does so, and keeps what else it offers, such as its rows
    as ready JSON text (``json_text``), which wrapping it would lose.
    """
    empty = [index for index, column in enumerate(columns) if column.unavailable]
    if not empty:
        return rows
    if isinstance(rows, (list, tuple)):
        return list(_blanked(rows, empty))
    own = getattr(rows, "blanked", None)
    if own is not None:
        return own(empty)
    return _blanked(rows, empty)


def _blanked(rows: Iterable, empty: Sequence[int]) -> Iterator[list]:
    for row in rows:
        row = list(row)
        for index in empty:
            row[index] = None
        yield row


def not_recorded_text(what: str) -> Text:
    """A note such as ``**Reply latency**: not recorded by this source.``"""
    return Text(f"**{what}**: {NOT_RECORDED}.")
