"""Communication frequency of a channel: how long things take to reach the other side, by pure arithmetic.

Three figures, each with its basis (what it was computed from):

* **full sync** — every selected SKU sent once. *Measured*: the median seconds per offer of the
  channel's recent full syncs × the SKUs selected now. *Budget*: the calls it needs
  (``ceil(skus / batch)``; one call when the connector declares no batch size) — the first ``burst``
  calls go at once, each further one waits ``1 / per_second`` for a token — plus
  :data:`NOMINAL_CALL_SECONDS` per call.
* **stock change** — a price/stock change is event driven (it queues a delta at once). *Measured*: the
  median time from a delta job being due to its completion. *Budget*: the wait for one token of the
  delta's call when its budget is spent (``1 / per_second``) plus one call.
* **orders seen** — the orders poll runs every ``period`` seconds, never faster than its budget refills
  (``max(period, 1 / per_second)``); an order waits at most that plus one poll (*measured*: the median
  poll duration; *budget*: one nominal call).

With neither a measurement nor a declared budget, the figure uses :data:`NOMINAL_CALL_SECONDS` per call
and says so (basis ``nominal``). A flow switched off has no figure (basis ``off``): nothing is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

#: What one remote call is assumed to take when nothing was measured.
NOMINAL_CALL_SECONDS = 1.0


class Basis(StrEnum):
    MEASURED = "measured"  # the channel's own finished jobs
    BUDGET = "budget"  # the connector's declared rate budgets and batch sizes
    NOMINAL = "nominal"  # no budget declared for the call: NOMINAL_CALL_SECONDS per call
    OFF = "off"  # the flow is switched off: nothing is sent


@dataclass(frozen=True, slots=True)
class CallRate:
    """The declared budget of the remote call a flow makes: ``burst`` calls at once, then
    ``per_second``."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"invalid call rate {self.per_second}/s burst {self.burst}")


@dataclass(frozen=True, slots=True)
class FrequencyInputs:
    """Everything the figures depend on; gathered by ``services.communication``."""

    skus: int
    offers_on: bool
    orders_on: bool
    #: Seconds between scheduled orders polls (None: not scheduled).
    orders_period: int | None
    #: Offers one full-sync call carries (None: all of them in one call).
    full_batch: int | None
    full_rate: CallRate | None
    delta_rate: CallRate | None
    orders_rate: CallRate | None
    #: Median seconds per offer of recent full syncs, median delta latency, median poll duration.
    measured_full_seconds_per_offer: float | None = None
    measured_delta_seconds: float | None = None
    measured_poll_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Estimate:
    seconds: float | None
    basis: Basis

    def as_json(self) -> dict[str, object]:
        return {
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "basis": self.basis.value,
        }


@dataclass(frozen=True, slots=True)
class CommunicationFrequency:
    skus: int
    full_sync: Estimate
    stock_change: Estimate
    orders_seen: Estimate

    def sentences(self) -> list[str]:
        """The operator's wording: "a full sync takes ~N min; ..." with each figure's basis."""
        return [
            _sentence("a full sync takes", self.full_sync, minutes=True, off="the Listings flow is off"),
            _sentence(
                "a stock change reaches the marketplace within",
                self.stock_change,
                off="the Listings flow is off",
            ),
            _sentence("orders are seen within", self.orders_seen, off="the Orders flow is off"),
        ]

    def as_json(self) -> dict[str, object]:
        return {
            "skus": self.skus,
            "full_sync": self.full_sync.as_json(),
            "stock_change": self.stock_change.as_json(),
            "orders_seen": self.orders_seen.as_json(),
            "summary": "; ".join(self.sentences()),
        }


def _sentence(prefix: str, estimate: Estimate, *, off: str, minutes: bool = False) -> str:
    if estimate.seconds is None:
        return f"{prefix} — ({off})" if estimate.basis is Basis.OFF else f"{prefix} — (unknown)"
    if minutes:
        figure = f"~{max(1, math.ceil(estimate.seconds / 60))} min"
    else:
        figure = f"~{max(1, math.ceil(estimate.seconds))} s"
    return f"{prefix} {figure} ({estimate.basis.value})"


def full_sync_calls(skus: int, batch: int | None) -> int:
    """Calls a full sync of ``skus`` offers needs: ``ceil(skus / batch)``; one without a batch size."""
    if skus <= 0:
        return 0
    if batch is None:
        return 1
    if batch < 1:
        raise ValueError(f"batch size must be positive, not {batch}")
    return math.ceil(skus / batch)


def budget_seconds(calls: int, rate: CallRate | None) -> tuple[float, Basis]:
    """Seconds ``calls`` calls take under ``rate``: those beyond the burst wait ``1 / per_second`` each,
    and each call takes :data:`NOMINAL_CALL_SECONDS`; without a rate only the nominal call time."""
    if rate is None:
        return calls * NOMINAL_CALL_SECONDS, Basis.NOMINAL
    waits = max(0, calls - rate.burst) / rate.per_second
    return waits + calls * NOMINAL_CALL_SECONDS, Basis.BUDGET


def compute(inputs: FrequencyInputs) -> CommunicationFrequency:
    """The three figures of :class:`CommunicationFrequency` (see the module docstring)."""
    return CommunicationFrequency(
        inputs.skus, _full_sync(inputs), _stock_change(inputs), _orders_seen(inputs)
    )


def _full_sync(i: FrequencyInputs) -> Estimate:
    if not i.offers_on:
        return Estimate(None, Basis.OFF)
    if i.measured_full_seconds_per_offer is not None:
        return Estimate(i.measured_full_seconds_per_offer * i.skus, Basis.MEASURED)
    seconds, basis = budget_seconds(full_sync_calls(i.skus, i.full_batch), i.full_rate)
    return Estimate(seconds, basis)


def _stock_change(i: FrequencyInputs) -> Estimate:
    if not i.offers_on:
        return Estimate(None, Basis.OFF)
    if i.measured_delta_seconds is not None:
        return Estimate(i.measured_delta_seconds, Basis.MEASURED)
    if i.delta_rate is None:
        return Estimate(NOMINAL_CALL_SECONDS, Basis.NOMINAL)
    return Estimate(1 / i.delta_rate.per_second + NOMINAL_CALL_SECONDS, Basis.BUDGET)


def _orders_seen(i: FrequencyInputs) -> Estimate:
    if not i.orders_on or i.orders_period is None:
        return Estimate(None, Basis.OFF)
    refill = 1 / i.orders_rate.per_second if i.orders_rate is not None else 0.0
    period = max(float(i.orders_period), refill)
    if i.measured_poll_seconds is not None:
        return Estimate(period + i.measured_poll_seconds, Basis.MEASURED)
    basis = Basis.BUDGET if i.orders_rate is not None else Basis.NOMINAL
    return Estimate(period + NOMINAL_CALL_SECONDS, basis)
