"""A marketplace's Retry-After as a hold on a token bucket (:class:`tradelane.sync.ratelimit.BucketState`,
pure): the next call goes exactly when asked if the budget allows it then, never earlier, and the
budget is never exceeded afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradelane.sync.ratelimit import BucketState, RateLimit

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
#: Amazon's searchOrders: one token every 180 s, burst 20.
SEARCH_ORDERS = RateLimit(calls=1, per_seconds=180, burst=20)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def grants(state: BucketState, limit: RateLimit, times: list[float]) -> tuple[BucketState, list[float]]:
    """Try a call at each of ``times``; the waits answered (0.0 = granted)."""
    waits = []
    for t in times:
        state, wait = state.taken(limit, at(t))
        waits.append(wait)
    return state, waits


def test_a_retry_after_shorter_than_a_refill_is_honoured_exactly() -> None:
    state, waits = grants(BucketState(20.0, T0), SEARCH_ORDERS, [0.0])  # the call answered 429
    assert waits == [0.0]
    held = state.held(SEARCH_ORDERS, at(0), 45)
    assert held == BucketState(19.0 + 45 / 180, at(45))  # tokens kept, refill during the hold counted
    assert held.taken(SEARCH_ORDERS, at(44.999))[1] == pytest.approx(0.001)  # not a moment earlier
    _, waits = grants(held, SEARCH_ORDERS, [44.999, 45.0, 45.0])
    assert waits[0] > 0 and waits[1:] == [0.0, 0.0]  # at 45 s, and the burst left is still there


def test_a_hold_never_grants_beyond_the_budget() -> None:
    limit = RateLimit(calls=1, per_seconds=60)  # burst 1: the token just spent comes back after 60 s
    state, _ = grants(BucketState(1.0, T0), limit, [0.0])
    held = state.held(limit, at(0), 45)
    assert held.taken(limit, at(45))[1] == pytest.approx(15.0)  # the budget, not the hold, decides
    state, waits = grants(held, limit, [60.0, 60.0])
    assert waits[0] == 0.0 and waits[1] == pytest.approx(60.0)


def test_a_longer_retry_after_waits_its_whole_length_and_a_shorter_one_does_not_shorten_a_hold() -> None:
    limit = RateLimit(calls=2, per_seconds=1, burst=10)
    held = BucketState(10.0, T0).held(limit, at(0), 300)
    assert held.taken(limit, at(299))[1] == pytest.approx(1.0)
    again = held.held(limit, at(10), 5)  # a later, shorter Retry-After
    assert again == held
    assert again.held(limit, at(10), 600).at == at(610)
    assert held.taken(limit, at(300))[1] == 0.0


def test_a_fractional_retry_after_is_rounded_up_never_down() -> None:
    limit = RateLimit(calls=1, per_seconds=1, burst=5)
    held = BucketState(5.0, T0).held(limit, at(0), 0.0000004)
    assert held.at == T0 + timedelta(microseconds=1)


def test_replayed_storms_never_exceed_the_budget() -> None:
    """Calls as fast as the bucket allows, each second one refused with Retry-After 7 s: replayed
    against the declared bucket, never more calls than it allows, and each retry at its moment."""
    limit = RateLimit(calls=1, per_seconds=3, burst=4)
    state, t, sent = BucketState(4.0, T0), 0.0, []
    for i in range(40):
        state, wait = state.taken(limit, at(t))
        if wait:
            t += wait
            continue
        sent.append(t)
        if i % 2:
            state = state.held(limit, at(t), 7)
            _, retry = state.taken(limit, at(t))
            assert retry >= 7.0 - 1e-9
    tokens, last = 4.0, 0.0
    for when in sent:
        tokens = min(4.0, tokens + (when - last) / 3) - 1.0
        last = when
        assert tokens >= -1e-9, (when, sent)


def test_a_bucket_stamped_ahead_by_another_workers_clock_waits_for_it() -> None:
    limit = RateLimit(calls=1, per_seconds=1, burst=3)
    ahead = BucketState(2.0, at(0.002))
    state, wait = ahead.taken(limit, at(0))
    assert state == ahead and wait == pytest.approx(0.002)
    assert ahead.taken(limit, at(0.002)) == (BucketState(1.0, at(0.002)), 0.0)
