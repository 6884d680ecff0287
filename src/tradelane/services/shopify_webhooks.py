"""Shopify webhooks: what each verified topic does to tradelane (verification itself is the adapter's,
:mod:`tradelane.merchant.shopify.webhook_protocol`; the route is :mod:`tradelane.web.api.shopify_webhooks`).

Intake and processing are separate (a transactional outbox, as for the signed merchant webhook of
:mod:`tradelane.services.merchant_webhooks`):

* :func:`accept_event` runs inside the caller's transaction, after the caller verified the signature. It
  stores the raw event once per ``X-Shopify-Webhook-Id``
  (:func:`tradelane.services.inbound.store_inbound_event`) and, for a topic of :data:`HANDLED_TOPICS`,
  enqueues exactly one :data:`APPLY_KIND` job (idempotency key
  :data:`tradelane.services.inbound.APPLY_KEY_PREFIX` + the event id).
  The event and its job commit together: once Shopify has its 200, the event will be applied (or its
  failure recorded). A topic tradelane does not handle is stored ``ignored`` at once and gets no job.
* A delivery whose webhook id is already stored is a duplicate and enqueues nothing. While the stored
  event still waits for its job (``received``) the duplicate is *pending* (the caller acknowledges it
  again); once the event is finished it is a *replay* (the caller refuses it). A ``received`` event
  without a job (stored by a version that applied events inside the request, which crashed before
  recording the outcome) gets its job on redelivery.
* The :data:`APPLY_KIND` job (:func:`handle_apply`) runs :func:`process_event` on the stored body and
  topic and marks the event ``processed`` or ``ignored`` in the same transaction as the job's completion
  (exactly once; a job that finds its event already finished changes nothing). An event that cannot be
  applied (unknown or cancelled order, malformed fields, merchant system deleted) is rolled back, marked
  ``failed`` with the error, and its job dead-lettered; replaying the job applies it again, and a replay
  that succeeds marks the event ``processed`` (``error`` cleared). The event is applied even if the
  merchant system was disabled after Shopify's 200: it was verified and acknowledged before.

Processing (:func:`process_event`, inside the caller's transaction):

* ``products/create``, ``products/update`` → catalog price/stock (:func:`.shopify_catalog.apply_product`);
* ``inventory_levels/update`` → a coalesced ``shopify.inventory`` job (:mod:`.shopify_catalog`);
* ``fulfillments/create`` → :func:`tradelane.services.order_updates.record_shipment` (external id
  ``shopify-fulfillment-<id>``); ``orders/fulfilled`` → the same for each successful fulfillment it lists
  (so whichever arrives first records the shipment, the other changes nothing);
* ``orders/cancelled`` → :func:`~tradelane.services.order_updates.record_cancellation` (external id
  ``shopify-cancel-<order id>``).

A Shopify order is mapped back to tradelane's by the delivery row holding its id
(``order_deliveries.external_ref`` of this merchant system), else by the ``tradelane_order_id`` note
attribute / ``tradelane-order-<id>`` tag set at creation. Orders tradelane did not create (the shop's own
web orders) and topics not listed above are *ignored*, not failures.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import (
    NotFoundError,
    PermanentError,
    RetryableError,
    TradelaneError,
    ValidationError,
)
from tradelane.logging import get_logger
from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.shopify.mapping import Shipment, shipment_from_fulfillment, tradelane_order_id
from tradelane.merchant.shopify.settings import SHOPIFY_KIND, ShopifySettings
from tradelane.merchant.shopify.webhook_protocol import TOPIC_HEADER, WebhookTopic
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import inbound_events, jobs, merchant_systems, order_deliveries, orders
from tradelane.services import order_updates
from tradelane.services.inbound import InboundStatus, apply_event_job, store_inbound_event
from tradelane.services.shopify_catalog import apply_product, enqueue_inventory_sync
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry

log = get_logger("tradelane.shopify")

#: The job that applies one stored event. Payload: ``{"event_id": int, "merchant_system_id": int}``.
APPLY_KIND = "shopify.apply_event"
#: Topics :func:`process_event` acts on; any other topic is stored ``ignored`` without a job.
HANDLED_TOPICS = frozenset(topic.value for topic in WebhookTopic)


class EventStatus(StrEnum):
    """Final ``inbound_events.status`` of a processed Shopify event."""

    PROCESSED = "processed"
    IGNORED = "ignored"  # nothing for tradelane (not our order, topic not handled...)
    FAILED = "failed"  # tradelane could not apply it; ``error`` says why


@dataclass(frozen=True, slots=True)
class ProcessResult:
    status: EventStatus
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def _delivered_order(conn: Connection, system: MerchantSystem, shopify_order_id: int) -> int | None:
    value = conn.execute(
        sa.select(order_deliveries.c.order_id).where(
            order_deliveries.c.merchant_system_id == system.id,
            order_deliveries.c.external_ref == str(shopify_order_id),
        )
    ).scalar()
    return None if value is None else int(value)


def _tenant_order(conn: Connection, system: MerchantSystem, order_id: int) -> int | None:
    value = conn.execute(
        sa.select(orders.c.id).where(orders.c.id == order_id, orders.c.tenant_id == system.tenant_id)
    ).scalar()
    return None if value is None else int(value)


def resolve_order(
    conn: Connection,
    system: MerchantSystem,
    *,
    shopify_order_id: int | None,
    shopify_order: Mapping[str, Any] | None = None,
) -> int | None:
    """tradelane's order id for a Shopify order of this system, or None when it is not one of ours."""
    if shopify_order_id is not None:
        found = _delivered_order(conn, system, shopify_order_id)
        if found is not None:
            return found
    marked = tradelane_order_id(shopify_order) if shopify_order is not None else None
    return _tenant_order(conn, system, marked) if marked is not None else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _record_shipment(
    conn: Connection, system: MerchantSystem, order_id: int, shipment: Shipment, now: datetime
) -> order_updates.UpdateResult:
    lines = [
        order_updates.UpdateLine(
            quantity=line.quantity, line_id=line.line_id, sku=None if line.line_id else line.sku
        )
        for line in shipment.lines
        if line.line_id or line.sku
    ]
    return order_updates.record_shipment(
        conn,
        tenant_id=system.tenant_id,
        order_ref=str(order_id),
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
        lines=lines or None,
        external_id=shipment.external_id,
        merchant_system_id=system.id,
        now=now,
    )


def _fulfillment(
    conn: Connection, system: MerchantSystem, payload: Mapping[str, Any], now: datetime
) -> ProcessResult:
    shipment = shipment_from_fulfillment(payload)
    if shipment is None:
        return ProcessResult(
            EventStatus.IGNORED, f"fulfillment status {payload.get('status')!r} is not a shipment"
        )
    order_id = resolve_order(conn, system, shopify_order_id=shipment.shopify_order_id)
    if order_id is None:
        return ProcessResult(
            EventStatus.IGNORED, f"Shopify order {shipment.shopify_order_id} is not from tradelane"
        )
    result = _record_shipment(conn, system, order_id, shipment, now)
    return ProcessResult(
        EventStatus.PROCESSED, f"shipment {result.status.value}", {"updates": [result.as_dict()]}
    )


def _orders_fulfilled(
    conn: Connection, system: MerchantSystem, payload: Mapping[str, Any], now: datetime
) -> ProcessResult:
    order_id = resolve_order(conn, system, shopify_order_id=_int(payload.get("id")), shopify_order=payload)
    if order_id is None:
        return ProcessResult(EventStatus.IGNORED, f"Shopify order {payload.get('id')} is not from tradelane")
    fulfillments = payload.get("fulfillments")
    if fulfillments is not None and not isinstance(fulfillments, list):
        return ProcessResult(
            EventStatus.FAILED, f"'fulfillments' must be a list, got {type(fulfillments).__name__}"
        )
    results = []
    for fulfillment in fulfillments or []:
        shipment = shipment_from_fulfillment(fulfillment) if isinstance(fulfillment, Mapping) else None
        if shipment is not None:
            results.append(_record_shipment(conn, system, order_id, shipment, now).as_dict())
    if not results:
        return ProcessResult(EventStatus.IGNORED, "the order lists no successful fulfillment")
    return ProcessResult(EventStatus.PROCESSED, f"{len(results)} shipment(s) recorded", {"updates": results})


def _orders_cancelled(
    conn: Connection, system: MerchantSystem, payload: Mapping[str, Any], now: datetime
) -> ProcessResult:
    shopify_id = _int(payload.get("id"))
    order_id = resolve_order(conn, system, shopify_order_id=shopify_id, shopify_order=payload)
    if order_id is None:
        return ProcessResult(EventStatus.IGNORED, f"Shopify order {payload.get('id')} is not from tradelane")
    reason = payload.get("cancel_reason")
    result = order_updates.record_cancellation(
        conn,
        tenant_id=system.tenant_id,
        order_ref=str(order_id),
        reason=f"cancelled in Shopify ({reason})" if reason else "cancelled in Shopify",
        external_id=f"shopify-cancel-{shopify_id}",
        merchant_system_id=system.id,
        now=now,
    )
    return ProcessResult(
        EventStatus.PROCESSED, f"cancellation {result.status.value}", {"updates": [result.as_dict()]}
    )


def process_event(
    conn: Connection,
    *,
    system: MerchantSystem,
    currency: str | None,
    topic: str,
    payload: Any,
    now: datetime,
) -> ProcessResult:
    """Apply one verified event of ``system`` (``currency``: the shop's, for catalog prices).

    Raises tradelane's errors (:class:`~tradelane.domain.errors.ValidationError`, ``ConflictError``,
    ``NotFoundError``) when the event cannot be applied; the caller rolls back and records the failure."""
    if not isinstance(payload, Mapping):
        return ProcessResult(EventStatus.FAILED, "the body is not a JSON object")
    match topic:
        case WebhookTopic.PRODUCTS_CREATE | WebhookTopic.PRODUCTS_UPDATE:
            change = apply_product(
                conn, tenant_id=system.tenant_id, currency=currency, product=payload, now=now
            )
            detail = (
                f"{len(change.created)} created, {len(change.updated)} updated, "
                f"{len(change.unchanged)} unchanged"
            )
            return ProcessResult(EventStatus.PROCESSED, detail, change.as_dict())
        case WebhookTopic.INVENTORY_LEVELS_UPDATE:
            item_id = _int(payload.get("inventory_item_id"))
            if item_id is None:
                return ProcessResult(EventStatus.FAILED, "inventory level without an inventory_item_id")
            job = enqueue_inventory_sync(conn, system=system, inventory_item_id=item_id, now=now)
            return ProcessResult(
                EventStatus.PROCESSED, f"stock re-read queued (job {job.job_id})", {"job_id": job.job_id}
            )
        case WebhookTopic.FULFILLMENTS_CREATE:
            return _fulfillment(conn, system, payload, now)
        case WebhookTopic.ORDERS_FULFILLED:
            return _orders_fulfilled(conn, system, payload, now)
        case WebhookTopic.ORDERS_CANCELLED:
            return _orders_cancelled(conn, system, payload, now)
    return ProcessResult(EventStatus.IGNORED, f"topic {topic!r} is not handled")


# --- intake and the apply job ------------------------------------------------------------------------


class Intake(StrEnum):
    """What :func:`accept_event` did with a delivery."""

    QUEUED = "queued"  # stored now, with its apply job
    IGNORED = "ignored"  # stored now as ``ignored`` (topic not handled), no job
    PENDING = "pending"  # already stored and still waiting for its job: nothing new enqueued
    REPLAYED = "replayed"  # already stored and finished: nothing done


@dataclass(frozen=True, slots=True)
class Accepted:
    """The stored event, what became of the delivery, and the event's apply job (QUEUED, PENDING)."""

    event_id: int
    intake: Intake
    job_id: int | None = None


def apply_job_spec(tenant_id: int, event_id: int, merchant_system_id: int) -> JobSpec:
    """The :data:`APPLY_KIND` job of stored event ``event_id`` (see :func:`inbound.apply_event_job`)."""
    return apply_event_job(APPLY_KIND, tenant_id, event_id, merchant_system_id)


def accept_event(
    conn: Connection,
    *,
    system: MerchantSystem,
    source: str,
    topic: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    now: datetime,
) -> Accepted:
    """Store the verified raw event of ``system`` and enqueue its :data:`APPLY_KIND` job, in the
    caller's transaction (see the module docstring). Raises :class:`ValidationError` for headers the
    table cannot hold (:func:`~tradelane.services.inbound.store_inbound_event`)."""
    event_id, created = store_inbound_event(
        conn,
        tenant_id=system.tenant_id,
        source=source,
        channel_id=None,
        headers=headers,
        body=body,
        content_type=content_type,
        now=now,
    )
    spec = apply_job_spec(system.tenant_id, event_id, system.id)
    if created:
        if topic not in HANDLED_TOPICS:
            _finish(conn, event_id, EventStatus.IGNORED, None, now)
            return Accepted(event_id, Intake.IGNORED)
        return Accepted(event_id, Intake.QUEUED, enqueue(conn, spec, now=now).job_id)
    status = conn.execute(
        sa.select(inbound_events.c.status).where(inbound_events.c.id == event_id)
    ).scalar_one()
    if status != InboundStatus.RECEIVED.value:
        return Accepted(event_id, Intake.REPLAYED)
    job_id = conn.execute(
        sa.select(jobs.c.id).where(
            jobs.c.tenant_id == spec.tenant_id, jobs.c.idempotency_key == spec.idempotency_key
        )
    ).scalar()
    if job_id is None:  # stored by a version that applied events in the request, and crashed before
        job_id = enqueue(conn, spec, now=now).job_id
    return Accepted(event_id, Intake.PENDING, int(job_id))


def _finish(conn: Connection, event_id: int, status: EventStatus, error: str | None, now: datetime) -> None:
    conn.execute(
        sa.update(inbound_events)
        .where(inbound_events.c.id == event_id)
        .values(status=status.value, error=error, processed_at=now)
    )


def _load_system(conn: Connection, tenant_id: int, system_id: int) -> MerchantSystem:
    row = conn.execute(
        sa.select(merchant_systems).where(
            merchant_systems.c.id == system_id,
            merchant_systems.c.tenant_id == tenant_id,
            merchant_systems.c.kind == SHOPIFY_KIND,
        )
    ).first()
    if row is None:
        raise NotFoundError(f"the Shopify merchant system {system_id} no longer exists")
    return MerchantSystem(row.id, row.tenant_id, row.name, row.kind, dict(row.settings), bool(row.enabled))


class _NotApplied(Exception):
    """:func:`process_event` returned ``failed``: its transaction is rolled back."""


def handle_apply(ctx: JobContext) -> dict[str, Any] | None:
    """The :data:`APPLY_KIND` handler (see the module docstring)."""
    event_id = int(ctx.job.payload["event_id"])
    system_id = int(ctx.job.payload["merchant_system_id"])
    tenant_id = ctx.job.tenant_id
    with read_only(ctx.engine) as conn:
        event = conn.execute(
            sa.select(inbound_events.c.status, inbound_events.c.headers, inbound_events.c.body).where(
                inbound_events.c.id == event_id, inbound_events.c.tenant_id == tenant_id
            )
        ).first()
        if event is None:
            raise PermanentError(f"inbound event {event_id} does not exist for tenant {tenant_id}")
        if event.status in (EventStatus.PROCESSED.value, EventStatus.IGNORED.value):
            return {"event_id": event_id, "status": event.status, "detail": "already applied"}
        try:
            system: MerchantSystem | None = _load_system(conn, tenant_id, system_id)
        except NotFoundError:
            system = None
    topic = str((event.headers or {}).get(TOPIC_HEADER.lower(), ""))
    now = ctx.now()
    try:
        if system is None:
            raise NotFoundError(f"the Shopify merchant system {system_id} no longer exists")
        currency = ShopifySettings.from_settings(system.settings).currency
        try:
            payload = json.loads(bytes(event.body))
        except ValueError:
            raise ValidationError("the body is not JSON") from None
        with ctx.transaction() as conn:
            result = process_event(
                conn, system=system, currency=currency, topic=topic, payload=payload, now=now
            )
            if result.status is EventStatus.FAILED:
                raise _NotApplied(result.detail)  # rolls back whatever the event did before failing
            _finish(conn, event_id, result.status, None, now)
            outcome = {
                "event_id": event_id,
                "topic": topic,
                "status": result.status.value,
                "detail": result.detail,
            }
            ctx.complete_in(conn, outcome)
    except RetryableError:
        raise
    except (TradelaneError, _NotApplied) as exc:  # not found, invalid, conflict...: the event shows why
        reason = exc.reason if isinstance(exc, PermanentError) else str(exc)
        with ctx.transaction() as conn:
            _finish(conn, event_id, EventStatus.FAILED, reason, now)
        log.warning("shopify.webhook_failed", event_id=event_id, topic=topic, error=reason)
        raise PermanentError(f"inbound event {event_id} ({topic}): {reason}") from exc
    return outcome


def register(registry: JobRegistry) -> None:
    """Register the :data:`APPLY_KIND` handler."""
    registry.register(APPLY_KIND, handle_apply)
