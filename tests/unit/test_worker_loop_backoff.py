"""The worker loop's wait after its own failures: bounded exponential (0.5 s doubling to 30 s)."""

from __future__ import annotations

import pytest

from tradelane.sync.worker import WorkerConfig, loop_backoff


def test_loop_backoff_doubles_from_half_a_second_up_to_thirty():
    config = WorkerConfig()
    waits = [
        loop_backoff(n, low=config.error_backoff_min, high=config.error_backoff_max) for n in range(1, 10)
    ]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert loop_backoff(10_000, low=0.5, high=30.0) == 30.0  # no overflow after a long outage


def test_loop_backoff_counts_failures_from_one():
    with pytest.raises(ValueError, match="starts at 1"):
        loop_backoff(0, low=0.5, high=30.0)
