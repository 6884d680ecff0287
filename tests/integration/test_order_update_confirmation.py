"""The status shown for updates pushed back follows the marketplace: a shipment the marketplace shows
SHIPPED on a later poll is ``confirmed`` — never left ``queued`` — on every surface (service, dashboard
data, CLI), while a failed push stays visible as ``failed``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from helpers import make_tenant
from mirakl_world import SHOP_ID, World, build_world
from order_updates_support import make_order, marketplace_order
from tradelane.connectors.mirakl.mapping import MiraklOrderState
from tradelane.domain.order_updates import UpdateLine, effective_status, marketplace_confirmation
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import order_updates as updates
from tradelane.services.channels import Channel, create_channel
from tradelane.services.inspection import order_inspection
from tradelane.services.orders import ingest_order, list_orders
from tradelane.sync import jobs as jobstore

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


# --- pure ------------------------------------------------------------------------------------------


def test_confirmation_needs_the_marketplace_to_reach_the_state_after_the_update():
    seen = [(T0 - timedelta(hours=1), "to_ship"), (T0 + timedelta(minutes=5), "shipped")]
    assert "shipped" in (
        marketplace_confirmation("shipment", {}, recorded_at=T0, states_seen=seen, line_states={}) or ""
    )
    # already SHIPPED before the update (e.g. tracking added later): nothing confirms the new push
    early = [(T0 - timedelta(hours=1), "shipped")]
    assert marketplace_confirmation("shipment", {}, recorded_at=T0, states_seen=early, line_states={}) is None
    # a partial shipment is confirmed by its lines' states
    partial = {"lines": [{"line_id": "L1", "quantity": 1}]}
    assert marketplace_confirmation(
        "shipment", partial, recorded_at=T0, states_seen=[], line_states={"L1": "SHIPPED", "L2": "SHIPPING"}
    )
    assert (
        marketplace_confirmation(
            "shipment", partial, recorded_at=T0, states_seen=[], line_states={"L1": "SHIPPING"}
        )
        is None
    )
    cancelled = [(T0 + timedelta(minutes=1), "cancelled")]
    assert marketplace_confirmation("cancellation", {}, recorded_at=T0, states_seen=cancelled, line_states={})
    assert (
        marketplace_confirmation("refund", {}, recorded_at=T0, states_seen=cancelled, line_states={}) is None
    )


def test_effective_status_prefers_the_marketplace_but_never_hides_a_failure():
    why = "the marketplace shows the order shipped"
    assert effective_status("queued", "d", "queued", None, None, why) == (
        "confirmed",
        why + "; our push job is still queued",
    )
    assert effective_status("queued", "d", "succeeded", None, {"note": "ok"}, why) == ("confirmed", why)
    assert effective_status("queued", "d", "succeeded", None, {"note": "ok"}) == ("sent", "d")
    status, detail = effective_status("queued", "d", "dead", "OR23 refused", None, why)
    assert status == "failed" and detail.startswith("OR23 refused")
    assert effective_status("skipped", "tpm", None, None, None, why) == ("skipped", "tpm")


# --- stored orders -----------------------------------------------------------------------------------


def _channel(engine: Engine, tenant_id: int, now: datetime) -> Channel:
    with engine.begin() as conn:
        return create_channel(
            conn,
            tenant_id=tenant_id,
            name="mk",
            connector="mirakl",
            settings={"hostname": "shop.example.com", "multi_shipment": True},
            credentials=None,
            keyring=KeyRing([generate_key()]),
            now=now,
        )


def _ship(engine: Engine, tenant_id: int, ref: str, now: datetime) -> updates.UpdateResult:
    with engine.begin() as conn:
        return updates.record_shipment(
            conn,
            tenant_id=tenant_id,
            order_ref=ref,
            carrier="UPS",
            tracking_number="1Z999",
            tracking_url=None,
            lines=None,
            external_id="oms-ship-1",
            now=now,
        )


def _statuses(engine: Engine, tenant_id: int, order_id: int) -> dict[int, tuple[str, str | None]]:
    with engine.connect() as conn:
        return {u["id"]: (u["status"], u["detail"]) for u in updates.list_updates(conn, tenant_id, order_id)}


def test_a_shipment_seen_shipped_on_the_next_poll_is_confirmed_even_while_its_job_retries(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = _channel(engine, tenant.id, now)
    order_id = make_order(engine, tenant.id, channel.id, "88061052-A", now)
    shipped = _ship(engine, tenant.id, "mk:88061052-A", now)
    assert _statuses(engine, tenant.id, order_id)[shipped.id][0] == "queued"
    # OR24 went through but its answer was lost: the job is back in the queue for a retry...
    with engine.begin() as conn:
        [job] = jobstore.claim(conn, worker="w", now=now, lease_seconds=30)
        jobstore.retry_later(conn, job, now=now, delay=60, error="timeout reading the OR24 answer")
    # ...and the next poll sees the order SHIPPED on the marketplace.
    later = now + timedelta(minutes=2)
    with engine.begin() as conn:
        ingest_order(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            order=marketplace_order(
                "88061052-A", now, state=MiraklOrderState.SHIPPED, updated=timedelta(minutes=2)
            ),
            now=later,
        )
    status, detail = _statuses(engine, tenant.id, order_id)[shipped.id]
    assert status == "confirmed" and "shipped" in (detail or "") and "still queued" in (detail or "")
    with engine.connect() as conn:  # what the dashboard's order page shows under "Updates pushed back"
        [shown] = order_inspection(conn, tenant.id, order_id)["updates"]
    assert shown["status"] == "confirmed" and shown["updated_at"] is not None
    # the merchant system retrying the same shipment hears the same, current answer
    assert _ship(engine, tenant.id, "mk:88061052-A", later).status.value == "confirmed"


def test_tracking_added_to_an_already_shipped_order_is_only_sent(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = _channel(engine, tenant.id, now)
    order_id = make_order(engine, tenant.id, channel.id, "S-1", now, state=MiraklOrderState.SHIPPED)
    later = now + timedelta(minutes=5)
    shipped = _ship(engine, tenant.id, "mk:S-1", later)
    with engine.begin() as conn:
        [job] = jobstore.claim(conn, worker="w", now=later, lease_seconds=30)
        jobstore.complete(conn, job, now=later, result={"note": "tracking sent"})
    assert _statuses(engine, tenant.id, order_id)[shipped.id][0] == "sent"


# --- end to end with the Mirakl sandbox ---------------------------------------------------------------


@pytest.fixture
def mirakl(engine: Engine, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def _imported(world: World) -> dict[str, Any]:
    for i, product in enumerate(list(world.state.catalog.values())[:2]):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal("10.00") + i, 10)
    world.order([{"offer_sku": "SKU-1", "quantity": 2}, {"offer_sku": "SKU-0", "quantity": 1}])
    for _ in range(2):  # imported, then accepted and seen in SHIPPING
        world.enqueue("orders.poll")
        world.run()
        world.advance(120)
    with world.engine.connect() as conn:
        [order] = list_orders(conn, world.tenant_id)
    assert (order["state"], order["marketplace_state"]) == ("to_ship", "SHIPPING")
    return order


def test_or23_or24_then_the_poll_confirms_the_shipment(mirakl: World):
    order = _imported(mirakl)
    ref = f"{mirakl.channel.name}:{order['marketplace_order_id']}"
    with mirakl.engine.begin() as conn:
        cancel = updates.record_cancellation(
            conn,
            tenant_id=mirakl.tenant_id,
            order_ref=ref,
            lines=[UpdateLine(1, "SKU-0")],
            now=mirakl.clock(),
        )
    shipped = _ship(mirakl.engine, mirakl.tenant_id, ref, mirakl.clock())
    mirakl.run()  # OR23 + OR24
    assert mirakl.state.order(order["marketplace_order_id"]).state.value == "SHIPPED"
    assert _statuses(mirakl.engine, mirakl.tenant_id, int(order["id"]))[shipped.id][0] == "sent"
    mirakl.advance(120)
    mirakl.enqueue("orders.poll")
    mirakl.run()
    statuses = _statuses(mirakl.engine, mirakl.tenant_id, int(order["id"]))
    assert statuses[shipped.id][0] == "confirmed", statuses
    assert statuses[cancel.id][0] == "not_supported"  # nothing was sent, nothing to confirm
