"""Orders are never held hostage by a secondary feed: with the messages (M01) and returns (RT11) routes
off (404, an operator without the modules), forbidden, failing or answering garbage, every order is
still stored and accepted; the failure is an alert with the raw exchange, the feed backs off, and it is
read again (and imported) once the route is back."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from mirakl_world import SHOP_ID, World
from tradelane.persistence.tables import alerts, exchanges, jobs, order_messages, returns
from tradelane.services.orders import list_orders

ORDERS = 20
#: Worker runs (each a burst until nothing is ready) allowed to take every order in and accept it:
#: one — the first poll stores all of them and queues their acceptance, whatever the feeds answer.
MAX_RUNS = 1


def _seed_offers(world: World, count: int = 5) -> None:
    for i, product in enumerate(list(world.state.catalog.values())[:count]):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal(10 + i), 1000)


def _poll(world: World) -> None:
    world.enqueue("orders.poll")
    world.run()


def _count(world: World, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with world.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


ONE_STORE = pytest.mark.sqlite_only(reason="store-agnostic matrix of secondary-feed answers")


@pytest.mark.parametrize(
    ("mode", "status", "alert_kind"),
    [
        # one row per alert kind on both stores; the other answers only change what the sandbox
        # sends (the store path is the same), so they run in the SQLite half
        ("off", None, "feed_unavailable"),
        pytest.param("status", 403, "feed_failing", marks=ONE_STORE),
        pytest.param("status", 500, "feed_failing", marks=ONE_STORE),
        ("status", 503, "feed_failing"),
        pytest.param("garbage", None, "feed_failing", marks=ONE_STORE),
        pytest.param("truncated", None, "feed_failing", marks=ONE_STORE),
    ],
)
def test_orders_are_taken_in_and_accepted_whatever_the_secondary_feeds_answer(
    world: World, mode: str, status: int | None, alert_kind: str
) -> None:
    _seed_offers(world)
    for op in ("M01", "RT11"):
        world.state.set_route(op, mode, status=status)
    ids = {world.order([{"offer_sku": f"SKU-{i % 5}", "quantity": 1}]) for i in range(ORDERS)}

    for _ in range(MAX_RUNS):
        _poll(world)
    with world.engine.connect() as conn:
        stored = list_orders(conn, world.tenant_id, limit=100)
    assert {o["marketplace_order_id"] for o in stored} == ids
    assert all(o["accepted_at"] is not None for o in stored)
    assert {r.path.split("/")[3] for r in world.state.calls("OR21") if r.status < 300} == ids
    assert _count(world, jobs, jobs.c.state == "dead") == 0

    # One alert per feed, with the raw exchange kept.
    with world.engine.connect() as conn:
        found = conn.execute(
            sa.select(alerts.c.kind, alerts.c.message).where(alerts.c.resolved_at.is_(None))
        ).all()
    assert sorted(a.kind for a in found) == [alert_kind, alert_kind]
    assert {("M01" in a.message, "RT11" in a.message) for a in found} == {(True, False), (False, True)}
    assert all("feed:" in a.message for a in found)
    kept = _count(world, exchanges, exchanges.c.subject.in_(["feed:messages", "feed:returns"]))
    assert kept >= 2

    # Backed off: polls keep running, the failing routes are not called on every one of them.
    m01, rt11 = len(world.state.calls("M01")), len(world.state.calls("RT11"))
    assert m01 == 1 and rt11 == 1  # one read each; MAX_RUNS polls did not retry them hot
    for _ in range(3):
        world.advance(60)
        _poll(world)
    assert len(world.state.calls("M01")) == m01 and len(world.state.calls("RT11")) == rt11

    # The routes come back: the next read after the backoff imports messages and returns.
    world.state.clear_route()
    target = sorted(ids)[0]
    world.state.add_message(target, "Is it gift wrapped?")
    world.advance(120)  # paid: SHIPPING
    order_id = next(o["id"] for o in stored if o["marketplace_order_id"] == target)
    world.enqueue(
        "fulfillments.ship",
        {"order_id": order_id, "carrier": "ups", "tracking_number": "1Z9", "tracking_url": None},
        flow="fulfillments",
    )
    world.run()
    line_id = world.state.order(target).lines[0].line_id
    world.state.create_return(target, [(line_id, 1, "RETURN_CHANGED_MIND")])
    world.advance(25 * 3600)
    _poll(world)
    assert _count(world, order_messages, order_messages.c.marketplace_order_id == target) == 1
    assert _count(world, returns, returns.c.marketplace_order_id == target) == 1
    with world.engine.connect() as conn:
        open_alerts = conn.execute(sa.select(alerts.c.kind).where(alerts.c.resolved_at.is_(None))).all()
        [order] = [o for o in list_orders(conn, world.tenant_id, limit=100) if o["id"] == order_id]
    assert [a for a in open_alerts if a.kind.startswith("feed_")] == []
    assert "gift wrapped" in order["attributes"][":MiraklOrderMessage"]


def test_a_missing_module_is_alerted_once_and_backs_off_long(world: World) -> None:
    _seed_offers(world)
    world.state.set_route("RT11", "off")
    world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    reads = []
    for _ in range(12):  # two days of polls, one every four hours
        _poll(world)
        reads.append(len(world.state.calls("RT11")))
        world.advance(4 * 3600)
    assert reads[0] == 1
    assert reads[-1] <= 4  # 6h, 12h, 24h: never hot
    assert _count(world, alerts, alerts.c.kind == "feed_unavailable") == 1
    assert len(world.state.calls("M01")) == 12  # the healthy feed is read on every poll


def test_more_messages_than_one_page_are_all_imported(world: World) -> None:
    # M01 lists newest first: reading one page and moving the watermark to its newest message would
    # lose every older message beyond the first 100 for good.
    _seed_offers(world)
    target = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    for i in range(150):
        world.state.add_message(target, f"question {i}")
        world.advance(1)
    _poll(world)
    _poll(world)
    assert _count(world, order_messages, order_messages.c.marketplace_order_id == target) == 150
