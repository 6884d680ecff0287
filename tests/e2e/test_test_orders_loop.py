"""Test orders end to end, every hop over real HTTP on 127.0.0.1 and one fake clock:

``POST /channels/{name}/test-orders`` → the worker delivers it to the HTTP OMS sandbox, marked
``"test": true`` → the OMS ships it back (signed webhook, or the REST API) → the worker runs the
``fulfillments.ship`` job: carrier conversion through the channel's carrier_map and Mirakl's SH21 codes,
the OR23/OR24 requests built — and nothing about the order reaches the Mirakl sandbox (its request log)
→ ``GET /orders/{ref}/test-report`` shows the conversion and the would-be requests. An unknown carrier is
a precise problem; replaying the dead-lettered update job, or an acceptance job naming the test order,
still sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from order_loop_support import MAX_ROUNDS, App, job_states, serve_app, sync_offers

from mirakl_world import World, build_world
from tradelane.domain.channels import LifecycleState
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.merchant.sandbox.callback import Via, send_update
from tradelane.merchant.sandbox.state import CallbackConfig
from tradelane.persistence.tables import channels, jobs
from tradelane.services.merchant_systems import add_http_system
from tradelane.sync.jobs import replay

OMS_SECRET = "test-orders-oms-signing-secret-0123"
CARRIER_MAP = {"colissimo-expert": "COLISSIMO"}


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    for world in build_world(engine, now, sandbox_limits={}, options={"carrier_map": CARRIER_MAP}):
        with engine.begin() as conn:  # a channel in Testing: its flows run (Setup sends nothing)
            conn.execute(
                sa.update(channels)
                .where(channels.c.id == world.channel.id)
                .values(lifecycle_state=LifecycleState.TESTING.value)
            )
        yield world


def _requests_since(world: World, start: int) -> list[tuple[str, str]]:
    """(operation, path) of every Mirakl API request received since ``start``."""
    return [(r.op_id, r.path) for r in world.state.requests[start:]]


def _oms(world: World, oms: OmsSandboxServer, app: App) -> OmsSandboxState:
    state: OmsSandboxState = oms.state
    with world.engine.begin() as conn:
        add_http_system(
            conn,
            tenant_id=world.tenant_id,
            name="oms",
            url=oms.orders_url,
            secret=OMS_SECRET,
            keyring=world.keyring,
            now=world.clock(),
            timeout_seconds=5,
        )
    state.callback = CallbackConfig(app.url, api_token=app.token, merchant_name="oms")
    return state


def _create(app: App, channel: str, lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    response = app.http.post(f"/api/v1/channels/{channel}/test-orders", json={"lines": lines or []})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _report(app: App, ref: str) -> dict[str, Any]:
    response = app.http.get(f"/api/v1/orders/{ref}/test-report")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("via", ["webhook", "api"])
def test_test_order_round_trip_sends_nothing_to_mirakl(world: World, db_url: str, via: Via) -> None:
    skus = sync_offers(world, 3)
    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
    with OmsSandboxServer(oms_state) as oms, serve_app(world, db_url) as app:
        _oms(world, oms, app)
        start = len(world.state.requests)

        order = _create(app, world.channel.name, [{"sku": skus[1], "quantity": 2}])
        ref = f"{world.channel.name}:{order['marketplace_order_id']}"
        assert order["marketplace_order_id"] == f"TEST-{world.channel.name}-1"
        assert order["is_test"] is True and order["state"] == "to_ship"
        world.run(max_rounds=MAX_ROUNDS, step=5)

        [received] = oms_state.orders()
        assert received.ref == ref
        assert received.document["test"] is True
        assert [(ln["sku"], ln["quantity"]) for ln in received.document["lines"]] == [(skus[1], 2)]
        report = _report(app, ref)
        assert report["ok"] is False
        assert report["problems"] == [
            "no update received yet from the merchant system: ship (or cancel) the order there, then run "
            "the report again"
        ]
        [delivery] = report["delivered"]
        assert (delivery["merchant_system"], delivery["status"]) == ("oms", "delivered")
        assert delivery["reference"] == received.oms_id

        tracking = "8R41234567890"
        answer = send_update(
            oms_state,
            received,
            "shipment",
            {"carrier": "colissimo-expert", "tracking_number": tracking},
            via=via,
        )
        assert answer.status_code in (201, 202), answer.text
        world.run(max_rounds=MAX_ROUNDS, step=5)

        # Only the carrier list (SH21, read-only reference data) was read; nothing about the order.
        seen = _requests_since(world, start)
        assert {op for op, _ in seen} <= {"SH21"}, seen
        assert not [path for _, path in seen if order["marketplace_order_id"] in path]

        report = _report(app, ref)
        assert report["ok"] is True, report["problems"]
        [update] = report["updates"]
        assert update["status"] == "verified (test order, not sent)"
        assert update["carrier"] == {"from": "colissimo-expert", "to": "COLISSIMO", "as": "carrier code"}
        mirakl_id = order["marketplace_order_id"]
        assert update["would_send"] == [
            {
                "operation": "OR23",
                "method": "PUT",
                "path": f"/api/orders/{mirakl_id}/tracking",
                "body": {"carrier_code": "COLISSIMO", "tracking_number": tracking},
            },
            {"operation": "OR24", "method": "PUT", "path": f"/api/orders/{mirakl_id}/ship", "body": None},
        ]
        detail = app.order(ref)
        assert detail["is_test"] is True
        assert [(u["kind"], u["status"]) for u in detail["updates"]] == [("shipment", "verified")]
        assert detail["updates"][0]["detail"].startswith("test: not sent — would send OR23 PUT")
        assert "SHIPMENT_VERIFIED" in [h["state"] for h in detail["history"]]
        assert app.dead_letters() == []


def test_unknown_carrier_is_a_precise_problem_and_a_replay_sends_nothing(world: World, db_url: str) -> None:
    skus = sync_offers(world, 2)
    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
    with OmsSandboxServer(oms_state) as oms, serve_app(world, db_url) as app:
        _oms(world, oms, app)
        order = _create(app, world.channel.name)
        assert [ln["sku"] for ln in order["lines"]] == [skus[0]]  # default: first offered SKU with stock
        world.run(max_rounds=MAX_ROUNDS, step=5)
        [received] = oms_state.orders()
        ref = received.ref
        start = len(world.state.requests)

        # The first run of the update job dies (SH21 refused); the operator replays it.
        world.state.set_route("SH21", "status", status=400)
        send_update(
            oms_state, received, "shipment", {"carrier": "Pigeon Post", "tracking_number": "PP-1"}, via="api"
        )
        world.run(max_rounds=MAX_ROUNDS, step=5)
        [dead] = app.dead_letters()
        assert dead["kind"] == "fulfillments.ship"
        assert _report(app, ref)["updates"][0]["status"] == "failed"
        world.state.clear_route("SH21")
        with world.engine.begin() as conn:
            assert replay(conn, world.tenant_id, [dead["id"]], now=world.clock()) == [dead["id"]]
        # Anything else naming the test order (an acceptance, say) is skipped, never sent.
        world.enqueue("orders.accept", {"order_id": order["id"]})
        world.run(max_rounds=MAX_ROUNDS, step=5)

        seen = _requests_since(world, start)
        assert {op for op, _ in seen} <= {"SH21"}, seen
        assert not [path for _, path in seen if order["marketplace_order_id"] in path]
        states = job_states(world)
        assert states["fulfillments.ship"] == ["succeeded"] and states["orders.accept"] == ["succeeded"]
        with world.engine.connect() as conn:
            accept_result = conn.execute(
                sa.select(jobs.c.result).where(jobs.c.kind == "orders.accept")
            ).scalar_one()
        assert accept_result == {"skipped": "test order: orders.accept is never sent to the marketplace"}

        report = _report(app, ref)
        assert report["ok"] is False
        [update] = report["updates"]
        assert update["status"] == "verified (test order, not sent)"
        assert update["carrier"] == {"from": "Pigeon Post", "to": "Pigeon Post", "as": "carrier name"}
        assert update["would_send"][0]["body"] == {"carrier_name": "Pigeon Post", "tracking_number": "PP-1"}
        [problem] = report["problems"]
        assert problem.startswith(f"shipment {update['external_id']}: unknown carrier 'Pigeon Post': neither")
        assert "add it to the channel's carrier_map" in problem
