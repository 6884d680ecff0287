"""MiraklConnector on the marketplace port: capabilities declared from the settings, one budget token
per remote run (not per page), 429 holds, the staging account in Testing, cursors, acceptance already
settled, holiday mode (A02) and the account check — against a scripted Mirakl (no network)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from mirakl_client_fixtures import (
    API_KEY,
    HOST,
    SHOP_ID,
    FakeMirakl,
    account,
    json_response,
    order,
    orders_page,
)

from tradelane.connectors.base import (
    AcceptanceSettled,
    CheckOutcome,
    ConnectorEnv,
    HolidayMode,
    LineDecision,
    MarketplaceConnector,
    Operation,
)
from tradelane.connectors.mirakl.errors import MiraklRateLimited
from tradelane.connectors.mirakl.mapping import neutral_state
from tradelane.connectors.mirakl.port import MiraklConnector
from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.http_edge import Exchange

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Recorder:
    """The hub's side of the env: budget tokens taken, holds, exchanges."""

    def __init__(self) -> None:
        self.throttled: list[str] = []
        self.held: list[tuple[str, float]] = []
        self.exchanges: list[Exchange] = []

    def env(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> ConnectorEnv:
        return ConnectorEnv(
            channel_id=1,
            channel_name="shop",
            settings={"hostname": HOST, "shop_id": SHOP_ID, **(settings or {})},
            credentials=kwargs.pop("credentials", {"api_key": API_KEY}),
            now=lambda: NOW,
            throttle=self.throttled.append,
            on_exchange=self.exchanges.append,
            hold=lambda op, seconds: self.held.append((op, seconds)),
            **kwargs,
        )


def connector(fake: FakeMirakl, recorder: Recorder, **kwargs: Any) -> MiraklConnector:
    http = httpx.Client(transport=httpx.MockTransport(fake.handle))
    return MiraklConnector(recorder.env(**kwargs), http=http)


def paged(orders: list[dict[str, Any]]) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        offset, size = int(request.url.params["offset"]), int(request.url.params["max"])
        return json_response(200, orders_page(orders[offset : offset + size], len(orders)))

    return answer


def test_it_is_a_marketplace_connector_declaring_mirakl_capabilities() -> None:
    rec = Recorder()
    plain = connector(FakeMirakl(), rec)
    multi = connector(FakeMirakl(), rec, settings={"multi_shipment": True, "rate_limits": {"OR11": [2, 60]}})
    assert isinstance(plain, MarketplaceConnector)
    caps = plain.capabilities
    assert caps.acceptance_required and caps.acceptance_deadline == timedelta(days=1)
    assert not caps.line_level_cancellation and caps.labels and caps.asynchronous_offer_imports
    assert caps.holiday_mode is HolidayMode.CLOSING_PERIOD
    assert not caps.partial_shipments and multi.capabilities.partial_shipments
    assert caps.budgets["OR11"].per_second == pytest.approx(1 / 60)
    assert multi.capabilities.budgets["OR11"].per_second == pytest.approx(2 / 60)  # the channel's override
    assert caps.budgets["OR21"].per_second == pytest.approx(100 / 60)
    assert caps.batch_size(Operation.SUBMIT_OFFERS_DELTA, 0) == 5_000
    assert set(Operation) == set(caps.operations)


def test_fetch_orders_takes_a_token_per_page_and_returns_an_overlapping_cursor() -> None:
    rec = Recorder()
    orders = [
        order(f"ORD-{i:04d}-A", last_updated_date=f"2024-05-01T10:{i % 60:02d}:00Z") for i in range(150)
    ]
    orders.append(order("ORD-0001-A", last_updated_date="2024-05-01T11:30:00Z"))  # a newer version
    fake = FakeMirakl().on("GET", "/api/orders", paged(orders))
    changes = connector(fake, rec).fetch_orders(None, now=NOW)
    assert len(fake.requests) == 2 and rec.throttled == ["OR11", "OR11"]  # Mirakl counts every call
    assert changes.fetched == 151 and len(changes.orders) == 150 and not changes.more
    [first] = [o for o in changes.orders if o.marketplace_order_id == "ORD-0001-A"]
    assert first.updated_at == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)  # the newest version wins
    # initial look-back: 72 hours before now
    assert fake.requests[0].url.params["start_update_date"] == "2024-04-28T12:00:00.000Z"
    assert changes.cursor == (datetime(2024, 5, 1, 11, 30, tzinfo=UTC) - timedelta(seconds=300)).isoformat()
    assert all(o.acceptance_deadline is not None for o in changes.orders)
    # the next run starts at the cursor; with nothing newer it stays where it is
    again = connector(FakeMirakl().on("GET", "/api/orders", paged([])), rec).fetch_orders(
        changes.cursor, now=NOW
    )
    assert again.cursor == changes.cursor and again.orders == []
    assert [e.op for e in rec.exchanges] == ["OR11", "OR11", "OR11"]


def test_a_poll_stopped_by_its_budget_keeps_what_it_read_and_continues_the_scan() -> None:
    """More than a page under a budget of one OR11 call: the first run keeps page 1 and says there is
    more; the next continues a little before where it stopped; the scan then ends with the watermark."""
    orders = [
        order(f"ORD-{i:04d}-A", last_updated_date=f"2024-05-01T10:{i % 60:02d}:00Z") for i in range(150)
    ]

    class OneToken(Recorder):
        def env(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> ConnectorEnv:
            def throttle(op: str) -> None:
                if self.throttled:
                    raise RetryableError("OR11 budget spent", retry_after=60.0)
                self.throttled.append(op)

            return replace(super().env(settings, **kwargs), throttle=throttle)

    fake = FakeMirakl().on("GET", "/api/orders", paged(orders))
    first = connector(fake, OneToken()).fetch_orders(None, now=NOW)
    assert len(fake.requests) == 1 and first.more and len(first.orders) == 100
    assert first.cursor is not None and first.cursor.startswith("2024-04-28T12:00:00+00:00|80|")
    rest = connector(fake, OneToken()).fetch_orders(first.cursor, now=NOW)
    assert fake.requests[1].url.params["offset"] == "80"
    assert fake.requests[1].url.params["start_update_date"] == "2024-04-28T12:00:00.000Z"
    assert not rest.more and len(rest.orders) == 70  # 20 seen again (harmless), 50 new
    seen = {o.marketplace_order_id for o in (*first.orders, *rest.orders)}
    assert len(seen) == 150
    newest = datetime(2024, 5, 1, 10, 59, tzinfo=UTC)  # across both runs
    assert rest.cursor == (newest - timedelta(seconds=300)).isoformat()
    # nothing read at all: the error goes up (the job is retried), the cursor untouched
    with pytest.raises(RetryableError):
        spent = OneToken()
        spent.throttled.append("OR11")
        connector(fake, spent).fetch_orders(first.cursor, now=NOW)


def test_a_429_holds_the_operations_budget_before_the_error_goes_up() -> None:
    rec = Recorder()
    fake = FakeMirakl().on(
        "GET", "/api/orders", json_response(429, {"message": "slow down"}, **{"Retry-After": "120"})
    )
    with pytest.raises(MiraklRateLimited):
        connector(fake, rec).fetch_orders(None, now=NOW)
    assert rec.held == [("OR11", 120.0)]


def test_testing_uses_the_staging_account_and_a_missing_key_is_permanent() -> None:
    rec = Recorder()
    fake = FakeMirakl().on("GET", "/api/orders", paged([]))
    staging = {"staging_hostname": "staging.mirakl.test", "staging_shop_id": "3003"}
    conn = connector(
        fake,
        rec,
        settings=staging,
        credentials={"api_key": API_KEY, "staging_api_key": "staging-key"},
        testing=True,
    )
    conn.fetch_orders(None, now=NOW)
    request = fake.requests[0]
    assert request.url.host == "staging.mirakl.test" and request.url.params["shop_id"] == "3003"
    assert request.headers["Authorization"] == "staging-key"
    with pytest.raises(PermanentError, match="no Mirakl API key"):
        connector(fake, rec, settings=staging, testing=True)  # Testing without the staging key
    with pytest.raises(PermanentError, match="invalid Mirakl settings"):
        connector(fake, rec, settings={"no_such_setting": 1})


def _accept_refused(_request: httpx.Request) -> httpx.Response:
    return json_response(400, {"status": 400, "message": "order is not in WAITING_ACCEPTANCE"})


@pytest.mark.parametrize(
    ("state", "accepted"), [("SHIPPING", True), ("REFUSED", False), ("WAITING_ACCEPTANCE", None)]
)
def test_a_refused_acceptance_reads_the_order_back(state: str, accepted: bool | None) -> None:
    rec = Recorder()
    fake = (
        FakeMirakl()
        .on("PUT", "/api/orders/ORD-1-A/accept", _accept_refused)
        .on("GET", "/api/orders", json_response(200, orders_page([order("ORD-1-A", order_state=state)], 1)))
    )
    decisions = [LineDecision("ORD-1-A-1", True)]
    if accepted is None:
        with pytest.raises(RetryableError, match="still awaiting_acceptance"):
            connector(fake, rec).accept("ORD-1-A", decisions)
    else:
        with pytest.raises(AcceptanceSettled) as settled:
            connector(fake, rec).accept("ORD-1-A", decisions)
        assert settled.value.state is neutral_state(state)
        assert settled.value.accepted is accepted and "OR21 answered" in settled.value.evidence
    assert rec.throttled == ["OR21", "OR11"]


def test_fetch_messages_and_returns_map_onto_feed_items_with_their_cursors() -> None:
    rec = Recorder()
    message = {
        "id": 7,
        "order_id": "ORD-1-A",
        "commercial_id": "ORD-1",
        "subject": "Gift",
        "body": "Wrap it",
        "from_type": "CUSTOMER",
        "from_name": "Anna",
        "date_created": "2024-05-01T10:00:00Z",
    }
    fake = FakeMirakl().on(
        "GET", "/api/messages", json_response(200, {"messages": [message], "total_count": 1})
    )
    try:
        changes = connector(fake, rec).fetch_messages(None, now=NOW)
    except PermanentError as exc:  # the fixture message does not follow M01: say which field
        pytest.fail(f"M01 fixture rejected: {exc}")
    [item] = changes.items
    assert (item.order_id, item.item_id, item.data["body"], item.data["author"]) == (
        "ORD-1-A",
        "7",
        "Wrap it",
        "Anna",
    )
    assert changes.cursor == "2024-05-01T10:00:00+00:00"
    assert rec.throttled == ["M01"]


def test_set_holiday_sends_the_closing_period_and_refuses_half_periods() -> None:
    rec = Recorder()
    fake = FakeMirakl().on("PUT", "/api/account", json_response(200, {"errors": [], "updated": {}}))
    start, end = NOW, NOW + timedelta(days=7)
    conn = connector(fake, rec)
    conn.set_holiday(start, end)
    assert json.loads(fake.requests[0].content) == {
        "closed_from": "2024-05-01T12:00:00.000Z",
        "closed_to": "2024-05-08T12:00:00.000Z",
    }
    conn.set_holiday(None, None)
    assert json.loads(fake.requests[1].content) == {"closed_from": None, "closed_to": None}
    assert rec.throttled == ["A02", "A02"]
    with pytest.raises(ValueError):
        conn.set_holiday(start, None)
    refusing = FakeMirakl().on(
        "PUT",
        "/api/account",
        json_response(200, {"errors": [{"code": "X", "field": "closed_to", "message": "in the past"}]}),
    )
    with pytest.raises(PermanentError, match="closed_to: in the past"):
        connector(refusing, rec).set_holiday(start, end)


def test_check_reports_the_account_or_tells_the_problem_apart() -> None:
    rec = Recorder()
    ok = FakeMirakl().on("GET", "/api/account", json_response(200, account()))
    report = connector(ok, rec).check()
    assert report.ok and report.details["shop_id"] == SHOP_ID
    bad_key = FakeMirakl().on(
        "GET", "/api/account", json_response(401, {"status": 401, "message": "Unauthorized"})
    )
    assert connector(bad_key, rec).check().outcome is CheckOutcome.BAD_CREDENTIALS
