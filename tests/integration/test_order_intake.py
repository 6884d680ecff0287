"""Order intake set-wise: a polled page is stored with a few multi-row statements (not ~13 per
order), stores exactly the rows the per-order path stores, encodes each payload once, and queues its
jobs in one statement with the same idempotency as :func:`enqueue`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from helpers import make_channel, make_tenant
from mirakl_world import build_world, catalog
from tradelane.connectors.mirakl.mapping import MiraklOrderState, neutral_state
from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine, OrderState
from tradelane.persistence.tables import jobs, order_history, order_lines, order_versions, orders
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.order_health import enqueue_delivery
from tradelane.services.order_intake import ACCEPT, store_orders
from tradelane.sync.jobs import JobSpec, JobState, enqueue, enqueue_many

ADDRESS = Address(
    first_name="Ada", last_name="Lovelace", street1="1 Rue de Rivoli", city="Paris", country="FRA"
)


def _order(
    n: int, now: datetime, state: MiraklOrderState, *, minutes: int = 0, line_state: str | None = None
) -> MarketplaceOrder:
    updated = now - timedelta(hours=1) + timedelta(minutes=minutes)
    lines = tuple(
        MarketplaceOrderLine(
            line_id=f"M{n}-{i}",
            offer_sku=f"SKU-{i}",
            quantity=i,
            unit_price=Decimal("9.90"),
            currency="EUR",
            state=line_state or state.value,
            title="Tée-shirt",
        )
        for i in (1, 2, 3)
    )
    return MarketplaceOrder(
        marketplace_order_id=f"M{n}",
        state=neutral_state(state),
        raw_state=state.value,
        currency="EUR",
        created_at=now - timedelta(hours=1),
        updated_at=updated,
        lines=lines,
        acceptance_deadline=now + timedelta(hours=1),
        shipping_address=ADDRESS if state is MiraklOrderState.SHIPPING else None,
        attributes={"n": str(n)},
        raw={
            "order_id": f"M{n}",
            "order_state": state.value,
            "é": "ü",
            "updated": minutes,
            "z": [1, {"b": 2}],
        },
    )


def _per_order(engine: Engine, channel: Channel, page: list[MarketplaceOrder], now: datetime) -> None:
    """The poll's per-order path (as it ran before the set-based intake)."""
    with engine.begin() as conn:
        for order in page:
            result = order_service.ingest_order(
                conn, tenant_id=channel.tenant_id, channel_id=channel.id, order=order, now=now
            )
            if order.state is OrderState.AWAITING_ACCEPTANCE and not result.stale:
                key = f"{ACCEPT}:{result.order_id}"
                spec = JobSpec(
                    channel.tenant_id,
                    ACCEPT,
                    {"order_id": result.order_id},
                    channel_id=channel.id,
                    flow="orders",
                    idempotency_key=key,
                    priority=10,
                )
                enqueue(conn, spec, now=now)
            if result.merchant_status == "pending" and not result.stale:
                enqueue_delivery(
                    conn,
                    tenant_id=channel.tenant_id,
                    order_id=result.order_id,
                    channel_id=channel.id,
                    now=now,
                )


def _snapshot(engine: Engine, channel: Channel) -> dict[str, Any]:
    """Everything stored for the channel's orders, with database ids replaced by marketplace ids."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(orders).where(orders.c.channel_id == channel.id)).all()
        mirakl = {r.id: r.marketplace_order_id for r in rows}
        skip = {"id", "tenant_id", "channel_id", "order_id"}

        def plain(row: Any) -> dict[str, Any]:
            return {k: v for k, v in row._mapping.items() if k not in skip}

        def of(table: sa.Table, *order_by: Any) -> list[tuple[str, dict[str, Any]]]:
            found = conn.execute(
                sa.select(table).where(table.c.order_id.in_(mirakl)).order_by(*order_by)
            ).all()
            return sorted(((mirakl[r.order_id], plain(r)) for r in found), key=_row_key)

        job_rows = conn.execute(sa.select(jobs).where(jobs.c.channel_id == channel.id)).all()
        return {
            "orders": sorted((plain(r) for r in rows), key=lambda r: r["marketplace_order_id"]),
            "lines": of(order_lines, order_lines.c.id),
            "versions": of(order_versions, order_versions.c.id),
            "history": of(order_history, order_history.c.id),
            "jobs": sorted(
                (
                    j.kind,
                    mirakl[j.payload["order_id"]],
                    j.state,
                    j.priority,
                    j.max_attempts,
                    (j.idempotency_key or "").split(":")[0],
                    (j.exclusive_key or "").split(":")[0],
                )
                for j in job_rows
            ),
        }


def _row_key(item: tuple[str, dict[str, Any]]) -> tuple[str, ...]:
    mirakl_id, row = item
    return (mirakl_id, *(str(row.get(k)) for k in ("line_id", "payload_hash", "at", "state", "note")))


def test_a_page_stores_the_same_rows_as_the_per_order_path(engine, now):
    """New orders, a re-poll of the same versions, new versions (state change, cancelled lines), a
    stale version and a line id given twice: the set-based intake stores the same rows."""
    tenant, _ = make_tenant(engine, "acme", now)
    per_order = make_channel(engine, tenant.id, "per-order", now)
    page_wise = make_channel(engine, tenant.id, "page-wise", now)
    waiting, shipping = MiraklOrderState.WAITING_ACCEPTANCE, MiraklOrderState.SHIPPING
    twice = _order(4, now, shipping)
    twice = replace(twice, lines=(*twice.lines, replace(twice.lines[0], quantity=7, state="REFUSED")))
    pages = [
        [_order(1, now, waiting), _order(2, now, shipping), _order(3, now, waiting), twice],
        [
            _order(1, now, waiting),  # the same version again
            _order(2, now, shipping, minutes=5, line_state="CANCELED"),  # a new version
            _order(3, now, waiting, minutes=-5),  # older than the stored one
            _order(5, now, shipping),  # new
        ],
        [_order(1, now, shipping, minutes=10), _order(6, now, waiting)],
    ]
    for number, page in enumerate(pages):
        at = now + timedelta(minutes=number)
        _per_order(engine, per_order, page, at)
        with engine.begin() as conn:
            store_orders(conn, page_wise, page, now=at)
    expected, got = _snapshot(engine, per_order), _snapshot(engine, page_wise)
    assert len(got["orders"]) == 6 and len(got["versions"]) == 9  # 6 + 3 new payloads (one stale)
    assert got == expected


def test_a_poll_stores_a_page_with_one_statement_per_table_not_per_order(engine, now):
    """30 new orders of 3 lines through a real poll: orders, lines, versions and history each take one
    INSERT (the per-order path ran 30, 90, 30 and 30), and the acceptance jobs one."""
    world_iter = build_world(engine, now, sandbox_limits=None)
    world = next(world_iter)
    try:
        world.add_products(catalog(4, quantity=100))
        world.enqueue("offers.full", flow="offers")
        world.run(step=20)
        ids = [world.order([{"offer_sku": f"SKU-{i}", "quantity": 1} for i in (1, 2, 3)]) for _ in range(30)]
        inserts: dict[str, int] = {}

        def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            words = statement.split(None, 3)
            if words[:2] == ["INSERT", "INTO"]:
                table = words[2].strip('"')
                inserts[table] = inserts.get(table, 0) + 1

        event.listen(engine, "before_cursor_execute", count)
        try:
            world.enqueue("orders.poll")
            world.run()  # the poll, then the acceptances it queued (they insert none of these)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        with engine.connect() as conn:
            stored = conn.execute(sa.select(orders.c.marketplace_order_id)).scalars().all()
            assert sorted(stored) == sorted(ids)
            assert conn.execute(sa.select(sa.func.count()).select_from(order_lines)).scalar_one() == 90
            accepts = conn.execute(sa.select(sa.func.count()).where(jobs.c.kind == ACCEPT)).scalar_one()
            assert accepts == 30
        assert inserts["orders"] == 1, inserts
        assert inserts["order_lines"] == 1, inserts
        assert inserts["order_versions"] == 1, inserts
    finally:
        world_iter.close()


def test_the_stored_payload_is_the_text_that_was_hashed(engine, now):
    """Each payload is encoded once, on the page path and the per-order path alike: the stored JSON is
    the very text whose sha256 is ``payload_hash`` (and it decodes to the raw payload)."""
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    order = _order(1, now, MiraklOrderState.SHIPPING)
    newer = _order(1, now, MiraklOrderState.SHIPPING, minutes=5)
    with engine.begin() as conn:
        store_orders(conn, channel, [order], now=now)
        order_service.ingest_order(conn, tenant_id=tenant.id, channel_id=channel.id, order=newer, now=now)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(order_versions.c.payload, order_versions.c.payload_hash).order_by(order_versions.c.id)
        ).all()
        texts = conn.exec_driver_sql("SELECT payload FROM order_versions ORDER BY id").scalars().all()
    assert [v.payload for v in stored] == [order.raw, newer.raw]
    for version, raw in zip(stored, (order.raw, newer.raw), strict=True):
        assert version.payload_hash == hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
    if engine.dialect.name == "sqlite":  # PostgreSQL's JSONB keeps no text
        assert [hashlib.sha256(t.encode()).hexdigest() for t in texts] == [v.payload_hash for v in stored]


def test_a_payload_with_non_json_values_is_stored_as_before(engine, now):
    """A payload holding Decimals and datetimes (not from a JSON reply) keeps the column's encoding."""
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    order = replace(_order(1, now, MiraklOrderState.SHIPPING), raw={"price": Decimal("1.50"), "at": now})
    with engine.begin() as conn:
        store_orders(conn, channel, [order], now=now)
        store_orders(conn, channel, [order], now=now)  # the same version again: nothing new
    with engine.connect() as conn:
        [version] = conn.execute(sa.select(order_versions.c.payload)).scalars().all()
    assert version == {"price": "1.50", "at": now.isoformat()}


def test_a_page_with_an_order_twice_is_refused(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    order = _order(1, now, MiraklOrderState.SHIPPING)
    with engine.begin() as conn, pytest.raises(ValueError, match="once per page"):
        order_service.ingest_orders(
            conn, tenant_id=tenant.id, channel_id=channel.id, orders_page=[order, order], now=now
        )


def test_enqueue_many_keeps_enqueue_idempotency(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    t = tenant.id
    later = now + timedelta(minutes=10)
    with engine.begin() as conn:
        held = enqueue(conn, JobSpec(t, "a", {}, idempotency_key="k1"), now=now).job_id
        pending = enqueue(conn, JobSpec(t, "b", {}, dedupe_key="d1", run_at=later), now=now).job_id
        specs = [
            JobSpec(t, "a", {"x": 1}, idempotency_key="k1"),  # already held
            JobSpec(t, "c", {"x": 2}, exclusive_key="e1"),  # new
            JobSpec(t, "c", {"x": 3}, exclusive_key="e1"),  # same key as the one before: that job
            JobSpec(t, "b", {"x": 4}, dedupe_key="d1", run_at=now),  # coalesced, brought forward
            JobSpec(t, "d", {"x": 5}),  # no key: always a new job
            JobSpec(t, "d", {"x": 6}),
            JobSpec(t, "c", {"x": 7}, exclusive_key="e2"),  # new
        ]
        results = enqueue_many(conn, specs, now=now)
    assert [r.created for r in results] == [False, True, False, False, True, True, True]
    assert results[0].job_id == held and results[3].job_id == pending
    assert results[1].job_id == results[2].job_id
    assert len({r.job_id for r in results}) == 6
    with engine.connect() as conn:
        by_id = {r.id: r for r in conn.execute(sa.select(jobs)).all()}
    assert by_id[results[1].job_id].payload == {"x": 2}
    assert by_id[results[4].job_id].payload == {"x": 5} and by_id[results[5].job_id].payload == {"x": 6}
    assert by_id[results[6].job_id].payload == {"x": 7} and by_id[results[6].job_id].kind == "c"
    assert by_id[pending].run_at == now
    assert all(r.state == JobState.QUEUED.value for r in by_id.values())


def test_an_order_inserted_meanwhile_is_left_to_the_per_order_path(engine, now):
    """Between the page's SELECT and its INSERT another transaction may store one of its orders: the
    multi-row insert skips it (ON CONFLICT DO NOTHING) and stores nothing else for it."""
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    first = _order(1, now, MiraklOrderState.SHIPPING)
    with engine.begin() as conn:
        store_orders(conn, channel, [first], now=now)
    later = now + timedelta(minutes=1)
    page = [
        _order(1, now, MiraklOrderState.SHIPPING, minutes=3),
        _order(2, now, MiraklOrderState.SHIPPING),
    ]
    with engine.begin() as conn:
        created = order_service._insert_new_orders(
            conn, tenant_id=tenant.id, channel_id=channel.id, fresh=page, now=later, third_party=False
        )
    assert set(created) == {"M2"}
    with engine.connect() as conn:
        versions = conn.execute(
            sa.select(orders.c.marketplace_order_id, sa.func.count())
            .join(order_versions, order_versions.c.order_id == orders.c.id)
            .group_by(orders.c.marketplace_order_id)
        ).all()
        lines = conn.execute(sa.select(sa.func.count()).select_from(order_lines)).scalar_one()
    assert dict(versions) == {"M1": 1, "M2": 1} and lines == 6
