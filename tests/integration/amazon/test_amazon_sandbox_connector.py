"""AmazonConnector against the Amazon SP-API sandbox over real HTTP: LWA, orders (paging, overlap,
Pending withheld then imported once paid), confirmShipment, feeds with rejected messages mapped back
per SKU, patch deltas, 429 storms honoured, and check() telling the causes apart."""

from __future__ import annotations

import json
import socket
from decimal import Decimal

import pytest
from amazon_sandbox_world import DE, IT, World, offer, sandbox

from tradelane.connectors.amazon.errors import AmazonThrottled
from tradelane.connectors.amazon.planner import Route
from tradelane.connectors.amazon.sandbox import listings as sandbox_listings
from tradelane.connectors.amazon.sandbox.models import FulfillmentStatus
from tradelane.connectors.base import CheckOutcome, Shipment, ShippedLine, SubmitMode


@pytest.fixture
def world() -> World:  # type: ignore[misc]
    with sandbox() as w:
        yield w


def test_lwa_token_is_reused_and_renewed_when_amazon_expires_it(world: World) -> None:
    world.list_offers(1)
    connector = world.connector()
    for _ in range(3):
        connector.fetch_orders(None, now=world.state.now())
    assert (
        len(world.state.calls("lwaToken") or [r for r in world.state.requests if r.path == "/auth/o2/token"])
        == 1
    )
    world.state.expire_tokens()
    connector.fetch_orders(None, now=world.state.now())  # 403 → new token → same call again
    assert connector.auth.refreshes == 2
    assert all("Atza|" not in (e.response_body or "") for e in world.exchanges)
    assert world.throttled.count("searchOrders") == 5


def test_orders_page_overlap_and_come_back_once_each(world: World) -> None:
    skus = world.list_offers(3)
    created = [
        world.state.create_order(world.eu.seller_id, [(skus[i % 3], 1)], paid=True) for i in range(130)
    ]
    world.state.advance(60)
    connector = world.connector()
    first = connector.fetch_orders(None, now=world.state.now())
    assert sorted(o.marketplace_order_id for o in first.orders) == sorted(o.order_id for o in created)
    assert len(world.state.calls("searchOrders")) == 2  # 100 + 30
    world.state.advance(60)
    later = world.state.create_order(world.eu.seller_id, [(skus[0], 2)], paid=True)
    world.state.advance(60)
    second = connector.fetch_orders(first.cursor, now=world.state.now())
    ids = [o.marketplace_order_id for o in second.orders]
    assert later.order_id in ids and len(ids) == len(set(ids))
    mapped = next(o for o in second.orders if o.marketplace_order_id == later.order_id)
    assert mapped.lines[0].quantity == 2 and mapped.lines[0].unit_price == Decimal("19.90")
    assert mapped.currency == "EUR" and mapped.shipping_address is not None
    assert mapped.shipping_address.country == "DE"
    assert mapped.attributes["amazon_status"] == "UNSHIPPED" and mapped.attributes["ship_by"]


def test_pending_is_withheld_then_imported_once_paid(world: World) -> None:
    skus = world.list_offers(1)
    pending = world.state.create_order(world.eu.seller_id, [(skus[0], 1)])
    world.state.advance(30)
    connector = world.connector()
    first = connector.fetch_orders(None, now=world.state.now())
    assert (first.orders, first.fetched, first.withheld) == ([], 1, 1)
    world.state.pay(pending.order_id)
    world.state.advance(30)
    second = connector.fetch_orders(first.cursor, now=world.state.now())
    assert [o.marketplace_order_id for o in second.orders] == [pending.order_id]
    assert second.withheld == 0 and second.orders[0].shipping_address is not None


def test_confirm_shipment_whole_and_partial(world: World) -> None:
    skus = world.list_offers(2)
    whole = world.state.create_order(world.eu.seller_id, [(skus[0], 2), (skus[1], 1)], paid=True)
    part = world.state.create_order(world.eu.seller_id, [(skus[0], 3)], paid=True)
    world.state.advance(60)
    connector = world.connector()
    shipment = Shipment(order_id=whole.order_id, lines=None, carrier_code="dhl", tracking_number="JD0001")
    connector.ship(shipment)
    connector.ship(shipment)  # a retried job: nothing left to ship, no second package
    assert world.state.order(whole.order_id).status is FulfillmentStatus.SHIPPED
    assert len(world.state.order(whole.order_id).packages) == 1
    item = part.items[0].order_item_id
    connector.ship(
        Shipment(
            order_id=part.order_id,
            lines=[ShippedLine(item, 1)],
            carrier_name="Kurier Müller",
            tracking_number="K1",
        )
    )
    shipped = world.state.order(part.order_id)
    assert shipped.status is FulfillmentStatus.PARTIALLY_SHIPPED
    assert shipped.packages[0].carrier_code == "Other"


def test_feed_round_trip_with_rejected_messages_per_sku(world: World) -> None:
    gtin = world.state.catalog["B0SBX00004"].gtin
    offers = [
        offer("OK-1", attributes={"attr:asin": "B0SBX00001"}),
        offer("OK-2", gtin=gtin),
        offer("NO-ASIN", attributes={"attr:asin": "B0NOTHERE"}),
        offer("BAD-PRICE", price="0.001", attributes={"attr:asin": "B0SBX00002"}),
    ]
    connector = world.connector()
    ref = connector.submit_offers(offers, SubmitMode.FULL)
    assert ref.reference.startswith("feed:") and ref.result is not None and not ref.result.done
    assert connector.last_plan is not None and connector.last_plan.route is Route.FEED
    result = connector.import_result(ref)
    assert not result.done and result.retry_after
    world.state.advance(5)
    result = connector.import_result(ref)
    assert result.done
    by_sku = {o.sku: o for o in result.outcomes}
    assert set(by_sku) == {"NO-ASIN", "BAD-PRICE"}
    assert not by_sku["NO-ASIN"].ok and "B0NOTHERE" in by_sku["NO-ASIN"].errors[0]
    assert not by_sku["BAD-PRICE"].ok
    listed = world.state.listing(world.eu.seller_id, "OK-2")
    assert sandbox_listings.offer_price(listed, DE) == (Decimal("19.90"), "EUR")
    assert "2 invalid" in (result.summary or "")


def test_small_delta_is_patched_and_live_at_once(world: World) -> None:
    world.list_offers(3)
    connector = world.connector()
    ref = connector.submit_offers(
        [
            offer("SKU-001", price="17.50", quantity=0),
            offer("SKU-002", delete=True),
            offer("NEW-1", attributes={"attr:asin": "B0SBX00010"}),
        ],
        SubmitMode.DELTA,
    )
    assert ref.result is not None and all(o.ok for o in ref.result.outcomes), ref.result.outcomes
    listing = world.state.listing(world.eu.seller_id, "SKU-001")
    assert sandbox_listings.offer_price(listing, DE) == (Decimal("17.50"), "EUR")
    assert sandbox_listings.quantity(listing) == 0
    assert (world.eu.seller_id, "SKU-002") not in world.state.listings
    assert (world.eu.seller_id, "NEW-1") in world.state.listings
    assert len(world.state.calls("patchListingsItem")) == 2  # SKU-001 and the refused patch of NEW-1


def test_429_storm_is_honoured_with_the_published_limits() -> None:
    with sandbox(rate_limits="published") as world:
        world.list_offers(8)
        connector = world.connector()
        delta = [offer(f"SKU-{i:03d}", price="15.00") for i in range(1, 9)]
        with pytest.raises(AmazonThrottled) as info:
            connector.submit_offers(delta, SubmitMode.DELTA)  # unpaced: burst 5, then QuotaExceeded
        assert info.value.retry_after == pytest.approx(0.2)  # 1 / 5 rps, from x-amzn-RateLimit-Limit
        assert world.holds == [("patchListingsItem", pytest.approx(0.2))]  # the hub holds the budget
        assert connector.budget("patchListingsItem") == connector.capabilities.budgets["patchListingsItem"]
        world.pacing = True  # the hub's budget paces the retried job: no 429 any more
        world.state.advance(1)
        ref = connector.submit_offers(delta, SubmitMode.DELTA)
        assert ref.result is not None and all(o.ok for o in ref.result.outcomes)
        statuses = [r.status for r in world.state.calls("patchListingsItem")]
        assert statuses.count(429) == 1 and statuses.count(200) == 5 + 8
        # orders: searchOrders' burst of 20 then one call per 180 s, paced without a single 429
        for _ in range(25):
            connector.fetch_orders(None, now=world.state.now())
        assert all(r.status == 200 for r in world.state.calls("searchOrders"))


def test_a_rate_reported_by_amazon_corrects_the_declared_budget(world: World) -> None:
    connector = world.connector()
    connector.fetch_orders(None, now=world.state.now())  # generous sandbox: 1000 rps reported
    assert connector.capabilities.budgets["searchOrders"].per_second == 1000
    assert connector.capabilities.budgets["searchOrders"].burst == 20  # the usage plan's burst stays


def test_injected_throttle_without_retry_after_uses_the_refill_time(world: World) -> None:
    world.state.faults.inject("searchOrders", "throttle", count=1)
    with pytest.raises(AmazonThrottled) as info:
        world.connector().fetch_orders(None, now=world.state.now())
    assert info.value.retry_after is not None and info.value.retry_after > 0


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_garbage_and_truncated_answers_are_retryable(world: World, kind: str) -> None:
    from tradelane.connectors.amazon.errors import AmazonBadResponse

    world.list_offers(1)
    world.state.create_order(world.eu.seller_id, [("SKU-001", 1)], paid=True)
    world.state.advance(10)
    world.state.faults.inject("searchOrders", kind, count=1)
    connector = world.connector()
    with pytest.raises(AmazonBadResponse):
        connector.fetch_orders(None, now=world.state.now())
    assert len(connector.fetch_orders(None, now=world.state.now()).orders) == 1


def test_check_tells_apart_every_cause(world: World) -> None:
    assert world.connector().check().outcome is CheckOutcome.OK
    bad_client = world.connector(credentials={"client_secret": "wrong"}).check()
    assert (bad_client.outcome, bad_client.details["problem"]) == (CheckOutcome.BAD_CREDENTIALS, "bad_client")
    bad_token = world.connector(credentials={"refresh_token": "Atzr|revoked"}).check()
    assert (bad_token.outcome, bad_token.details["problem"]) == (
        CheckOutcome.BAD_CREDENTIALS,
        "bad_refresh_token",
    )
    wrong_marketplace = world.connector(marketplace_id=IT).check()
    assert wrong_marketplace.outcome is CheckOutcome.BAD_ACCOUNT, wrong_marketplace.message
    wrong_region = world.connector(world.na, marketplace_id="ATVPDKIKX0DER", region="na").check()
    assert wrong_region.outcome is CheckOutcome.BAD_ACCOUNT, wrong_region.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = world.connector(endpoint=f"http://127.0.0.1:{port}").check()
    assert unreachable.outcome is CheckOutcome.UNREACHABLE, unreachable.message
    assert json.dumps(unreachable.details)  # plain data


def test_list_offers_pages_through_every_listing(world: World) -> None:
    skus = world.list_offers(25, price="12.00", quantity=3)
    listed = world.connector().list_offers()
    assert sorted(o.sku for o in listed) == skus
    assert len(world.state.calls("searchListingsItems")) == 2  # 20 a page
    first = next(o for o in listed if o.sku == "SKU-001")
    assert (first.price, first.currency, first.quantity, first.product_id) == (
        Decimal("12.00"),
        "EUR",
        3,
        "B0SBX00001",
    )


def test_listing_issues_are_read_back_per_sku(world: World) -> None:
    world.list_offers(1)
    connector = world.connector()
    assert connector.listing_issues("SKU-001").ok
    missing = connector.listing_issues("NOT-LISTED")
    assert not missing.ok and missing.errors == ("not listed on Amazon",)


def test_issues_raised_after_the_report_complete_the_import_result(world: World) -> None:
    """A listing Amazon flags after the feed's processing report (a suppression) comes back with the
    import's result, read from the listing; the report's own outcomes are kept as they are."""
    offers = [
        offer("OK-1", attributes={"attr:asin": "B0SBX00001"}),
        offer("OK-2", attributes={"attr:asin": "B0SBX00002"}),
        offer("NO-ASIN", attributes={"attr:asin": "B0NOTHERE"}),
    ]
    connector = world.connector()
    ref = connector.submit_offers(offers, SubmitMode.FULL)
    world.state.advance(5)
    assert connector.import_result(ref).done  # processed: the report names NO-ASIN only
    world.state.listing(world.eu.seller_id, "OK-2").issues = [
        {"code": "18027", "message": "The listing is suppressed: main image missing.", "severity": "ERROR"}
    ]
    result = connector.import_result(ref)
    by_sku = {o.sku: o for o in result.outcomes}
    assert set(by_sku) == {"NO-ASIN", "OK-2"}
    assert not by_sku["NO-ASIN"].ok and "B0NOTHERE" in by_sku["NO-ASIN"].errors[0]
    assert by_sku["OK-2"].errors == ("18027: The listing is suppressed: main image missing.",)
    assert "1 listing(s) with issues the report did not carry" in (result.summary or "")
    assert connector.listing_issues("OK-2") == by_sku["OK-2"]


def test_an_order_inside_amazons_visibility_lag_comes_with_the_next_poll() -> None:
    with sandbox(visibility_lag=120) as world:
        world.list_offers(1)
        connector = world.connector()
        world.state.advance(300)
        late = world.state.create_order(world.eu.seller_id, [("SKU-001", 1)], paid=True)
        world.state.advance(60)  # updated 60 s ago: not in searchOrders' answer yet
        first = connector.fetch_orders(None, now=world.state.now())
        assert first.orders == []
        world.state.advance(120)
        second = connector.fetch_orders(first.cursor, now=world.state.now())
        assert [o.marketplace_order_id for o in second.orders] == [late.order_id]
