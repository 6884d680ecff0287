"""Order Health: orders that could not be created in a merchant system, quarantined with the precise
reason, and the ways out (automatic re-try when the cause is fixed, manual retry, release).

Contracts:

* One quarantine row per order (``order_quarantine``, keyed by order): quarantining again updates its
  reason, detail, ``attempts`` and ``last_attempt_at``; ``since`` keeps the first quarantine time.
  A quarantined order has ``merchant_status = quarantined``; history rows record each new reason.
* The raw marketplace payloads stay in ``order_versions`` and the OMS's raw answers on
  ``order_deliveries``: nothing is dropped by quarantining, delivering or releasing.
* Retrying enqueues an ``orders.deliver`` job (at most one queued or running per order); the order
  stays quarantined until that job delivers it.
* Releasing hands the order to the operator (handled outside tradelane): ``merchant_status =
  released``, the quarantine row is removed, and its reason goes into the history.
* :func:`retry_quarantined_for_skus` re-tries ``unknown_sku`` orders whose SKUs all resolve now; call it
  after a catalog import or a SKU mapping change (edit-and-retry = add the mapping, then retry).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import ConflictError, ValidationError
from tradelane.domain.orders import MerchantStatus
from tradelane.merchant.schema import deliverable_lines
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.sku_mappings import resolve_line_skus, unknown_skus
from tradelane.persistence.tables import (
    channels,
    order_deliveries,
    order_lines,
    order_quarantine,
    orders,
)
from tradelane.services.orders import add_history, resolve_order_ref, set_merchant_status
from tradelane.sync.jobs import EnqueueResult, JobSpec, enqueue

DELIVER_KIND = "orders.deliver"
#: Transient OMS failures are retried with backoff this many times before the order is quarantined
#: as ``oms_unavailable`` (throttling with ``Retry-After`` does not count).
DELIVERY_MAX_ATTEMPTS = 12


class QuarantineReason(StrEnum):
    UNKNOWN_SKU = "unknown_sku"  # a line's SKU resolves neither by mapping nor in the catalog
    MISSING_FIELD = "missing_field"  # a mandatory field (address, lines...) is absent
    OMS_REJECTED = "oms_rejected"  # the merchant system answered 4xx
    OMS_UNAVAILABLE = "oms_unavailable"  # transient failures outlasted the retry budget
    NO_MERCHANT_SYSTEM = "no_merchant_system"  # the tenant has no enabled merchant system
    MERCHANT_SYSTEM_ERROR = "merchant_system_error"  # misconfigured system (credentials, adapter)


# --- delivery jobs ------------------------------------------------------------------------------


def enqueue_delivery(
    conn: Connection,
    *,
    tenant_id: int,
    order_id: int,
    channel_id: int | None,
    now: datetime,
    priority: int = 50,
) -> EnqueueResult:
    """Queue ``orders.deliver`` for the order, unless a delivery of it is already queued or running
    (then that job is returned, ``created=False``): at most one delivery of an order is in flight,
    enforced by the jobs' ``exclusive_key`` index."""
    spec = delivery_spec(tenant_id=tenant_id, order_id=order_id, channel_id=channel_id, priority=priority)
    return enqueue(conn, spec, now=now)


def delivery_spec(*, tenant_id: int, order_id: int, channel_id: int | None, priority: int = 50) -> JobSpec:
    """The ``orders.deliver`` job of an order, keyed so that at most one is in flight (enqueue it with
    :func:`~tradelane.sync.jobs.enqueue` or, for many orders, :func:`~tradelane.sync.jobs.enqueue_many`)."""
    key = f"{DELIVER_KIND}:{order_id}"
    return JobSpec(
        tenant_id=tenant_id,
        kind=DELIVER_KIND,
        payload={"order_id": order_id},
        channel_id=channel_id,
        dedupe_key=key,
        exclusive_key=key,
        priority=priority,
        max_attempts=DELIVERY_MAX_ATTEMPTS,
    )


# --- quarantine ---------------------------------------------------------------------------------


def quarantine(
    conn: Connection,
    *,
    tenant_id: int,
    order_id: int,
    reason_code: QuarantineReason,
    reason: str,
    detail: dict[str, Any],
    now: datetime,
) -> bool:
    """Quarantine the order (or record one more failed attempt). Returns True when the order was not
    quarantined for this reason before (a history row is written then)."""
    inserted = conn.execute(
        insert_ignore(conn, order_quarantine)
        .values(
            order_id=order_id,
            tenant_id=tenant_id,
            reason_code=reason_code.value,
            reason=reason,
            detail=detail,
            since=now,
            last_attempt_at=now,
            attempts=1,
        )
        .returning(order_quarantine.c.order_id)
    ).scalar()
    new_reason = inserted is not None
    if not new_reason:
        previous = conn.execute(
            sa.select(order_quarantine.c.reason_code).where(order_quarantine.c.order_id == order_id)
        ).scalar_one()
        new_reason = previous != reason_code.value
        conn.execute(
            sa.update(order_quarantine)
            .where(order_quarantine.c.order_id == order_id)
            .values(
                reason_code=reason_code.value,
                reason=reason,
                detail=detail,
                last_attempt_at=now,
                attempts=order_quarantine.c.attempts + 1,
            )
        )
    set_merchant_status(conn, order_id, MerchantStatus.QUARANTINED, now=now)
    if new_reason:
        add_history(conn, tenant_id, order_id, "QUARANTINED", now=now, note=f"{reason_code.value}: {reason}")
    return new_reason


def clear_quarantine(conn: Connection, order_id: int) -> dict[str, Any] | None:
    """Remove the quarantine row; returns what it said (None when there was none)."""
    row = conn.execute(
        sa.delete(order_quarantine)
        .where(order_quarantine.c.order_id == order_id)
        .returning(order_quarantine.c.reason_code, order_quarantine.c.reason, order_quarantine.c.attempts)
    ).first()
    return (
        None
        if row is None
        else {"reason_code": row.reason_code, "reason": row.reason, "attempts": row.attempts}
    )


# --- listing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuarantinedOrder:
    order_id: int
    ref: str
    channel: str
    marketplace_order_id: str
    reason_code: str
    reason: str
    detail: dict[str, Any]
    since: datetime
    last_attempt_at: datetime
    attempts: int
    age_seconds: int


@dataclass(frozen=True, slots=True)
class HealthGroup:
    reason_code: str
    count: int
    oldest_since: datetime
    oldest_age_seconds: int
    orders: list[QuarantinedOrder] = field(default_factory=list)


def _quarantined_select(tenant_id: int) -> sa.Select[Any]:
    return (
        sa.select(
            order_quarantine,
            orders.c.marketplace_order_id,
            orders.c.channel_id,
            channels.c.name.label("channel"),
        )
        .join(orders, orders.c.id == order_quarantine.c.order_id)
        .join(channels, channels.c.id == orders.c.channel_id)
        .where(
            order_quarantine.c.tenant_id == tenant_id,
            orders.c.merchant_status == MerchantStatus.QUARANTINED.value,
        )
    )


def health_report(
    conn: Connection, tenant_id: int, *, now: datetime, limit_per_reason: int = 200
) -> list[HealthGroup]:
    """Quarantined orders grouped by reason (most orders first), each group oldest first.

    ``count`` and ``oldest_*`` cover the whole group; ``orders`` at most ``limit_per_reason`` of them."""
    summary = conn.execute(
        sa.select(
            order_quarantine.c.reason_code,
            sa.func.count().label("n"),
            sa.func.min(order_quarantine.c.since).label("oldest"),
        )
        .select_from(order_quarantine.join(orders, orders.c.id == order_quarantine.c.order_id))
        .where(
            order_quarantine.c.tenant_id == tenant_id,
            orders.c.merchant_status == MerchantStatus.QUARANTINED.value,
        )
        .group_by(order_quarantine.c.reason_code)
    ).all()
    groups: list[HealthGroup] = []
    for s in sorted(summary, key=lambda r: (-r.n, r.reason_code)):
        rows = conn.execute(
            _quarantined_select(tenant_id)
            .where(order_quarantine.c.reason_code == s.reason_code)
            .order_by(order_quarantine.c.since, order_quarantine.c.order_id)
            .limit(limit_per_reason)
        ).all()
        items = [
            QuarantinedOrder(
                order_id=r.order_id,
                ref=f"{r.channel}:{r.marketplace_order_id}",
                channel=r.channel,
                marketplace_order_id=r.marketplace_order_id,
                reason_code=r.reason_code,
                reason=r.reason,
                detail=dict(r.detail),
                since=r.since,
                last_attempt_at=r.last_attempt_at,
                attempts=r.attempts,
                age_seconds=max(0, int((now - r.since).total_seconds())),
            )
            for r in rows
        ]
        groups.append(
            HealthGroup(
                reason_code=s.reason_code,
                count=int(s.n),
                oldest_since=s.oldest,
                oldest_age_seconds=max(0, int((now - s.oldest).total_seconds())),
                orders=items,
            )
        )
    return groups


# --- retry and release --------------------------------------------------------------------------


def resolve_ref(conn: Connection, tenant_id: int, ref: str) -> int:
    """:func:`~tradelane.services.orders.resolve_order_ref`: tradelane's id, ``CHANNEL:ID`` or the bare
    marketplace order id; odd input (ids beyond BIGINT, non-ASCII digits) is simply not found."""
    return resolve_order_ref(conn, tenant_id, ref)


def _order_row(conn: Connection, tenant_id: int, order_id: int) -> Any:
    return conn.execute(
        sa.select(orders.c.id, orders.c.channel_id, orders.c.merchant_status).where(
            orders.c.tenant_id == tenant_id, orders.c.id == order_id
        )
    ).one()


def retry_orders(conn: Connection, *, tenant_id: int, refs: Sequence[str], now: datetime) -> list[int]:
    """Queue delivery of each order (REF: id, ``CHANNEL:MARKETPLACE_ORDER_ID`` or bare marketplace id).

    Quarantined and pending orders may be retried; delivered, released and third-party-managed ones
    answer :class:`ConflictError`; unknown refs :class:`~tradelane.domain.errors.NotFoundError`.
    Returns the order ids queued."""
    queued: list[int] = []
    allowed = {MerchantStatus.QUARANTINED.value, MerchantStatus.PENDING.value}
    for ref in refs:
        row = _order_row(conn, tenant_id, resolve_ref(conn, tenant_id, ref))
        if row.merchant_status not in allowed:
            raise ConflictError(
                f"order {ref} is {row.merchant_status}; only quarantined or pending orders retry"
            )
        enqueue_delivery(conn, tenant_id=tenant_id, order_id=row.id, channel_id=row.channel_id, now=now)
        add_history(conn, tenant_id, row.id, "RETRY_REQUESTED", now=now, note="delivery retry requested")
        queued.append(row.id)
    return queued


def retry_quarantined(
    conn: Connection, *, tenant_id: int, reason_code: str | None, now: datetime
) -> list[int]:
    """Queue delivery of every quarantined order (of one reason, or all when ``reason_code`` is None)."""
    if reason_code is not None and reason_code not in {r.value for r in QuarantineReason}:
        raise ValidationError(f"unknown reason code {reason_code!r}")
    stmt = _quarantined_select(tenant_id).order_by(order_quarantine.c.since)
    if reason_code is not None:
        stmt = stmt.where(order_quarantine.c.reason_code == reason_code)
    queued: list[int] = []
    for row in conn.execute(stmt).all():
        enqueue_delivery(conn, tenant_id=tenant_id, order_id=row.order_id, channel_id=row.channel_id, now=now)
        add_history(
            conn, tenant_id, row.order_id, "RETRY_REQUESTED", now=now, note="delivery retry requested"
        )
        queued.append(row.order_id)
    return queued


def release_order(conn: Connection, *, tenant_id: int, ref: str, now: datetime) -> int:
    """Release a quarantined order to the operator (see module docstring); returns its id."""
    order_id = resolve_ref(conn, tenant_id, ref)
    row = _order_row(conn, tenant_id, order_id)
    if row.merchant_status != MerchantStatus.QUARANTINED.value:
        raise ConflictError(f"order {ref} is {row.merchant_status}, not quarantined")
    was = clear_quarantine(conn, order_id)
    set_merchant_status(conn, order_id, MerchantStatus.RELEASED, now=now)
    conn.execute(
        sa.update(order_deliveries)
        .where(order_deliveries.c.order_id == order_id, order_deliveries.c.status != "delivered")
        .values(status="released")
    )
    note = "released by an operator, handled outside tradelane"
    if was is not None:
        note += f" (was quarantined: {json.dumps(was, sort_keys=True)})"
    add_history(conn, tenant_id, order_id, "RELEASED", now=now, note=note)
    return order_id


def retry_quarantined_for_skus(
    conn: Connection, *, tenant_id: int, skus: Iterable[str], now: datetime
) -> int:
    """Re-queue delivery of ``unknown_sku`` orders that involve any of ``skus`` and whose lines all
    resolve now (by mapping or catalog). Returns the number of orders queued."""
    wanted = {s for s in skus if s}
    if not wanted:
        return 0
    rows = conn.execute(
        _quarantined_select(tenant_id).where(
            order_quarantine.c.reason_code == QuarantineReason.UNKNOWN_SKU.value
        )
    ).all()
    candidates = [r for r in rows if _mentions(dict(r.detail), wanted)]
    if not candidates:
        return 0
    line_rows = conn.execute(
        sa.select(order_lines.c.order_id, order_lines.c.sku, order_lines.c.offer_sku, order_lines.c.state)
        .where(order_lines.c.order_id.in_([r.order_id for r in candidates]))
        .order_by(order_lines.c.id)
    ).all()
    lines_by_order: dict[int, list[dict[str, Any]]] = {}
    for ln in line_rows:
        lines_by_order.setdefault(ln.order_id, []).append(dict(ln._mapping))
    queued = 0
    for r in candidates:
        lines = deliverable_lines({"lines": lines_by_order.get(r.order_id, [])})
        resolved = resolve_line_skus(conn, tenant_id=tenant_id, channel_id=r.channel_id, lines=lines)
        if lines and not unknown_skus(resolved):
            enqueue_delivery(conn, tenant_id=tenant_id, order_id=r.order_id, channel_id=r.channel_id, now=now)
            add_history(
                conn,
                tenant_id,
                r.order_id,
                "RETRY_REQUESTED",
                now=now,
                note="SKUs now resolve: delivery retried",
            )
            queued += 1
    return queued


def _mentions(detail: dict[str, Any], wanted: set[str]) -> bool:
    named = set(detail.get("skus") or [])
    for line in detail.get("lines") or []:
        named.update(v for v in (line.get("sku"), line.get("offer_sku")) if isinstance(v, str))
    return bool(named & wanted)
