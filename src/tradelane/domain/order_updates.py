"""Merchant-side updates of marketplace orders, as data (pure; no I/O).

* :class:`UpdateKind` / :class:`UpdateStatus` — what an ``order_updates`` row is and where it stands.
* :func:`refusal_reason` — which updates a connector can carry, derived from the
  :class:`~tradelane.connectors.base.Capabilities` it declares for the channel, so an impossible update
  is recorded as ``not_supported`` with a clear reason instead of failing in a loop.
* :func:`content_digest` — the external id of an update that came without one (same content → same id).
* :func:`marketplace_confirmation` and :func:`effective_status` — an update's status as of the job
  pushing it and of what the marketplace itself showed on later polls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from tradelane.connectors.base import Capabilities, Operation
from tradelane.domain.errors import ValidationError


class UpdateKind(StrEnum):
    SHIPMENT = "shipment"
    CANCELLATION = "cancellation"
    REFUND = "refund"
    RETURN = "return"
    LABEL = "label"


class UpdateStatus(StrEnum):
    """Where an update stands. ``queued`` → ``sent`` (our push succeeded) → ``confirmed`` (a later poll
    shows the marketplace in the state the update leads to). ``confirmed`` wins over ``queued``/``sent``
    whatever the job is doing — the marketplace is the authority — but never hides a ``failed`` push."""

    QUEUED = "queued"  # a fulfillments job will push it (or is retrying)
    SENT = "sent"  # the job succeeded; the marketplace has not shown the result yet
    CONFIRMED = "confirmed"  # the marketplace shows the result (e.g. the order SHIPPED after the push)
    FAILED = "failed"  # the job was dead-lettered (see the job for the raw exchange)
    NOT_SUPPORTED = "not_supported"  # the channel's connector cannot carry it; nothing is sent
    SKIPPED = "skipped"  # Third Party Managed, refused by a publishing rule, or nothing to do
    # A test order's update: validated and converted like a real one, the request built, never sent.
    VERIFIED = "verified"


class ReturnStatus(StrEnum):
    RECEIVED = "received"
    REFUNDED = "refunded"


#: The job that pushes each kind of update to the origin channel (dispatched by its connector).
JOB_KINDS: Mapping[UpdateKind, str] = {
    UpdateKind.SHIPMENT: "fulfillments.ship",
    UpdateKind.CANCELLATION: "fulfillments.cancel",
    UpdateKind.REFUND: "fulfillments.refund",
    UpdateKind.RETURN: "fulfillments.return",
    UpdateKind.LABEL: "fulfillments.label",
}


@dataclass(frozen=True, slots=True)
class UpdateLine:
    """One order line named by the merchant system: ``sku`` (merchant, catalog or offer SKU) or
    ``line_id`` (the marketplace's), a quantity, and for refunds an optional ``amount``."""

    quantity: int
    sku: str | None = None
    line_id: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    id: int
    order_id: int
    kind: UpdateKind
    external_id: str
    status: UpdateStatus
    detail: str | None
    job_id: int | None
    created: bool
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "kind": self.kind.value,
            "external_id": self.external_id,
            "status": self.status.value,
            "detail": self.detail,
            "job_id": self.job_id,
            "created": self.created,
            "payload": self.payload,
        }


# --- what each connector can carry ----------------------------------------------------------------


#: The port operation that pushes each kind of update (returns: see :attr:`Capabilities.returns_push`).
UPDATE_OPERATIONS: Mapping[UpdateKind, Operation] = {
    UpdateKind.SHIPMENT: Operation.SHIP,
    UpdateKind.CANCELLATION: Operation.CANCEL,
    UpdateKind.REFUND: Operation.REFUND,
    UpdateKind.LABEL: Operation.UPLOAD_DOCUMENT,
}

_KIND_TEXT = {
    UpdateKind.SHIPMENT: "shipments",
    UpdateKind.CANCELLATION: "cancellations",
    UpdateKind.REFUND: "refunds",
    UpdateKind.RETURN: "return received/refunded updates",
    UpdateKind.LABEL: "shipping labels",
}


def _hint(capabilities: Capabilities, *keys: str) -> str:
    for key in keys:
        hint = capabilities.hints.get(key)
        if hint:
            return f" ({hint})"
    return ""


def carries(capabilities: Capabilities, kind: UpdateKind) -> bool:
    """Whether a connector declaring ``capabilities`` pushes updates of ``kind`` (pure)."""
    if kind is UpdateKind.RETURN:
        return capabilities.returns_push
    if kind is UpdateKind.LABEL and not capabilities.labels:
        return False
    return capabilities.supports(UPDATE_OPERATIONS[kind])


def refusal_reason(
    connector: str,
    capabilities: Capabilities | None,
    kind: UpdateKind,
    *,
    line_level: bool = False,
) -> str | None:
    """Why ``connector`` cannot carry this update for a channel whose connector declares
    ``capabilities`` (None: no such connector), or None (pure). ``line_level``: the update names some
    lines only (a partial shipment, a line-level cancellation). The connector's hints (keyed by the
    operation, or ``partial_shipments`` / ``line_cancellation`` / ``returns_push``) explain refusals."""
    if capabilities is None:
        return f"{_KIND_TEXT[kind]} are not supported by {connector}"
    if not carries(capabilities, kind):
        key = "returns_push" if kind is UpdateKind.RETURN else UPDATE_OPERATIONS[kind].value
        return f"{_KIND_TEXT[kind]} are not supported by {connector}{_hint(capabilities, kind.value, key)}"
    if kind is UpdateKind.CANCELLATION and line_level and not capabilities.line_level_cancellation:
        hint = _hint(capabilities, "line_cancellation", Operation.CANCEL.value)
        return f"line-level cancellation is not supported by {connector}{hint}"
    if kind is UpdateKind.SHIPMENT and line_level and not capabilities.partial_shipments:
        hint = _hint(capabilities, "partial_shipments", Operation.SHIP.value)
        return f"partial shipments are not supported by {connector} on this channel{hint}"
    return None


# --- content ---------------------------------------------------------------------------------------


def canonical(payload: Mapping[str, Any]) -> str:
    """The JSON text two payloads are compared by (sorted keys, no whitespace)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(kind: UpdateKind, payload: Mapping[str, Any]) -> str:
    """The external id of an update that came without one."""
    return "sha256:" + hashlib.sha256(f"{kind.value}\n{canonical(payload)}".encode()).hexdigest()


def bounded_text(value: str | None, name: str, limit: int) -> str | None:
    """``value`` stripped (None when blank), refused when longer than ``limit`` or not printable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > limit or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValidationError(f"{name} must be at most {limit} printable characters")
    return value


def refund_amount(amount: Decimal, line: Mapping[str, Any], quantity: int) -> str:
    """The refund ``amount`` as an exact decimal string: positive, at most unit price × quantity."""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationError(f"refund amount {amount!a} is not a decimal") from None
    if not value.is_finite() or value <= 0:
        raise ValidationError(f"refund amount must be positive (got {amount})")
    ceiling = Decimal(line["unit_price"]) * quantity
    if value > ceiling:
        raise ValidationError(
            f"refund of {value} {line['currency']} for {quantity} × {line['sku']} exceeds the "
            f"{ceiling} {line['currency']} paid"
        )
    return format(value, "f")


#: Line states (marketplace side) of lines that will never be shipped.
DEAD_LINE_STATES = frozenset({"REFUSED", "CANCELED", "CANCELLED"})


def is_live(line: Mapping[str, Any]) -> bool:
    """A line the marketplace neither refused nor cancelled."""
    return str(line.get("state") or "").upper() not in DEAD_LINE_STATES


def covers_whole_order(order_lines: Sequence[Mapping[str, Any]], lines: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``lines`` ({line_id, quantity}) name every live line of the order with its full quantity
    (refused and cancelled lines do not count: they are never shipped)."""
    wanted: dict[str, int] = {}
    for item in lines:
        wanted[item["line_id"]] = wanted.get(item["line_id"], 0) + int(item["quantity"])
    return wanted == {ln["line_id"]: int(ln["quantity"]) for ln in order_lines if is_live(ln)}


#: Order states (the hub's neutral ones, lower case) and marketplace line states (upper case, as the
#: marketplace names them) showing that goods left the warehouse, or that the marketplace cancelled.
SHIPPED_STATES = frozenset({"shipped", "delivered", "closed", "SHIPPED", "TO_COLLECT", "RECEIVED", "CLOSED"})
CANCELLED_STATES = frozenset({"cancelled", "CANCELED", "CANCELLED"})


def marketplace_confirmation(
    kind: str,
    payload: Mapping[str, Any],
    *,
    recorded_at: datetime,
    states_seen: Sequence[tuple[datetime, str]],
    line_states: Mapping[str, str],
) -> str | None:
    """Why the marketplace's own view confirms the update, or None (pure).

    ``states_seen`` are the (time, state) the order was seen entering on the marketplace; only a state
    entered at or after ``recorded_at`` counts (an order already SHIPPED does not confirm new tracking).
    ``line_states`` are the marketplace's current line states by line id, used for line-level updates.
    Shipments are confirmed by a shipped state, cancellations by CANCELED; refunds, returns and labels
    leave no trace in the order state, so they stay ``sent``.
    """
    if kind == UpdateKind.SHIPMENT.value:
        wanted = SHIPPED_STATES
    elif kind == UpdateKind.CANCELLATION.value:
        wanted = CANCELLED_STATES
    else:
        return None
    for at, state in states_seen:
        if at >= recorded_at and state in wanted:
            return f"the marketplace shows the order {state} (seen {at:%Y-%m-%d %H:%M} UTC)"
    named = [str(item["line_id"]) for item in payload.get("lines") or [] if item.get("line_id")]
    if named and all(line_states.get(line_id, "") in wanted for line_id in named):
        shown = sorted({line_states[line_id] for line_id in named})
        return f"the marketplace shows line(s) {', '.join(named)} {'/'.join(shown)}"
    return None


def effective_status(
    stored: str,
    detail: str | None,
    job_state: str | None,
    job_error: str | None,
    job_result: Any,
    confirmation: str | None = None,
) -> tuple[str, str | None]:
    """An update's status as of its job and the marketplace (see :class:`UpdateStatus`).

    A queued update is ``failed`` once its job was dead-lettered or cancelled (even if the marketplace
    reached that state by another way: the failure stays visible), ``skipped`` if the handler said so,
    ``verified`` when it was a test order's (the job built the request and sent nothing: its result's
    ``test_not_sent``), ``confirmed`` when ``confirmation`` (from :func:`marketplace_confirmation`) is
    given, else ``sent`` once the job succeeded and ``queued`` before.
    """
    if stored != UpdateStatus.QUEUED.value:
        return stored, detail
    if job_state in ("dead", "cancelled"):
        reason = job_error or f"job {job_state}"
        return UpdateStatus.FAILED.value, reason + (f" (although {confirmation})" if confirmation else "")
    if job_state == "succeeded" and isinstance(job_result, Mapping) and job_result.get("skipped"):
        return UpdateStatus.SKIPPED.value, str(job_result["skipped"])
    if job_state == "succeeded" and isinstance(job_result, Mapping) and job_result.get("test_not_sent"):
        return UpdateStatus.VERIFIED.value, str(job_result["test_not_sent"])
    if confirmation:
        pending = "" if job_state in ("succeeded", None) else f"; our push job is still {job_state}"
        return UpdateStatus.CONFIRMED.value, confirmation + pending
    if job_state == "succeeded":
        return UpdateStatus.SENT.value, detail
    return UpdateStatus.QUEUED.value, detail
