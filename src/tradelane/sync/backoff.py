"""Retry delays: exponential backoff with jitter (pure)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = first retry): "equal jitter" exponential backoff.

    The ceiling doubles per attempt from ``base`` up to ``cap``; the delay is uniformly drawn from the
    upper half of [0, ceiling], so retries spread out but never collapse to zero.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    draw = (rng or random).uniform(0.0, ceiling / 2)
    return ceiling / 2 + draw
