"""``MiraklClient.check()``: wrong host, wrong key, wrong shop and unreachable are told apart."""

from __future__ import annotations

import socket

import httpx
import pytest
from mirakl_client_fixtures import API_KEY, HOST, SHOP_ID, FakeMirakl, account, json_response

from tradelane.connectors.mirakl.client import CheckProblem, CheckResult, MiraklClient


def check_with(
    scoped: httpx.Response, unscoped: httpx.Response | None = None, *, shop_id: str | None = SHOP_ID
) -> tuple[CheckResult, FakeMirakl]:
    """A01 answers ``scoped`` when called with ``shop_id`` and ``unscoped`` without it."""

    def handler(request: httpx.Request) -> httpx.Response:
        if "shop_id" in request.url.params or unscoped is None:
            return scoped
        return unscoped

    fake = FakeMirakl().on("GET", "/api/account", handler)
    return fake.client(shop_id=shop_id).check(), fake


def test_ok_when_the_configured_shop_answers() -> None:
    result, fake = check_with(json_response(200, account()))
    assert result.ok and result.problem is None
    assert result.account is not None and result.account.shop_id == SHOP_ID
    assert f"connected to shop {SHOP_ID}" in result.message and "ACME Outdoor" in result.message
    assert len(fake.requests) == 1


def test_ok_without_shop_id_uses_the_default_shop() -> None:
    result, _ = check_with(json_response(200, account(shop_id=42)), shop_id=None)
    assert result.ok and result.account is not None and result.account.shop_id == "42"


def test_account_of_another_shop_is_wrong_shop() -> None:
    result, _ = check_with(json_response(200, account(shop_id=9999)))
    assert not result.ok and result.problem is CheckProblem.WRONG_SHOP
    assert "9999" in result.message and f"configured shop id {SHOP_ID}" in result.message


def test_dns_failure_is_wrong_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        exc = httpx.ConnectError("[Errno -2] Name or service not known")
        exc.__cause__ = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise exc

    client = MiraklClient(HOST, API_KEY, SHOP_ID, http=httpx.Client(transport=httpx.MockTransport(handler)))
    result = client.check()
    assert result.problem is CheckProblem.WRONG_HOST
    assert "not found (DNS lookup failed)" in result.message


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, text="<html><h1>Not Found</h1></html>", headers={"content-type": "text/html"}),
        httpx.Response(404, text="Cannot GET /api/account"),
        httpx.Response(200, text="<!doctype html><html><title>Welcome</title></html>"),
        json_response(200, {"hello": "world"}),
        httpx.Response(301, headers={"location": "https://www.example.com/"}),
    ],
    ids=["404-html", "404-text", "200-html", "200-foreign-json", "redirect"],
)
def test_a_host_that_is_not_a_mirakl_api_is_wrong_host(response: httpx.Response) -> None:
    result, _ = check_with(response)
    assert result.problem is CheckProblem.WRONG_HOST, result.message
    assert HOST in result.message


def test_rejected_key_is_wrong_key_after_probing_without_shop() -> None:
    unauthorized = json_response(401, {"status": 401, "message": "Unauthorized"})
    result, fake = check_with(unauthorized, unauthorized)
    assert result.problem is CheckProblem.WRONG_KEY
    assert "API key rejected" in result.message
    assert [("shop_id" in r.url.params) for r in fake.requests] == [True, False]


def test_rejected_key_without_shop_id_needs_no_probe() -> None:
    result, fake = check_with(json_response(401, {"status": 401, "message": "Unauthorized"}), shop_id=None)
    assert result.problem is CheckProblem.WRONG_KEY
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        json_response(403, {"status": 403, "message": "Forbidden"}),
        json_response(401, {"status": 401, "message": "Unauthorized"}),
        json_response(404, {"status": 404, "message": "Shop with id 2001 not found"}),
        json_response(400, {"status": 400, "message": "Invalid shop_id"}),
    ],
    ids=["403", "401", "404-mirakl", "400"],
)
def test_key_that_works_for_another_shop_is_wrong_shop(refusal: httpx.Response) -> None:
    result, fake = check_with(refusal, json_response(200, account(shop_id=1234, shop_name="Other Shop")))
    assert result.problem is CheckProblem.WRONG_SHOP, result.message
    assert "default shop is 1234" in result.message and "'Other Shop'" in result.message
    assert f"configured shop id {SHOP_ID}" in result.message
    assert len(fake.requests) == 2


def test_forbidden_with_and_without_shop_is_a_key_without_rights() -> None:
    forbidden = json_response(403, {"status": 403, "message": "Forbidden"})
    result, _ = check_with(forbidden, forbidden)
    assert result.problem is CheckProblem.WRONG_KEY
    assert "may not read the shop account" in result.message


def test_forbidden_shop_when_probe_fails_otherwise_is_still_wrong_shop() -> None:
    result, _ = check_with(json_response(403, {"message": "Forbidden"}), httpx.Response(503))
    assert result.problem is CheckProblem.WRONG_SHOP
    assert f"no access to shop id {SHOP_ID}" in result.message


def test_refused_connection_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with MiraklClient(f"http://127.0.0.1:{port}", API_KEY, SHOP_ID, timeout=2.0) as client:
        result = client.check()
    assert result.problem is CheckProblem.UNREACHABLE
    assert f"http://127.0.0.1:{port}" in result.message


def test_timeout_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out")

    client = MiraklClient(HOST, API_KEY, SHOP_ID, http=httpx.Client(transport=httpx.MockTransport(handler)))
    result = client.check()
    assert result.problem is CheckProblem.UNREACHABLE
    assert "timed out" in result.message


@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (json_response(429, {"message": "slow down"}, **{"Retry-After": "60"}), CheckProblem.RATE_LIMITED),
        (httpx.Response(503, text="maintenance"), CheckProblem.SERVER_ERROR),
    ],
)
def test_throttling_and_outages_are_reported_as_such(response: httpx.Response, problem: CheckProblem) -> None:
    result, _ = check_with(response)
    assert result.problem is problem
    assert result.error is not None


def test_every_problem_has_a_distinct_message() -> None:
    messages = {
        check_with(json_response(200, account(shop_id=1)))[0].message,
        check_with(httpx.Response(404, text="<html></html>"))[0].message,
        check_with(json_response(401, {}), json_response(401, {}))[0].message,
        check_with(json_response(403, {}), json_response(200, account(shop_id=5)))[0].message,
    }
    assert len(messages) == 4
