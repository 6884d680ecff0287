"""SKU resolution for merchant-side delivery, and SKU mappings (marketplace SKU → merchant SKU).

Resolution of one order line, first match wins:

1. a ``sku_mappings`` row for the order's channel, then a tenant-wide one (``channel_id`` NULL), for
   the line's SKU, then for its offer SKU;
2. a catalog ``products`` row with the line's SKU, then with its offer SKU.

A mapping is *checked*: its merchant SKU must be a catalog SKU of the tenant, unless the mapping is
``merchant_only`` (the operator confirmed the SKU exists only in the merchant system).
:func:`put_sku_mapping` refuses any other target, and resolution treats a stored mapping whose target
is not (or no longer) in the catalog as no resolution at all, so an order never reaches a merchant
system with a made-up SKU. (A matching mapping decides: a bogus channel mapping does not fall back to
a tenant-wide one or to the catalog.)

Otherwise the line's SKU is *unknown* and the order is quarantined (Order Health) before any merchant
system is contacted.

Known gap: the unique index ``(tenant_id, channel_id, marketplace_sku)`` does not hold for NULL
``channel_id`` (NULLs are distinct), so two concurrent tenant-wide additions of the same SKU may both
insert; resolution then uses the newest row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import ValidationError
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import channels, products, sku_mappings, tenants

MAX_SKU_LENGTH = 200


@dataclass(frozen=True, slots=True)
class SkuMapping:
    id: int
    tenant_id: int
    channel_id: int | None
    marketplace_sku: str
    merchant_sku: str
    merchant_only: bool = False


def check_sku(value: str, what: str) -> str:
    """``value`` stripped; :class:`ValidationError` unless it is 1-200 printable characters."""
    cleaned = value.strip()
    if not cleaned or len(cleaned) > MAX_SKU_LENGTH or any(ord(c) < 0x20 or c == "\x7f" for c in cleaned):
        raise ValidationError(f"{what} must be 1-{MAX_SKU_LENGTH} printable characters")
    return cleaned


def _channel_condition(channel_id: int | None) -> sa.ColumnElement[bool]:
    if channel_id is None:
        return sku_mappings.c.channel_id.is_(None)
    return sku_mappings.c.channel_id == channel_id


def put_sku_mapping(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int | None,
    marketplace_sku: str,
    merchant_sku: str,
    now: datetime,
    merchant_only: bool = False,
) -> SkuMapping:
    """Create or replace the mapping of ``marketplace_sku`` (for one channel, or tenant-wide when
    ``channel_id`` is None). Callers should then re-try quarantined orders
    (:func:`tradelane.services.order_health.retry_quarantined_for_skus`).

    ``merchant_sku`` must be a catalog SKU of the tenant, else :class:`ValidationError` ("SKU 'X' is not
    in the catalog of tenant T"), unless ``merchant_only`` is True: the caller has had the operator
    confirm that the SKU exists only in the merchant system. The flag is stored with the mapping."""
    marketplace_sku = check_sku(marketplace_sku, "marketplace SKU")
    merchant_sku = check_sku(merchant_sku, "merchant SKU")
    if not merchant_only and not sku_in_catalog(conn, tenant_id, merchant_sku):
        raise ValidationError(not_in_catalog_reason(conn, tenant_id, merchant_sku))
    where = sa.and_(
        sku_mappings.c.tenant_id == tenant_id,
        _channel_condition(channel_id),
        sku_mappings.c.marketplace_sku == marketplace_sku,
    )
    for _ in range(2):  # update, else insert; a concurrent insert makes the second update win
        updated = conn.execute(
            sa.update(sku_mappings)
            .where(where)
            .values(merchant_sku=merchant_sku, merchant_only=merchant_only)
        )
        if updated.rowcount:
            break
        inserted = conn.execute(
            insert_ignore(conn, sku_mappings)
            .values(
                tenant_id=tenant_id,
                channel_id=channel_id,
                marketplace_sku=marketplace_sku,
                merchant_sku=merchant_sku,
                merchant_only=merchant_only,
                created_at=now,
            )
            .returning(sku_mappings.c.id)
        ).scalar()
        if inserted is not None:
            break
    row = conn.execute(sa.select(sku_mappings).where(where).order_by(sku_mappings.c.id.desc())).first()
    assert row is not None
    return SkuMapping(
        row.id, row.tenant_id, row.channel_id, row.marketplace_sku, row.merchant_sku, row.merchant_only
    )


def sku_in_catalog(conn: Connection, tenant_id: int, sku: str) -> bool:
    """Whether ``sku`` is a catalog (``products``) SKU of the tenant."""
    return (
        conn.execute(
            sa.select(products.c.id).where(products.c.tenant_id == tenant_id, products.c.sku == sku)
        ).first()
        is not None
    )


def not_in_catalog_reason(conn: Connection, tenant_id: int, sku: str) -> str:
    """The error of a mapping to ``sku`` when it is not a catalog SKU of the tenant."""
    name = conn.execute(sa.select(tenants.c.name).where(tenants.c.id == tenant_id)).scalar()
    return (
        f"SKU {sku!r} is not in the catalog of tenant {name if name is not None else tenant_id}; "
        "map to a catalog SKU, or mark the mapping as known only to the merchant system "
        "(merchant-only, with a confirmation)"
    )


def list_sku_mappings(conn: Connection, tenant_id: int, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The tenant's mappings by marketplace SKU (the first ``limit`` of them when given), each with
    its channel name (None: every channel), whether it is ``merchant_only``, whether its merchant SKU
    is ``in_catalog``, and whether it is ``effective`` (either of them; a mapping that is neither —
    stored before mappings were checked — is ignored by order validation)."""
    in_catalog = (
        sa.exists()
        .where(
            products.c.tenant_id == sku_mappings.c.tenant_id, products.c.sku == sku_mappings.c.merchant_sku
        )
        .label("in_catalog")
    )
    rows = conn.execute(
        sa.select(sku_mappings, channels.c.name.label("channel"), in_catalog)
        .outerjoin(channels, channels.c.id == sku_mappings.c.channel_id)
        .where(sku_mappings.c.tenant_id == tenant_id)
        .order_by(sku_mappings.c.marketplace_sku, sku_mappings.c.id)
        .limit(limit)
    )
    return [
        {
            "id": r.id,
            "channel": r.channel,
            "marketplace_sku": r.marketplace_sku,
            "merchant_sku": r.merchant_sku,
            "merchant_only": r.merchant_only,
            "in_catalog": bool(r.in_catalog),
            "effective": bool(r.merchant_only or r.in_catalog),
            "created_at": r.created_at,
        }
        for r in rows
    ]


def _candidates(line: Mapping[str, Any]) -> list[str]:
    values = [line.get("sku"), line.get("offer_sku")]
    return list(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def resolve_line_skus(
    conn: Connection, *, tenant_id: int, channel_id: int, lines: Sequence[Mapping[str, Any]]
) -> dict[str, str | None]:
    """Line SKU → merchant SKU (None when unknown) for ``lines`` of an order of ``channel_id``."""
    wanted = sorted({c for line in lines for c in _candidates(line)})
    if not wanted:
        return {str(line.get("sku")): None for line in lines}
    mapped: dict[str, tuple[str, bool]] = {}
    rows = conn.execute(
        sa.select(
            sku_mappings.c.marketplace_sku,
            sku_mappings.c.merchant_sku,
            sku_mappings.c.merchant_only,
            sku_mappings.c.channel_id,
        )
        .where(
            sku_mappings.c.tenant_id == tenant_id,
            sku_mappings.c.marketplace_sku.in_(wanted),
            sa.or_(sku_mappings.c.channel_id == channel_id, sku_mappings.c.channel_id.is_(None)),
        )
        # Tenant-wide rows first, then channel rows, each oldest first: later assignments win.
        .order_by(sku_mappings.c.channel_id.is_not(None), sku_mappings.c.id)
    )
    for r in rows:
        mapped[r.marketplace_sku] = (r.merchant_sku, bool(r.merchant_only))
    # Catalog SKUs among the candidates and the (checked) mapping targets.
    lookup = sorted(set(wanted) | {target for target, only in mapped.values() if not only})
    in_catalog: set[str] = set()
    for start in range(0, len(lookup), 500):
        in_catalog.update(
            conn.execute(
                sa.select(products.c.sku).where(
                    products.c.tenant_id == tenant_id, products.c.sku.in_(lookup[start : start + 500])
                )
            ).scalars()
        )
    result: dict[str, str | None] = {}
    for line in lines:
        candidates = _candidates(line)
        mapping = next((mapped[c] for c in candidates if c in mapped), None)
        merchant_sku: str | None
        if mapping is not None:
            target, merchant_only = mapping
            merchant_sku = target if merchant_only or target in in_catalog else None
        else:
            merchant_sku = next((c for c in candidates if c in in_catalog), None)
        result[str(line.get("sku"))] = merchant_sku
    return result


def unknown_skus(resolved: Mapping[str, str | None]) -> list[str]:
    return sorted(sku for sku, merchant_sku in resolved.items() if merchant_sku is None)


def all_candidates(lines: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every SKU a line can be known by (line SKU and offer SKU)."""
    return {c for line in lines for c in _candidates(line)}
