"""Secondary feed backoff (pure): a missing module waits hours, a passing fault minutes; doubling, capped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradelane.domain.feeds import (
    FeedFailureKind,
    FeedHealth,
    after_failure,
    backoff,
    classify_status,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, FeedFailureKind.UNAVAILABLE),
        (403, FeedFailureKind.FORBIDDEN),
        (401, FeedFailureKind.FORBIDDEN),
        (500, FeedFailureKind.FAILING),
        (503, FeedFailureKind.FAILING),
        (200, FeedFailureKind.FAILING),  # garbage on a 2xx
        (None, FeedFailureKind.FAILING),  # timeout, unreachable
    ],
)
def test_classify_status(status, kind):
    assert classify_status(status) is kind


def test_backoff_doubles_and_is_capped():
    assert [backoff(FeedFailureKind.UNAVAILABLE, n) for n in (1, 2, 3, 4)] == [
        timedelta(hours=6),
        timedelta(hours=12),
        timedelta(hours=24),
        timedelta(hours=24),
    ]
    assert backoff(FeedFailureKind.FAILING, 1) == timedelta(minutes=5)
    assert backoff(FeedFailureKind.FAILING, 100) == timedelta(hours=1)


def test_failures_keep_the_episode_start_and_round_trip_as_json():
    first = after_failure(FeedHealth(), FeedFailureKind.FAILING, "503", now=NOW)
    second = after_failure(first, FeedFailureKind.FAILING, "503", now=NOW + timedelta(minutes=5))
    assert (second.failures, second.since, second.retry_at) == (2, NOW, NOW + timedelta(minutes=15))
    assert not second.due(NOW + timedelta(minutes=14)) and second.due(NOW + timedelta(minutes=15))
    assert FeedHealth.from_json(second.to_json()) == second
    assert FeedHealth.from_json(None) == FeedHealth() and FeedHealth().due(NOW)


def test_an_unreadable_stored_health_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid feed health"):
        FeedHealth.from_json('{"failures": "many"}')
