"""The listings outbox: catalog changes mark (product, channel) bindings dirty in the caller's
transaction and make sure one coalesced ``offers.delta`` job per affected channel is pending.

Callers (catalog import, stock webhooks, API edits) call these inside the same transaction that
changes the products, so a change can never be committed without being scheduled for sync.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.channels import Flow
from tradelane.domain.selection import from_json as selection_from_json
from tradelane.persistence.tables import channel_flows, channel_selections, channels, offer_bindings, products
from tradelane.sync.jobs import JobSpec, enqueue

OFFERS_DELTA = "offers.delta"
_CHUNK = 500


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def bind_new_products(
    conn: Connection,
    tenant_id: int,
    product_ids: Sequence[int],
    *,
    now: datetime,
    only_channels: Collection[int] | None = None,
) -> set[int]:
    """Create dirty bindings of new products to every channel of the tenant (or only to those of
    ``only_channels`` that belong to the tenant; an empty collection binds nothing, so the products are
    published nowhere); returns the channel ids. A channel with a selection (``channel_selections``,
    see :mod:`tradelane.services.selection`) gets only the products its rule selects."""
    if only_channels is not None and not only_channels:
        return set()
    stmt = (
        sa.select(channels.c.id, channel_selections.c.rule)
        .outerjoin(channel_selections, channel_selections.c.channel_id == channels.c.id)
        .where(channels.c.tenant_id == tenant_id, channels.c.removed_at.is_(None))
    )
    if only_channels is not None:
        stmt = stmt.where(channels.c.id.in_(sorted(only_channels)))
    rows = conn.execute(stmt).all()
    if not rows or not product_ids:
        return set()
    chosen = _selected_by_channel(conn, rows, product_ids)
    values = [
        {
            "tenant_id": tenant_id,
            "channel_id": r.id,
            "product_id": product_id,
            "dirty": True,
            "dirty_since": now,
        }
        for r in rows
        for product_id in chosen.get(r.id, product_ids)
    ]
    bound = {value["channel_id"] for value in values}
    if values:
        conn.execute(sa.insert(offer_bindings), values)
    schedule_deltas(conn, tenant_id, bound, now=now)
    return bound


def _selected_by_channel(
    conn: Connection, rows: Sequence[Any], product_ids: Sequence[int]
) -> dict[int, list[int]]:
    """The products each channel with a selection rule selects among ``product_ids`` (channels without a
    rule are left out: they take every product). Reads the products only when some channel has a rule."""
    rules = {r.id: selection_from_json(r.rule) for r in rows if r.rule is not None}
    if not rules:
        return {}
    facts: list[tuple[int, Any, Any]] = []
    for chunk in _chunks(list(product_ids)):
        facts.extend(
            conn.execute(
                sa.select(products.c.id, products.c.labels, products.c.attributes).where(
                    products.c.id.in_(chunk)
                )
            ).tuples()
        )
    return {
        channel_id: [pid for pid, labels, attributes in facts if rule.matches(labels, attributes)]
        for channel_id, rule in rules.items()
    }


def mark_offers_dirty(
    conn: Connection, tenant_id: int, product_ids: Sequence[int], *, now: datetime
) -> set[int]:
    """Bump ``change_seq`` of every binding of these products (except those left on the marketplace
    when de-selected: ``selection_state`` "left"); returns the affected channel ids."""
    affected: set[int] = set()
    for chunk in _chunks(list(product_ids)):
        rows = conn.execute(
            sa.update(offer_bindings)
            .where(
                offer_bindings.c.tenant_id == tenant_id,
                offer_bindings.c.product_id.in_(chunk),
                # 0016: a product no longer selected and left on the marketplace is never updated again.
                offer_bindings.c.selection_state != "left",
            )
            .values(
                dirty=True,
                change_seq=offer_bindings.c.change_seq + 1,
                dirty_since=sa.func.coalesce(offer_bindings.c.dirty_since, now),
            )
            .returning(offer_bindings.c.channel_id)
        )
        affected.update(r.channel_id for r in rows)
    schedule_deltas(conn, tenant_id, affected, now=now)
    return affected


def schedule_deltas(conn: Connection, tenant_id: int, channel_ids: set[int], *, now: datetime) -> None:
    if not channel_ids:
        return
    enabled = {
        r.channel_id
        for r in conn.execute(
            sa.select(channel_flows.c.channel_id).where(
                channel_flows.c.channel_id.in_(channel_ids),
                channel_flows.c.flow == Flow.OFFERS.value,
                channel_flows.c.enabled.is_(True),
            )
        )
    }
    for channel_id in sorted(enabled):
        enqueue(
            conn,
            JobSpec(
                tenant_id=tenant_id,
                kind=OFFERS_DELTA,
                payload={},
                channel_id=channel_id,
                flow=Flow.OFFERS.value,
                dedupe_key=f"{OFFERS_DELTA}:{channel_id}",
            ),
            now=now,
        )
