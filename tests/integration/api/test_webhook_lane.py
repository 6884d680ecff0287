"""The direct webhook lane answers exactly as the FastAPI routes it stands in front of: the same app is
built twice, with and without :class:`WebhookLane`, and every request is sent to both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apitest_support import CHANNEL
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tradelane.bootstrap import Container
from tradelane.web.api.webhook_lane import CHANNEL_PATH, GENERIC_PATH, MERCHANT_PATH, WebhookLane, match
from tradelane.web.app import create_app


@pytest.fixture
def plain_client(container: Container) -> Iterator[TestClient]:
    """The app without the lane: every request goes through FastAPI's routing."""
    app = create_app(container)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not WebhookLane]
    with TestClient(app) as test_client:
        yield test_client


def _comparable(response: Any) -> tuple[int, str, Any]:
    """Status, content type and body, without what differs per request (ids of the event, request)."""
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("event_id", "instance", "request_id")}
    return response.status_code, response.headers["content-type"], body


def test_the_lane_serves_documented_post_routes(app: FastAPI):
    paths = app.openapi()["paths"]
    for template in (GENERIC_PATH, CHANNEL_PATH, MERCHANT_PATH):
        assert "post" in paths[template], template


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/webhooks/shopify", (GENERIC_PATH, {"source": "shopify"})),
        ("/api/v1/webhooks/a.b_c-9", (GENERIC_PATH, {"source": "a.b_c-9"})),
        (
            "/api/v1/webhooks/shopify/shop fr",
            (CHANNEL_PATH, {"source": "shopify", "channel_name": "shop fr"}),
        ),
        ("/api/v1/merchant/oms/webhook", (MERCHANT_PATH, {"name": "oms"})),
        ("/api/v1/webhooks/" + "s" * 100, (GENERIC_PATH, {"source": "s" * 100})),
        # Anything the routes would refuse or do not serve is left to FastAPI:
        ("/api/v1/webhooks/" + "s" * 101, None),
        ("/api/v1/webhooks/-dash", None),
        ("/api/v1/webhooks/bad source", None),
        ("/api/v1/webhooks/", None),
        ("/api/v1/webhooks/a/b/c", None),
        ("/api/v1/webhooks/a/", None),
        ("/api/v1/webhooks/a/\x01", None),
        ("/api/v1/merchant/oms/webhook/", None),
        ("/api/v1/merchant/oms/other", None),
        ("/api/v1/merchant/-x/webhook", None),
        ("/api/v1/merchantx/oms/webhook", None),
        ("/api/v1/jobs", None),
    ],
)
def test_match(path: str, expected: tuple[str, dict[str, str]] | None):
    assert match(path) == expected


def test_generic_webhook_answers_as_without_the_lane(client: TestClient, plain_client: TestClient, world):
    auth = world.acme.auth
    cases: list[tuple[str, dict[str, str], bytes]] = [
        ("/api/v1/webhooks/shopify", {**auth, "X-Event-Id": "E-1"}, b'{"a": 1}'),
        ("/api/v1/webhooks/shopify", {**auth, "X-Event-Id": "E-1"}, b'{"a": 1}'),  # duplicate: 200
        (f"/api/v1/webhooks/shopify/{CHANNEL}", {**auth, "X-Event-Id": "E-2"}, b"{}"),
        ("/api/v1/webhooks/shopify/no-such-channel", {**auth, "X-Event-Id": "E-3"}, b"{}"),  # 404
        ("/api/v1/webhooks/shopify", {"X-Event-Id": "E-4"}, b"{}"),  # no token: 401
        ("/api/v1/webhooks/shopify", {"Authorization": "Bearer nope", "X-Event-Id": "E-5"}, b"{}"),
        ("/api/v1/webhooks/shopify", {"Authorization": "Basic eDp5", "X-Event-Id": "E-6"}, b"{}"),
        ("/api/v1/webhooks/shopify", {**auth, "X-Event-Id": "e" * 301}, b"{}"),  # 422
        ("/api/v1/webhooks/shopify", {**auth, "Content-Type": "text/plain; x=" + "y" * 200}, b"{}"),
        ("/api/v1/webhooks/shopify", {**auth, "X-Event-Id": "E-7"}, b"x" * (5 * 1024 * 1024 + 1)),  # 413
        ("/api/v1/webhooks/-dash", {**auth, "X-Event-Id": "E-8"}, b"{}"),  # not the lane's: 422
    ]
    statuses = []
    for path, headers, body in cases:
        # Each app gets its own source so that both store their first delivery.
        lane = client.post(path.replace("shopify", "lane"), headers=headers, content=body)
        plain = plain_client.post(path.replace("shopify", "plain"), headers=headers, content=body)
        assert _comparable(lane) == _comparable(plain), (path, headers)
        assert lane.headers.get("www-authenticate") == plain.headers.get("www-authenticate")
        assert "x-request-id" in lane.headers
        statuses.append(lane.status_code)
    assert statuses == [202, 200, 202, 404, 401, 401, 401, 422, 422, 413, 422]


def test_lane_requests_are_counted_under_their_route_template(client: TestClient, world):
    client.post("/api/v1/webhooks/shopify", headers={**world.acme.auth, "X-Event-Id": "M-1"}, content=b"{}")
    client.post("/api/v1/webhooks/shopify", headers={"X-Event-Id": "M-2"}, content=b"{}")
    client.post("/api/v1/merchant/nobody/webhook", content=b"{}")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for s in family.samples
    }

    def count(route: str, status: str) -> float | None:
        labels = frozenset({"method": "POST", "route": route, "status": status}.items())
        return samples.get(("tradelane_http_requests_total", labels))

    assert count(GENERIC_PATH, "202") == 1
    assert count(GENERIC_PATH, "401") == 1
    assert count(MERCHANT_PATH, "401") == 1
