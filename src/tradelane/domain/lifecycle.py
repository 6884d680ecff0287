"""The rules of a channel's lifecycle Setup -> Testing -> Live (pure; ``services.channel_lifecycle``
applies them to the store).

* activate: only from Setup; the testing period lasts 1..:data:`MAX_TESTING_DAYS` days;
* promote: only from Testing (a channel in Setup is activated first);
* back to Setup, or Disabled: from any other state;
* the automatic promotion is due once the testing period has ended and a blocked attempt's retry time,
  if any, has come.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tradelane.domain.channels import LifecycleState

DEFAULT_TESTING_DAYS = 30
MAX_TESTING_DAYS = 365


class Move(StrEnum):
    ACTIVATE = "activate"
    PROMOTE = "promote"
    TO_SETUP = "setup"
    DISABLE = "disable"


TARGETS: dict[Move, LifecycleState] = {
    Move.ACTIVATE: LifecycleState.TESTING,
    Move.PROMOTE: LifecycleState.LIVE,
    Move.TO_SETUP: LifecycleState.SETUP,
    Move.DISABLE: LifecycleState.DISABLED,
}


def refusal(channel: str, current: LifecycleState, move: Move) -> str | None:
    """Why ``move`` is not allowed from ``current`` (None: it is)."""
    if move is Move.ACTIVATE and current is not LifecycleState.SETUP:
        return f"{channel} is {current.value}: only a channel in setup can be activated"
    if move is Move.PROMOTE and current is not LifecycleState.TESTING:
        hint = " (activate it first)" if current is LifecycleState.SETUP else ""
        return f"{channel} is {current.value}: only a channel in testing goes live{hint}"
    return None


def end_of_testing(now: datetime, days: int) -> datetime:
    """The end of a testing period of ``days`` days started ``now``; ``ValueError`` out of range."""
    if not 1 <= days <= MAX_TESTING_DAYS:
        raise ValueError(f"the testing period must be 1-{MAX_TESTING_DAYS} days, not {days}")
    return now + timedelta(days=days)


def promotion_due(
    state: LifecycleState, testing_ends_at: datetime | None, retry_at: datetime | None, now: datetime
) -> bool:
    """Whether the engine should try to promote now."""
    return (
        state is LifecycleState.TESTING
        and testing_ends_at is not None
        and testing_ends_at <= now
        and (retry_at is None or retry_at <= now)
    )
