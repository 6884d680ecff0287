from __future__ import annotations

import random

import pytest

from tradelane.sync.backoff import backoff_delay


def test_backoff_grows_exponentially_within_jitter_band():
    rng = random.Random(7)
    for attempt in range(1, 10):
        ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = backoff_delay(attempt, base=2.0, cap=300.0, rng=rng)
            assert ceiling / 2 <= delay <= ceiling


def test_backoff_is_capped_and_jittered():
    rng = random.Random(1)
    delays = {round(backoff_delay(30, base=2.0, cap=60.0, rng=rng), 6) for _ in range(20)}
    assert all(30.0 <= d <= 60.0 for d in delays)
    assert len(delays) > 10  # jitter spreads retries


def test_backoff_rejects_attempt_zero():
    with pytest.raises(ValueError):
        backoff_delay(0, base=1, cap=1)
