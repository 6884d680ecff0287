"""Test orders on Amazon (SP-API sandbox over HTTP): a shipment with a tracking number is verified with
the confirmShipment request Amazon would get (carrier through Amazon's carrier table) and nothing reaches
the sandbox; a shipment without one is refused before any request — Amazon requires it — and the test
report names that problem."""

from __future__ import annotations

from decimal import Decimal

from test_amazon_order_loop import AmazonWorld, world  # noqa: F401  (the world fixture)

from tradelane.services.channels import get_channel_by_id
from tradelane.services.order_updates import record_shipment
from tradelane.services.test_orders import CARRIER_AS_GIVEN, LineSpec, create_test_order, report


def test_amazon_test_order_is_verified_without_a_call_and_missing_tracking_is_a_problem(
    world: AmazonWorld,  # noqa: F811
) -> None:
    world.add_products(
        [
            {"sku": "SKU-1", "title": "Product 1", "gtin": None, "price": Decimal("21.00"), "currency": "EUR"}
            | {"quantity": 5, "attributes": {}}
        ]
    )
    world.run()  # the new offer is published first (its own calls)
    calls_before = len(world.state.requests)
    now = world.clock()
    with world.engine.begin() as conn:
        channel = get_channel_by_id(conn, world.tenant_id, world.channel.id)
        tracked = create_test_order(conn, channel, lines=[LineSpec("SKU-1", 2)], actor="cli:tester", now=now)
        untracked = create_test_order(conn, channel, actor="cli:tester", now=now)
        for order, tracking in ((tracked, "1Z999AA10123456784"), (untracked, None)):
            record_shipment(
                conn,
                tenant_id=world.tenant_id,
                order_ref=str(order["id"]),
                carrier="UPS",
                tracking_number=tracking,
                tracking_url=None,
                lines=None,
                external_id=f"ship-{order['id']}",
                now=now,
            )
    world.run()
    assert len(world.state.requests) == calls_before  # not even a token: nothing reached Amazon

    with world.engine.connect() as conn:
        good = report(conn, world.tenant_id, str(tracked["id"]))
        bad = report(conn, world.tenant_id, str(untracked["id"]))
    [update] = good["updates"]
    assert update["status"] == "verified (test order, not sent)" and update["problems"] == []
    [request] = update["would_send"]
    assert (request["operation"], request["method"]) == ("confirmShipment", "POST")
    assert request["path"] == f"/orders/v0/orders/{tracked['marketplace_order_id']}/shipmentConfirmation"
    package = request["body"]["packageDetail"]
    assert request["body"]["marketplaceId"] == "A1PA6795UKMFR9"
    assert (package["carrierCode"], package["trackingNumber"]) == ("UPS", "1Z999AA10123456784")
    # Amazon lists no carrier codes: the report must not claim UPS travels as a free name
    assert update["carrier"] == {"from": "UPS", "to": "UPS", "as": CARRIER_AS_GIVEN}
    assert package["orderItems"] == [{"orderItemId": tracked["lines"][0]["line_id"], "quantity": 2}]

    [refused] = bad["updates"]
    assert refused["status"] == "failed" and refused["would_send"] == []
    not_delivered, problem = bad["problems"]  # this world has no merchant system
    assert not_delivered.startswith("not delivered: the order is quarantined (no_merchant_system: ")
    assert problem.startswith(f"shipment ship-{untracked['id']}: refused before any request: shipment of ")
    assert "has no tracking number, which amazon requires" in problem
