"""Paging of OR11 / OF21 (offset) and RT11 (seek): termination, exact multiples, empty and replayed pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from mirakl_client_fixtures import FakeMirakl, json_response, offer, order, orders_page, validate

from tradelane.connectors.mirakl.client import MAX_PAGE_SIZE, MiraklBadResponse
from tradelane.connectors.mirakl.mapping import MiraklOrderState


class PagedOrders:
    """OR11 over ``count`` orders, honouring ``offset``/``max``; ``replay`` maps an offset to the offset
    whose page is served instead (a proxy replaying a page); ``total_override`` lies about the total."""

    def __init__(
        self, count: int, *, replay: dict[int, int] | None = None, total_override: int | None = None
    ):
        self.orders = [order(f"ORD-{i:04d}-A") for i in range(count)]
        self.replay = replay or {}
        self.total = count if total_override is None else total_override
        self.calls: list[tuple[int, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        size = int(request.url.params["max"])
        self.calls.append((offset, size))
        start = self.replay.get(offset, offset)
        body = orders_page(self.orders[start : start + size], self.total)
        return json_response(200, body)


def run(pages: PagedOrders, **kwargs: Any) -> list[str]:
    fake = FakeMirakl().on("GET", "/api/orders", pages)
    return [o.marketplace_order_id for o in fake.client().iter_orders(**kwargs)]


@pytest.mark.parametrize("count", [0, 1, 99, 100, 101, 200, 250])
def test_iter_orders_fetches_every_order_once_with_minimal_calls(count: int) -> None:
    pages = PagedOrders(count)
    ids = run(pages)
    assert ids == [f"ORD-{i:04d}-A" for i in range(count)]
    expected_calls = max(1, -(-count // MAX_PAGE_SIZE))  # ceil, at least one call
    assert len(pages.calls) == expected_calls
    assert [offset for offset, _ in pages.calls] == [i * 100 for i in range(expected_calls)]
    assert all(size == 100 for _, size in pages.calls)


def test_exact_multiple_of_100_does_not_ask_for_an_empty_extra_page() -> None:
    pages = PagedOrders(300)
    assert len(run(pages)) == 300
    assert pages.calls == [(0, 100), (100, 100), (200, 100)]


def test_empty_page_before_total_count_stops_cleanly() -> None:
    pages = PagedOrders(150, total_override=400)  # orders left the filter while paging
    assert len(run(pages)) == 150
    assert pages.calls == [(0, 100), (100, 100), (150, 100)]


def test_short_pages_advance_by_what_was_received() -> None:
    fake_orders = [order(f"ORD-{i:04d}-A") for i in range(25)]

    def server_capped_at_10(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return json_response(200, orders_page(fake_orders[offset : offset + 10], len(fake_orders)))

    fake = FakeMirakl().on("GET", "/api/orders", server_capped_at_10)
    ids = [o.marketplace_order_id for o in fake.client().iter_orders()]
    assert ids == [f"ORD-{i:04d}-A" for i in range(25)]
    assert [int(r.url.params["offset"]) for r in fake.requests] == [0, 10, 20]


def test_a_fully_replayed_page_raises_retryable_instead_of_skipping_orders() -> None:
    pages = PagedOrders(300, replay={100: 0})
    fake = FakeMirakl().on("GET", "/api/orders", pages)
    seen: list[str] = []
    with pytest.raises(MiraklBadResponse) as info:
        for item in fake.client().iter_orders():
            seen.append(item.marketplace_order_id)
    assert seen == [f"ORD-{i:04d}-A" for i in range(100)]  # no duplicates were yielded
    assert "already-seen" in info.value.reason and "offset 100" in info.value.reason
    assert len(pages.calls) == 2


def test_partially_overlapping_page_yields_only_new_orders() -> None:
    pages = PagedOrders(200, replay={100: 95})  # an order entered the window: the listing shifted by 5
    fake = FakeMirakl().on("GET", "/api/orders", pages)
    ids = [o.marketplace_order_id for o in fake.client().iter_orders()]
    assert len(ids) == len(set(ids)) == 195
    assert ids[-1] == "ORD-0194-A"


def test_iter_orders_passes_filters_on_every_page() -> None:
    pages = PagedOrders(120)
    fake = FakeMirakl().on("GET", "/api/orders", pages)
    since = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    list(
        fake.client().iter_orders(
            states=[MiraklOrderState.WAITING_ACCEPTANCE, "SHIPPING"], start_update_date=since
        )
    )
    assert len(fake.requests) == 2
    for request in fake.requests:
        assert request.url.params["order_state_codes"] == "WAITING_ACCEPTANCE,SHIPPING"
        assert request.url.params["start_update_date"] == "2024-05-01T08:00:00.000Z"
        assert request.url.params["paginate"] == "true"


def test_iter_orders_is_lazy() -> None:
    pages = PagedOrders(250)
    fake = FakeMirakl().on("GET", "/api/orders", pages)
    iterator = fake.client().iter_orders()
    assert pages.calls == []
    next(iterator)
    assert len(pages.calls) == 1


@pytest.mark.parametrize("bad", [0, 101, -1])
def test_page_size_is_bounded(bad: int) -> None:
    fake = FakeMirakl()
    with pytest.raises(ValueError):
        fake.client().list_orders(max=bad)
    with pytest.raises(ValueError):
        list(fake.client().iter_orders(page_size=bad))
    assert fake.requests == []


def test_fixture_pages_fit_the_schema() -> None:
    pages = PagedOrders(3)
    validate("OR11", "200", pages(httpx.Request("GET", "https://x/api/orders?offset=0&max=100")).json())


def test_iter_offers_pages_to_the_end() -> None:
    offers = [offer(i) for i in range(1, 131)]

    def handler(request: httpx.Request) -> httpx.Response:
        offset, size = int(request.url.params["offset"]), int(request.url.params["max"])
        return json_response(200, {"offers": offers[offset : offset + size], "total_count": len(offers)})

    fake = FakeMirakl().on("GET", "/api/offers", handler)
    result = list(fake.client().iter_offers())
    assert [o.shop_sku for o in result] == [f"ACME-SKU-{i}" for i in range(1, 131)]
    assert len(fake.requests) == 2


def _return(index: int) -> dict[str, Any]:
    return {
        "date_created": "2024-05-05T10:00:00Z",
        "id": f"ret-{index}",
        "last_updated": "2024-05-06T10:00:00Z",
        "method_code": "RETURN_METHOD_BY_MAIL",
        "order_commercial_id": "ORD-1001",
        "order_id": "ORD-1001-A",
        "return_address": {
            "city": "Berlin",
            "country_iso_code": "DEU",
            "street1": "Lager 1",
            "zip_code": "10115",
        },
        "return_lines": [
            {"order_line_id": "ORD-1001-A-1", "quantity": 1, "reason_code": "RETURN_CHANGED_MIND"}
        ],
        "state": "WAITING_ACCEPTANCE",
    }


def test_iter_returns_follows_page_tokens() -> None:
    pages = {None: (["1", "2"], "t2"), "t2": (["3"], "t3"), "t3": ([], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        ids, token = pages[request.url.params.get("page_token")]
        body: dict[str, Any] = {"data": [_return(int(i)) for i in ids]}
        if token:
            body["next_page_token"] = token
        validate("RT11", "200", body)
        return json_response(200, body)

    fake = FakeMirakl().on("GET", "/api/returns", handler)
    result = list(fake.client().iter_returns(states=["WAITING_ACCEPTANCE", "IN_PROGRESS"]))
    assert [r.return_id for r in result] == ["ret-1", "ret-2", "ret-3"]
    assert result[0].lines[0].order_line_id == "ORD-1001-A-1"
    assert fake.requests[0].url.params.get_list("return_state") == ["WAITING_ACCEPTANCE", "IN_PROGRESS"]


def test_iter_returns_detects_a_token_loop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"data": [_return(1)], "next_page_token": "same"})

    fake = FakeMirakl().on("GET", "/api/returns", handler)
    with pytest.raises(MiraklBadResponse):
        list(fake.client().iter_returns())
    assert len(fake.requests) == 2
