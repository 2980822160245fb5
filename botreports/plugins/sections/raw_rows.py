"""Raw-data tables whose rows a source aggregates before it hands over the first one."""
from __future__ import annotations

import itertools
from typing import Iterable, Iterator


def started(rows: Iterable) -> Iterator:
    """``rows`` with the first row already read, still an iterator over all of them.

    The per-bot-per-day and per-bot-per-hour rows are grouped by the database before the
    first one comes out; reading it while the report's sections are collected (on the
    collecting threads, beside the other sections' queries) leaves the exporter only the
    writing, instead of every grouping query after all the sections are done.
    """
    iterator = iter(rows)
    for first in iterator:
        return itertools.chain((first,), iterator)
    return iter(())
