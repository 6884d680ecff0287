"""The shared HTTP edge: Retry-After, status classes, failures without a response, exchange capture."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tradelane.domain.errors import MAX_RETRY_AFTER_SECONDS
from tradelane.http_edge import (
    EXCHANGE_EXCERPT_CHARS,
    REDACTED,
    Exchange,
    NoResponseKind,
    StatusClass,
    capture,
    excerpt,
    no_response,
    parse_retry_after,
    redact,
    report,
    status_class,
)

NOW = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


# --------------------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("2.0", 2.0),  # Shopify's form
        ("1.5", 1.5),
        ("99999999999999999999", MAX_RETRY_AFTER_SECONDS),  # huge: capped at a day
        ("9" * 400, MAX_RETRY_AFTER_SECONDS),  # float() of it is infinity: still capped
        ("86401", MAX_RETRY_AFTER_SECONDS),
        ("-5", None),  # negative
        ("+5", None),
        ("1E3", None),  # an exponent is no delay-seconds
        ("1_000", None),  # Python numerals are not HTTP
        ("NaN", None),
        ("inf", None),
        ("²", None),  # a digit to str.isdigit(), not to HTTP
        ("٣", None),  # Arabic-Indic three
        ("soon", None),
        ("12 seconds", None),
        ("Mon, 99", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_retry_after_delay_seconds_and_garbage(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_retry_after_http_date_in_the_future_is_the_time_until_it() -> None:
    assert parse_retry_after(http_date(NOW + timedelta(seconds=30)), now=NOW) == 30.0
    assert parse_retry_after("Sun, 06 Dec 2026 12:01:00 GMT", now=NOW) == 60.0


def test_retry_after_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after(http_date(NOW - timedelta(hours=1)), now=NOW) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 0.0


def test_retry_after_far_future_date_is_capped_at_a_day() -> None:
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=NOW) == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after(http_date(NOW + timedelta(days=3)), now=NOW) == MAX_RETRY_AFTER_SECONDS


def test_retry_after_dates_with_an_offset_or_without_a_zone() -> None:
    # 13:00:30 at +01:00 is 12:00:30 UTC; a date with "-0000" (no zone) is read as GMT.
    assert parse_retry_after("Sun, 06 Dec 2026 13:00:30 +0100", now=NOW) == 30.0
    assert parse_retry_after("Sun, 06 Dec 2026 12:00:45 -0000", now=NOW) == 45.0


# ------------------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, StatusClass.OK),
        (204, StatusClass.OK),
        (408, StatusClass.RETRYABLE),
        (425, StatusClass.RETRYABLE),
        (429, StatusClass.RETRYABLE),
        (500, StatusClass.RETRYABLE),
        (502, StatusClass.RETRYABLE),
        (503, StatusClass.RETRYABLE),
        (599, StatusClass.RETRYABLE),
        (401, StatusClass.AUTH),
        (403, StatusClass.REJECTED),
        (404, StatusClass.REJECTED),
        (400, StatusClass.REJECTED),
        (409, StatusClass.REJECTED),
        (422, StatusClass.REJECTED),
        (301, StatusClass.REJECTED),
        (100, StatusClass.REJECTED),
    ],
)
def test_status_classes(status: int, expected: StatusClass) -> None:
    assert status_class(status) is expected


# ----------------------------------------------------------------------------------------- no response


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_on_127_0_0_1() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/orders"
    with httpx.Client(timeout=2.0) as client, pytest.raises(httpx.ConnectError) as info:
        client.get(url)
    failure = no_response(info.value, method="GET", url=url)
    assert failure.kind is NoResponseKind.CONNECT
    assert failure.reason.startswith(f"cannot connect to 127.0.0.1:{port}: ")
    assert failure.raw.startswith(f"GET {url} -> no response: ConnectError: ")
    assert failure.describe("OR11") == failure.reason  # about the host, not the operation


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def test_a_read_timeout_on_a_silent_127_0_0_1_server(silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}/x"
    with httpx.Client(timeout=0.2) as client, pytest.raises(httpx.ReadTimeout) as info:
        client.get(url)
    failure = no_response(info.value, method="GET", url=url)
    assert failure.kind is NoResponseKind.TIMEOUT
    assert failure.reason == f"timed out waiting for the response (127.0.0.1:{silent_server})"
    assert failure.describe("searchOrders") == f"searchOrders {failure.reason}"


@pytest.mark.parametrize(
    ("exc", "kind", "fragment"),
    [
        (httpx.ConnectTimeout("timed out"), NoResponseKind.TIMEOUT, "timed out connecting (shop.example)"),
        (httpx.WriteTimeout("timed out"), NoResponseKind.TIMEOUT, "timed out sending the request"),
        (httpx.PoolTimeout("timed out"), NoResponseKind.TIMEOUT, "timed out waiting for a free connection"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), NoResponseKind.HOST_NOT_FOUND,
         "'shop.example' not found"),
        (httpx.RemoteProtocolError("Server disconnected"), NoResponseKind.PROTOCOL,
         "failed without a response: RemoteProtocolError"),
        (httpx.ReadError("reset by peer"), NoResponseKind.PROTOCOL, "response: ReadError: reset by peer"),
        (httpx.DecodingError("bad gzip"), NoResponseKind.PROTOCOL, "DecodingError: bad gzip"),
    ],
)  # fmt: skip
def test_failures_without_a_response_are_classified(
    exc: httpx.RequestError, kind: NoResponseKind, fragment: str
) -> None:
    failure = no_response(exc, method="POST", url="https://shop.example/api/orders")
    assert failure.kind is kind
    assert fragment in failure.reason


def test_a_url_httpx_cannot_parse_still_gets_a_reason() -> None:
    failure = no_response(httpx.UnsupportedProtocol("bad"), method="GET", url="http://[::1")
    assert failure.kind is NoResponseKind.PROTOCOL
    assert failure.reason == "failed without a response: UnsupportedProtocol: bad"
    timeout = no_response(httpx.ConnectTimeout("t"), method="GET", url="http://[::1")
    assert timeout.reason == "timed out connecting (?)"


def test_dns_failure_is_recognised_by_its_cause_whatever_the_message() -> None:
    exc = httpx.ConnectError("connection failed")
    exc.__cause__ = socket.gaierror(socket.EAI_NONAME, "lookup problem")
    failure = no_response(exc, method="GET", url="http://shop.example:8080/api")
    assert failure.kind is NoResponseKind.HOST_NOT_FOUND
    assert failure.reason == "host 'shop.example' not found (DNS lookup failed)"


# ------------------------------------------------------------------------------------------ exchanges


def test_capture_keeps_request_and_response_without_secrets() -> None:
    request = httpx.Request(
        "POST",
        "https://api.example/auth/o2/token?client_id=abc&api_key=K-123&page=2",
        headers={"Authorization": "Bearer TOP-SECRET"},
        content=b"grant_type=refresh_token&refresh_token=Atzr|R-456&client_secret=CS-789",
    )
    response = httpx.Response(
        200,
        json={"access_token": "Atza|A-000", "token_type": "bearer", "nextToken": "page-3"},
        request=request,
    )
    exchange = capture("token", request, response, duration_ms=12.34567, secrets=("TOP-SECRET",))
    kept = f"{exchange.url} {exchange.request_body} {exchange.response_body}"
    for secret in ("K-123", "R-456", "CS-789", "A-000", "TOP-SECRET"):
        assert secret not in kept
    assert exchange.url == f"https://api.example/auth/o2/token?client_id=abc&api_key={REDACTED}&page=2"
    assert exchange.request_body == (
        f"grant_type=refresh_token&refresh_token={REDACTED}&client_secret={REDACTED}"
    )
    assert exchange.response_body is not None and '"nextToken":"page-3"' in exchange.response_body
    assert (exchange.op, exchange.method, exchange.status, exchange.duration_ms) == (
        "token",
        "POST",
        200,
        12.346,
    )
    assert exchange.error is None


def test_capture_of_a_call_without_response_says_why() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:9/api/orders")
    failure = no_response(httpx.ConnectError("refused"), method="GET", url=str(request.url))
    exchange = capture("OR11", request, None, duration_ms=1.0, error=failure)
    assert exchange.status is None and exchange.response_body is None and exchange.request_body is None
    assert exchange.error == "cannot connect to 127.0.0.1:9: refused"


def test_capture_cuts_long_bodies_and_scrubs_literal_secrets_near_the_cut() -> None:
    secret = "S3CR3T-VALUE-42"
    body = "x" * (EXCHANGE_EXCERPT_CHARS - 5) + secret + "y" * 100
    request = httpx.Request("PUT", "https://api.example/doc", content=body.encode())
    response = httpx.Response(200, content="é".encode("latin-1"), request=request)  # invalid UTF-8
    exchange = capture("upload", request, response, duration_ms=0.0, secrets=[secret, ""])
    assert exchange.request_body is not None and secret[:5] not in exchange.request_body
    assert exchange.request_body.endswith(f"…[{len(body) - EXCHANGE_EXCERPT_CHARS} more characters]")
    assert exchange.response_body == "\ufffd"


def test_capture_does_not_consume_a_streamed_request_body() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"part"

    request = httpx.Request("POST", "https://api.example/feed", content=chunks())
    exchange = capture("feed", request, None, duration_ms=0.0, error="gave up")
    assert exchange.request_body == "[streamed request body not kept]"


def test_capture_uses_the_text_it_is_given() -> None:
    request = httpx.Request("GET", "https://api.example/x")
    response = httpx.Response(200, content=b"ignored", request=request)
    assert capture("x", request, response, duration_ms=0, response_body="decoded").response_body == "decoded"


def test_redact_json_keys_and_form_fields_only_by_exact_name() -> None:
    text = '{"password": "p\\"w", "Client-Secret": "c", "paginationToken": "t", "secret": 5}'
    assert redact(text) == (
        f'{{"password": "{REDACTED}", "Client-Secret": "{REDACTED}", "paginationToken": "t", "secret": 5}}'
    )
    assert redact("a=1&token_type=b&Password=x") == f"a=1&token_type=b&Password={REDACTED}"


def test_excerpt() -> None:
    assert excerpt(None, 3) is None and excerpt("abc", 3) == "abc"
    assert excerpt("abcdef", 3) == "abc…[3 more characters]"


def test_report_calls_the_hook_and_swallows_its_failure(caplog: pytest.LogCaptureFixture) -> None:
    exchange = Exchange("op", "GET", "http://127.0.0.1/", None, 200, None, 1.0)
    seen: list[Exchange] = []
    report(seen.append, exchange)
    report(None, exchange)
    assert seen == [exchange]

    def broken(_: Exchange) -> None:
        raise RuntimeError("diagnostics store down")

    report(broken, exchange)
    assert "on_exchange hook failed for op" in caplog.text


def test_a_real_exchange_on_127_0_0_1() -> None:
    """A whole round trip through a tiny HTTP server: status, Retry-After and the exchange."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 11\r\n"
                b"Connection: close\r\n\r\nslow down!!"
            )

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with httpx.Client(timeout=2.0) as client:
            request = client.build_request("POST", f"http://127.0.0.1:{port}/o", json={"api_key": "k1"})
            response = client.send(request)
    finally:
        thread.join(timeout=2.0)
        server.close()
    assert status_class(response.status_code) is StatusClass.RETRYABLE
    assert parse_retry_after(response.headers.get("retry-after"), now=NOW) == 3.0
    exchange = capture("post", request, response, duration_ms=1.0)
    assert exchange.response_body == "slow down!!" and exchange.status == 429
    assert exchange.request_body is not None and "k1" not in exchange.request_body
