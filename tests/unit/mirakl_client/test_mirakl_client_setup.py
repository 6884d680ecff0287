"""Hostname normalisation, constructor validation, auth/shop_id placement, injected HTTP clients."""

from __future__ import annotations

import httpx
import pytest
from mirakl_client_fixtures import API_KEY, SHOP_ID, FakeMirakl, account, json_response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tradelane.connectors.mirakl._payload import dumps_json
from tradelane.connectors.mirakl.client import MiraklClient, normalize_base_url


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("acceleratorprogram-dev.mirakl.net", "https://acceleratorprogram-dev.mirakl.net"),
        ("  Shop.Mirakl.NET  ", "https://shop.mirakl.net"),
        ("shop.mirakl.net/", "https://shop.mirakl.net"),
        ("shop.mirakl.net/api", "https://shop.mirakl.net"),
        ("https://shop.mirakl.net", "https://shop.mirakl.net"),
        ("https://shop.mirakl.net/api/", "https://shop.mirakl.net"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765/", "http://localhost:8765"),
        ("staging.example:8443", "https://staging.example:8443"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_normalize_base_url(hostname: str, expected: str) -> None:
    assert normalize_base_url(hostname) == expected


@pytest.mark.parametrize(
    ("hostname", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://shop.mirakl.net", "scheme must be http or https"),
        ("https://user:pw@shop.mirakl.net", "credentials"),
        ("shop.mirakl.net/api/orders", "give the host only"),
        ("https://shop.mirakl.net?x=1", "no query"),
        ("shop mirakl net", "not a host name"),
        ("shop_mirakl.net", "not a host name"),
        ("-shop.mirakl.net", "not a host name"),
        ("shop..mirakl.net", "not a host name"),
        ("http://", "not a host name"),
        ("shop.mirakl.net:99999", "invalid Mirakl hostname"),
        ("shop.mirakl.net:abc", "invalid Mirakl hostname"),
    ],
)
def test_garbage_hostnames_raise_clear_errors(hostname: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        normalize_base_url(hostname)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("api_key", "shop_id", "fragment"),
    [
        ("", SHOP_ID, "API key is empty"),
        ("key\nX-Evil: 1", SHOP_ID, "line break"),
        (API_KEY, "shop-1", "shop id must be a number"),
        (API_KEY, "12 34", "shop id must be a number"),
    ],
)
def test_constructor_validates_key_and_shop(api_key: str, shop_id: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        MiraklClient("shop.mirakl.net", api_key, shop_id)
    assert fragment in str(info.value)


def test_constructor_rejects_non_positive_timeout() -> None:
    with pytest.raises(ValueError):
        MiraklClient("shop.mirakl.net", API_KEY, SHOP_ID, timeout=0)


def test_auth_header_and_shop_id_query_are_sent() -> None:
    fake = FakeMirakl().on("GET", "/api/account", json_response(200, account()))
    fake.client().account()
    request = fake.requests[-1]
    assert request.headers["authorization"] == API_KEY
    assert request.headers["accept"] == "application/json"
    assert request.url.params.get_list("shop_id") == [SHOP_ID]
    assert request.url.host == "shop.mirakl.test" and request.url.scheme == "https"


def test_blank_shop_id_means_default_shop() -> None:
    fake = FakeMirakl().on("GET", "/api/account", json_response(200, account()))
    client = fake.client(shop_id="  ")
    assert client.shop_id is None
    client.account()
    assert "shop_id" not in fake.requests[-1].url.params


def test_repr_hides_the_key() -> None:
    client = MiraklClient("shop.mirakl.net", API_KEY, SHOP_ID)
    with client:
        assert API_KEY not in repr(client)
        assert "shop.mirakl.net" in repr(client)


def test_owned_client_is_closed_injected_one_is_not() -> None:
    injected = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
    MiraklClient("shop.mirakl.net", API_KEY, None, http=injected).close()
    assert not injected.is_closed
    owned = MiraklClient("shop.mirakl.net", API_KEY, None)
    owned.close()
    assert owned._http.is_closed


def test_injected_testclient_base_url_wins_and_runs_in_process() -> None:
    async def account_endpoint(request: Request) -> Response:
        if request.headers.get("authorization") != API_KEY:
            return JSONResponse({"status": 401, "message": "Unauthorized"}, status_code=401)
        body = account(shop_id=int(request.query_params.get("shop_id", "1")))
        return Response(dumps_json(body), media_type="application/json")

    app = Starlette(routes=[Route("/api/account", account_endpoint)])
    with TestClient(app) as http:
        client = MiraklClient("http://127.0.0.1:8765", API_KEY, SHOP_ID, http=http)
        assert client.base_url == "http://testserver"
        result = client.account()
    assert result.shop_id == SHOP_ID
    assert result.shop_name == "ACME Outdoor"
    assert result.channels == ("DE", "FR")
