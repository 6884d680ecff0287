"""The communication-frequency arithmetic (domain/communication.py): budgets, batches, measurements."""

from __future__ import annotations

import pytest

from tradelane.domain.communication import (
    NOMINAL_CALL_SECONDS,
    Basis,
    CallRate,
    FrequencyInputs,
    budget_seconds,
    compute,
    full_sync_calls,
)

MIRAKL_LIKE = CallRate(per_second=1 / 60, burst=1)  # once a minute


def inputs(**changes: object) -> FrequencyInputs:
    base: dict[str, object] = {
        "skus": 10_000,
        "offers_on": True,
        "orders_on": True,
        "orders_period": 300,
        "full_batch": 1_000,
        "full_rate": MIRAKL_LIKE,
        "delta_rate": MIRAKL_LIKE,
        "orders_rate": MIRAKL_LIKE,
    }
    base.update(changes)
    return FrequencyInputs(**base)  # type: ignore[arg-type]


def test_full_sync_calls_round_up_and_one_call_without_a_batch_size() -> None:
    assert full_sync_calls(0, 1_000) == 0
    assert full_sync_calls(1, 1_000) == 1
    assert full_sync_calls(1_001, 1_000) == 2
    assert full_sync_calls(250_000, None) == 1
    with pytest.raises(ValueError):
        full_sync_calls(10, 0)


def test_calls_beyond_the_burst_wait_for_tokens() -> None:
    # 10 calls, burst 4, 2 tokens a second: 6 waits of 0.5 s + 10 nominal calls
    assert budget_seconds(10, CallRate(2.0, 4)) == (3.0 + 10 * NOMINAL_CALL_SECONDS, Basis.BUDGET)
    assert budget_seconds(3, CallRate(2.0, 4)) == (3 * NOMINAL_CALL_SECONDS, Basis.BUDGET)
    assert budget_seconds(3, None) == (3 * NOMINAL_CALL_SECONDS, Basis.NOMINAL)


def test_budget_figures_follow_the_selected_skus() -> None:
    figures = compute(inputs())
    # 10 calls of 1,000 offers at one a minute: 9 waits of 60 s + 10 calls
    assert figures.full_sync.seconds == 9 * 60 + 10 and figures.full_sync.basis is Basis.BUDGET
    assert figures.stock_change.seconds == 60 + NOMINAL_CALL_SECONDS
    assert figures.orders_seen.seconds == 300 + NOMINAL_CALL_SECONDS
    bigger = compute(inputs(skus=20_000))  # a selection change shows at once
    assert bigger.full_sync.seconds == 19 * 60 + 20
    assert figures.sentences() == [
        "a full sync takes ~10 min (budget)",
        "a stock change reaches the marketplace within ~61 s (budget)",
        "orders are seen within ~301 s (budget)",
    ]


def test_an_orders_budget_slower_than_the_schedule_sets_the_pace() -> None:
    slow = CallRate(per_second=1 / 600, burst=1)
    assert (
        compute(inputs(orders_rate=slow, orders_period=300)).orders_seen.seconds == 600 + NOMINAL_CALL_SECONDS
    )


def test_measurements_replace_the_budgets_and_say_so() -> None:
    figures = compute(
        inputs(
            measured_full_seconds_per_offer=0.012,
            measured_delta_seconds=4.5,
            measured_poll_seconds=2.0,
        )
    )
    assert figures.full_sync.seconds == pytest.approx(120.0) and figures.full_sync.basis is Basis.MEASURED
    assert (figures.stock_change.seconds, figures.stock_change.basis) == (4.5, Basis.MEASURED)
    assert (figures.orders_seen.seconds, figures.orders_seen.basis) == (302.0, Basis.MEASURED)
    assert figures.sentences()[0] == "a full sync takes ~2 min (measured)"


def test_flows_switched_off_have_no_figure_and_no_declared_budget_is_nominal() -> None:
    off = compute(inputs(offers_on=False, orders_on=False))
    assert off.full_sync.basis is Basis.OFF and off.full_sync.seconds is None
    assert off.orders_seen.basis is Basis.OFF
    assert off.sentences()[2] == "orders are seen within — (the Orders flow is off)"
    bare = compute(inputs(full_rate=None, delta_rate=None, orders_rate=None, full_batch=None))
    assert (bare.full_sync.seconds, bare.full_sync.basis) == (NOMINAL_CALL_SECONDS, Basis.NOMINAL)
    assert bare.stock_change.basis is Basis.NOMINAL
    assert bare.as_json()["orders_seen"] == {"seconds": 301.0, "basis": "nominal"}
