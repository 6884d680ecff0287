"""Offer bindings (the listings outbox) as the connectors and operators see them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.catalog import Product
from tradelane.persistence.tables import channels, jobs, offer_bindings, products
from tradelane.services.outbox import schedule_deltas

#: The job kind of a full offer sync (every bound offer, whatever its dirty flag).
OFFERS_FULL = "offers.full"

#: Key of the optional progress callback in the worker's ``services``: a full sync calls it with an
#: :class:`OfferSyncProgress` after every chunk of offers it builds, then before its first submission
#: to the marketplace and after each one.
OFFER_SYNC_PROGRESS = "offer_sync_progress"


@dataclass(frozen=True, slots=True)
class OfferSyncProgress:
    """Where a full offer sync of ``channel_id`` stands: ``done`` of ``total`` offers are built (stage
    ``building``, first) or handled by the upload (stage ``sent``: submitted to the marketplace, or
    blocked by the hub). Within a stage ``done`` never decreases; ``sent`` starts again from the offers
    an earlier attempt already handled."""

    channel_id: int
    done: int
    total: int
    stage: str


OfferSyncProgressFn = Callable[[OfferSyncProgress], None]


class OfferStatus(StrEnum):
    PENDING = "pending"  # never sent
    SUBMITTED = "submitted"  # sent, marketplace still processing
    PUBLISHED = "published"  # accepted by the marketplace
    ERROR = "error"  # the marketplace rejected it; see last_error
    BLOCKED = "blocked"  # tradelane cannot send it (e.g. no price); see last_error


@dataclass(frozen=True, slots=True)
class DirtyOffer:
    binding_id: int
    change_seq: int
    product: Product
    #: The product is no longer selected on the channel and its offer is to be deleted (0016).
    delete: bool = False


#: ``offer_bindings.selection_state`` (0016; see :mod:`tradelane.services.selection`).
SELECTED, DELISTING, LEFT = "selected", "delisting", "left"


def product_from_row(row: Any) -> Product:
    """The offer-relevant part of a product row (what marketplaces' offers carry)."""
    return Product(
        sku=row.sku,
        parent_sku=row.parent_sku,
        title=row.title,
        brand=row.brand,
        gtin=row.gtin,
        price=row.price,
        currency=row.currency,
        quantity=row.quantity,
        attributes=dict(row.attributes or {}),
    )


def stored_product(row: Any) -> Product:
    """The complete product of a full ``products`` row (its ``content_hash`` matches the stored one)."""
    return Product(
        sku=row.sku,
        parent_sku=row.parent_sku,
        title=row.title,
        description=row.description,
        brand=row.brand,
        gtin=row.gtin,
        price=row.price,
        currency=row.currency,
        quantity=row.quantity,
        labels=tuple(row.labels or ()),
        attributes=dict(row.attributes or {}),
    )


def _bound_select(channel_id: int) -> sa.Select[Any]:
    # Only the columns an offer needs: at 100k offers, converting whole rows costs seconds.
    return (
        sa.select(
            offer_bindings.c.id.label("binding_id"),
            offer_bindings.c.change_seq,
            products.c.sku,
            products.c.parent_sku,
            products.c.title,
            products.c.brand,
            products.c.gtin,
            products.c.price,
            products.c.currency,
            products.c.quantity,
            products.c.attributes,
            offer_bindings.c.selection_state,
        )
        .join(products, products.c.id == offer_bindings.c.product_id)
        # A product no longer selected and left on the marketplace is never sent again (0016).
        .where(offer_bindings.c.channel_id == channel_id, offer_bindings.c.selection_state != LEFT)
    )


def _offer(row: Any) -> DirtyOffer:
    return DirtyOffer(row.binding_id, row.change_seq, product_from_row(row), row.selection_state == DELISTING)


def dirty_offers(conn: Connection, channel_id: int, *, limit: int) -> list[DirtyOffer]:
    """The oldest ``limit`` unsynced offers of a channel (every change since the last call, coalesced)."""
    rows = conn.execute(
        _bound_select(channel_id)
        .where(offer_bindings.c.dirty.is_(True))
        .order_by(offer_bindings.c.id)
        .limit(limit)
    ).all()
    return [_offer(r) for r in rows]


def all_offers(conn: Connection, channel_id: int) -> list[DirtyOffer]:
    rows = conn.execute(_bound_select(channel_id).order_by(offer_bindings.c.id)).all()
    return [_offer(r) for r in rows]


def full_sync_in_flight(
    conn: Connection,
    channel_id: int,
    *,
    now: datetime,
    other_than: int | None = None,
    job_id: int | None = None,
) -> int | None:
    """The id of a full offer sync of the channel that is running or due (queued with ``run_at <= now``),
    if any — ``job_id`` to ask about that one job, ``other_than`` to leave one out. A full sync waiting
    out a retry backoff is not in flight: deltas do not wait for it (stock must not go stale)."""
    stmt = sa.select(jobs.c.id).where(
        jobs.c.channel_id == channel_id,
        jobs.c.kind == OFFERS_FULL,
        sa.or_(jobs.c.state == "running", sa.and_(jobs.c.state == "queued", jobs.c.run_at <= now)),
    )
    if other_than is not None:
        stmt = stmt.where(jobs.c.id != other_than)
    if job_id is not None:
        stmt = stmt.where(jobs.c.id == job_id)
    return conn.execute(stmt.order_by(jobs.c.id).limit(1)).scalar()


def never_fully_synced(conn: Connection, channel_id: int) -> bool:
    """True while no full offer sync of the channel has completed (its first sync is still to come)."""
    stamp = conn.execute(sa.select(channels.c.full_synced_at).where(channels.c.id == channel_id)).scalar()
    return stamp is None


def mark_full_synced(conn: Connection, channel_id: int, *, read_at: datetime) -> None:
    """Record that a full sync sent every offer as read at ``read_at``."""
    conn.execute(sa.update(channels).where(channels.c.id == channel_id).values(full_synced_at=read_at))


def count_dirty(conn: Connection, channel_id: int) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(offer_bindings)
            .where(offer_bindings.c.channel_id == channel_id, offer_bindings.c.dirty.is_(True))
        ).scalar_one()
    )


def mark_sent(
    conn: Connection,
    offers: Sequence[DirtyOffer],
    *,
    status: OfferStatus,
    now: datetime,
    import_ref: str | None = None,
    error: str | None = None,
    request: str | None = None,
) -> int:
    """Record that these offer versions were sent (or blocked). Fenced by ``change_seq``: an offer that
    changed again meanwhile stays dirty, so the newer change is sent by the next delta."""
    if not offers:
        return 0
    by_seq: dict[int, list[int]] = {}
    for offer in offers:
        by_seq.setdefault(offer.change_seq, []).append(offer.binding_id)
    updated = 0
    for seq, ids in by_seq.items():  # set-based: one UPDATE per (change_seq, 500 ids)
        for start in range(0, len(ids), 500):
            result = conn.execute(
                sa.update(offer_bindings)
                .where(offer_bindings.c.id.in_(ids[start : start + 500]), offer_bindings.c.change_seq == seq)
                .values(
                    dirty=False,
                    dirty_since=None,
                    synced_seq=seq,
                    status=status.value,
                    import_ref=import_ref,
                    last_error=error,
                    last_request=request,
                    last_synced_at=now,
                )
            )
            updated += int(result.rowcount or 0)
    return updated


def block(conn: Connection, offer: DirtyOffer, reasons: Iterable[str], *, now: datetime) -> None:
    mark_sent(conn, [offer], status=OfferStatus.BLOCKED, now=now, error="; ".join(reasons))


def apply_import_result(
    conn: Connection,
    channel_id: int,
    import_ref: str,
    errors_by_sku: dict[str, list[str]],
    *,
    response: str | None = None,
) -> tuple[int, int]:
    """Set the outcome of every offer carried by ``import_ref``: errors on the SKUs named, published
    for the rest; a deletion the marketplace accepted (``selection_state`` "delisting", not changed
    since) removes its binding. Returns (published, failed)."""
    carried = conn.execute(
        sa.update(offer_bindings)
        .where(offer_bindings.c.channel_id == channel_id, offer_bindings.c.import_ref == import_ref)
        .values(status=OfferStatus.PUBLISHED.value, last_error=None, last_response=response)
    )
    failed = 0
    skus = list(errors_by_sku)
    for begin in range(0, len(skus), 500):
        rows = conn.execute(
            sa.select(offer_bindings.c.id, products.c.sku)
            .join(products, products.c.id == offer_bindings.c.product_id)
            .where(
                offer_bindings.c.channel_id == channel_id,
                offer_bindings.c.import_ref == import_ref,
                products.c.sku.in_(skus[begin : begin + 500]),
            )
        ).all()
        for row in rows:
            conn.execute(
                sa.update(offer_bindings)
                .where(offer_bindings.c.id == row.id)
                .values(
                    status=OfferStatus.ERROR.value,
                    last_error="; ".join(errors_by_sku[row.sku]),
                    last_response=response,
                )
            )
            failed += 1
    conn.execute(
        sa.delete(offer_bindings).where(
            offer_bindings.c.channel_id == channel_id,
            offer_bindings.c.import_ref == import_ref,
            offer_bindings.c.selection_state == DELISTING,
            offer_bindings.c.status == OfferStatus.PUBLISHED.value,
            offer_bindings.c.dirty.is_(False),
        )
    )
    return int(carried.rowcount or 0) - failed, failed


def list_offers(
    conn: Connection,
    tenant_id: int,
    *,
    channel: str | None = None,
    status: str | None = None,
    sku: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    stmt = (
        sa.select(
            offer_bindings.c.id,
            channels.c.name.label("channel"),
            products.c.sku,
            products.c.title,
            products.c.price,
            products.c.currency,
            products.c.quantity,
            offer_bindings.c.status,
            offer_bindings.c.dirty,
            offer_bindings.c.dirty_since,
            offer_bindings.c.last_error,
            offer_bindings.c.last_request,
            offer_bindings.c.last_response,
            offer_bindings.c.last_synced_at,
            offer_bindings.c.import_ref,
            offer_bindings.c.selection_state,
        )
        .join(products, products.c.id == offer_bindings.c.product_id)
        .join(channels, channels.c.id == offer_bindings.c.channel_id)
        .where(offer_bindings.c.tenant_id == tenant_id)
    )
    if channel:
        stmt = stmt.where(channels.c.name == channel)
    if status:
        stmt = stmt.where(offer_bindings.c.status == status)
    if sku:
        stmt = stmt.where(products.c.sku == sku)
    rows = conn.execute(stmt.order_by(offer_bindings.c.id).limit(limit).offset(offset)).all()
    return [dict(r._mapping) for r in rows]


def republish(
    conn: Connection,
    tenant_id: int,
    channel_id: int,
    *,
    skus: Sequence[str] | None = None,
    failed_only: bool = True,
    now: datetime,
) -> int:
    """Mark offers to be sent again (one SKU, several, or every failed/blocked one) and schedule the delta.
    Products de-selected and left on the marketplace (0016) are not sent again."""
    stmt = (
        sa.select(offer_bindings.c.product_id)
        .join(products, products.c.id == offer_bindings.c.product_id)
        .where(
            offer_bindings.c.tenant_id == tenant_id,
            offer_bindings.c.channel_id == channel_id,
            offer_bindings.c.selection_state != LEFT,
        )
    )
    if skus is not None:
        stmt = stmt.where(products.c.sku.in_(list(skus)))
    elif failed_only:
        stmt = stmt.where(offer_bindings.c.status.in_([OfferStatus.ERROR.value, OfferStatus.BLOCKED.value]))
    product_ids = [r.product_id for r in conn.execute(stmt)]
    if not product_ids:
        return 0
    conn.execute(
        sa.update(offer_bindings)
        .where(offer_bindings.c.channel_id == channel_id, offer_bindings.c.product_id.in_(product_ids))
        .values(
            dirty=True,
            change_seq=offer_bindings.c.change_seq + 1,
            dirty_since=now,
            status=OfferStatus.PENDING.value,
        )
    )
    schedule_deltas(conn, tenant_id, {channel_id}, now=now)
    return len(product_ids)
