"""Feed or patches? Pure: decides how a batch of offer changes goes to Amazon, and says why.

* a full sync always goes through a JSON_LISTINGS_FEED (it may carry 25,000 messages per document;
  ``patchListingsItem`` at 5 rps would take 83 minutes for 25,000 offers);
* a delta goes through ``patchListingsItem`` calls when they finish within ``max_patch_seconds`` at
  the operation's rate, counting the budget's tokens left (the burst) — each change is then visible
  within seconds and its issues come back at once; a larger delta goes through a feed (Amazon
  processes a feed in minutes, whatever its size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tradelane.connectors.base import RateBudget, SubmitMode


class Route(StrEnum):
    FEED = "feed"
    PATCH = "patch"


@dataclass(frozen=True, slots=True)
class Plan:
    route: Route
    reason: str
    #: Seconds the patches are expected to take (0 for a feed).
    patch_seconds: float = 0.0


def plan(
    pending: int,
    mode: SubmitMode,
    *,
    patch_budget: RateBudget,
    tokens_left: float | None = None,
    max_patch_seconds: float = 60.0,
) -> Plan:
    """The route for ``pending`` offer changes in ``mode``.

    ``patch_budget`` is patchListingsItem's budget (Amazon's usage plan, corrected by
    ``x-amzn-RateLimit-Limit``); ``tokens_left`` the calls the budget allows right now (None: unknown,
    counted as none — the conservative reading); ``max_patch_seconds`` the longest a batch of patches
    may take before a feed is the better route."""
    if pending < 0:
        raise ValueError("pending must be >= 0")
    if mode is SubmitMode.FULL:
        return Plan(Route.FEED, f"full sync of {pending} offer(s): one JSON_LISTINGS_FEED per 25,000 offers")
    if pending == 0:
        return Plan(Route.PATCH, "nothing to send")
    tokens = max(0.0, min(float(patch_budget.burst), tokens_left if tokens_left is not None else 0.0))
    waiting = max(0.0, pending - math.floor(tokens))
    seconds = round(waiting / patch_budget.per_second, 1)
    rate = f"{patch_budget.per_second:g} rps"
    if seconds <= max_patch_seconds:
        return Plan(
            Route.PATCH,
            f"delta of {pending} offer(s): patchListingsItem at {rate} takes about {seconds:g}s "
            f"(≤ {max_patch_seconds:g}s), each change live and checked at once",
            patch_seconds=seconds,
        )
    return Plan(
        Route.FEED,
        f"delta of {pending} offer(s): patchListingsItem at {rate} would take about {seconds:g}s "
        f"(> {max_patch_seconds:g}s), so one JSON_LISTINGS_FEED instead",
    )
