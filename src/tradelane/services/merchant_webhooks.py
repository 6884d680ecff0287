"""Updates (shipment, cancellation, return) pushed by a merchant system's signed webhook: accepted into
``inbound_events`` with one job in the same transaction (transactional outbox), applied later by that job.

Contracts:

* :func:`accept_update` runs inside the caller's transaction, after the caller verified the signature.
  It stores the raw body and headers (:func:`tradelane.services.inbound.store_inbound_event`, deduplicated
  by the caller's external id) and, for a body that is a valid update, enqueues exactly one
  :data:`APPLY_KIND` job (idempotency key ``inbound-event:<event id>``). The event and its job commit
  together: once the sender has its 2xx, the update will be applied (or its failure recorded).
* A body that is not a valid update is stored ``failed`` with the reason and gets no job; the caller
  answers 422.
* The :data:`APPLY_KIND` job applies the update through :mod:`tradelane.services.order_updates` and marks
  the event ``processed`` in the same transaction as the job's completion (exactly once). An update that
  cannot be applied (unknown order, bad lines, conflict) marks the event ``failed`` with the error and
  dead-letters the job, which can be replayed; a replay that succeeds marks the event ``processed``.
  Retrying a single update is harmless: order updates are recorded once per (order, kind, external id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import Connection

from tradelane.domain.errors import PermanentError, RetryableError, TradelaneError, ValidationError
from tradelane.domain.order_updates import UpdateResult
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import inbound_events
from tradelane.services import order_updates
from tradelane.services.inbound import InboundStatus, apply_event_job, store_inbound_event
from tradelane.services.order_updates import ReturnStatus, UpdateLine
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry

#: The job that applies one stored update. Payload: ``{"event_id": int, "merchant_system_id": int}``.
APPLY_KIND = "merchant.apply_update"


class UpdateLineIn(BaseModel):
    sku: str | None = Field(
        default=None, min_length=1, max_length=200, description="Merchant, catalog or offer SKU."
    )
    line_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="Marketplace line id."
    )
    quantity: int = Field(ge=1)


class MerchantUpdateIn(BaseModel):
    """The signed webhook body. ``id`` is the merchant system's id for this update: retries with the
    same id are applied once (without one, the update's content identifies it)."""

    type: Literal["shipment", "cancellation", "return"]
    order: str = Field(min_length=1, max_length=300, description="Order REF: id or `CHANNEL:MARKETPLACE_ID`.")
    id: str | None = Field(default=None, min_length=1, max_length=200)
    carrier: str | None = Field(default=None, max_length=100, description="Shipment: carrier code or name.")
    tracking_number: str | None = Field(default=None, max_length=200, description="Shipment.")
    tracking_url: str | None = Field(default=None, max_length=1000, description="Shipment.")
    lines: list[UpdateLineIn] | None = Field(default=None, description="Omitted: the whole order.")
    reason: str | None = Field(default=None, max_length=500, description="Cancellation.")
    status: ReturnStatus = Field(default=ReturnStatus.RECEIVED, description="Return: received or refunded.")
    return_id: str | None = Field(default=None, max_length=100, description="Return: the marketplace's id.")


def parse_update(body: bytes) -> MerchantUpdateIn:
    """The update in ``body``; raises :class:`ValidationError` naming every problem."""
    try:
        update = MerchantUpdateIn.model_validate_json(body)
    except PydanticValidationError as exc:
        raise ValidationError(
            f"invalid update: {exc.error_count()} error(s): "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        ) from None
    if update.type == "return" and not update.lines:
        raise ValidationError("a return needs at least one line")
    return update


@dataclass(frozen=True, slots=True)
class Accepted:
    """What :func:`accept_update` did. ``created`` False: the external id was already stored (a replay);
    ``error`` set: the body is not a valid update (stored as failed, no job)."""

    event_id: int
    created: bool
    job_id: int | None = None
    error: str | None = None


def accept_update(
    conn: Connection,
    *,
    tenant_id: int,
    merchant_system_id: int,
    source: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    now: datetime,
) -> Accepted:
    """Store the verified raw update and enqueue its :data:`APPLY_KIND` job (see module docstring)."""
    event_id, created = store_inbound_event(
        conn,
        tenant_id=tenant_id,
        source=source,
        channel_id=None,
        headers=headers,
        body=body,
        content_type=content_type,
        now=now,
    )
    if not created:
        return Accepted(event_id, False)
    try:
        parse_update(body)
    except ValidationError as exc:
        _finish_event(conn, event_id, InboundStatus.FAILED, str(exc), now)
        return Accepted(event_id, True, error=str(exc))
    job = enqueue(conn, apply_job_spec(tenant_id, event_id, merchant_system_id), now=now)
    return Accepted(event_id, True, job_id=job.job_id)


def apply_job_spec(tenant_id: int, event_id: int, merchant_system_id: int) -> JobSpec:
    """The :data:`APPLY_KIND` job of stored event ``event_id`` (see :func:`inbound.apply_event_job`)."""
    return apply_event_job(APPLY_KIND, tenant_id, event_id, merchant_system_id)


def _finish_event(
    conn: Connection, event_id: int, status: InboundStatus, error: str | None, now: datetime
) -> None:
    conn.execute(
        sa.update(inbound_events)
        .where(inbound_events.c.id == event_id)
        .values(status=status.value, error=error, processed_at=now)
    )


def apply_update(
    conn: Connection, tenant_id: int, merchant_system_id: int, update: MerchantUpdateIn, now: datetime
) -> UpdateResult:
    """Record ``update`` for the tenant's order; raises the order-update errors (not found, invalid,
    conflict) unchanged."""
    lines = [UpdateLine(ln.quantity, ln.sku, ln.line_id) for ln in update.lines or []] or None
    if update.type == "shipment":
        return order_updates.record_shipment(
            conn,
            tenant_id=tenant_id,
            order_ref=update.order,
            carrier=update.carrier,
            tracking_number=update.tracking_number,
            tracking_url=update.tracking_url,
            lines=lines,
            external_id=update.id,
            merchant_system_id=merchant_system_id,
            now=now,
        )
    if update.type == "cancellation":
        return order_updates.record_cancellation(
            conn,
            tenant_id=tenant_id,
            order_ref=update.order,
            lines=lines,
            reason=update.reason,
            external_id=update.id,
            merchant_system_id=merchant_system_id,
            now=now,
        )
    if not lines:
        raise ValidationError("a return needs at least one line")
    return order_updates.record_return(
        conn,
        tenant_id=tenant_id,
        order_ref=update.order,
        lines=lines,
        status=update.status,
        marketplace_return_id=update.return_id,
        external_id=update.id,
        merchant_system_id=merchant_system_id,
        now=now,
    )


def handle_apply(ctx: JobContext) -> dict[str, Any] | None:
    """The :data:`APPLY_KIND` handler (see module docstring)."""
    event_id = int(ctx.job.payload["event_id"])
    system_id = int(ctx.job.payload["merchant_system_id"])
    with read_only(ctx.engine) as conn:
        body = conn.execute(
            sa.select(inbound_events.c.body).where(
                inbound_events.c.id == event_id, inbound_events.c.tenant_id == ctx.job.tenant_id
            )
        ).scalar()
    if body is None:
        raise PermanentError(f"inbound event {event_id} does not exist for tenant {ctx.job.tenant_id}")
    now = ctx.now()
    try:
        update = parse_update(bytes(body))
        with ctx.transaction() as conn:
            result = apply_update(conn, ctx.job.tenant_id, system_id, update, now)
            _finish_event(conn, event_id, InboundStatus.PROCESSED, None, now)
            outcome = {"event_id": event_id, "update": result.as_dict()}
            ctx.complete_in(conn, outcome)
    except RetryableError:
        raise
    except TradelaneError as exc:  # not found, invalid, conflict, permanent: the event shows why
        reason = exc.reason if isinstance(exc, PermanentError) else str(exc)
        with ctx.transaction() as conn:
            _finish_event(conn, event_id, InboundStatus.FAILED, reason, now)
        raise PermanentError(f"inbound event {event_id}: {reason}") from exc
    return outcome


def register(registry: JobRegistry) -> None:
    registry.register(APPLY_KIND, handle_apply)
