"""Merchant-side updates of marketplace orders, as data (pure; no I/O).

* :class:`UpdateKind` / :class:`UpdateStatus` — what an ``order_updates`` row is and where it stands.
* :data:`CONNECTOR_SUPPORT` and :func:`unsupported_reason` — which updates a connector can carry, so an
  impossible update is recorded as ``not_supported`` with a clear reason instead of failing in a loop.
* :func:`content_digest` — the external id of an update that came without one (same content → same id).
* :func:`effective_status` — a queued update's status as of the job pushing it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from tradelane.domain.errors import ValidationError


class UpdateKind(StrEnum):
    SHIPMENT = "shipment"
    CANCELLATION = "cancellation"
    REFUND = "refund"
    RETURN = "return"
    LABEL = "label"


class UpdateStatus(StrEnum):
    QUEUED = "queued"  # a fulfillments job will push it
    SENT = "sent"  # the job succeeded
    FAILED = "failed"  # the job was dead-lettered (see the job for the raw exchange)
    NOT_SUPPORTED = "not_supported"  # the channel's connector cannot carry it; nothing is sent
    SKIPPED = "skipped"  # Third Party Managed, refused by a publishing rule, or nothing to do


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


@dataclass(frozen=True, slots=True)
class ConnectorSupport:
    """The updates a connector can push. ``partial_shipment_setting`` names the channel setting that
    must be true for partial/split shipments (None: always possible); ``hints`` explain refusals."""

    kinds: frozenset[UpdateKind]
    line_cancellation: bool = False
    partial_shipment_setting: str | None = None
    hints: Mapping[str, str] = field(default_factory=dict)


#: Keep in step with each connector's ``HANDLERS`` (``fulfillments.*`` kinds).
CONNECTOR_SUPPORT: Mapping[str, ConnectorSupport] = {
    "mirakl": ConnectorSupport(
        kinds=frozenset({UpdateKind.SHIPMENT, UpdateKind.CANCELLATION, UpdateKind.REFUND, UpdateKind.LABEL}),
        line_cancellation=False,
        partial_shipment_setting="multi_shipment",
        hints={
            "line_cancellation": "OR29 cancels whole orders only; refund the lines instead",
            UpdateKind.RETURN.value: "returns are imported from RT11, but the connector has no "
            "'return received/refunded' call yet",
        },
    ),
}

_KIND_TEXT = {
    UpdateKind.SHIPMENT: "shipments",
    UpdateKind.CANCELLATION: "cancellations",
    UpdateKind.REFUND: "refunds",
    UpdateKind.RETURN: "return received/refunded updates",
    UpdateKind.LABEL: "shipping labels",
}


def unsupported_reason(
    connector: str,
    settings: Mapping[str, Any],
    kind: UpdateKind,
    *,
    line_level: bool = False,
    support: Mapping[str, ConnectorSupport] = CONNECTOR_SUPPORT,
) -> str | None:
    """Why ``connector`` (for a channel with ``settings``) cannot carry this update, or None."""
    caps = support.get(connector)
    if caps is None or kind not in caps.kinds:
        hint = caps.hints.get(kind.value) if caps else None
        return f"{_KIND_TEXT[kind]} are not supported by {connector}" + (f" ({hint})" if hint else "")
    if kind is UpdateKind.CANCELLATION and line_level and not caps.line_cancellation:
        hint = caps.hints.get("line_cancellation")
        return f"line-level cancellation is not supported by {connector}" + (f" ({hint})" if hint else "")
    setting = caps.partial_shipment_setting
    if kind is UpdateKind.SHIPMENT and line_level and setting and not settings.get(setting):
        return (
            f"partial shipments are not supported by {connector} on this channel "
            f"(its {setting} setting is off)"
        )
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


def effective_status(
    stored: str, detail: str | None, job_state: str | None, job_error: str | None, job_result: Any
) -> tuple[str, str | None]:
    """An update's status as of its job: a queued update is ``sent`` once its job succeeded (or
    ``skipped`` if the handler said so), ``failed`` once the job was dead-lettered or cancelled."""
    if stored != UpdateStatus.QUEUED.value or job_state is None:
        return stored, detail
    if job_state == "succeeded":
        if isinstance(job_result, Mapping) and job_result.get("skipped"):
            return UpdateStatus.SKIPPED.value, str(job_result["skipped"])
        return UpdateStatus.SENT.value, detail
    if job_state in ("dead", "cancelled"):
        return UpdateStatus.FAILED.value, job_error or f"job {job_state}"
    return UpdateStatus.QUEUED.value, detail
