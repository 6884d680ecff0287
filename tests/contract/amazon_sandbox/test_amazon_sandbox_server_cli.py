"""The sandbox over real HTTP (timeouts included) and the ``tradelane sandbox amazon`` command."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_serves_and_prints_working_credentials() -> None:
    """``tradelane sandbox amazon`` as a process: the printed URLs and credentials work as printed."""
    port = _free_port()
    command = [sys.executable, "-c", "from tradelane.cli import main; main()", "sandbox", "amazon"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--seed", "4", "--offers", "3", "--rate-limits", "generous"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(7)]
        text = "".join(lines)
        client_id = re.search(r"client id\s+(\S+)", text)
        secret = re.search(r"client secret\s+(\S+)", text)
        seller = re.search(r"seller (\S+) \(Sandbox EU Seller.*refresh token (\S+)", text)
        assert client_id and secret and seller, text
        assert f"LWA endpoint     http://127.0.0.1:{port}/auth/o2/token" in text
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{base}/_sandbox/clock", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the sandbox did not come up"
                time.sleep(0.05)
        lwa = httpx.post(
            f"{base}/auth/o2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": seller.group(2),
                "client_id": client_id.group(1),
                "client_secret": secret.group(1),
            },
            timeout=5,
        )
        assert lwa.status_code == 200, lwa.text
        listings = httpx.get(
            f"{base}/listings/2021-08-01/items/{seller.group(1)}",
            params={"marketplaceIds": "A1PA6795UKMFR9", "sortBy": "sku", "sortOrder": "ASC"},
            headers={"x-amz-access-token": lwa.json()["access_token"]},
            timeout=5,
        )
        assert [i["sku"] for i in listings.json()["items"]] == ["DEMO-001", "DEMO-002", "DEMO-003"]
    finally:
        process.terminate()
        process.wait(timeout=10)
