"""Updates from the merchant side (shipments, cancellations, refunds, returns, labels), recorded and
pushed back to the marketplace the order came from — and only there.

Contracts:

* Every ``record_*`` call stores one ``order_updates`` row, idempotent on (order, kind, external id).
  ``external_id`` is the caller's (an OMS's shipment id...) or, when absent, a digest of the update's
  content, so a merchant system retrying the same update creates nothing new. Re-using an external id
  for *different* content is a :class:`ConflictError`.
* The target is always the order's origin channel. Each update then gets exactly one status:
  ``skipped`` (the order is Third Party Managed — the channel's Fulfillments flow is off — a publishing
  rule said no, or there is nothing left to do), ``not_supported`` (the channel's connector cannot carry
  that update, e.g. line-level cancellation on Mirakl), or ``queued`` with the ``fulfillments.*`` job
  (idempotency key ``<job kind>:<update id>``) that pushes it. ``sent``/``failed`` are read from that
  job, and ``confirmed`` from a later poll showing the marketplace in the state the update leads to
  (see :func:`effective_status`). Nothing is ever sent for a skipped or unsupported update.
* Lines are named by SKU — the merchant's SKU (after SKU mapping), the catalog SKU or the offer SKU —
  or by marketplace line id; quantities are checked against the order (and, for split shipments,
  against what earlier shipments already carried).
* Everything happens in the caller's transaction; nothing here talks to a marketplace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import Capabilities
from tradelane.connectors.registry import get_connector
from tradelane.domain.channels import Flow
from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.domain.order_updates import (
    CANCELLED_STATES,
    JOB_KINDS,
    SHIPPED_STATES,
    ReturnStatus,
    UpdateKind,
    UpdateLine,
    UpdateResult,
    UpdateStatus,
    bounded_text,
    canonical,
    content_digest,
    covers_whole_order,
    effective_status,
    is_live,
    marketplace_confirmation,
    refund_amount,
    refusal_reason,
)
from tradelane.domain.orders import DEAD_STATES, OrderState
from tradelane.persistence.db import insert_ignore, is_postgres
from tradelane.persistence.tables import (
    channel_flows,
    jobs,
    order_history,
    order_lines,
    order_updates,
    orders,
    returns,
    sku_mappings,
)
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel, get_channel_by_id
from tradelane.services.labels import PreparedLabel, list_documents, store_label
from tradelane.services.rules import should_publish
from tradelane.sync.jobs import JobSpec, enqueue

__all__ = [
    "ReturnStatus",
    "UpdateKind",
    "UpdateLine",
    "UpdateResult",
    "UpdateStatus",
    "attach_label",
    "channel_capabilities",
    "list_returns",
    "list_updates",
    "order_detail",
    "record_cancellation",
    "record_refund",
    "record_return",
    "record_shipment",
    "resolve_ref",
    "unsupported_reason",
]

MAX_DB_ID = 2**63 - 1
DEFAULT_LABEL_TYPE = "SHIPPING_LABEL"


@dataclass(frozen=True, slots=True)
class _Target:
    order: dict[str, Any]
    channel: Channel
    fulfillments_enabled: bool

    @property
    def order_id(self) -> int:
        return int(self.order["id"])

    @property
    def tenant_id(self) -> int:
        return self.channel.tenant_id


def resolve_ref(conn: Connection, tenant_id: int, ref: str) -> int:
    """``REF`` (a numeric id, ``CHANNEL:MARKETPLACE_ORDER_ID`` or a bare marketplace order id) → the
    tenant's order id, else :class:`NotFoundError` (also for ids beyond BIGINT and non-ASCII digits such
    as ``²``); a bare id on several channels is a :class:`ConflictError` listing the candidates. See
    :func:`~tradelane.services.orders.resolve_order_ref`."""
    try:
        return order_service.resolve_order_ref(conn, tenant_id, ref)
    except NotFoundError:
        # !a: the message (echoed in API problems) never carries raw non-ASCII input.
        raise NotFoundError(f"no order {ref.strip()!a}") from None


def _load(conn: Connection, tenant_id: int, order_ref: str) -> _Target:
    order_id = resolve_ref(conn, tenant_id, order_ref)
    lock = sa.select(orders.c.channel_id).where(orders.c.id == order_id)
    if is_postgres(conn):
        lock = lock.with_for_update()  # serialises concurrent updates of one order (split shipments)
    channel_id = int(conn.execute(lock).scalar_one())
    order = order_service.get_order(conn, tenant_id, order_id)
    enabled = conn.execute(
        sa.select(channel_flows.c.enabled).where(
            channel_flows.c.channel_id == channel_id, channel_flows.c.flow == Flow.FULFILLMENTS.value
        )
    ).scalar()
    return _Target(order, get_channel_by_id(conn, tenant_id, channel_id), enabled is not False)


# --- lines ---------------------------------------------------------------------------------------


def _merchant_skus(conn: Connection, target: _Target) -> dict[str, str]:
    """merchant SKU → the order line SKU it maps to (channel mappings win over tenant-wide ones)."""
    line_skus = {ln["sku"] for ln in target.order["lines"]} | {
        ln["offer_sku"] for ln in target.order["lines"]
    }
    rows = conn.execute(
        sa.select(
            sku_mappings.c.channel_id, sku_mappings.c.marketplace_sku, sku_mappings.c.merchant_sku
        ).where(
            sku_mappings.c.tenant_id == target.tenant_id,
            sku_mappings.c.marketplace_sku.in_(sorted(line_skus)),
            sa.or_(sku_mappings.c.channel_id.is_(None), sku_mappings.c.channel_id == target.channel.id),
        )
    ).all()
    result: dict[str, str] = {}
    for row in sorted(rows, key=lambda r: r.channel_id is not None):  # channel-specific last: wins
        result[row.merchant_sku] = row.marketplace_sku
    return result


def _find_line(target: _Target, item: UpdateLine, mapped: Mapping[str, str]) -> dict[str, Any]:
    lines = target.order["lines"]
    if item.line_id is not None:
        found = [ln for ln in lines if ln["line_id"] == item.line_id]
        what = f"line {item.line_id!a}"
    elif item.sku:
        found = [ln for ln in lines if ln["sku"] == item.sku] or [
            ln for ln in lines if ln["offer_sku"] == item.sku
        ]
        if not found and item.sku in mapped:
            target_sku = mapped[item.sku]
            found = [ln for ln in lines if target_sku in (ln["sku"], ln["offer_sku"])]
        what = f"SKU {item.sku!a}"
    else:
        raise ValidationError("each line needs a sku or a line_id")
    if not found:
        raise ValidationError(f"order {target.order['marketplace_order_id']} has no {what}")
    live = [ln for ln in found if is_live(ln)]
    if not live:
        order = target.order["marketplace_order_id"]
        raise ValidationError(f"{what} of order {order} is {found[0]['state']} on the marketplace")
    return live[0]


def _resolve_lines(
    conn: Connection, target: _Target, items: Sequence[UpdateLine], *, with_amount: bool = False
) -> list[dict[str, Any]]:
    """The payload lines ``[{sku, line_id, quantity[, amount]}]`` (order line SKUs), validated."""
    mapped = _merchant_skus(conn, target)
    totals: dict[str, int] = {}
    result: list[dict[str, Any]] = []
    for item in items:
        if item.quantity < 1:
            raise ValidationError(f"quantity must be at least 1 (got {item.quantity})")
        line = _find_line(target, item, mapped)
        totals[line["line_id"]] = totals.get(line["line_id"], 0) + item.quantity
        if totals[line["line_id"]] > line["quantity"]:
            raise ValidationError(
                f"{totals[line['line_id']]} × {line['sku']} is more than the line holds ({line['quantity']})"
            )
        entry: dict[str, Any] = {"sku": line["sku"], "line_id": line["line_id"], "quantity": item.quantity}
        if with_amount and item.amount is not None:
            entry["amount"] = refund_amount(item.amount, line, item.quantity)
        result.append(entry)
    return result


# --- the common path -----------------------------------------------------------------------------


def _existing(conn: Connection, order_id: int, kind: UpdateKind, external_id: str) -> Any:
    return conn.execute(
        sa.select(
            order_updates,
            jobs.c.state.label("job_state"),
            jobs.c.last_error.label("job_error"),
            jobs.c.result.label("job_result"),
        )
        .outerjoin(jobs, jobs.c.id == order_updates.c.job_id)
        .where(
            order_updates.c.order_id == order_id,
            order_updates.c.kind == kind.value,
            order_updates.c.external_id == external_id,
        )
    ).first()


def _replayed(conn: Connection, row: Any, payload: Mapping[str, Any], kind: UpdateKind) -> UpdateResult:
    """The stored update for a repeated request (same content), as of its job."""
    if canonical(row.payload) != canonical(payload):
        raise ConflictError(
            f"{kind.value} {row.external_id!a} of order {row.order_id} was already recorded with different "
            "content; use a new external id for a new update"
        )
    states_seen, line_states = _marketplace_view(conn, row.order_id)
    confirmation = marketplace_confirmation(
        row.kind, row.payload, recorded_at=row.created_at, states_seen=states_seen, line_states=line_states
    )
    status, detail = effective_status(
        row.status, row.detail, row.job_state, row.job_error, row.job_result, confirmation
    )
    return UpdateResult(
        row.id,
        row.order_id,
        kind,
        row.external_id,
        UpdateStatus(status),
        detail,
        row.job_id,
        False,
        dict(row.payload),
    )


def _decide(
    conn: Connection,
    target: _Target,
    kind: UpdateKind,
    merchant_system_id: int | None,
    *,
    line_level: bool,
    nothing_to_do: str | None,
) -> tuple[UpdateStatus, str]:
    channel = target.channel
    if target.order["third_party_managed"] or not target.fulfillments_enabled:
        return UpdateStatus.SKIPPED, (
            f"third party managed: the Fulfillments flow of {channel.name} is off, so no update is ever "
            "sent to the marketplace for this order"
        )
    if nothing_to_do:
        return UpdateStatus.SKIPPED, nothing_to_do
    allowed, reason = should_publish(
        conn,
        tenant_id=target.tenant_id,
        merchant_system_id=merchant_system_id,
        channel_id=channel.id,
        order={**target.order, "channel_id": channel.id},
    )
    if not allowed:
        return UpdateStatus.SKIPPED, f"not published to {channel.name}: {reason}"
    unsupported = unsupported_reason(channel.connector, channel.settings, kind, line_level=line_level)
    if unsupported:
        return UpdateStatus.NOT_SUPPORTED, unsupported
    return UpdateStatus.QUEUED, f"queued for {channel.name} ({reason})"


def channel_capabilities(connector: str, settings: Mapping[str, Any]) -> Capabilities | None:
    """What the channel's connector declares for a channel with ``settings`` (read through the
    registry), or None when no such connector is registered. Settings the connector refuses fall back to
    what it declares by default."""
    try:
        spec = get_connector(connector)
    except ValidationError:
        return None
    try:
        return spec.channel_capabilities(settings)
    except ValidationError:
        return spec.capabilities


def unsupported_reason(
    connector: str, settings: Mapping[str, Any], kind: UpdateKind, *, line_level: bool = False
) -> str | None:
    """Why a channel of ``connector`` with ``settings`` cannot carry this update, or None (see
    :func:`~tradelane.domain.order_updates.refusal_reason`)."""
    return refusal_reason(connector, channel_capabilities(connector, settings), kind, line_level=line_level)


def _record(
    conn: Connection,
    target: _Target,
    kind: UpdateKind,
    payload: dict[str, Any],
    *,
    external_id: str | None,
    merchant_system_id: int | None,
    now: datetime,
    line_level: bool = False,
    nothing_to_do: str | None = None,
    before_insert: Callable[[], None] | None = None,
) -> UpdateResult:
    ext = bounded_text(external_id, "external_id", 200) or content_digest(kind, payload)
    row = _existing(conn, target.order_id, kind, ext)
    if row is not None:
        return _replayed(conn, row, payload, kind)
    if before_insert is not None:
        before_insert()
    update_id = conn.execute(
        insert_ignore(conn, order_updates)
        .values(
            tenant_id=target.tenant_id,
            order_id=target.order_id,
            kind=kind.value,
            external_id=ext,
            payload=payload,
            status=UpdateStatus.QUEUED.value,
            created_at=now,
            updated_at=now,
        )
        .returning(order_updates.c.id)
    ).scalar()
    if update_id is None:  # a concurrent identical request won the insert
        return _replayed(conn, _existing(conn, target.order_id, kind, ext), payload, kind)
    status, detail = _decide(
        conn, target, kind, merchant_system_id, line_level=line_level, nothing_to_do=nothing_to_do
    )
    job_id = None
    if status is UpdateStatus.QUEUED:
        job_kind = JOB_KINDS[kind]
        job_id = enqueue(
            conn,
            JobSpec(
                tenant_id=target.tenant_id,
                kind=job_kind,
                payload={**payload, "order_id": target.order_id, "update_id": update_id},
                channel_id=target.channel.id,
                flow=Flow.FULFILLMENTS.value,
                idempotency_key=f"{job_kind}:{update_id}",
            ),
            now=now,
        ).job_id
    conn.execute(
        sa.update(order_updates)
        .where(order_updates.c.id == update_id)
        .values(status=status.value, detail=detail, job_id=job_id, updated_at=now)
    )
    order_service.add_history(
        conn,
        target.tenant_id,
        target.order_id,
        f"{kind.value.upper()}_RECORDED",
        now=now,
        note=f"{status}: {detail}",
    )
    return UpdateResult(update_id, target.order_id, kind, ext, status, detail, job_id, True, payload)


# --- shipments, cancellations, refunds, returns, labels ---------------------------------------------

_UNSHIPPABLE = {state.value for state in DEAD_STATES}


def record_shipment(
    conn: Connection,
    *,
    tenant_id: int,
    order_ref: str,
    carrier: str | None,
    tracking_number: str | None,
    tracking_url: str | None,
    lines: Sequence[UpdateLine] | None,
    external_id: str | None,
    merchant_system_id: int | None = None,
    now: datetime,
) -> UpdateResult:
    """A shipment: the whole order (no ``lines``), or part of it (partial; several make a split
    shipment). Carrier codes are converted by the channel's connector when the job runs."""
    target = _load(conn, tenant_id, order_ref)
    url = bounded_text(tracking_url, "tracking_url", 1000)
    if url is not None and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
        raise ValidationError("tracking_url must be an http(s) URL")
    payload: dict[str, Any] = {
        "carrier": bounded_text(carrier, "carrier", 100),
        "tracking_number": bounded_text(tracking_number, "tracking_number", 200),
        "tracking_url": url,
    }
    partial = False
    if lines:
        resolved = _resolve_lines(conn, target, lines)
        partial = not covers_whole_order(target.order["lines"], resolved)
        if partial:  # naming every live line in full is a full shipment
            payload["lines"] = resolved

    def shippable() -> None:
        if target.order["state"] in _UNSHIPPABLE:
            raise ConflictError(
                f"order {target.order['marketplace_order_id']} is {target.order['state']} on "
                f"{target.channel.name}: there is nothing to ship"
            )
        if partial:
            _check_not_overshipped(conn, target, payload["lines"])

    return _record(
        conn,
        target,
        UpdateKind.SHIPMENT,
        payload,
        external_id=external_id,
        merchant_system_id=merchant_system_id,
        now=now,
        line_level=partial,
        before_insert=shippable,
    )


def _check_not_overshipped(conn: Connection, target: _Target, lines: Sequence[Mapping[str, Any]]) -> None:
    shipped: dict[str, int] = {}
    earlier = conn.execute(
        sa.select(order_updates.c.payload).where(
            order_updates.c.order_id == target.order_id,
            order_updates.c.kind == UpdateKind.SHIPMENT.value,
            order_updates.c.status != UpdateStatus.NOT_SUPPORTED.value,
        )
    ).scalars()
    for payload in earlier:
        for item in payload.get("lines") or []:
            shipped[item["line_id"]] = shipped.get(item["line_id"], 0) + int(item["quantity"])
    by_id = {ln["line_id"]: ln for ln in target.order["lines"]}
    for item in lines:
        line = by_id[item["line_id"]]
        already = shipped.get(item["line_id"], 0)
        if already + int(item["quantity"]) > line["quantity"]:
            raise ConflictError(
                f"cannot ship {item['quantity']} × {line['sku']}: {already} of {line['quantity']} "
                "already shipped by earlier shipments"
            )


def record_cancellation(
    conn: Connection,
    *,
    tenant_id: int,
    order_ref: str,
    lines: Sequence[UpdateLine] | None = None,
    reason: str | None = None,
    external_id: str | None = None,
    merchant_system_id: int | None = None,
    now: datetime,
) -> UpdateResult:
    """A merchant-driven cancellation of the whole order, or of ``lines`` where the connector can.
    An order the marketplace already cancelled (customer-driven) is recorded as ``skipped``."""
    target = _load(conn, tenant_id, order_ref)
    payload: dict[str, Any] = {"reason": bounded_text(reason, "reason", 500)}
    line_level = False
    if lines:
        resolved = _resolve_lines(conn, target, lines)
        line_level = not covers_whole_order(target.order["lines"], resolved)
        if line_level:
            payload["lines"] = resolved
    state = target.order["state"]
    nothing = None
    if state in _UNSHIPPABLE:
        nothing = f"the order is already {state} on {target.channel.name}"
    return _record(
        conn,
        target,
        UpdateKind.CANCELLATION,
        payload,
        external_id=external_id,
        merchant_system_id=merchant_system_id,
        now=now,
        line_level=line_level,
        nothing_to_do=nothing,
    )


def record_refund(
    conn: Connection,
    *,
    tenant_id: int,
    order_ref: str,
    reason_code: str,
    lines: Sequence[UpdateLine],
    external_id: str | None = None,
    merchant_system_id: int | None = None,
    now: datetime,
) -> UpdateResult:
    """A refund of order lines with the marketplace's reason code; ``amount`` defaults (when the job
    runs) to unit price × quantity."""
    target = _load(conn, tenant_id, order_ref)
    code = bounded_text(reason_code, "reason_code", 100)
    if not code:
        raise ValidationError("a refund needs a reason code")
    if not lines:
        raise ValidationError("a refund needs at least one line")
    payload = {"reason_code": code, "lines": _resolve_lines(conn, target, lines, with_amount=True)}
    return _record(
        conn,
        target,
        UpdateKind.REFUND,
        payload,
        external_id=external_id,
        merchant_system_id=merchant_system_id,
        now=now,
    )


def record_return(
    conn: Connection,
    *,
    tenant_id: int,
    order_ref: str,
    lines: Sequence[UpdateLine],
    status: ReturnStatus,
    marketplace_return_id: str | None = None,
    external_id: str | None = None,
    merchant_system_id: int | None = None,
    now: datetime,
) -> UpdateResult:
    """The merchant received (or refunded) returned lines; ``marketplace_return_id`` links it to a
    return imported from the marketplace. Pushed where the connector supports it."""
    target = _load(conn, tenant_id, order_ref)
    if not lines:
        raise ValidationError("a return needs at least one line")
    payload: dict[str, Any] = {
        "status": ReturnStatus(status).value,
        "lines": _resolve_lines(conn, target, lines),
    }
    return_id = bounded_text(marketplace_return_id, "marketplace_return_id", 100)
    if return_id is not None:
        known = conn.execute(
            sa.select(returns.c.id).where(
                returns.c.tenant_id == tenant_id,
                returns.c.channel_id == target.channel.id,
                returns.c.marketplace_return_id == return_id,
            )
        ).scalar()
        if known is None:
            raise NotFoundError(f"no return {return_id!a} on {target.channel.name}")
        payload["marketplace_return_id"] = return_id
    return _record(
        conn,
        target,
        UpdateKind.RETURN,
        payload,
        external_id=external_id,
        merchant_system_id=merchant_system_id,
        now=now,
    )


def attach_label(
    conn: Connection,
    *,
    tenant_id: int,
    order_ref: str,
    label: PreparedLabel,
    type_code: str = DEFAULT_LABEL_TYPE,
    external_id: str | None = None,
    merchant_system_id: int | None = None,
    now: datetime,
) -> UpdateResult:
    """Store a prepared label (see :func:`tradelane.services.labels.prepare_label`) and offer it to
    the origin channel through its connector (recorded ``not_supported`` where it declares no labels;
    e.g. Mirakl sends an OR74 order document of type ``type_code``)."""
    target = _load(conn, tenant_id, order_ref)
    code = bounded_text(type_code, "type_code", 100)
    if not code:
        raise ValidationError("type_code must not be empty")
    document, _ = store_label(conn, tenant_id=tenant_id, order_id=target.order_id, label=label, now=now)
    payload = {
        "document_id": document.id,
        "sha256": document.sha256,
        "filename": document.filename,
        "type_code": code,
    }
    return _record(
        conn,
        target,
        UpdateKind.LABEL,
        payload,
        external_id=external_id,
        merchant_system_id=merchant_system_id,
        now=now,
    )


# --- reading -------------------------------------------------------------------------------------


def _marketplace_view(conn: Connection, order_id: int) -> tuple[list[tuple[datetime, str]], dict[str, str]]:
    """What polls showed of the order: the (time, state) it entered that can confirm an update, and its
    lines' current states by line id."""
    states_seen = [
        (h.at, h.state)
        for h in conn.execute(
            sa.select(order_history.c.at, order_history.c.state)
            .where(
                order_history.c.order_id == order_id,
                order_history.c.state.in_(sorted(SHIPPED_STATES | CANCELLED_STATES)),
            )
            .order_by(order_history.c.id)
        )
    ]
    line_states = {
        r.line_id: str(r.state or "").upper()
        for r in conn.execute(
            sa.select(order_lines.c.line_id, order_lines.c.state).where(order_lines.c.order_id == order_id)
        )
    }
    return states_seen, line_states


def list_updates(conn: Connection, tenant_id: int, order_id: int) -> list[dict[str, Any]]:
    """The order's updates, oldest first, each with its effective status: from its job and from what
    later polls showed on the marketplace (``confirmed``; see :func:`marketplace_confirmation`)."""
    states_seen, line_states = _marketplace_view(conn, order_id)
    rows = conn.execute(
        sa.select(
            order_updates,
            jobs.c.state.label("job_state"),
            jobs.c.last_error.label("job_error"),
            jobs.c.result.label("job_result"),
        )
        .outerjoin(jobs, jobs.c.id == order_updates.c.job_id)
        .where(order_updates.c.tenant_id == tenant_id, order_updates.c.order_id == order_id)
        .order_by(order_updates.c.id)
    ).all()
    result = []
    for r in rows:
        confirmation = marketplace_confirmation(
            r.kind, r.payload, recorded_at=r.created_at, states_seen=states_seen, line_states=line_states
        )
        status, detail = effective_status(
            r.status, r.detail, r.job_state, r.job_error, r.job_result, confirmation
        )
        result.append(
            {
                "id": r.id,
                "kind": r.kind,
                "external_id": r.external_id,
                "status": status,
                "detail": detail,
                "job_id": r.job_id,
                "payload": dict(r.payload),
                "created_at": r.created_at,
                "updated_at": r.updated_at,
            }
        )
    return result


def list_returns(conn: Connection, tenant_id: int, order_id: int) -> list[dict[str, Any]]:
    """Returns imported from the marketplace for this order (read-only here)."""
    rows = conn.execute(
        sa.select(returns)
        .where(returns.c.tenant_id == tenant_id, returns.c.order_id == order_id)
        .order_by(returns.c.id)
    )
    return [
        {
            "marketplace_return_id": r.marketplace_return_id,
            "state": r.state,
            "rma": r.rma,
            "lines": list(r.lines),
            "updated_at": r.marketplace_updated_at,
        }
        for r in rows
    ]


def order_detail(
    conn: Connection, tenant_id: int, order_id: int, *, with_payloads: bool = False
) -> dict[str, Any]:
    """The order read model with its history (and raw payload versions), the merchant-side updates,
    stored documents (without content), imported returns, and — for an order the marketplace cancelled
    (customer- or operator-driven) — a ``cancellation`` summary."""
    order = order_service.get_order(conn, tenant_id, order_id, with_payloads=with_payloads)
    order["updates"] = list_updates(conn, tenant_id, order_id)
    order["documents"] = list_documents(conn, tenant_id, order_id)
    order["returns"] = list_returns(conn, tenant_id, order_id)
    canceled = OrderState.CANCELLED.value
    cancelled_lines = [ln["line_id"] for ln in order["lines"] if str(ln["state"]).upper() in CANCELLED_STATES]
    cancelled = order["state"] == canceled
    at = next((h["at"] for h in reversed(order["history"]) if h["state"] == canceled), None)
    order["cancellation"] = (
        {"source": "marketplace", "whole_order": cancelled, "at": at, "lines": cancelled_lines}
        if cancelled or cancelled_lines
        else None
    )
    return order
