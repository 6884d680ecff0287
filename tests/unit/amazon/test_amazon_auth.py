"""Login with Amazon: the access token is cached until shortly before it expires, shared by threads;
LWA errors say which credential is wrong; secrets never reach an exchange."""

from __future__ import annotations

import threading

import httpx
import pytest
from amazon_fakes import CLIENT_SECRET, REFRESH_TOKEN, Clock, FakeAmazon, json_response, settings

from tradelane.connectors.amazon.auth import REFRESH_MARGIN_SECONDS, TokenCache, credential_fingerprint
from tradelane.connectors.amazon.connector import AmazonConnector
from tradelane.connectors.amazon.errors import (
    AmazonAuthError,
    AmazonBadResponse,
    AmazonRejected,
    AmazonRetryable,
    AmazonUnreachable,
    AuthProblem,
)
from tradelane.connectors.base import ConnectorEnv
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


# ------------------------------------------------------------- the token cache shared across jobs

CREDENTIALS = {
    "client_id": "amzn1.application-oa2-client.test",
    "client_secret": CLIENT_SECRET,
    "refresh_token": REFRESH_TOKEN,
}


def test_connectors_of_a_channel_share_one_token_within_its_lifetime() -> None:
    """A connector is built per job: with the process's cache, one LWA call per channel per hour."""
    fake, clock, cache = FakeAmazon(expires_in=3600), Clock(), TokenCache()
    tokens = []
    for _ in range(5):  # five jobs ten minutes apart
        with fake.connector(clock, token_cache=cache) as connector:
            tokens.append(connector.auth.access_token())
        clock.advance(600)
    assert tokens == ["token-1"] * 5
    assert fake.tokens_issued == 1
    clock.advance(3600)  # the token expired: the next job fetches one, later jobs reuse it
    for _ in range(2):
        with fake.connector(clock, token_cache=cache) as connector:
            assert connector.auth.access_token() == "token-2"
    assert fake.tokens_issued == 2
    assert len(cache) == 1


def test_a_rotated_credential_or_another_channel_is_another_token() -> None:
    fake, clock, cache = FakeAmazon(), Clock(), TokenCache()
    assert fake.connector(clock, token_cache=cache).auth.access_token() == "token-1"
    rotated = {**CREDENTIALS, "refresh_token": "Atzr|rotated-refresh-token"}
    assert fake.connector(clock, token_cache=cache, credentials=rotated).auth.access_token() == "token-2"
    assert fake.connector(clock, token_cache=cache, channel_id=2).auth.access_token() == "token-3"
    # the first channel with its first credentials still has its token
    assert fake.connector(clock, token_cache=cache).auth.access_token() == "token-1"
    assert fake.tokens_issued == 3


def test_a_token_sp_api_rejected_is_dropped_for_every_later_job() -> None:
    fake, clock, cache = FakeAmazon(), Clock(), TokenCache()
    first = fake.connector(clock, token_cache=cache)
    assert first.auth.access_token() == "token-1"
    first.auth.invalidate("token-1")
    assert fake.connector(clock, token_cache=cache).auth.access_token() == "token-2"


def test_concurrent_jobs_of_a_channel_fetch_one_token() -> None:
    fake, clock, cache = FakeAmazon(), Clock(), TokenCache()
    connectors = [fake.connector(clock, token_cache=cache) for _ in range(8)]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda c=c: tokens.append(c.auth.access_token())) for c in connectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tokens == ["token-1"] * 8
    assert fake.tokens_issued == 1


def test_the_cache_keys_hold_no_secret_and_are_bounded() -> None:
    fingerprint = credential_fingerprint(
        "https://lwa.test/auth/o2/token", "client", CLIENT_SECRET, REFRESH_TOKEN
    )
    assert CLIENT_SECRET not in fingerprint and REFRESH_TOKEN not in fingerprint
    assert fingerprint == credential_fingerprint(
        "https://lwa.test/auth/o2/token", " client ", CLIENT_SECRET, REFRESH_TOKEN + "\n"
    )
    cache = TokenCache(size=2)
    first = cache.slot(1, fingerprint)
    cache.slot(2, fingerprint)
    assert cache.slot(1, fingerprint) is first  # used again: kept
    cache.slot(3, fingerprint)  # drops channel 2, the least recently used
    assert len(cache) == 2
    assert cache.slot(1, fingerprint) is first


def test_the_process_cache_is_the_default() -> None:
    """Connectors built by the registry's factory (no cache given) share the process's cache."""
    fake, clock = FakeAmazon(), Clock()
    env_channel = 987_654  # a channel id no other test uses
    built = [
        AmazonConnector(
            ConnectorEnv(
                channel_id=env_channel,
                channel_name="amazon-cache",
                settings=settings().to_dict(),
                credentials=dict(CREDENTIALS),
                now=clock,
                throttle=lambda op: None,
                on_exchange=lambda exchange: None,
            ),
            http=fake.http(),
        )
        for _ in range(3)
    ]
    assert [c.auth.access_token() for c in built] == ["token-1"] * 3
    assert fake.tokens_issued == 1
