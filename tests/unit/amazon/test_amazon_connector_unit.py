"""AmazonConnector against the fake SP-API: orders cursor and paging, withheld orders, budget running
out mid-read, feed/patch routing, import results, shipments, capabilities and check()."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import httpx
import pytest
from amazon_fakes import API, Clock, FakeAmazon, body_of, errors, json_response, order

from tradelane.connectors.amazon import mapping
from tradelane.connectors.amazon.connector import AmazonConnector
from tradelane.connectors.amazon.errors import AmazonThrottled
from tradelane.connectors.base import (
    CheckOutcome,
    ImportRef,
    MarketplaceConnector,
    OfferUpdate,
    Operation,
    Shipment,
    ShippedLine,
    SubmitMode,
    UnsupportedOperation,
)
from tradelane.domain.errors import PermanentError, RetryableError

ORDERS = "/orders/2026-01-01/orders"
LISTING = "/listings/2021-08-01/items/A2SELLER000001/"


def page(
    orders: list[dict[str, object]], next_token: str | None = None, bound: str | None = None
) -> httpx.Response:
    body: dict[str, object] = {"orders": orders}
    if next_token:
        body["pagination"] = {"nextToken": next_token}
    if bound:
        body["lastUpdatedBefore"] = bound
    return json_response(body)


def test_it_is_a_marketplace_connector_with_honest_capabilities() -> None:
    connector = FakeAmazon().connector()
    assert isinstance(connector, MarketplaceConnector)
    caps = connector.capabilities
    assert not caps.acceptance_required and caps.tracking_required and caps.asynchronous_offer_imports
    assert not caps.supports(Operation.CANCEL) and "Seller Central" in caps.hints["cancel"]
    assert not caps.supports(Operation.REFUND) and caps.hints["refund"]
    assert caps.budgets["searchOrders"].per_second == 0.0056 and caps.budgets["patchListingsItem"].burst == 5
    assert caps.batch_size(Operation.SUBMIT_OFFERS_FULL, 0) == 100_000
    assert caps.batch_size(Operation.SUBMIT_OFFERS_DELTA, 0) == 25_000
    for call in (
        lambda: connector.cancel(None),  # type: ignore[arg-type]
        lambda: connector.refund(None),  # type: ignore[arg-type]
        lambda: connector.accept("x", []),
        lambda: connector.fetch_messages(None, now=Clock()()),
    ):
        with pytest.raises(UnsupportedOperation):
            call()


def test_first_poll_pages_withholds_pending_and_sets_the_watermark() -> None:
    fake = FakeAmazon().on(
        "GET",
        ORDERS,
        page([order("A"), order("P", status="PENDING", address=False)], "t2", bound="2025-03-01T11:58:00Z"),
        page([order("B", updated="2025-03-01T11:30:00Z"), order("A")]),  # A again: a duplicate page
    )
    clock = Clock()
    changes = fake.connector(clock).fetch_orders(None, now=clock())
    assert [o.marketplace_order_id for o in changes.orders] == ["A", "B"]
    assert (changes.fetched, changes.withheld) == (4, 1)
    first, second = fake.calls("GET", ORDERS)
    assert first.url.params["lastUpdatedAfter"] == "2025-02-26T12:00:00Z"  # 72 h look-back
    assert second.url.params["paginationToken"] == "t2"
    assert json.loads(changes.cursor or "") == {"v": 1, "after": "2025-03-01T11:58:00+00:00"}


def test_next_poll_overlaps_the_watermark() -> None:
    fake = FakeAmazon().on("GET", ORDERS, page([], bound="2025-03-01T12:10:00Z"))
    clock = Clock()
    cursor = '{"v":1,"after":"2025-03-01T11:58:00+00:00"}'
    changes = fake.connector(clock, order_overlap_seconds=600).fetch_orders(cursor, now=clock())
    assert fake.calls("GET", ORDERS)[0].url.params["lastUpdatedAfter"] == "2025-03-01T11:48:00Z"
    assert json.loads(changes.cursor or "")["after"] == "2025-03-01T12:10:00+00:00"


def test_without_a_bound_the_latest_update_seen_is_the_watermark() -> None:
    fake = FakeAmazon().on("GET", ORDERS, page([order("A", updated="2025-03-01T11:40:00Z")]))
    changes = fake.connector().fetch_orders('{"v":1,"after":"2025-03-01T10:00:00+00:00"}', now=Clock()())
    assert json.loads(changes.cursor or "")["after"] == "2025-03-01T11:40:00+00:00"
    empty = FakeAmazon().on("GET", ORDERS, page([]))
    again = empty.connector().fetch_orders(changes.cursor, now=Clock()())
    assert again.cursor == changes.cursor  # nothing seen: the watermark stays


def test_an_order_without_its_address_is_read_with_get_order() -> None:
    fake = (
        FakeAmazon()
        .on("GET", ORDERS, page([order("A", address=False)]))
        .on("GET", f"{ORDERS}/A", json_response({"order": order("A")}))
    )
    (mapped,) = fake.connector().fetch_orders(None, now=Clock()()).orders
    assert mapped.shipping_address is not None and mapped.shipping_address.city == "Köln"


def test_budget_spent_mid_read_hands_over_the_pages_read_and_resumes() -> None:
    fake = FakeAmazon().on(
        "GET",
        ORDERS,
        page([order("A")], "t2", bound="2025-03-01T11:58:00Z"),
        errors(429, "QuotaExceeded", "slow down"),
    )
    connector = fake.connector()
    changes = connector.fetch_orders('{"v":1,"after":"2025-03-01T10:00:00+00:00"}', now=Clock()())
    assert [o.marketplace_order_id for o in changes.orders] == ["A"]
    cursor = json.loads(changes.cursor or "")
    assert cursor == {
        "v": 1,
        "after": "2025-03-01T10:00:00+00:00",
        "token": "t2",
        "until": "2025-03-01T11:58:00+00:00",
    }
    fake.on("GET", ORDERS, page([order("B")]))
    resumed = connector.fetch_orders(changes.cursor, now=Clock()())
    assert [o.marketplace_order_id for o in resumed.orders] == ["B"]
    assert fake.calls("GET", ORDERS)[-1].url.params["paginationToken"] == "t2"
    assert json.loads(resumed.cursor or "") == {"v": 1, "after": "2025-03-01T11:58:00+00:00"}


def test_throttled_on_the_first_page_raises() -> None:
    fake = FakeAmazon().on("GET", ORDERS, errors(429, "QuotaExceeded", "slow down", {"Retry-After": "30"}))
    with pytest.raises(AmazonThrottled) as info:
        fake.connector().fetch_orders(None, now=Clock()())
    assert info.value.retry_after == 30


def test_a_refused_pagination_token_restarts_from_the_watermark() -> None:
    fake = FakeAmazon().on(
        "GET", ORDERS, errors(400, "InvalidInput", "Invalid paginationToken."), page([order("A")])
    )
    cursor = '{"v":1,"after":"2025-03-01T10:00:00+00:00","token":"old"}'
    changes = fake.connector().fetch_orders(cursor, now=Clock()())
    assert [o.marketplace_order_id for o in changes.orders] == ["A"]
    assert "paginationToken" not in fake.calls("GET", ORDERS)[-1].url.params


def test_a_looping_next_token_is_a_bad_response() -> None:
    from tradelane.connectors.amazon.errors import AmazonBadResponse

    fake = FakeAmazon().on("GET", ORDERS, page([order("A")], "t1"), page([order("B")], "t2"))
    with pytest.raises(AmazonBadResponse, match="paging loops"):
        fake.connector().fetch_orders(None, now=Clock()())
    assert len(fake.calls("GET", ORDERS)) == 4  # t2 followed twice (a page served again), then refused


def test_a_page_served_again_is_read_through_once() -> None:
    fake = FakeAmazon().on(
        "GET", ORDERS, page([order("A")], "t1"), page([order("A")], "t1"), page([order("B")])
    )
    changes = fake.connector().fetch_orders(None, now=Clock()())
    assert sorted(o.marketplace_order_id for o in changes.orders) == ["A", "B"]
    assert changes.fetched == 3 and len(fake.calls("GET", ORDERS)) == 3


def test_unreadable_cursor_is_permanent() -> None:
    with pytest.raises(PermanentError, match="unreadable Amazon orders cursor"):
        FakeAmazon().connector().fetch_orders("garbage", now=Clock()())


def offer(sku: str, **kwargs: object) -> OfferUpdate:
    return OfferUpdate(sku=sku, price=Decimal("9.50"), currency="EUR", quantity=4, **kwargs)  # type: ignore[arg-type]


def accepted(sku: str) -> httpx.Response:
    return json_response({"sku": sku, "status": "ACCEPTED", "submissionId": "s1", "issues": []})


def test_small_delta_patches_and_puts_a_sku_not_listed_yet() -> None:
    missing = json_response(
        {
            "sku": "NEW",
            "status": "INVALID",
            "submissionId": "s2",
            "issues": [
                {
                    "code": "4000009",
                    "message": "The SKU 'NEW' does not exist for this seller",
                    "severity": "ERROR",
                    "categories": [],
                }
            ],
        }
    )
    fake = (
        FakeAmazon()
        .on("PATCH", LISTING + "OLD", accepted("OLD"))
        .on("PATCH", LISTING + "NEW", missing)
        .on("PUT", LISTING + "NEW", accepted("NEW"))
        .on("DELETE", LISTING + "GONE", accepted("GONE"))
        .on("PATCH", LISTING + "BAD", errors(400, "InvalidInput", "bad price"))
    )
    connector = fake.connector()
    ref = connector.submit_offers(
        [
            offer("OLD"),
            offer("NEW", attributes={"attr:asin": "B0X"}),
            offer("GONE", delete=True),
            offer("BAD"),
        ],
        SubmitMode.DELTA,
    )
    assert ref.reference.startswith("patch:") and ref.result is not None and ref.result.done
    assert [(o.sku, o.ok) for o in ref.result.outcomes] == [
        ("OLD", True),
        ("NEW", True),
        ("GONE", True),
        ("BAD", False),
    ]
    assert ref.result.outcomes[3].errors == ("bad price",)
    assert connector.last_plan is not None and "patchListingsItem" in connector.last_plan.reason
    put = body_of(fake.calls("PUT", LISTING + "NEW")[0])
    assert put["requirements"] == "LISTING_OFFER_ONLY"
    assert connector.import_result(ref) is ref.result


def feed_routes(fake: FakeAmazon, *statuses: dict[str, object]) -> FakeAmazon:
    return (
        fake.on(
            "POST",
            "/feeds/2021-06-30/documents",
            json_response({"feedDocumentId": "doc-in", "url": f"{API}/s3/in"}, 201),
        )
        .on("PUT", "/s3/in", httpx.Response(200))
        .on("POST", "/feeds/2021-06-30/feeds", json_response({"feedId": "F1"}, 202))
        .on("GET", "/feeds/2021-06-30/feeds/F1", *[json_response(s) for s in statuses])
    )


def feed(status: str, result: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "feedId": "F1",
        "feedType": "JSON_LISTINGS_FEED",
        "createdTime": "2025-03-01T12:00:00Z",
        "processingStatus": status,
    }
    if result:
        body["resultFeedDocumentId"] = result
    return body


class FeedCounter:
    """createFeedDocument/upload/createFeed answers for many feeds: each document and feed numbered;
    the uploads' sizes and message counts kept; createFeed answers ``throttle_after`` feeds then 429."""

    def __init__(self, fake: FakeAmazon, throttle_after: int | None = None) -> None:
        self.documents = 0
        self.feeds = 0
        self.uploads: list[tuple[int, int]] = []
        self.throttle_after = throttle_after
        fake.on("POST", "/feeds/2021-06-30/documents", self._document)
        fake.on("PUT", "/s3/in", self._upload)
        fake.on("POST", "/feeds/2021-06-30/feeds", self._feed)

    def _document(self, request: httpx.Request) -> httpx.Response:
        self.documents += 1
        return json_response({"feedDocumentId": f"doc-{self.documents}", "url": f"{API}/s3/in"}, 201)

    def _upload(self, request: httpx.Request) -> httpx.Response:
        self.uploads.append((len(request.content), len(json.loads(request.content)["messages"])))
        return httpx.Response(200)

    def _feed(self, request: httpx.Request) -> httpx.Response:
        if self.throttle_after is not None and self.feeds >= self.throttle_after:
            return errors(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
        self.feeds += 1
        return json_response({"feedId": f"F{self.feeds}"}, 202)


def bulk(count: int) -> list[OfferUpdate]:
    """Offer-only updates (~506 bytes a message)."""
    return [
        OfferUpdate(
            sku=f"SKU-{i:06d}",
            price=Decimal("19.90"),
            currency="EUR",
            quantity=5,
            attributes={"attr:asin": f"B0SBX{i % 100_000:05d}"},
        )
        for i in range(count)
    ]


def test_a_full_sync_is_packed_into_feeds_by_size() -> None:
    """100,000 offer-only messages take ceil(bytes / 10 MiB) feeds (5 of ~506 bytes a message), not
    one pair per 25,000 (8):
    the service's batch is the connector's full_batch and the connector packs by bytes."""
    fake = FakeAmazon()
    counter = FeedCounter(fake)
    connector = fake.connector()
    offers = bulk(100_000)
    size = connector.capabilities.batch_size(Operation.SUBMIT_OFFERS_FULL, len(offers))
    references = [
        connector.submit_offers(offers[start : start + size], SubmitMode.FULL).reference
        for start in range(0, len(offers), size)
    ]
    total = sum(length for length, _ in counter.uploads)
    assert counter.feeds == len(counter.uploads) == math.ceil(total / mapping.MAX_FEED_BYTES) == 5
    # what one submission per 25,000 offers took: two documents each
    per_25k = [offers[start : start + 25_000] for start in range(0, len(offers), 25_000)]
    assert sum(len(mapping.feed_documents(part, connector.settings)) for part in per_25k) == 8
    assert all(length <= mapping.MAX_FEED_BYTES for length, _ in counter.uploads)
    assert all(messages <= mapping.MAX_FEED_MESSAGES for _, messages in counter.uploads)
    assert sum(messages for _, messages in counter.uploads) == 100_000
    assert references == ["feed:F1,F2,F3,F4,F5"]


def test_a_submission_needing_more_feeds_than_the_burst_is_refused_before_any_call() -> None:
    fake = FakeAmazon()
    counter = FeedCounter(fake)
    connector = fake.connector(rate_limits={"createFeed": [0.0083, 1]})
    with pytest.raises(
        PermanentError, match=r"need 2 feeds, more than one submission may carry \(1.*full_batch"
    ):
        connector.submit_offers(bulk(25_001), SubmitMode.FULL)
    assert counter.documents == counter.feeds == 0
    lowered = fake.connector(full_batch=25_000)
    assert lowered.capabilities.batch_size(Operation.SUBMIT_OFFERS_FULL, 0) == 25_000


def test_a_submission_throttled_after_some_feeds_asks_for_enough_budget_for_all() -> None:
    """The retry sends every feed of the submission again: it waits until createFeed's budget holds
    that many tokens, so that it does not create one feed and fail again forever."""
    fake = FakeAmazon()
    counter = FeedCounter(fake, throttle_after=1)
    connector = fake.connector()
    with pytest.raises(RetryableError) as caught:
        connector.submit_offers(bulk(30_000), SubmitMode.FULL)
    assert counter.documents == 2 and counter.feeds == 1  # both uploaded before any createFeed
    assert caught.value.retry_after is not None and caught.value.retry_after >= 2 / 0.0083
    assert "after 1 of 2 feeds" in caught.value.reason


def test_reports_throttled_after_some_were_read_ask_for_enough_budget_for_all() -> None:
    """import_result reads every report of a submission again on the retry: it waits until
    getFeedDocument's budget allows them all (not one more report per attempt, for ever)."""
    fake = FakeAmazon()
    for n in (1, 2):
        fake.on(
            "GET",
            f"/feeds/2021-06-30/feeds/F{n}",
            json_response({**feed("DONE", f"doc-out-{n}"), "feedId": f"F{n}"}),
        )
    fake.on(
        "GET",
        "/feeds/2021-06-30/documents/doc-out-1",
        json_response({"feedDocumentId": "doc-out-1", "url": f"{API}/s3/out"}),
    )
    fake.on("GET", "/s3/out", json_response({"issues": [], "summary": {"messagesProcessed": 1}}))
    fake.on("GET", "/feeds/2021-06-30/documents/doc-out-2", errors(429, "QuotaExceeded", "quota"))
    with pytest.raises(RetryableError) as caught:
        fake.connector().import_result(ImportRef("feed:F1,F2", SubmitMode.FULL, 2))
    assert caught.value.retry_after is not None and caught.value.retry_after >= 2 / 0.0222
    assert "after 1 of 2 processing reports" in caught.value.reason


def test_full_sync_goes_through_a_feed_and_comes_back_per_sku() -> None:
    report = {
        "header": {"sellerId": "A2SELLER000001", "version": "2.0", "feedId": "F1"},
        "issues": [
            {"messageId": 2, "sku": "B", "code": "8541", "severity": "ERROR", "message": "no such ASIN"}
        ],
        "summary": {"messagesProcessed": 2, "messagesAccepted": 1, "messagesInvalid": 1},
    }
    fake = feed_routes(FakeAmazon(), feed("IN_QUEUE"), feed("IN_PROGRESS"), feed("DONE", "doc-out"))
    fake.on(
        "GET",
        "/feeds/2021-06-30/documents/doc-out",
        json_response({"feedDocumentId": "doc-out", "url": f"{API}/s3/out"}),
    )
    fake.on("GET", "/s3/out", json_response(report))
    suppressed = {"code": "18027", "severity": "ERROR", "message": "listing suppressed: missing image"}
    fake.on(
        "GET",
        "/listings/2021-08-01/items/A2SELLER000001",
        json_response(  # Amazon raised an issue on A after the report (and B's is the report's)
            {
                "numberOfResults": 2,
                "items": [
                    {"sku": "A", "issues": [suppressed]},
                    {"sku": "B", "issues": [{"code": "8541", "severity": "ERROR", "message": "x"}]},
                ],
            }
        ),
    )
    connector = fake.connector()
    ref = connector.submit_offers([offer("A"), offer("B")], SubmitMode.FULL)
    assert (ref.reference, ref.submitted) == ("feed:F1", 2)
    assert ref.result is not None and not ref.result.done and ref.result.retry_after == 60
    upload = fake.calls("PUT", "/s3/in")[0]
    assert upload.headers["content-type"] == "application/json; charset=UTF-8"
    assert [m["sku"] for m in json.loads(upload.content)["messages"]] == ["A", "B"]
    assert body_of(fake.calls("POST", "/feeds/2021-06-30/feeds")[0]) == {
        "feedType": "JSON_LISTINGS_FEED",
        "marketplaceIds": ["A1PA6795UKMFR9"],
        "inputFeedDocumentId": "doc-in",
    }
    for _ in range(2):
        waiting = connector.import_result(ref)
        assert not waiting.done and waiting.retry_after == 60
    result = connector.import_result(ref)
    assert result.done and [(o.sku, o.ok, o.errors) for o in result.outcomes] == [
        ("B", False, ("8541: no such ASIN",)),
        ("A", False, ("18027: listing suppressed: missing image",)),
    ]
    assert "1 invalid" in (result.summary or "")
    assert "1 listing(s) with issues the report did not carry" in (result.summary or "")
    search = fake.calls("GET", "/listings/2021-08-01/items/A2SELLER000001")
    assert len(search) == 1 and search[0].url.params["withIssueSeverity"] == "ERROR"
    assert search[0].url.params["includedData"] == "summaries,issues"


def test_listing_issues_read_back_are_bounded_and_optional() -> None:
    """At most ``issue_reads`` listings per result; a throttled search keeps the report's outcomes."""
    report = {"header": {"feedId": "F1"}, "issues": [], "summary": {"messagesProcessed": 30}}
    issue = {"code": "18027", "severity": "ERROR", "message": "suppressed"}
    pages = [
        json_response(
            {
                "items": [{"sku": f"S{page * 20 + i}", "issues": [issue]} for i in range(20)],
                "pagination": {"nextToken": f"t{page + 1}"},
            }
        )
        for page in range(3)
    ]
    fake = feed_routes(FakeAmazon(), feed("DONE", "doc-out"))
    fake.on(
        "GET",
        "/feeds/2021-06-30/documents/doc-out",
        json_response({"feedDocumentId": "doc-out", "url": f"{API}/s3/out"}),
    )
    fake.on("GET", "/s3/out", json_response(report))
    fake.on("GET", "/listings/2021-08-01/items/A2SELLER000001", *pages)
    result = fake.connector(issue_reads=30).import_result(ImportRef("feed:F1", SubmitMode.FULL, 30))
    assert [o.sku for o in result.outcomes] == [f"S{i}" for i in range(30)]
    assert "more than 30 listing(s) with issues: the rest not read now" in (result.summary or "")
    assert len(fake.calls("GET", "/listings/2021-08-01/items/A2SELLER000001")) == 2

    fake.on("GET", "/listings/2021-08-01/items/A2SELLER000001", errors(503, "ServiceUnavailable", "later"))
    result = fake.connector().import_result(ImportRef("feed:F1", SubmitMode.FULL, 30))
    assert result.done and result.outcomes == []
    assert "listing issues read no further" in (result.summary or "")
    none = fake.connector(issue_reads=0)
    before = len(fake.requests)
    assert none.import_result(ImportRef("feed:F1", SubmitMode.FULL, 30)).outcomes == []
    assert all("/listings/" not in r.url.path for r in fake.requests[before:])


def test_fatal_feed_is_permanent_with_the_reason() -> None:
    report = {
        "header": {"feedId": "F1"},
        "issues": [{"severity": "ERROR", "code": "5001", "message": "not JSON"}],
    }
    fake = feed_routes(FakeAmazon(), feed("FATAL", "doc-out"))
    fake.on(
        "GET",
        "/feeds/2021-06-30/documents/doc-out",
        json_response({"feedDocumentId": "doc-out", "url": f"{API}/s3/out"}),
    )
    fake.on("GET", "/s3/out", json_response(report))
    with pytest.raises(PermanentError, match=r"ended FATAL.*5001: not JSON"):
        fake.connector().import_result(ImportRef("feed:F1", SubmitMode.FULL, 2))


def test_garbage_report_is_retryable() -> None:
    fake = feed_routes(FakeAmazon(), feed("DONE", "doc-out"))
    fake.on(
        "GET",
        "/feeds/2021-06-30/documents/doc-out",
        json_response({"feedDocumentId": "doc-out", "url": f"{API}/s3/out"}),
    )
    fake.on("GET", "/s3/out", httpx.Response(200, content=b'{"issues": [{"sku"'))
    from tradelane.connectors.amazon.errors import AmazonBadResponse

    with pytest.raises(AmazonBadResponse):
        fake.connector().import_result(ImportRef("feed:F1", SubmitMode.FULL, 2))


SHIP = "/orders/v0/orders/302-1/shipmentConfirmation"


def test_ship_lines_with_a_converted_carrier() -> None:
    fake = FakeAmazon().on("POST", SHIP, httpx.Response(204))
    fake.connector().ship(
        Shipment(
            order_id="302-1",
            lines=[ShippedLine("11111", 1)],
            carrier_code="royal-mail",
            tracking_number="RM1",
        )
    )
    body = body_of(fake.calls("POST", SHIP)[0])
    assert body["marketplaceId"] == "A1PA6795UKMFR9"
    detail = body["packageDetail"]
    assert (detail["carrierCode"], detail["trackingNumber"], detail["orderItems"]) == (
        "Royal Mail",
        "RM1",
        [{"orderItemId": "11111", "quantity": 1}],
    )
    assert detail["shipDate"] == "2025-03-01T12:00:00Z"


def test_ship_whole_order_reads_what_is_left_and_unknown_carrier_is_other() -> None:
    fake = (
        FakeAmazon()
        .on("GET", "/orders/2026-01-01/orders/302-1", json_response({"order": order("302-1")}))
        .on("POST", SHIP, httpx.Response(204))
    )
    fake.connector().ship(
        Shipment(order_id="302-1", lines=None, carrier_name="Kurier Müller", tracking_number="K1")
    )
    detail = body_of(fake.calls("POST", SHIP)[0])["packageDetail"]
    assert (detail["carrierCode"], detail["carrierName"]) == ("Other", "Kurier Müller")
    assert detail["orderItems"] == [{"orderItemId": "11111", "quantity": 2}]


def test_ship_without_tracking_is_refused_before_any_call() -> None:
    fake = FakeAmazon()
    with pytest.raises(PermanentError, match="requires a tracking number"):
        fake.connector().ship(Shipment(order_id="302-1", lines=None, carrier_code="ups"))
    assert fake.requests == []


@pytest.mark.parametrize(
    ("lwa", "listing", "outcome", "problem"),
    [
        (json_response({"error": "invalid_client"}, 401), None, CheckOutcome.BAD_CREDENTIALS, "bad_client"),
        (
            json_response({"error": "invalid_grant"}, 400),
            None,
            CheckOutcome.BAD_CREDENTIALS,
            "bad_refresh_token",
        ),
        (
            None,
            errors(403, "Unauthorized", "Access to requested resource is denied."),
            CheckOutcome.BAD_ACCOUNT,
            "account_refused",
        ),
        (
            None,
            errors(400, "InvalidInput", "Invalid marketplace identifier: 'X'."),
            CheckOutcome.BAD_ACCOUNT,
            "rejected",
        ),
        (None, errors(404, "NotFound", "SKU not found"), CheckOutcome.OK, None),
        (None, errors(503, "ServiceUnavailable", "later"), CheckOutcome.UNREACHABLE, "sp_api_retry"),
    ],
)
def test_check_tells_the_causes_apart(
    lwa: httpx.Response | None, listing: httpx.Response | None, outcome: CheckOutcome, problem: str | None
) -> None:
    fake = FakeAmazon()
    if lwa is not None:
        fake.on("POST", "/auth/o2/token", lwa)
    if listing is not None:
        fake.on("GET", LISTING + "tradelane-channel-check", listing)
    report = fake.connector().check()
    assert report.outcome is outcome, report.message
    assert report.details.get("problem") == problem


def test_check_unreachable() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    fake = FakeAmazon().on("POST", "/auth/o2/token", refused)
    report = fake.connector().check()
    assert report.outcome is CheckOutcome.UNREACHABLE and "lwa" in report.details["problem"]


def test_invalid_settings_or_missing_credentials_are_permanent() -> None:
    with pytest.raises(PermanentError, match="invalid Amazon settings"):
        FakeAmazon().connector(region="fe")
    from amazon_fakes import settings

    from tradelane.connectors.base import ConnectorEnv

    env = ConnectorEnv(
        1, "x", settings().to_dict(), {"client_id": "c"}, Clock(), lambda op: None, lambda e: None
    )
    with pytest.raises(PermanentError, match="client_secret, refresh_token"):
        AmazonConnector(env)


def test_registered_with_the_hub() -> None:
    from amazon_fakes import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, settings

    from tradelane.connectors.registry import get_connector
    from tradelane.domain.errors import ValidationError

    spec = get_connector("amazon")
    assert spec.title == "Amazon" and spec.factory is AmazonConnector
    assert spec.cursor("orders") == "amazon.orders.cursor"
    credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    stored = spec.validate_settings({**settings().to_dict(), "region": "EU"}, credentials)
    assert stored["region"] == "eu"
    with pytest.raises(ValidationError, match="refresh_token"):
        spec.validate_settings(settings().to_dict(), {"client_id": "c", "client_secret": "s"})
    with pytest.raises(ValidationError, match="seller id"):
        spec.validate_settings({"marketplace_id": "A1PA6795UKMFR9"}, credentials)
    assert spec.channel_capabilities(settings().to_dict()).supports(Operation.SHIP)
