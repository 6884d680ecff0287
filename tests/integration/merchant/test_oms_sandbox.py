"""The HTTP OMS sandbox over real HTTP on 127.0.0.1, and the adapter against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from helpers import FakeClock
from tradelane.merchant.base import MerchantSystem, OutcomeKind
from tradelane.merchant.http_oms import HttpOmsAdapter
from tradelane.merchant.sandbox import CallbackConfig, OmsSandboxServer, OmsSandboxState
from tradelane.merchant.sandbox.callback import send_update
from tradelane.merchant.schema import OmsOrder
from tradelane.merchant.signing import SIGNATURE_HEADER, sign, verify

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRET = "oms-sandbox-test-secret-000"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def server(clock):
    with OmsSandboxServer(OmsSandboxState(SECRET, clock=clock)) as srv:
        yield srv


def _doc(order_id: int = 1, skus: tuple[str, ...] = ("A",)) -> OmsOrder:
    return OmsOrder.model_validate(
        {
            "id": order_id,
            "ref": f"shop:M-{order_id}",
            "channel": "shop",
            "marketplace_order_id": f"M-{order_id}",
            "state": "SHIPPING",
            "currency": "EUR",
            "total_price": "1",
            "attributes": {},
            "lines": [
                {
                    "line_id": str(i),
                    "sku": sku,
                    "marketplace_sku": sku,
                    "offer_sku": sku,
                    "quantity": 1,
                    "unit_price": "1",
                    "line_total": "1",
                    "currency": "EUR",
                    "type": "textual",
                }
                for i, sku in enumerate(skus)
            ],
            "created_at": NOW,
        }
    )


def _post(server, body: bytes, *, signature: str | None, key: str | None = "order-1") -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(server.orders_url, content=body, headers=headers, timeout=5)


def _adapter(server, secret: str = SECRET) -> HttpOmsAdapter:
    system = MerchantSystem(1, 1, "oms", "http", {"url": server.orders_url, "timeout_seconds": 5}, True)
    return HttpOmsAdapter(system, {"secret": secret})


def test_signature_and_replay_window_are_enforced(server, clock):
    body = _doc().model_dump_json().encode()
    assert _post(server, body, signature=None).status_code == 401
    assert _post(server, body, signature=sign("wrong-secret", body, NOW)).status_code == 401
    assert _post(server, body, signature=sign(SECRET, body, NOW - timedelta(seconds=301))).status_code == 401
    tampered = body.replace(b'"EUR"', b'"USD"', 1)
    assert _post(server, tampered, signature=sign(SECRET, body, NOW)).status_code == 401
    assert server.state.orders() == []
    ok = _post(server, body, signature=sign(SECRET, body, NOW))
    assert ok.status_code == 201 and ok.json() == {"id": "OMS-1", "status": "created"}


def test_orders_are_idempotent_on_the_idempotency_key(server):
    body = _doc().model_dump_json().encode()
    first = _post(server, body, signature=sign(SECRET, body, NOW))
    again = _post(server, body, signature=sign(SECRET, body, NOW))
    other = _post(server, body, signature=sign(SECRET, body, NOW), key="order-2")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"] != other.json()["id"]
    assert [o.deliveries for o in server.state.orders()] == [2, 1]
    assert _post(server, body, signature=sign(SECRET, body, NOW), key=None).status_code == 400


def test_adapter_delivers_and_the_sandbox_sees_a_valid_signature(server):
    adapter = _adapter(server)
    try:
        outcome = adapter.deliver_order(_doc(5), idempotency_key="order-5", now=NOW)
    finally:
        adapter.close()
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.external_ref == "OMS-1"
    [received] = server.state.orders()
    assert received.document["id"] == 5 and received.idempotency_key == "order-5"


def test_adapter_classifies_rejections_faults_and_throttling(server):
    adapter = _adapter(server)
    try:
        server.state.reject_skus({"BAD"})
        rejected = adapter.deliver_order(_doc(1, ("A", "BAD")), idempotency_key="order-1", now=NOW)
        server.state.fail_next(1, status=500)
        failed = adapter.deliver_order(_doc(2), idempotency_key="order-2", now=NOW)
        server.state.fail_next(1, status=429, retry_after=7)
        throttled = adapter.deliver_order(_doc(3), idempotency_key="order-3", now=NOW)
        wrong_secret = _adapter(server, "another-secret").deliver_order(
            _doc(4), idempotency_key="order-4", now=NOW
        )
    finally:
        adapter.close()
    assert rejected.kind is OutcomeKind.REJECTED and rejected.status_code == 422
    assert rejected.response_body["skus"] == ["BAD"]
    assert failed.kind is OutcomeKind.RETRY and failed.status_code == 500 and failed.retry_after is None
    assert throttled.kind is OutcomeKind.RETRY and throttled.retry_after == 7
    assert wrong_secret.kind is OutcomeKind.REJECTED and wrong_secret.status_code == 401
    assert server.state.orders() == []


def test_control_endpoints(server):
    assert httpx.put(f"{server.url}/_sandbox/reject-skus", json={"skus": ["Z"]}).status_code == 204
    assert httpx.post(f"{server.url}/_sandbox/faults", json={"count": 1, "status": 503}).status_code == 204
    body = _doc(1, ("A",)).model_dump_json().encode()
    assert _post(server, body, signature=sign(SECRET, body, NOW)).status_code == 503
    assert _post(server, body, signature=sign(SECRET, body, NOW)).status_code == 201
    body_z = _doc(2, ("Z",)).model_dump_json().encode()
    assert _post(server, body_z, signature=sign(SECRET, body_z, NOW), key="order-2").status_code == 422
    listed = httpx.get(f"{server.url}/orders").json()
    assert [o["ref"] for o in listed] == ["shop:M-1"]
    assert httpx.get(f"{server.url}/orders/shop:M-1").json()["id"] == "OMS-1"
    assert [r["status"] for r in httpx.get(f"{server.url}/_sandbox/requests").json()] == [503, 201, 422]


class _Recorder(httpx.BaseTransport):
    """A fake tradelane: records what the sandbox sends back."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return httpx.Response(202, json={"ok": True})


def test_shipping_calls_tradelane_back_by_api_or_signed_webhook(clock):
    state = OmsSandboxState(
        SECRET,
        clock=clock,
        callback=CallbackConfig("http://tradelane.test", api_token="tok-123", merchant_name="oms"),
    )
    body = _doc(9).model_dump_json().encode()
    state.receive({"x-tradelane-signature": sign(SECRET, body, NOW), "idempotency-key": "order-9"}, body)
    [order] = state.orders()
    recorder = _Recorder()
    with httpx.Client(transport=recorder) as client:
        fields = {"carrier": "UPS", "tracking_number": "1Z"}
        send_update(state, order, "shipment", fields, via="api", client=client)
        send_update(state, order, "shipment", fields, via="webhook", client=client)
    api, hook = recorder.requests
    assert str(api.url) == "http://tradelane.test/api/v1/orders/shop:M-9/shipments"
    assert api.headers["authorization"] == "Bearer tok-123"
    assert json.loads(api.content) == {
        "carrier": "UPS",
        "tracking_number": "1Z",
        "external_id": "OMS-1-shipment-1",
        "merchant_system": "oms",
    }
    assert str(hook.url) == "http://tradelane.test/api/v1/merchant/oms/webhook"
    verify(SECRET, hook.headers[SIGNATURE_HEADER], hook.content, NOW)
    assert json.loads(hook.content) == {
        "type": "shipment",
        "order": "shop:M-9",
        "id": "OMS-1-shipment-2",
        "carrier": "UPS",
        "tracking_number": "1Z",
    }
    assert len(order.shipments) == 2
