"""Every error is an RFC 9457 problem document; nothing internal leaks; logs carry request id and tenant."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient

from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.web.problems import PROBLEM_JSON


def _problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    return body


@pytest.fixture
def log_events() -> Iterator[list[MutableMapping[str, Any]]]:
    """Structlog events as dicts, with the contextvars (request id, tenant) merged in."""
    saved = structlog.get_config()
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture.entries
    finally:
        structlog.configure(**saved)


def test_unknown_route_and_wrong_method(client: TestClient, world):
    body = _problem(client.get("/api/v1/nope", headers=world.acme.auth), 404)
    assert body == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "request_id": body["request_id"],
    }
    wrong = client.delete("/api/v1/tenant", headers=world.acme.auth)
    _problem(wrong, 405)
    assert "GET" in wrong.headers["allow"]


def test_query_validation_is_422_with_field_errors(client: TestClient, world):
    body = _problem(client.get("/api/v1/jobs", headers=world.acme.auth, params={"limit": "0"}), 422)
    assert body["type"] == "urn:tradelane:problem:validation-error"
    [error] = body["errors"]
    assert error["loc"] == ["query", "limit"] and error["type"] == "greater_than_equal" and error["msg"]
    assert set(error) == {"loc", "msg", "type"}  # the rejected input is never echoed


def test_malformed_json_body_is_422(client: TestClient, world):
    response = client.post(
        "/api/v1/channels/shop-fr/pause",
        headers={**world.acme.auth, "Content-Type": "application/json"},
        content=b"{not json",
    )
    body = _problem(response, 422)
    assert body["errors"][0]["type"] == "json_invalid"


def test_problem_bodies_are_ascii_whatever_they_echo(client: TestClient, world):
    response = client.get("/api/v1/channels/café-ü-€", headers=world.acme.auth)
    body = _problem(response, 404)
    assert response.content.isascii()  # no client can mis-guess the charset of ASCII
    assert body["detail"] == "no channel named 'café-ü-€'"


def test_domain_errors_map_to_statuses(client: TestClient, world):
    _problem(client.get("/api/v1/jobs/424242", headers=world.acme.auth), 404)
    _problem(client.post(f"/api/v1/jobs/{world.acme.queued_job}/replay", headers=world.acme.auth), 409)


def test_unexpected_error_is_a_bare_500_problem_without_internals(app, client: TestClient, log_events):
    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    app.add_api_route("/boom", boom)
    response = client.get("/boom", headers={"X-Request-Id": "req-123"})
    body = _problem(response, 500)
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert body["request_id"] == "req-123" == response.headers["x-request-id"]
    [logged] = [e for e in log_events if e["event"] == "unhandled_error"]
    assert logged["request_id"] == "req-123" and logged["log_level"] == "error" and logged["exc_info"]


def test_upstream_errors(app, client: TestClient):
    def refused() -> None:
        raise PermanentError("offer refused: unknown category", raw="<secret raw response>")

    def throttled() -> None:
        raise RetryableError("rate limited", retry_after=12.2)

    app.add_api_route("/refused", refused)
    app.add_api_route("/throttled", throttled)
    refused_response = client.get("/refused")
    body = _problem(refused_response, 502)
    assert body["detail"] == "offer refused: unknown category" and "secret raw" not in refused_response.text
    throttled_response = client.get("/throttled")
    _problem(throttled_response, 503)
    assert throttled_response.headers["retry-after"] == "13"


def test_request_ids_are_echoed_only_when_sane(client: TestClient):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-1"}).headers["x-request-id"] == "abc-1"
    generated = client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"}).headers[
        "x-request-id"
    ]
    assert generated != "bad id\twith spaces" and len(generated) == 32


def test_access_log_carries_request_id_and_tenant(client: TestClient, world, log_events):
    client.get(f"/api/v1/jobs/{world.acme.dead_job}", headers={**world.acme.auth, "X-Request-Id": "r-9"})
    [line] = [e for e in log_events if e["event"] == "http_request"]
    assert line["request_id"] == "r-9"
    assert line["tenant_id"] == world.acme.id and line["tenant"] == "acme"
    assert line["route"] == "/api/v1/jobs/{job_id}" and line["status"] == 200 and line["method"] == "GET"
    assert world.acme.token not in repr(log_events)
    log_events.clear()
    client.get("/openapi.json")  # a later request does not inherit the previous tenant
    [line] = [e for e in log_events if e["event"] == "http_request"]
    assert "tenant_id" not in line


def test_body_limit_is_413(container, world):
    from tradelane.web.app import create_app

    small = create_app(container, max_body_bytes=1024)
    with TestClient(small) as client:
        declared = client.post("/api/v1/webhooks/shopify", headers=world.acme.auth, content=b"x" * 2048)
        assert _problem(declared, 413)["type"] == "urn:tradelane:problem:payload-too-large"
        streamed = client.post(
            "/api/v1/webhooks/shopify", headers=world.acme.auth, content=iter([b"x" * 700, b"y" * 700])
        )
        _problem(streamed, 413)
        assert (
            client.post("/api/v1/webhooks/shopify", headers=world.acme.auth, content=b"x" * 1024).status_code
            == 202
        )
