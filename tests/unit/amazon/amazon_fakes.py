"""A small fake of Amazon's LWA and SP-API for unit tests (an ``httpx.MockTransport`` routing table):
answers are registered per (method, path); every request is recorded."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tradelane.connectors.amazon.auth import LwaAuth, TokenCache
from tradelane.connectors.amazon.client import AmazonClient
from tradelane.connectors.amazon.connector import AmazonConnector
from tradelane.connectors.amazon.settings import AmazonSettings
from tradelane.connectors.base import ConnectorEnv
from tradelane.http_edge import Exchange

API = "https://sp.test"
LWA = "https://lwa.test/auth/o2/token"
SELLER = "A2SELLER000001"
MARKETPLACE = "A1PA6795UKMFR9"
CLIENT_ID = "amzn1.application-oa2-client.test"
CLIENT_SECRET = "client-secret-value-1234"
REFRESH_TOKEN = "Atzr|refresh-token-value-5678"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": message}]}, headers=headers)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeAmazon:
    """Routes (method, path) → queued answers (the last one repeats). LWA answers a fresh token
    ``token-N`` valid ``expires_in`` seconds unless told otherwise."""

    def __init__(self, expires_in: int = 3600) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0
        self.expires_in = expires_in
        self.on("POST", "/auth/o2/token", self._token)

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.tokens_issued += 1
        return json_response(
            {
                "access_token": f"token-{self.tokens_issued}",
                "token_type": "bearer",
                "expires_in": self.expires_in,
            }
        )

    def on(self, method: str, path: str, *answers: Answer) -> FakeAmazon:
        self.routes[(method, path)] = list(answers)
        return self

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queue = self.routes.get((request.method, request.url.path))
        if not queue:
            return errors(404, "NotFound", f"no route {request.method} {request.url.path}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        response = answer(request) if callable(answer) else answer
        response.request = request
        return response

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def auth(self, clock: Callable[[], datetime], exchanges: list[Exchange] | None = None) -> LwaAuth:
        return LwaAuth(
            token_url=LWA,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=REFRESH_TOKEN,
            http=self.http(),
            clock=clock,
            on_exchange=exchanges.append if exchanges is not None else None,
        )

    def client(
        self,
        clock: Callable[[], datetime] | None = None,
        *,
        throttled: list[str] | None = None,
        exchanges: list[Exchange] | None = None,
    ) -> AmazonClient:
        clock = clock or Clock()
        http = self.http()
        auth = LwaAuth(
            token_url=LWA,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=REFRESH_TOKEN,
            http=http,
            clock=clock,
        )
        return AmazonClient(
            settings(),
            auth,
            http=http,
            clock=clock,
            throttle=throttled.append if throttled is not None else (lambda op: None),
            on_exchange=exchanges.append if exchanges is not None else None,
        )

    def connector(
        self,
        clock: Clock | None = None,
        *,
        token_cache: TokenCache | None = None,
        channel_id: int = 1,
        credentials: dict[str, str] | None = None,
        **overrides: Any,
    ) -> AmazonConnector:
        """A connector on this fake; its LWA token in ``token_cache`` (default: a cache of its own, so
        that tests do not share tokens)."""
        clock = clock or Clock()
        return AmazonConnector(
            ConnectorEnv(
                channel_id=channel_id,
                channel_name="amazon-de",
                settings={**settings().to_dict(), **overrides},
                credentials=credentials
                or {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "refresh_token": REFRESH_TOKEN,
                },
                now=clock,
                throttle=lambda op: None,
                on_exchange=lambda exchange: None,
            ),
            http=self.http(),
            token_cache=token_cache if token_cache is not None else TokenCache(),
        )


def settings(**overrides: Any) -> AmazonSettings:
    data: dict[str, Any] = {
        "seller_id": SELLER,
        "marketplace_id": MARKETPLACE,
        "region": "eu",
        "endpoint": API,
        "token_endpoint": LWA,
    }
    data.update(overrides)
    return AmazonSettings.from_dict(data)


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def order(
    order_id: str = "302-0000001-0000001",
    *,
    status: str = "UNSHIPPED",
    updated: str = "2025-03-01T11:00:00Z",
    address: bool = True,
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A 2026-01-01 ``Order`` as searchOrders returns it with BUYER, RECIPIENT and FULFILLMENT."""
    payload: dict[str, Any] = {
        "orderId": order_id,
        "createdTime": "2025-03-01T10:00:00Z",
        "lastUpdatedTime": updated,
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": MARKETPLACE},
        "fulfillment": {
            "fulfillmentStatus": status,
            "fulfilledBy": "MERCHANT",
            "shipByWindow": {"latestDateTime": "2025-03-03T10:00:00Z"},
        },
        "buyer": {"buyerName": "Erika Mustermann", "buyerEmail": "erika@marketplace.amazon.de"},
        "orderItems": items
        if items is not None
        else [
            {
                "orderItemId": "11111",
                "quantityOrdered": 2,
                "product": {
                    "asin": "B0TEST0001",
                    "sellerSku": "SKU-1",
                    "title": "Blue Mug",
                    "price": {"unitPrice": {"amount": "19.99", "currencyCode": "EUR"}},
                },
                "fulfillment": {"quantityFulfilled": 0, "quantityUnfulfilled": 2},
            }
        ],
    }
    if address:
        payload["recipient"] = {
            "deliveryAddress": {
                "name": "Erika Mustermann",
                "addressLine1": "Heidestr. 17",
                "addressLine2": "Hinterhaus",
                "city": "Köln",
                "postalCode": "51147",
                "countryCode": "DE",
                "phone": "+49 221 1234567",
            }
        }
    return payload
