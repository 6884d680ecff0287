"""The lifecycle's rules (domain/lifecycle.py): which moves each state allows, the testing period, when
the engine's promotion is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradelane.domain.channels import LifecycleState as S
from tradelane.domain.lifecycle import MAX_TESTING_DAYS, Move, end_of_testing, promotion_due, refusal

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "move", "allowed"),
    [
        (S.SETUP, Move.ACTIVATE, True),
        (S.TESTING, Move.ACTIVATE, False),
        (S.LIVE, Move.ACTIVATE, False),
        (S.DISABLED, Move.ACTIVATE, False),
        (S.TESTING, Move.PROMOTE, True),
        (S.SETUP, Move.PROMOTE, False),
        (S.LIVE, Move.PROMOTE, False),
        (S.LIVE, Move.TO_SETUP, True),
        (S.TESTING, Move.DISABLE, True),
    ],
)
def test_moves_allowed_from_each_state(state: S, move: Move, allowed: bool) -> None:
    assert (refusal("shop", state, move) is None) is allowed


def test_refusals_say_what_to_do() -> None:
    assert (
        refusal("shop", S.SETUP, Move.PROMOTE)
        == "shop is setup: only a channel in testing goes live (activate it first)"
    )
    assert refusal("shop", S.LIVE, Move.ACTIVATE) == "shop is live: only a channel in setup can be activated"


def test_the_testing_period_is_bounded() -> None:
    assert end_of_testing(NOW, 30) == NOW + timedelta(days=30)
    assert end_of_testing(NOW, MAX_TESTING_DAYS) == NOW + timedelta(days=MAX_TESTING_DAYS)
    for days in (0, -1, MAX_TESTING_DAYS + 1):
        with pytest.raises(ValueError, match="testing period must be 1-365 days"):
            end_of_testing(NOW, days)


def test_promotion_is_due_at_the_end_of_testing_and_after_a_blocked_attempts_retry_time() -> None:
    ended = NOW - timedelta(seconds=1)
    assert promotion_due(S.TESTING, ended, None, NOW)
    assert promotion_due(S.TESTING, NOW, None, NOW)
    assert not promotion_due(S.TESTING, NOW + timedelta(seconds=1), None, NOW)
    assert not promotion_due(S.TESTING, None, None, NOW)
    assert not promotion_due(S.LIVE, ended, None, NOW)
    assert not promotion_due(S.TESTING, ended, NOW + timedelta(minutes=5), NOW)
    assert promotion_due(S.TESTING, ended, NOW, NOW)
