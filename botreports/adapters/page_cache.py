"""Answers of list endpoints kept while the metadata store is unchanged: the same page of the
same organisation's reports is asked again and again by dashboards and the console, and
rebuilding it (20 records decoded, 20 views built and encoded, the matches counted) costs
ten times the request around it."""
from __future__ import annotations

import threading
from typing import Any, Callable, Hashable, Tuple

#: Pages kept per server thread; a crawl through many pages must not grow memory.
KEPT = 256


class PageCache:
    """``key -> answer`` valid while ``token()`` (``Reports.change_token``) is unchanged.

    Tokens are per connection, and connections per thread, so each thread keeps its own
    pages: a token read in one thread says nothing about another's.
    """

    def __init__(self, token: Callable[[], Hashable], kept: int = KEPT):
        self.token, self.kept = token, kept
        self._local = threading.local()

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The answer of ``key`` built by ``build()``, reused until the store changes."""
        pages = getattr(self._local, "pages", None)
        if pages is None:
            pages = self._local.pages = {}
        token = self.token()
        found: Tuple[Hashable, Any] = pages.get(key)
        if found is not None and found[0] == token:
            return found[1]
        answer = build()
        if len(pages) >= self.kept:
            pages.clear()
        # The token read before building: a write made meanwhile makes the next read rebuild.
        pages[key] = (token, answer)
        return answer
