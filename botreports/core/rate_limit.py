"""Per-caller rate limits: one token bucket per API key or token subject (requests), or per
client address (failed credentials).

In memory and per process: a limit that protects one server from one noisy
script. Several processes behind a balancer each allow the configured rate.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable, Dict, Tuple

from .errors import RateLimited


class TokenBuckets:
    """``per_minute`` requests a minute for each key, with bursts up to the same number.

    A bucket refills continuously, so a caller that spent its burst may send
    again as soon as one token is back; ``Retry-After`` says when that is.
    """

    #: Buckets untouched this long are full again and can be forgotten.
    IDLE_SECONDS = 300

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: Dict[str, Tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def take(self, key: str) -> float:
        """Spend one token of ``key``; returns the tokens left, raises ``RateLimited`` when none is."""
        if not self.enabled:
            return math.inf
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise RateLimited(f"too many requests: the limit is {self.capacity:g} a minute",
                                  retry_after=max(1, wait))
            self._buckets[key] = (tokens - 1.0, now)
            if now - self._last_sweep > self.IDLE_SECONDS:
                self._sweep(now)
            return tokens - 1.0

    def check(self, key: str, message: str = "") -> None:
        """Raise ``RateLimited`` if ``key`` has no token left, without spending one (a failure
        budget is looked at before a request and spent only when the request fails)."""
        if not self.enabled:
            return
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        if tokens < 1.0:
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            raise RateLimited(message or f"too many requests: the limit is {self.capacity:g} a minute",
                              retry_after=wait)

    def spend(self, key: str) -> None:
        """Spend one token of ``key`` if it has one, never raising (the request that spends it has
        already failed; the next one is refused by ``check``)."""
        if not self.enabled:
            return
        now = self.clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
            self._buckets[key] = (max(0.0, tokens - 1.0), now)
            if now - self._last_sweep > self.IDLE_SECONDS:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key in [k for k, (_t, stamp) in self._buckets.items() if now - stamp > self.IDLE_SECONDS]:
            del self._buckets[key]
