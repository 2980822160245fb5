"""The per-key token buckets: never more than the budget in any window, and Retry-After tells the truth."""
import pytest
from hypothesis import given, settings, strategies as st

from botreports import RateLimited
from botreports.core.rate_limit import TokenBuckets


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@settings(max_examples=60, deadline=None)
@given(per_minute=st.integers(1, 120),
       gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=150))
def test_no_window_grants_more_than_burst_plus_refill(per_minute, gaps):
    clock = Clock()
    buckets = TokenBuckets(per_minute, clock)
    granted = []
    for gap in gaps:
        clock.now += gap
        try:
            buckets.take("key")
        except RateLimited as exc:
            assert exc.retry_after >= 1
        else:
            granted.append(clock.now)
    rate = per_minute / 60.0
    # for every window [granted[i], granted[j]]: at most the burst plus what refilled meanwhile
    for i in range(len(granted)):
        for j in range(i, len(granted)):
            assert j - i + 1 <= per_minute + (granted[j] - granted[i]) * rate + 1e-6


@settings(max_examples=40, deadline=None)
@given(per_minute=st.integers(1, 600), spent=st.integers(0, 50))
def test_waiting_retry_after_seconds_is_enough(per_minute, spent):
    clock = Clock()
    buckets = TokenBuckets(per_minute, clock)
    for _ in range(per_minute):
        buckets.take("key")
    with pytest.raises(RateLimited) as caught:
        buckets.take("key")
    clock.now += caught.value.retry_after
    buckets.take("key")  # does not raise


def test_keys_have_separate_budgets_and_zero_turns_it_off():
    clock = Clock()
    buckets = TokenBuckets(2, clock)
    buckets.take("a"), buckets.take("a")
    with pytest.raises(RateLimited):
        buckets.take("a")
    buckets.take("b")
    off = TokenBuckets(0, clock)
    for _ in range(10_000):
        off.take("a")


def test_idle_buckets_are_forgotten():
    clock = Clock()
    buckets = TokenBuckets(60, clock)
    for n in range(100):
        buckets.take(f"key-{n}")
    clock.now += TokenBuckets.IDLE_SECONDS + 1
    buckets.take("fresh")
    assert set(buckets._buckets) == {"fresh"}
