"""A Mirakl operator without the optional returns / messages modules: the channel says so in its
settings (``modules``, validated), the connector then does not declare FETCH_RETURNS / FETCH_MESSAGES,
the orders poll queues no job for those feeds and RT11 / M01 are never called; the dashboard says why.
By default both modules are on (a 404 is then the ``feed_unavailable`` alert and backoff)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from mirakl_world import SHOP_ID, World, build_world
from tradelane.connectors.base import ConnectorEnv, Operation, UnsupportedOperation
from tradelane.connectors.mirakl.connector import SPEC, channel_capabilities, validate_settings
from tradelane.connectors.mirakl.port import MiraklConnector
from tradelane.domain.errors import ValidationError
from tradelane.persistence.tables import alerts, jobs
from tradelane.services.feeds import unread_feeds
from tradelane.services.orders import list_orders

BASE = {"hostname": "shop.example.net"}
KEY = {"api_key": "key"}


def _world(engine: Any, now: Any, modules: dict[str, bool]) -> Iterator[World]:
    return build_world(engine, now, sandbox_limits={}, options={"modules": modules})


def _poll_twice(world: World) -> None:
    for i, product in enumerate(list(world.state.catalog.values())[:2]):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal(10 + i), 100)
    world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    for _ in range(2):
        world.enqueue("orders.poll")
        world.run()
        world.advance(3600)


def _kinds(world: World) -> set[str]:
    with world.engine.connect() as conn:
        return set(
            conn.execute(sa.select(jobs.c.kind).where(jobs.c.channel_id == world.channel.id)).scalars()
        )


@pytest.mark.parametrize(
    ("modules", "called", "not_called"),
    [
        ({"returns": False, "messages": False}, set(), {"RT11", "M01"}),
        ({"returns": False}, {"M01"}, {"RT11"}),
        ({"messages": False}, {"RT11"}, {"M01"}),
    ],
)
def test_an_absent_module_is_never_called_nor_queued(
    engine: Any, now: Any, modules: dict[str, bool], called: set[str], not_called: set[str]
) -> None:
    for world in _world(engine, now, modules):
        world.state.set_route("RT11", "off")  # were it called, it would 404
        world.state.set_route("M01", "off")
        _poll_twice(world)
        with world.engine.connect() as conn:
            assert len(list_orders(conn, world.tenant_id, limit=10)) == 1
            open_kinds = set(
                conn.execute(sa.select(alerts.c.kind).where(alerts.c.resolved_at.is_(None))).scalars()
            )
        for op in not_called:
            assert world.state.calls(op) == []
        for op in called:
            assert len(world.state.calls(op)) == 1  # read once, then backed off (the route is off)
        feed_jobs = {"orders.returns": "RT11", "orders.messages": "M01"}
        assert {k for k in _kinds(world) if k in feed_jobs} == {
            k for k, op in feed_jobs.items() if op in called
        }
        assert ("feed_unavailable" in open_kinds) == bool(called)


def test_by_default_both_modules_are_read(engine: Any, now: Any) -> None:
    for world in build_world(engine, now, sandbox_limits={}):
        _poll_twice(world)
        assert len(world.state.calls("RT11")) >= 1 and len(world.state.calls("M01")) >= 1
        assert {"orders.returns", "orders.messages"} <= _kinds(world)


def test_modules_are_validated_and_stored() -> None:
    stored = validate_settings({**BASE, "modules": {"returns": False}}, KEY)
    assert stored["modules"] == {"returns": False, "messages": True}
    assert validate_settings(BASE, KEY)["modules"] == {"returns": True, "messages": True}
    for wrong, says in [
        ([], "must be an object"),
        ({"refunds": False}, "unknown Mirakl modules: refunds"),
        ({"returns": "no"}, "returns must be true or false"),
        ({"messages": 0}, "messages must be true or false"),
    ]:
        with pytest.raises(ValidationError, match=says):
            validate_settings({**BASE, "modules": wrong}, KEY)


def test_capabilities_and_the_reason_shown() -> None:
    default = channel_capabilities(BASE)
    assert default.supports(Operation.FETCH_RETURNS) and default.supports(Operation.FETCH_MESSAGES)
    assert unread_feeds(SPEC, BASE) == []
    off = {**BASE, "modules": {"returns": False, "messages": False}}
    caps = channel_capabilities(off)
    assert not caps.supports(Operation.FETCH_RETURNS) and not caps.supports(Operation.FETCH_MESSAGES)
    assert caps.supports(Operation.FETCH_ORDERS)
    unread = dict(unread_feeds(SPEC, off))
    assert set(unread) == {"returns", "messages"}
    assert "modules.returns is false" in unread["returns"] and "RT11 is never called" in unread["returns"]
    assert "modules.messages is false" in unread["messages"] and "M01" in unread["messages"]


def test_the_connector_refuses_an_absent_module_before_any_call(now: Any) -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"data": [], "messages": [], "total_count": 0})

    env = ConnectorEnv(
        channel_id=1,
        channel_name="shop",
        settings={**BASE, "modules": {"returns": False, "messages": False}},
        credentials={"api_key": "key"},
        now=lambda: now,
        throttle=lambda op: None,
        on_exchange=lambda exchange: None,
    )
    with httpx.Client(transport=httpx.MockTransport(answer), base_url="https://shop.example.net") as http:
        connector = MiraklConnector(env, http=http)
        with pytest.raises(UnsupportedOperation, match="fetch_returns"):
            connector.fetch_returns(None, now=now)
        with pytest.raises(UnsupportedOperation, match="fetch_messages"):
            connector.fetch_messages(None, now=now)
    assert calls == []
