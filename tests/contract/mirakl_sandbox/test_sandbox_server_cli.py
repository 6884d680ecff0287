"""Real HTTP serving, the ``mirakl`` CLI command, determinism by seed, and the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import typer
from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID, seed_offers
from typer.testing import CliRunner

import tradelane.connectors.mirakl.cli  # noqa: F401  (attaches `sandbox mirakl`)
from tradelane.cli.sandbox import sandbox_app
from tradelane.connectors.mirakl.sandbox import (
    OrderLineSpec,
    SandboxClock,
    SandboxServer,
    SandboxState,
    create_app,
)


def _world(seed: int) -> tuple[SandboxState, bytes]:
    state = SandboxState(seed, rate_limits={})
    seed_offers(state, 2)
    ids = [
        state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 1), OrderLineSpec("OFFER-2", 2)])
        for _ in range(3)
    ]
    client = TestClient(create_app(state))
    auth = {"Authorization": state.shops[SHOP_ID].api_key}
    body = client.get("/api/orders", params={"order_ids": ",".join(ids)}, headers=auth).content
    return state, body


def test_same_seed_same_world_different_seed_different_world() -> None:
    a, body_a = _world(11)
    b, body_b = _world(11)
    c, body_c = _world(12)
    assert body_a == body_b
    assert a.shops[SHOP_ID].api_key == b.shops[SHOP_ID].api_key != c.shops[SHOP_ID].api_key
    assert [p.references for p in a.catalog.values()] == [p.references for p in b.catalog.values()]
    assert body_a != body_c


def test_real_http_server_serves_the_same_state(state: SandboxState) -> None:
    seed_offers(state, 1)
    auth = {"Authorization": state.shops[SHOP_ID].api_key}
    with SandboxServer(state) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=server.url, timeout=5) as http:
            assert http.get("/api/account", headers=auth).json()["shop_id"] == SHOP_ID
            offers = http.get("/api/offers", headers=auth).json()["offers"]
            assert Decimal(str(offers[0]["price"])) == Decimal("11.00")
            assert http.get("/api/account").status_code == 401
            assert http.get("/_sandbox/clock").status_code == 200
    assert [r.op_id for r in state.requests] == ["A01", "OF21", "A01"]


def test_clock_is_aware_frozen_by_default_and_moves_forward_only() -> None:
    clock = SandboxClock()
    start = clock.now()
    assert start.tzinfo is not None and clock.now() == start
    assert clock.advance(90) == start + timedelta(seconds=90)
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.set_now(start)
    with pytest.raises(ValueError):
        clock.set_now(datetime(2030, 1, 1))  # naive
    target = datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.set_now(target) == target


def test_wall_clock_follows_time_with_an_offset() -> None:
    wall_now = [datetime(2025, 5, 1, 12, 0, tzinfo=UTC)]
    clock = SandboxClock(follow_wall_time=True, wall=lambda: wall_now[0])
    first = clock.now()
    assert first == wall_now[0]
    wall_now[0] += timedelta(seconds=10)
    assert clock.now() == first + timedelta(seconds=10)
    clock.advance(60)
    assert clock.now() == first + timedelta(seconds=70)


def test_cli_command_mounts_as_sandbox_mirakl() -> None:
    parent = typer.Typer()
    parent.add_typer(sandbox_app, name="sandbox")
    runner = CliRunner()
    result = runner.invoke(parent, ["sandbox", "mirakl", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--port", "--seed", "--no-rate-limits", "--frozen-clock"):
        assert option in result.output
    assert runner.invoke(parent, ["sandbox", "mirakl", "--port", "not-a-port"]).exit_code != 0
    assert runner.invoke(sandbox_app, ["mirakl", "--help"]).exit_code == 0


def test_cli_declares_offer_custom_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """`sandbox mirakl --offer-field parent-sku`: OF24 offer_additional_fields of that code are stored and
    listed by OF21 (a variant group to compare in a unique-ID match); without it, none is kept."""
    from tradelane.connectors.mirakl.sandbox import server

    served: list[SandboxState] = []
    monkeypatch.setattr(server, "serve", lambda host, port, seed, *, state: served.append(state))
    runner = CliRunner()
    result = runner.invoke(sandbox_app, ["mirakl", "--offer-field", "parent-sku", "--no-rate-limits"])
    assert result.exit_code == 0, result.output
    assert "offer custom fields: parent-sku" in result.output
    assert runner.invoke(sandbox_app, ["mirakl", "--offer-field", " "]).exit_code == 1
    plain = runner.invoke(sandbox_app, ["mirakl", "--no-rate-limits"])
    assert "offer custom fields: none" in plain.output
    with_field, without = served[0], served[-1]

    def listed(state: SandboxState) -> list[object]:
        client = TestClient(create_app(state))
        auth = {"Authorization": state.shops[SHOP_ID].api_key}
        ean = dict(next(iter(state.catalog.values())).references)["EAN"]
        offer = {
            "shop_sku": "A", "product_id": ean, "product_id_type": "EAN", "price": 10.5, "quantity": 1,
            "state_code": "11", "update_delete": "update",
            "offer_additional_fields": [{"code": "parent-sku", "value": "P-1"}],
        }  # fmt: skip
        assert client.post("/api/offers", json={"offers": [offer]}, headers=auth).status_code == 201
        state.advance(61)
        return client.get("/api/offers", headers=auth).json()["offers"][0]["offer_additional_fields"]

    assert listed(with_field) == [{"code": "parent-sku", "type": "STRING", "value": "P-1"}]
    assert listed(without) == []
