"""Communication frequency of a channel: how long things take to reach the other side, by pure arithmetic.

Three figures, each the sum of named parts; every part says what it is and where its number comes from
(:class:`Basis`), and the figure says whether it is measured, partly measured or from declarations:

* **full sync** — every selected SKU sent once, then applied by the marketplace. Sending: *measured*, the
  median seconds per offer of the channel's recent full syncs × the SKUs selected now; else from the
  *budget*: ``ceil(skus / batch)`` calls (one when the connector declares no batch size) — the first
  ``burst`` go at once, each further one waits ``1 / per_second`` for a token — plus
  :data:`NOMINAL_CALL_SECONDS` per call (*nominal*). Then, where imports are asynchronous, the
  marketplace's processing of the import (below).
* **stock change** — a price/stock change queues a delta at once (several changes coalesce into the one
  pending delta; the flow's scheduled delta only catches what is left), so: a worker picks it up within
  its poll interval (*configured*), waits for a token of the delta's call when its budget is spent
  (``1 / per_second``, *budget*) and makes the call (*nominal*) — or, *measured*, the median time from a
  delta job being due to its completion; then the marketplace's processing of the import.
* **orders seen** — the orders poll runs every ``period`` seconds (*configured*), never faster than its
  budget refills (``1 / per_second``, then *budget*); an order waits at most that plus one poll (the
  median poll duration, *measured*, else one nominal call); what the connector says holds an order back
  beyond that (e.g. Amazon's unpaid orders) is a note.

The marketplace's processing of an asynchronous import (submitted -> applied) is *measured* from the
channel's finished import checks when there are some, else the typical value the connector declares
(*declared*); with neither it is left out and the figure says so in its notes.

Figure basis: ``measured`` when every estimated part is measured (configured periods are exact, not
estimates), ``partly measured`` when some are, else ``budget`` when the flow's call has a declared budget
and ``nominal`` when it has none. A flow switched off has no figure (``off``): nothing is sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

#: What one remote call is assumed to take when nothing was measured.
NOMINAL_CALL_SECONDS = 1.0


class Basis(StrEnum):
    MEASURED = "measured"  # the channel's own finished jobs
    PARTLY_MEASURED = "partly measured"  # a figure some of whose parts are measured
    BUDGET = "budget"  # the connector's declared rate budgets and batch sizes
    DECLARED = "declared"  # a typical value the connector declares (e.g. an import's processing time)
    CONFIGURED = "configured"  # the channel's schedule or the worker's settings: exact, not estimated
    NOMINAL = "nominal"  # assumed: NOMINAL_CALL_SECONDS per call
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
    #: The remote operations the flows call (for the wording), e.g. "OF01", "OF24", "OR11".
    full_call: str | None = None
    delta_call: str | None = None
    orders_call: str | None = None
    #: Seconds a worker waits between looks for due jobs (a queued delta waits at most that).
    worker_poll_seconds: float = 0.0
    #: The marketplace applies offer imports asynchronously (after the call returned).
    asynchronous_imports: bool = False
    #: Median seconds from submitting an import to the marketplace having applied it (full, delta).
    measured_full_processing_seconds: float | None = None
    measured_delta_processing_seconds: float | None = None
    #: The connector's declared typical processing time of a full / delta import (None: not declared).
    declared_full_processing_seconds: float | None = None
    declared_delta_processing_seconds: float | None = None
    #: What the connector says delays an order beyond the poll (its ``hints["orders_seen"]``), if anything.
    orders_note: str | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One term of a figure: ``seconds`` of ``what``, from ``basis``."""

    what: str
    seconds: float
    basis: Basis

    @property
    def text(self) -> str:
        """The seconds as an operator reads them (:func:`approximately`)."""
        return approximately(self.seconds)

    def as_json(self) -> dict[str, object]:
        return {"what": self.what, "seconds": round(self.seconds, 1), "basis": self.basis.value}


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure: the sum of its ``parts`` (None when the flow is off); ``notes`` say what is left out."""

    seconds: float | None
    basis: Basis
    parts: tuple[Part, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, object]:
        return {
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "basis": self.basis.value,
            "text": None if self.seconds is None else approximately(self.seconds),
            "parts": [p.as_json() for p in self.parts],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class CommunicationFrequency:
    skus: int
    full_sync: Estimate
    stock_change: Estimate
    orders_seen: Estimate

    def figures(self) -> list[tuple[str, Estimate, str]]:
        """(the operator's wording, the figure, what switches it off)."""
        return [
            ("a full sync takes", self.full_sync, "the Listings flow is off"),
            ("a stock change reaches the marketplace within", self.stock_change, "the Listings flow is off"),
            ("orders are seen within", self.orders_seen, "the Orders flow is off"),
        ]

    def sentences(self) -> list[str]:
        """The operator's wording: "a full sync takes ~N min; ..." with each figure's basis."""
        return [_sentence(prefix, estimate, off=off) for prefix, estimate, off in self.figures()]

    def breakdown(self) -> list[str]:
        """Each sentence followed by what its number is made of (one indented line per part or note)."""
        lines: list[str] = []
        for prefix, estimate, off in self.figures():
            lines.append(_sentence(prefix, estimate, off=off))
            lines.extend(
                f"  + {approximately(p.seconds)}: {p.what} [{p.basis.value}]" for p in estimate.parts
            )
            lines.extend(f"  ! {note}" for note in estimate.notes)
        return lines

    def as_json(self) -> dict[str, object]:
        return {
            "skus": self.skus,
            "full_sync": self.full_sync.as_json(),
            "stock_change": self.stock_change.as_json(),
            "orders_seen": self.orders_seen.as_json(),
            "summary": "; ".join(self.sentences()),
        }


def approximately(seconds: float) -> str:
    """Honest rounding for an operator: "0 s" for nothing, "<1 s" under half a second, "~N s" under a
    minute, "~N min" under an hour, "~H h M min" above (to the nearest unit; never rounded up to a whole
    minute)."""
    if seconds <= 0:
        return "0 s"
    if seconds < 0.5:
        return "<1 s"
    whole = round(seconds)
    if whole < 60:
        return f"~{whole} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"~{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"~{hours} h {rest} min" if rest else f"~{hours} h"


def _sentence(prefix: str, estimate: Estimate, *, off: str) -> str:
    if estimate.seconds is None:
        return f"{prefix} — ({off})" if estimate.basis is Basis.OFF else f"{prefix} — (unknown)"
    return f"{prefix} {approximately(estimate.seconds)} ({estimate.basis.value})"


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
    return budget_wait_seconds(calls, rate) + calls * NOMINAL_CALL_SECONDS, Basis.BUDGET


def budget_wait_seconds(calls: int, rate: CallRate) -> float:
    """Seconds ``calls`` back-to-back calls wait for tokens: ``max(0, calls - burst) / per_second``."""
    return max(0, calls - rate.burst) / rate.per_second


def figure_basis(parts: Sequence[Part], *, budget_declared: bool) -> Basis:
    """``measured`` when every estimated (not configured) part is measured, ``partly measured`` when
    some are, else ``budget`` or ``nominal`` (whether the flow's call has a declared budget)."""
    estimated = [p for p in parts if p.basis is not Basis.CONFIGURED]
    if estimated and all(p.basis is Basis.MEASURED for p in estimated):
        return Basis.MEASURED
    if any(p.basis is Basis.MEASURED for p in estimated):
        return Basis.PARTLY_MEASURED
    return Basis.BUDGET if budget_declared else Basis.NOMINAL


def processing_part(
    measured: float | None, declared: float | None, call: str | None
) -> tuple[Part | None, str | None]:
    """The marketplace's processing of an asynchronous import: measured, else declared, else (None, a
    note saying it is left out)."""
    name = f"the {call} import" if call else "the import"
    if measured is not None:
        what = f"the marketplace processes {name} (median of this channel's imports, submitted -> done)"
        return Part(what, measured, Basis.MEASURED), None
    if declared is not None:
        what = f"the marketplace processes {name} (the connector's typical value: nothing measured yet)"
        return Part(what, declared, Basis.DECLARED), None
    return None, (
        f"the marketplace applies {name} asynchronously; its processing time is neither measured yet nor "
        "declared by the connector: not included"
    )


def compute(inputs: FrequencyInputs) -> CommunicationFrequency:
    """The three figures of :class:`CommunicationFrequency` (see the module docstring)."""
    return CommunicationFrequency(
        inputs.skus, _full_sync(inputs), _stock_change(inputs), _orders_seen(inputs)
    )


def _estimate(parts: list[Part], notes: list[str], *, budget_declared: bool) -> Estimate:
    return Estimate(
        sum(p.seconds for p in parts),
        figure_basis(parts, budget_declared=budget_declared),
        tuple(parts),
        tuple(notes),
    )


def _with_processing(i: FrequencyInputs, parts: list[Part], notes: list[str], *, full: bool) -> None:
    if not i.asynchronous_imports:
        return
    part, note = processing_part(
        i.measured_full_processing_seconds if full else i.measured_delta_processing_seconds,
        i.declared_full_processing_seconds if full else i.declared_delta_processing_seconds,
        i.full_call if full else i.delta_call,
    )
    if part is not None:
        parts.append(part)
    if note is not None:
        notes.append(note)


def _full_sync(i: FrequencyInputs) -> Estimate:
    if not i.offers_on:
        return Estimate(None, Basis.OFF)
    parts: list[Part] = []
    notes: list[str] = []
    call = i.full_call or "submission"
    if i.measured_full_seconds_per_offer is not None:
        what = (
            f"sending {i.skus} offer(s) at {i.measured_full_seconds_per_offer:.3g} s each "
            "(median of this channel's recent full syncs)"
        )
        parts.append(Part(what, i.measured_full_seconds_per_offer * i.skus, Basis.MEASURED))
    else:
        calls = full_sync_calls(i.skus, i.full_batch)
        size = f"up to {i.full_batch} offers each" if i.full_batch is not None else "all offers in one"
        if i.full_rate is not None:
            waits = budget_wait_seconds(calls, i.full_rate)
            what = (
                f"waiting for the {call} budget: {calls} call(s) ({size}), {i.full_rate.burst} at once, "
                f"then one per {1 / i.full_rate.per_second:.3g} s"
            )
            parts.append(Part(what, waits, Basis.BUDGET))
        parts.append(
            Part(f"{calls} {call} call(s) at ~{NOMINAL_CALL_SECONDS:g} s each", calls, Basis.NOMINAL)
        )
    if i.skus > 0:
        _with_processing(i, parts, notes, full=True)
    return _estimate(parts, notes, budget_declared=i.full_rate is not None)


def _stock_change(i: FrequencyInputs) -> Estimate:
    if not i.offers_on:
        return Estimate(None, Basis.OFF)
    parts: list[Part] = []
    notes = [
        "a change queues its delta at once (changes meanwhile join the pending delta); the flow's "
        "scheduled delta only catches what is left"
    ]
    call = i.delta_call or "delta"
    if i.measured_delta_seconds is not None:
        what = (
            f"the delta job, queued by the change -> {call} submitted (median of this channel's recent "
            "deltas: worker pick-up, budget waits, retries and the call)"
        )
        parts.append(Part(what, i.measured_delta_seconds, Basis.MEASURED))
    else:
        what = f"a worker picks the delta up (it looks for due jobs every {i.worker_poll_seconds:g} s)"
        parts.append(Part(what, i.worker_poll_seconds, Basis.CONFIGURED))
        if i.delta_rate is not None:
            refill = 1 / i.delta_rate.per_second
            what = f"waiting for a token of the {call} budget when it is spent (one per {refill:.3g} s)"
            parts.append(Part(what, 1 / i.delta_rate.per_second, Basis.BUDGET))
        parts.append(Part(f"the {call} call", NOMINAL_CALL_SECONDS, Basis.NOMINAL))
    _with_processing(i, parts, notes, full=False)
    return _estimate(parts, notes, budget_declared=i.delta_rate is not None)


def _orders_seen(i: FrequencyInputs) -> Estimate:
    if not i.orders_on or i.orders_period is None:
        return Estimate(None, Basis.OFF)
    call = i.orders_call or "orders"
    refill = 1 / i.orders_rate.per_second if i.orders_rate is not None else 0.0
    if refill > i.orders_period:
        what = (
            f"the orders poll runs at most every {refill:g} s (the {call} budget; the schedule says "
            f"every {i.orders_period} s)"
        )
        period = Part(what, refill, Basis.BUDGET)
    else:
        period = Part(
            f"the orders poll runs every {i.orders_period} s (the flow's schedule)",
            float(i.orders_period),
            Basis.CONFIGURED,
        )
    if i.measured_poll_seconds is not None:
        what = f"one poll ({call}; median of this channel's recent polls)"
        poll = Part(what, i.measured_poll_seconds, Basis.MEASURED)
    else:
        poll = Part(f"one poll ({call} call)", NOMINAL_CALL_SECONDS, Basis.NOMINAL)
    notes = [i.orders_note] if i.orders_note else []
    return _estimate([period, poll], notes, budget_declared=i.orders_rate is not None)
