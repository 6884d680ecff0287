"""The communication-frequency arithmetic (domain/communication.py): each part of each figure (budgets,
batches, the worker's pick-up, the marketplace's processing, the poll), its basis, and the rounding."""

from __future__ import annotations

import pytest

from tradelane.domain.communication import (
    NOMINAL_CALL_SECONDS,
    Basis,
    CallRate,
    FrequencyInputs,
    approximately,
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
        "full_call": "OF01",
        "delta_call": "OF24",
        "orders_call": "OR11",
        "worker_poll_seconds": 1.0,
    }
    base.update(changes)
    return FrequencyInputs(**base)  # type: ignore[arg-type]


def bases(estimate: object) -> list[tuple[float, str]]:
    return [(round(p.seconds, 3), p.basis.value) for p in estimate.parts]  # type: ignore[attr-defined]


def test_rounding_is_honest_seconds_minutes_hours() -> None:
    assert approximately(0) == "0 s"
    assert approximately(0.3) == "<1 s"
    assert approximately(0.6) == "~1 s"
    assert approximately(20.4) == "~20 s"
    assert approximately(59.4) == "~59 s"
    assert approximately(59.6) == "~1 min"  # not "~60 s"
    assert approximately(170) == "~3 min"
    assert approximately(3_599) == "~1 h"
    assert approximately(2 * 3600 + 10 * 60 + 20) == "~2 h 10 min"


def test_a_sub_second_measured_sync_is_not_shown_as_a_minute() -> None:
    figures = compute(inputs(skus=3, measured_full_seconds_per_offer=0.1))
    assert figures.full_sync.basis is Basis.MEASURED
    assert figures.sentences()[0] == "a full sync takes <1 s (measured)"


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


def test_full_sync_parts_follow_the_selected_skus() -> None:
    figures = compute(inputs())
    # 10 calls of 1,000 offers at one a minute: 9 waits of 60 s, then 10 calls
    assert bases(figures.full_sync) == [(540.0, "budget"), (10.0, "nominal")]
    assert figures.full_sync.seconds == 550 and figures.full_sync.basis is Basis.BUDGET
    assert "10 call(s) (up to 1000 offers each)" in figures.full_sync.parts[0].what
    bigger = compute(inputs(skus=20_000))  # a selection change shows at once
    assert bigger.full_sync.seconds == 19 * 60 + 20


def test_stock_change_is_worker_pickup_budget_wait_call_and_processing() -> None:
    declared = inputs(asynchronous_imports=True, declared_delta_processing_seconds=300.0)
    figure = compute(declared).stock_change
    assert bases(figure) == [(1.0, "configured"), (60.0, "budget"), (1.0, "nominal"), (300.0, "declared")]
    assert figure.seconds == 362 and figure.basis is Basis.BUDGET
    assert "OF24" in figure.parts[1].what and "typical value" in figure.parts[3].what
    measured = compute(
        inputs(
            asynchronous_imports=True,
            declared_delta_processing_seconds=300.0,
            measured_delta_seconds=4.0,
            measured_delta_processing_seconds=40.0,
        )
    ).stock_change
    assert bases(measured) == [(4.0, "measured"), (40.0, "measured")]
    assert measured.seconds == 44 and measured.basis is Basis.MEASURED
    partly = compute(
        inputs(asynchronous_imports=True, declared_delta_processing_seconds=300.0, measured_delta_seconds=4.0)
    ).stock_change
    assert partly.basis is Basis.PARTLY_MEASURED and partly.seconds == 304
    assert compute(declared).sentences()[1] == "a stock change reaches the marketplace within ~6 min (budget)"


def test_unknown_processing_is_left_out_and_said_so() -> None:
    figure = compute(inputs(asynchronous_imports=True)).stock_change
    assert figure.seconds == 62
    assert any("neither measured yet nor declared" in note for note in figure.notes)
    synchronous = compute(inputs(asynchronous_imports=False)).stock_change
    assert not any("processing" in note for note in synchronous.notes)


def test_full_sync_includes_the_processing_of_its_import() -> None:
    figure = compute(
        inputs(
            asynchronous_imports=True,
            declared_full_processing_seconds=300.0,
            measured_full_seconds_per_offer=0.01,
        )
    ).full_sync
    assert bases(figure) == [(100.0, "measured"), (300.0, "declared")]
    assert figure.basis is Basis.PARTLY_MEASURED
    nothing = compute(inputs(skus=0, asynchronous_imports=True, declared_full_processing_seconds=300.0))
    assert nothing.full_sync.seconds == 0  # nothing to send: no import to wait for


def test_orders_are_poll_period_plus_poll_duration() -> None:
    figure = compute(inputs()).orders_seen
    assert bases(figure) == [(300.0, "configured"), (1.0, "nominal")]
    assert figure.basis is Basis.BUDGET
    measured = compute(inputs(measured_poll_seconds=2.0)).orders_seen
    assert bases(measured) == [(300.0, "configured"), (2.0, "measured")]
    assert measured.basis is Basis.MEASURED  # the schedule is exact; the only estimate is measured
    assert compute(inputs()).sentences()[2] == "orders are seen within ~5 min (budget)"


def test_what_holds_an_order_back_is_a_note() -> None:
    figure = compute(inputs(orders_note="a Pending order is held back until paid")).orders_seen
    assert figure.notes == ("a Pending order is held back until paid",) and figure.seconds == 301
    assert compute(inputs()).orders_seen.notes == ()


def test_an_orders_budget_slower_than_the_schedule_sets_the_pace() -> None:
    slow = CallRate(per_second=1 / 600, burst=1)
    figure = compute(inputs(orders_rate=slow, orders_period=300)).orders_seen
    assert bases(figure) == [(600.0, "budget"), (1.0, "nominal")]
    assert "OR11 budget" in figure.parts[0].what


def test_breakdown_and_json_name_every_part() -> None:
    figures = compute(inputs(asynchronous_imports=True, declared_delta_processing_seconds=300.0))
    lines = figures.breakdown()
    assert lines[0] == "a full sync takes ~9 min (budget)"
    assert "  + ~5 min: the marketplace processes the OF24 import" in "\n".join(lines)
    stock = figures.as_json()["stock_change"]
    assert isinstance(stock, dict) and stock["text"] == "~6 min"
    assert [p["basis"] for p in stock["parts"]] == ["configured", "budget", "nominal", "declared"]


def test_flows_switched_off_have_no_figure_and_no_declared_budget_is_nominal() -> None:
    off = compute(inputs(offers_on=False, orders_on=False))
    assert off.full_sync.basis is Basis.OFF and off.full_sync.seconds is None
    assert off.orders_seen.basis is Basis.OFF
    assert off.sentences()[2] == "orders are seen within — (the Orders flow is off)"
    bare = compute(inputs(full_rate=None, delta_rate=None, orders_rate=None, full_batch=None))
    assert (bare.full_sync.seconds, bare.full_sync.basis) == (NOMINAL_CALL_SECONDS, Basis.NOMINAL)
    assert bare.stock_change.basis is Basis.NOMINAL
    orders = bare.as_json()["orders_seen"]
    assert isinstance(orders, dict) and (orders["seconds"], orders["basis"]) == (301.0, "nominal")
