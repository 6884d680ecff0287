"""The sandbox over real HTTP (timeouts included) and the ``tradelane sandbox amazon`` command."""

from __future__ import annotations

import httpx
import pytest
from amazon_sandbox_helpers import ORDERS, SINCE, eu_seller
from typer.testing import CliRunner

from tradelane.cli import build_app
from tradelane.connectors.amazon.sandbox import AmazonSandboxServer, AmazonSandboxState


def test_real_http_round_trip_and_injected_timeout() -> None:
    state = AmazonSandboxState(5, rate_limits="generous", follow_wall_time=True)
    with AmazonSandboxServer(state) as server:
        accounts = httpx.get(f"{server.url}/_sandbox/accounts", timeout=5).json()
        seller = next(s for s in accounts["sellers"] if s["seller_id"] == eu_seller(state))
        assert accounts["token_endpoint"] == f"{server.url}/auth/o2/token"
        lwa = httpx.post(
            accounts["token_endpoint"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": seller["refresh_token"],
                "client_id": accounts["client_id"],
                "client_secret": accounts["client_secret"],
            },
            timeout=5,
        )
        headers = {"x-amz-access-token": lwa.json()["access_token"]}
        response = httpx.get(
            f"{server.url}{ORDERS}", params={"lastUpdatedAfter": SINCE}, headers=headers, timeout=5
        )
        assert response.status_code == 200 and response.json()["orders"] == []
        httpx.post(
            f"{server.url}/_sandbox/faults",
            json={"operation": "searchOrders", "kind": "timeout", "delay": 1.0},
        )
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(
                f"{server.url}{ORDERS}", params={"lastUpdatedAfter": SINCE}, headers=headers, timeout=0.3
            )


def test_cli_command_is_registered() -> None:
    result = CliRunner().invoke(build_app(), ["sandbox", "amazon", "--help"])
    assert result.exit_code == 0
    for option in ("--port", "--seed", "--region", "--rate-limits", "--feed-seconds", "--token-ttl"):
        assert option in result.output


def test_cli_refuses_an_unknown_region() -> None:
    result = CliRunner().invoke(build_app(), ["sandbox", "amazon", "--region", "mars"])
    assert result.exit_code != 0
