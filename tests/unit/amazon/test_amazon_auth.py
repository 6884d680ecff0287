"""Login with Amazon: the access token is cached until shortly before it expires, shared by threads;
LWA errors say which credential is wrong; secrets never reach an exchange."""

from __future__ import annotations

import threading

import httpx
import pytest
from amazon_fakes import CLIENT_SECRET, REFRESH_TOKEN, Clock, FakeAmazon, json_response

from tradelane.connectors.amazon.auth import REFRESH_MARGIN_SECONDS
from tradelane.connectors.amazon.errors import (
    AmazonAuthError,
    AmazonBadResponse,
    AmazonRejected,
    AmazonRetryable,
    AmazonUnreachable,
    AuthProblem,
)
from tradelane.http_edge import Exchange


def test_token_cached_until_the_margin_before_expiry() -> None:
    fake, clock = FakeAmazon(expires_in=3600), Clock()
    auth = fake.auth(clock)
    assert auth.access_token() == "token-1"
    clock.advance(3600 - REFRESH_MARGIN_SECONDS - 1)
    assert auth.access_token() == "token-1"
    clock.advance(2)
    assert auth.access_token() == "token-2"
    assert fake.tokens_issued == 2
    form = dict(httpx.QueryParams(fake.requests[0].content.decode()))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": "amzn1.application-oa2-client.test",
        "client_secret": CLIENT_SECRET,
    }


def test_invalidate_forces_a_new_token_only_for_the_rejected_one() -> None:
    fake = FakeAmazon()
    auth = fake.auth(Clock())
    auth.access_token()
    auth.invalidate("some-older-token")
    assert auth.access_token() == "token-1"
    auth.invalidate("token-1")
    assert auth.access_token() == "token-2"


def test_threads_share_one_refresh() -> None:
    fake = FakeAmazon()
    auth = fake.auth(Clock())
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(auth.access_token())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tokens == ["token-1"] * 8
    assert fake.tokens_issued == 1


@pytest.mark.parametrize(
    ("status", "error", "problem", "words"),
    [
        (401, "invalid_client", AuthProblem.BAD_CLIENT, "client id or client secret"),
        (400, "invalid_grant", AuthProblem.BAD_REFRESH_TOKEN, "refresh token"),
        (400, "unauthorized_client", AuthProblem.BAD_CLIENT, "unauthorized_client"),
    ],
)
def test_lwa_errors_name_the_credential(status: int, error: str, problem: AuthProblem, words: str) -> None:
    fake = FakeAmazon().on(
        "POST", "/auth/o2/token", json_response({"error": error, "error_description": "nope"}, status)
    )
    with pytest.raises(AmazonAuthError) as info:
        fake.auth(Clock()).access_token()
    assert info.value.problem is problem
    assert words in info.value.reason and "nope" in info.value.reason
    assert REFRESH_TOKEN not in (info.value.raw or "") and CLIENT_SECRET not in (info.value.raw or "")


def test_other_lwa_refusal_is_permanent() -> None:
    fake = FakeAmazon().on("POST", "/auth/o2/token", json_response({"error": "invalid_scope"}, 400))
    with pytest.raises(AmazonRejected, match="invalid_scope"):
        fake.auth(Clock()).access_token()


def test_lwa_outage_is_retryable() -> None:
    fake = FakeAmazon().on("POST", "/auth/o2/token", httpx.Response(503, headers={"Retry-After": "7"}))
    with pytest.raises(AmazonRetryable) as info:
        fake.auth(Clock()).access_token()
    assert info.value.retry_after == 7


def test_lwa_timeout_is_unreachable() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    fake = FakeAmazon().on("POST", "/auth/o2/token", boom)
    with pytest.raises(AmazonUnreachable, match="timed out"):
        fake.auth(Clock()).access_token()


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"access_token": "abc', b"{}"])
def test_unusable_token_answer_is_a_retryable_bad_response(body: bytes) -> None:
    fake = FakeAmazon().on("POST", "/auth/o2/token", httpx.Response(200, content=body))
    with pytest.raises(AmazonBadResponse):
        fake.auth(Clock()).access_token()


def test_exchange_keeps_no_secret() -> None:
    exchanges: list[Exchange] = []
    FakeAmazon().auth(Clock(), exchanges).access_token()
    (exchange,) = exchanges
    text = f"{exchange.url} {exchange.request_body} {exchange.response_body}"
    assert exchange.op == "lwaToken" and exchange.status == 200
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, "token-1"):
        assert secret not in text
