"""Orders flow of the Mirakl connector against the sandbox: polling, acceptance, deadlines, import,
shipments, cancellations, refunds, bad responses."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from mirakl_world import SHOP_ID, build_world, catalog
from tradelane.persistence.tables import alerts, jobs, order_lines
from tradelane.services.orders import get_order, list_orders


def _offers(world, count: int = 4, quantity: int = 10) -> None:
    world.add_products(catalog(count, quantity=quantity))
    world.enqueue("offers.full", flow="offers")
    world.run(step=20)


def _orders(world, **filters):
    with world.engine.connect() as conn:
        return list_orders(conn, world.tenant_id, **filters)


def _jobs(world, kind: str):
    with world.engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id)).all()


def test_same_order_in_three_overlapping_polls_is_one_order_accepted_once(world):
    _offers(world)
    mirakl_id = world.order([{"offer_sku": "SKU-1", "quantity": 2}])
    for _ in range(3):
        world.enqueue("orders.poll")
        world.run()
        world.advance(5)
    found = _orders(world)
    assert [o["marketplace_order_id"] for o in found] == [mirakl_id]
    assert len(world.state.calls("OR21")) == 1
    assert len(_jobs(world, "orders.accept")) == 1
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(order_lines)).scalar_one() == 1


def test_order_lifecycle_accept_pay_import_ship(world):
    _offers(world)
    mirakl_id = world.order(
        [
            {"offer_sku": "SKU-1", "quantity": 1, "unit_price": "9.50"},
            {"offer_sku": "SKU-2", "quantity": 3, "unit_price": "4.25"},
        ],
        currency="GBP",
        customer_message="Please engrave: Happy birthday",
    )
    world.enqueue("orders.poll")
    world.run()
    [order] = _orders(world)
    assert order["state"] == "awaiting_acceptance" and order["accepted_at"] is not None
    assert order["marketplace_state"] == "WAITING_ACCEPTANCE"
    assert order["shipping_address"] is None  # no address before SHIPPING
    assert world.state.order(mirakl_id).state.value in {"WAITING_DEBIT", "WAITING_DEBIT_PAYMENT", "SHIPPING"}
    world.advance(120)  # the sandbox's payment delay
    world.enqueue("orders.poll")
    world.run()
    [order] = _orders(world)
    # Handed over to the merchant side; this tenant has no merchant system, so Order Health holds it.
    assert order["state"] == "to_ship" and order["merchant_status"] == "quarantined"
    assert order["shipping_address"]["city"] and order["billing_address"]
    assert order["currency"] == "GBP"
    assert {
        (ln["sku"], ln["quantity"], ln["unit_price"], ln["currency"], ln["type"]) for ln in order["lines"]
    } == {
        ("SKU-1", 1, Decimal("9.50"), "GBP", "textual"),
        ("SKU-2", 3, Decimal("4.25"), "GBP", "textual"),
    }
    assert "Happy birthday" in order["attributes"][":MiraklOrderMessage"]
    world.enqueue(
        "fulfillments.ship",
        {"order_id": order["id"], "carrier": "ups", "tracking_number": "1Z999", "tracking_url": None},
        flow="fulfillments",
    )
    world.run()
    ops = [r.op_id for r in world.state.requests if r.op_id in {"OR23", "OR24"}]
    assert ops == ["OR23", "OR24"]  # tracking first, then ship, in separate calls
    assert world.state.order(mirakl_id).state.value == "SHIPPED"
    with world.engine.connect() as conn:
        history = [h["state"] for h in get_order(conn, world.tenant_id, order["id"])["history"]]
    assert history[0] == "awaiting_acceptance" and "SHIPMENT_SENT" in history


def test_ship_without_tracking_still_sends_or24(world):
    _offers(world)
    mirakl_id = world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(120)
    world.enqueue("orders.poll")
    world.run()
    [order] = _orders(world)
    world.enqueue("fulfillments.ship", {"order_id": order["id"]}, flow="fulfillments")
    world.run()
    assert world.state.calls("OR23") == []
    assert len(world.state.calls("OR24")) == 1
    assert world.state.order(mirakl_id).state.value == "SHIPPED"


def test_unknown_carrier_is_sent_as_name_and_url_never_a_wrong_code(world):
    _offers(world)
    world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(120)
    world.enqueue("orders.poll")
    world.run()
    [order] = _orders(world)
    world.enqueue(
        "fulfillments.ship",
        {
            "order_id": order["id"],
            "carrier": "Bob's Vans",
            "tracking_number": "BV1",
            "tracking_url": "https://bv.example/t/BV1",
        },
        flow="fulfillments",
    )
    world.run()
    [call] = world.state.calls("OR23")
    assert call.status == 204 or call.status == 200
    tracking = world.state.order(order["marketplace_order_id"]).tracking
    assert tracking.carrier_code in (None, "") and tracking.carrier_name == "Bob's Vans"


def test_partial_shipment_uses_st01_when_multi_shipment(world):
    _offers(world)
    world.order([{"offer_sku": "SKU-1", "quantity": 2}, {"offer_sku": "SKU-2", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(120)
    world.enqueue("orders.poll")
    world.run()
    [order] = _orders(world)
    world.enqueue(
        "fulfillments.ship",
        {
            "order_id": order["id"],
            "carrier": "ups",
            "tracking_number": "P1",
            "lines": [{"sku": "SKU-1", "quantity": 1}],
        },
        flow="fulfillments",
    )
    world.run()
    assert len(world.state.calls("ST01")) == 1 and world.state.calls("OR24") == []


def test_accept_if_known_refuses_unknown_and_out_of_stock_lines_with_reason(engine, now):
    for w in build_world(engine, now, sandbox_limits={}, options={"acceptance_policy": "accept_if_known"}):
        w.add_products(catalog(3))
        w.enqueue("offers.full", flow="offers")
        w.run(step=20)
        w.change("SKU-2", quantity=0)  # tradelane's stock says none left
        w.state.add_offer(SHOP_ID, "LEGACY-9", "OP-9", Decimal("3.00"), 5)  # an offer unknown to the catalog
        w.order(
            [
                {"offer_sku": "SKU-1", "quantity": 1},
                {"offer_sku": "SKU-2", "quantity": 1},
                {"offer_sku": "LEGACY-9", "quantity": 1},
            ]
        )
        w.enqueue("orders.poll")
        w.run()
        [order] = _orders(w)
        reasons = {ln["sku"]: ln["refusal_reason"] for ln in order["lines"]}
        assert reasons["SKU-1"] is None
        assert "out of stock" in reasons["SKU-2"]
        assert "unknown" in reasons["LEGACY-9"]
        line_states = {
            ln.offer_sku: ln.state.value for ln in w.state.order(order["marketplace_order_id"]).lines
        }
        assert line_states["SKU-1"] != "REFUSED" and line_states["LEGACY-9"] == "REFUSED"


def test_missed_acceptance_deadline_raises_an_alert(world):
    _offers(world)
    world.state.inject("OR21", "server_error", count=100)  # the marketplace keeps failing acceptance
    mirakl_id = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(3 * 86_400 + 60)  # past the operator's acceptance delay: the sandbox auto-cancels
    world.state.clear_faults()
    world.enqueue("orders.poll")
    world.run()
    with world.engine.connect() as conn:
        found = conn.execute(sa.select(alerts.c.kind, alerts.c.message)).all()
    assert [a.kind for a in found] == ["acceptance_deadline_missed"]
    assert mirakl_id in found[0].message and "cancelled" in found[0].message
    assert (_orders(world)[0]["state"], _orders(world)[0]["marketplace_state"]) == ("cancelled", "CANCELED")


def test_cancel_and_refund_are_pushed(world):
    _offers(world)
    world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    other = world.order([{"offer_sku": "SKU-2", "quantity": 2}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(120)
    world.enqueue("orders.poll")
    world.run()
    by_id = {o["marketplace_order_id"]: o for o in _orders(world)}
    first = next(o for k, o in by_id.items() if k != other)
    world.enqueue("fulfillments.cancel", {"order_id": first["id"]}, flow="fulfillments")
    world.enqueue(
        "fulfillments.ship", {"order_id": by_id[other]["id"]}, flow="fulfillments"
    )  # refunds follow shipping
    world.enqueue(
        "fulfillments.refund",
        {
            "order_id": by_id[other]["id"],
            "reason_code": "REFUND_DAMAGED_ITEM",
            "lines": [{"sku": "SKU-2", "quantity": 1}],
        },
        flow="fulfillments",
    )
    world.run()
    assert len(world.state.calls("OR29")) == 1 and len(world.state.calls("OR28")) == 1
    dead = [j for j in _jobs(world, "fulfillments.refund") if j.state == "dead"]
    assert not dead, dead[0].last_error if dead else ""


@pytest.mark.parametrize("fault", ["html_error", "truncated_json", "server_error"])
def test_bad_responses_are_retried_and_nothing_half_imported(world, fault):
    _offers(world)
    world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.state.inject("OR11", fault)
    world.enqueue("orders.poll")
    world.run()
    [job] = _jobs(world, "orders.poll")
    assert job.state == "queued" and job.last_error  # classified retryable, raw reason kept
    assert _orders(world) == []
    world.advance(30)
    world.run()
    assert len(_orders(world)) == 1


def test_duplicate_page_does_not_lose_or_duplicate_orders(world):
    _offers(world, 6, quantity=100)
    ids = {world.order([{"offer_sku": f"SKU-{i % 6}", "quantity": 1}]) for i in range(120)}
    world.state.inject("OR11", "duplicate_page")
    world.enqueue("orders.poll")
    world.run(step=30)
    assert {o["marketplace_order_id"] for o in _orders(world, limit=500)} == ids
