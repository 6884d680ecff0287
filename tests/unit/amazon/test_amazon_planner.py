"""The feed-or-patch planner: full syncs by feed; deltas by patches while they fit the time allowed at
the budget's rate; always a reason."""

from __future__ import annotations

import pytest

from tradelane.connectors.amazon.planner import Route, plan
from tradelane.connectors.base import RateBudget, SubmitMode

PATCH = RateBudget(5.0, 5)


def test_full_sync_is_a_feed_whatever_its_size() -> None:
    for n in (1, 100, 25_000):
        chosen = plan(n, SubmitMode.FULL, patch_budget=PATCH)
        assert chosen.route is Route.FEED
        assert f"full sync of {n} offer(s)" in chosen.reason


def test_small_delta_is_patched_with_the_time_it_takes() -> None:
    chosen = plan(100, SubmitMode.DELTA, patch_budget=PATCH, max_patch_seconds=60)
    assert chosen.route is Route.PATCH
    assert chosen.patch_seconds == 20.0
    assert "about 20s" in chosen.reason and "5 rps" in chosen.reason


def test_large_delta_is_a_feed_and_says_why() -> None:
    chosen = plan(301, SubmitMode.DELTA, patch_budget=PATCH, max_patch_seconds=60)
    assert chosen.route is Route.FEED
    assert "would take about 60.2s" in chosen.reason and "> 60s" in chosen.reason


@pytest.mark.parametrize(
    ("tokens", "route"), [(None, Route.FEED), (0, Route.FEED), (5, Route.PATCH), (50, Route.PATCH)]
)
def test_tokens_left_count_up_to_the_burst(tokens: float | None, route: Route) -> None:
    # 303 changes: 60.6 s at 5 rps with no token left, 59.6 s with the burst of 5
    assert plan(303, SubmitMode.DELTA, patch_budget=PATCH, tokens_left=tokens).route is route


def test_a_slower_rate_reported_by_amazon_moves_the_threshold() -> None:
    assert plan(100, SubmitMode.DELTA, patch_budget=RateBudget(1.0, 5)).route is Route.FEED
    assert plan(60, SubmitMode.DELTA, patch_budget=RateBudget(1.0, 5)).route is Route.PATCH


def test_nothing_to_send() -> None:
    assert plan(0, SubmitMode.DELTA, patch_budget=PATCH).reason == "nothing to send"
    with pytest.raises(ValueError):
        plan(-1, SubmitMode.DELTA, patch_budget=PATCH)
