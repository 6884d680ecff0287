"""Error classification at the edge of the Mirakl client: every branch, with raw kept."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from mirakl_client_fixtures import API_KEY, HOST, SHOP_ID, FakeMirakl, account, json_response

from tradelane.connectors.mirakl.client import (
    MiraklAuthError,
    MiraklBadResponse,
    MiraklClient,
    MiraklForbidden,
    MiraklHostNotFound,
    MiraklNotFound,
    MiraklRateLimited,
    MiraklRequestRejected,
    MiraklSchemaError,
    MiraklServerError,
    MiraklShopAccessDenied,
    MiraklUnreachable,
)
from tradelane.connectors.mirakl.transport import RAW_EXCERPT_CHARS
from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError
from tradelane.http_edge import Exchange, parse_retry_after

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def answer(response: httpx.Response) -> MiraklClient:
    return FakeMirakl().on("GET", "/api/account", response).client(clock=lambda: NOW)


def fail(response: httpx.Response) -> Exception:
    with pytest.raises(Exception) as info:
        answer(response).account()
    return info.value


# ------------------------------------------------------------------------------------------ 4xx / 5xx


def test_429_is_retryable_with_retry_after_seconds() -> None:
    error = fail(json_response(429, {"status": 429, "message": "Too many requests"}, **{"Retry-After": "37"}))
    assert isinstance(error, MiraklRateLimited) and isinstance(error, RetryableError)
    assert error.retry_after == 37.0
    assert error.status == 429 and error.op == "A01"
    assert "Too many requests" in error.reason


def test_429_retry_after_http_date_is_relative_to_the_clock() -> None:
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    error = fail(json_response(429, {}, **{"Retry-After": later}))
    assert isinstance(error, MiraklRateLimited)
    assert error.retry_after == 90.0


def test_429_without_retry_after_leaves_the_delay_to_the_engine() -> None:
    error = fail(httpx.Response(429, text=""))
    assert isinstance(error, MiraklRateLimited)
    assert error.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_server_errors_are_retryable(status: int) -> None:
    error = fail(httpx.Response(status, text="upstream failed", headers={"Retry-After": "5"}))
    assert isinstance(error, MiraklServerError) and isinstance(error, RetryableError)
    assert error.status == status
    assert error.retry_after == 5.0
    assert f"HTTP {status}" in error.reason


def test_401_is_permanent_authentication_failure() -> None:
    error = fail(json_response(401, {"status": 401, "message": "Unauthorized"}))
    assert isinstance(error, MiraklAuthError) and isinstance(error, PermanentError)
    assert error.reason.startswith("authentication failed: API key rejected")


def test_403_on_the_account_means_the_key_lost_the_shop() -> None:
    error = fail(json_response(403, {"status": 403, "message": "Forbidden"}))
    assert isinstance(error, MiraklShopAccessDenied) and isinstance(error, AuthenticationError)
    assert isinstance(error, PermanentError)
    assert f"shop id {SHOP_ID}" in error.reason


def test_403_on_an_optional_operation_fails_that_call_only() -> None:
    """A missing role or operator module (returns, here) must not read as rejected credentials: that
    would pause the channel's orders."""
    client = (
        FakeMirakl()
        .on("GET", "/api/returns", json_response(403, {"status": 403, "message": "Forbidden"}))
        .client(clock=lambda: NOW)
    )
    with pytest.raises(MiraklForbidden) as info:
        client.list_returns()
    assert not isinstance(info.value, AuthenticationError)
    assert isinstance(info.value, PermanentError) and info.value.op == "RT11"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, MiraklRequestRejected),
        (404, MiraklNotFound),
        (409, MiraklRequestRejected),
        (422, MiraklRequestRejected),
    ],
)
def test_client_errors_carry_mirakl_message_and_codes(status: int, cls: type[Exception]) -> None:
    body = {"status": status, "message": "Order is not in the expected state", "code": "ORDER_INVALID_STATE"}
    error = fail(json_response(status, body))
    assert type(error) is cls and isinstance(error, MiraklRequestRejected)
    assert "Order is not in the expected state" in error.reason
    assert error.mirakl_message == "Order is not in the expected state"
    assert error.error_codes == ("ORDER_INVALID_STATE",)


def test_error_list_messages_are_joined_with_their_fields() -> None:
    body = {
        "message": "Validation failed",
        "errors": [{"code": "VALIDATION_ERROR", "field": "id", "message": "null"}],
    }
    error = fail(json_response(400, body))
    assert isinstance(error, MiraklRequestRejected)
    assert "Validation failed; id: null" in error.reason
    assert error.error_codes == ("VALIDATION_ERROR",)


def test_404_html_page_hints_at_a_wrong_host() -> None:
    error = fail(
        httpx.Response(404, text="<html><body>Not Found</body></html>", headers={"content-type": "text/html"})
    )
    assert isinstance(error, MiraklNotFound)
    assert error.mirakl_message is None
    assert "is shop.mirakl.test a Mirakl API host" in error.reason


def test_redirect_is_rejected_with_its_location() -> None:
    error = fail(httpx.Response(302, headers={"location": "https://login.example/sso"}))
    assert isinstance(error, MiraklRequestRejected)
    assert "https://login.example/sso" in error.reason and "check the hostname" in error.reason


# ---------------------------------------------------------------------------------- broken 2xx bodies


def test_html_page_on_200_is_retryable_and_raw_keeps_it() -> None:
    page = "<!DOCTYPE html><html><title>502 Bad Gateway</title><body>nginx</body></html>"
    error = fail(httpx.Response(200, text=page, headers={"content-type": "text/html; charset=utf-8"}))
    assert isinstance(error, MiraklBadResponse) and isinstance(error, RetryableError)
    assert "HTML page" in error.reason
    assert error.raw is not None
    first_line = error.raw.splitlines()[0]
    assert (
        first_line
        == f"GET https://{HOST}/api/account?shop_id={SHOP_ID} -> HTTP 200 (text/html; charset=utf-8)"
    )
    assert "502 Bad Gateway" in error.raw
    assert API_KEY not in error.raw


def test_html_without_content_type_is_detected_too() -> None:
    error = fail(httpx.Response(200, text="  <html><body>maintenance</body></html>"))
    assert isinstance(error, MiraklBadResponse)


def test_html_content_type_alone_is_enough() -> None:
    error = fail(
        httpx.Response(200, text="Service temporarily unavailable", headers={"content-type": "text/html"})
    )
    assert isinstance(error, MiraklBadResponse)
    assert "HTML page" in error.reason


def test_truncated_json_is_retryable() -> None:
    error = fail(
        httpx.Response(200, text='{"shop_id": 2001, "shop_na', headers={"content-type": "application/json"})
    )
    assert isinstance(error, MiraklBadResponse)
    assert "invalid or truncated JSON" in error.reason
    assert error.raw is not None and '"shop_na' in error.raw


@pytest.mark.parametrize(
    "text",
    ['{"shop_id": ' + "9" * 5000 + "}", "[" * 5000 + "]" * 5000],
    ids=["a 5,000-digit number", "nested 5,000 deep"],
)
def test_unreadable_json_is_a_bad_response_not_a_crash(text: str) -> None:
    error = fail(httpx.Response(200, text=text, headers={"content-type": "application/json"}))
    assert isinstance(error, MiraklBadResponse)
    assert "unreadable JSON" in error.reason


@pytest.mark.parametrize(
    "text", ['{"message": ' + "9" * 5000 + "}", "[" * 5000 + "]" * 5000], ids=["digits", "nesting"]
)
def test_an_unreadable_error_body_keeps_its_status(text: str) -> None:
    error = fail(httpx.Response(400, text=text, headers={"content-type": "application/json"}))
    assert error.status == 400


def test_empty_body_is_retryable() -> None:
    error = fail(httpx.Response(200, text=""))
    assert isinstance(error, MiraklBadResponse)
    assert "empty response body" in error.reason


def test_raw_is_truncated_to_a_sane_size() -> None:
    huge = "<html>" + "x" * (RAW_EXCERPT_CHARS * 3) + "</html>"
    error = fail(httpx.Response(200, text=huge))
    assert isinstance(error, MiraklBadResponse) and error.raw is not None
    assert len(error.raw) < RAW_EXCERPT_CHARS + 300
    assert "more characters]" in error.raw


def test_missing_required_field_is_permanent_with_the_field_path() -> None:
    body = account()
    del body["shop_id"]
    error = fail(json_response(200, body))
    assert isinstance(error, MiraklSchemaError) and isinstance(error, PermanentError)
    assert error.field_path == "shop_id"
    assert "A01 response" in error.reason and "shop_id" in error.reason
    assert error.raw is not None and "ACME Outdoor" in error.raw


def test_json_array_instead_of_object_is_a_schema_error() -> None:
    error = fail(json_response(200, [1, 2]))
    assert isinstance(error, MiraklSchemaError)
    assert error.field_path == "$"


def test_unknown_order_state_is_permanent_with_the_path() -> None:
    from mirakl_client_fixtures import order, orders_page

    fake = FakeMirakl().on(
        "GET",
        "/api/orders",
        json_response(200, orders_page([order(), order("ORD-2-A", order_state="TELEPORTED")], 2)),
    )
    with pytest.raises(MiraklSchemaError) as info:
        fake.client().list_orders()
    assert info.value.field_path == "orders[1].order_state"
    assert "TELEPORTED" in info.value.reason
    assert info.value.op == "OR11"


# ----------------------------------------------------------------------------------- no response at all


def raising(exc: Exception) -> MiraklClient:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return MiraklClient(HOST, API_KEY, SHOP_ID, http=httpx.Client(transport=httpx.MockTransport(handler)))


def test_dns_failure_is_host_not_found() -> None:
    cause = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    exc = httpx.ConnectError("[Errno -2] Name or service not known")
    exc.__cause__ = cause
    with pytest.raises(MiraklHostNotFound) as info:
        raising(exc).account()
    assert isinstance(info.value, RetryableError)
    assert info.value.reason == f"unreachable: host {HOST!r} not found (DNS lookup failed)"


def test_dns_failure_is_recognised_by_its_cause_whatever_the_message() -> None:
    exc = httpx.ConnectError("connection failed")
    exc.__cause__ = socket.gaierror(socket.EAI_NONAME, "lookup problem")
    with pytest.raises(MiraklHostNotFound):
        raising(exc).account()


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (httpx.ConnectTimeout("timed out"), "timed out connecting"),
        (httpx.ReadTimeout("timed out"), "timed out waiting for the response"),
        (httpx.RemoteProtocolError("Server disconnected"), "failed without a response"),
    ],
)
def test_transport_failures_are_unreachable(exc: Exception, fragment: str) -> None:
    with pytest.raises(MiraklUnreachable) as info:
        raising(exc).account()
    assert not isinstance(info.value, MiraklHostNotFound)
    assert info.value.reason.startswith("unreachable: ")
    assert fragment in info.value.reason
    assert info.value.raw is not None and "no response" in info.value.raw


def test_connection_refused_on_a_real_socket() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = MiraklClient(f"http://127.0.0.1:{port}", API_KEY, SHOP_ID, timeout=2.0)
    with client, pytest.raises(MiraklUnreachable) as info:
        client.account()
    assert not isinstance(info.value, MiraklHostNotFound)
    assert info.value.reason.startswith(f"unreachable: cannot connect to 127.0.0.1:{port}")


def test_read_timeout_on_a_real_silent_server() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        client = MiraklClient(f"http://127.0.0.1:{port}", API_KEY, SHOP_ID, timeout=0.3)
        with client, pytest.raises(MiraklUnreachable) as info:
            client.account()
    assert "timed out" in info.value.reason


# ------------------------------------------------------------------------------------------ exchanges


def test_every_exchange_reaches_the_hook_without_the_key() -> None:
    seen: list[Exchange] = []
    fake = FakeMirakl().on("GET", "/api/account", json_response(200, account()))
    fake.on("PUT", "/api/orders/O-1/accept", json_response(400, {"message": "ORDER_INVALID_STATE"}))
    client = fake.client(on_exchange=seen.append)
    client.account()
    with pytest.raises(MiraklRequestRejected):
        client.accept_lines("O-1", {"O-1-1": True})
    assert [(e.op, e.method, e.status) for e in seen] == [("A01", "GET", 200), ("OR21", "PUT", 400)]
    assert seen[0].url == f"https://{HOST}/api/account?shop_id={SHOP_ID}"
    assert seen[0].request_body is None and '"shop_name":"ACME Outdoor"' in (seen[0].response_body or "")
    assert seen[1].request_body == '{"order_lines":[{"id":"O-1-1","accepted":true}]}'
    assert all(API_KEY not in repr(e) for e in seen)
    assert all(e.duration_ms >= 0 for e in seen)


def test_exchange_recorded_for_transport_failures() -> None:
    seen: list[Exchange] = []

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused")

    client = MiraklClient(
        HOST,
        API_KEY,
        None,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        on_exchange=seen.append,
    )
    with pytest.raises(MiraklUnreachable):
        client.ship("O-9")
    assert len(seen) == 1
    assert seen[0].status is None and seen[0].op == "OR24"
    assert seen[0].error is not None and "Connection refused" in seen[0].error


def test_a_failing_hook_does_not_fail_the_call() -> None:
    def broken(_exchange: Exchange) -> None:
        raise RuntimeError("diagnostics store down")

    fake = FakeMirakl().on("GET", "/api/account", json_response(200, account()))
    assert fake.client(on_exchange=broken).account().shop_id == SHOP_ID


# --------------------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        ("Wed, 01 May 2024 12:00:30 GMT", 30.0),
        ("Wed, 01 May 2024 11:59:00 GMT", 0.0),  # already past: retry now
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("NaN", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected
