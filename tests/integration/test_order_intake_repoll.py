"""Order intake of orders already stored (issue 12): re-polls and new versions are stored set-wise.

* Equivalence (hypothesis): random sequences of pages — new orders, the same versions again, new
  versions (state, lines, address, message), stale ones, equal update times with other payloads, an
  order twice in a page, the Fulfillments flow switched off, orders delivered meanwhile — stored by
  ``store_orders`` in one tenant and by the per-order path (``ingest_order`` and ``enqueue`` one order
  at a time) in another give the same orders, lines, versions, history and jobs.
* Statements: re-polling a 100-order page runs a handful of statements (none of them a write), a page
  of 100 new versions a bounded number, whatever the page size.
* Two pollers storing the same orders at once (PostgreSQL, in opposite page orders) both finish.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from helpers import make_channel, make_tenant
from tradelane.connectors.mirakl.mapping import MiraklOrderState, neutral_state
from tradelane.domain.orders import (
    Address,
    MarketplaceOrder,
    MarketplaceOrderLine,
    MerchantStatus,
    OrderState,
)
from tradelane.persistence.tables import jobs, order_history, order_lines, order_versions, orders
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.order_health import delivery_spec
from tradelane.services.order_intake import ACCEPT, queue_cancellation_notice, store_orders
from tradelane.sync.jobs import JobSpec, enqueue

ADDRESS = Address(
    first_name="Ada", last_name="Lovelace", street1="1 Rue de Rivoli", city="Paris", country="FRA"
)
STATES = [
    MiraklOrderState.WAITING_ACCEPTANCE,
    MiraklOrderState.SHIPPING,
    MiraklOrderState.SHIPPED,
    MiraklOrderState.CANCELED,
]


def _version(
    now: datetime,
    n: int,
    *,
    minutes: int,
    state: MiraklOrderState,
    cancelled_line: int | None = None,
    extra_line: bool = False,
    message: str | None = None,
    note: int = 0,
) -> MarketplaceOrder:
    """Order ``M<n>`` as the marketplace shows it; the raw payload holds every field, so two versions
    are the same payload exactly when they are built from the same arguments."""
    updated = now - timedelta(hours=1) + timedelta(minutes=minutes)
    count = 4 if extra_line else 3
    lines = tuple(
        MarketplaceOrderLine(
            line_id=f"M{n}-{i}",
            offer_sku=f"SKU-{i}",
            quantity=i,
            unit_price=Decimal("9.90"),
            currency="EUR",
            state="CANCELED" if i == cancelled_line else state.value,
            title="Tée-shirt",
        )
        for i in range(1, count + 1)
    )
    shipped = state in (MiraklOrderState.SHIPPING, MiraklOrderState.SHIPPED)
    return MarketplaceOrder(
        marketplace_order_id=f"M{n}",
        state=neutral_state(state),
        raw_state=state.value,
        currency="EUR",
        created_at=now - timedelta(hours=1),
        updated_at=updated,
        lines=lines,
        acceptance_deadline=now + timedelta(hours=1)
        if state is MiraklOrderState.WAITING_ACCEPTANCE
        else None,
        shipping_address=ADDRESS if shipped else None,
        customer_message=message,
        attributes={"n": str(n), f"seen-{minutes}": state.value, **({"note": str(note)} if note else {})},
        raw={
            "order_id": f"M{n}",
            "order_state": state.value,
            "last_updated_date": updated.isoformat(),
            "lines": [[line.line_id, line.state, line.quantity] for line in lines],
            "message": message,
            "note": note,
        },
    )


def _per_order(
    conn: Connection, channel: Channel, page: list[MarketplaceOrder], now: datetime, third_party: bool
) -> None:
    """The per-order path: each version of the page in turn, as the poll stored them before."""
    for order in page:
        before = order_service.stored_line_states(conn, channel.id, order.marketplace_order_id)
        result = order_service.ingest_order(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            order=order,
            now=now,
            third_party_managed=third_party,
        )
        if result.stale:
            continue
        if order.state is OrderState.AWAITING_ACCEPTANCE:
            spec = JobSpec(
                channel.tenant_id,
                ACCEPT,
                {"order_id": result.order_id},
                channel_id=channel.id,
                flow="orders",
                idempotency_key=f"{ACCEPT}:{result.order_id}",
                priority=10,
            )
            enqueue(conn, spec, now=now)
        if result.merchant_status == MerchantStatus.PENDING.value:
            spec = delivery_spec(tenant_id=channel.tenant_id, order_id=result.order_id, channel_id=channel.id)
            enqueue(conn, spec, now=now)
        queue_cancellation_notice(conn, channel, order, result, before, now=now)


def _snapshot(engine: Engine, channel: Channel) -> dict[str, Any]:
    """Everything stored for the channel's orders, database ids replaced by marketplace order ids;
    each order's lines, versions and history in the order they were written."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(orders).where(orders.c.channel_id == channel.id)).all()
        names = {r.id: r.marketplace_order_id for r in rows}
        skip = {"id", "tenant_id", "channel_id", "order_id"}

        def plain(row: Any) -> dict[str, Any]:
            return {k: v for k, v in row._mapping.items() if k not in skip}

        def per_order(table: sa.Table) -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for r in conn.execute(sa.select(table).where(table.c.order_id.in_(names)).order_by(table.c.id)):
                found.setdefault(names[r.order_id], []).append(plain(r))
            return found

        def renamed(text: str | None) -> str | None:
            if text is None:
                return None
            head, _, tail = text.partition(":")
            order_id, _, rest = tail.partition(":")
            return f"{head}:{names[int(order_id)]}:{rest}" if order_id.isdigit() else text

        job_rows = conn.execute(sa.select(jobs).where(jobs.c.channel_id == channel.id)).all()
        return {
            "orders": sorted((plain(r) for r in rows), key=lambda r: r["marketplace_order_id"]),
            "lines": per_order(order_lines),
            "versions": per_order(order_versions),
            "history": per_order(order_history),
            "jobs": sorted(
                repr(
                    {
                        **{k: v for k, v in j._mapping.items() if k not in {"id", "tenant_id", "channel_id"}},
                        "payload": {**j.payload, "order_id": names[j.payload["order_id"]]},
                        "idempotency_key": renamed(j.idempotency_key),
                        "dedupe_key": renamed(j.dedupe_key),
                        "exclusive_key": renamed(j.exclusive_key),
                    }
                )
                for j in job_rows
            ),
        }


# One version of one of five orders: (n, minutes, state, cancelled line, extra line, message, note).
_versions = st.tuples(
    st.integers(0, 4),
    st.sampled_from([0, 5, 10]),
    st.sampled_from(STATES),
    st.sampled_from([None, 1, 2]),
    st.booleans(),
    st.sampled_from([None, "gift wrap", "call first"]),
    st.integers(0, 1),
)
# A page, the Fulfillments flow off for it or not, the orders delivered before it and the orders
# whose jobs finished before it (their keys free again).
_pages = st.tuples(
    st.lists(_versions, min_size=1, max_size=8),
    st.booleans(),
    st.sets(st.integers(0, 4)),
    st.sets(st.integers(0, 4)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pages=st.lists(_pages, min_size=1, max_size=5))
def test_pages_store_the_same_rows_and_jobs_as_the_per_order_path(
    engine: Engine, now: datetime, pages: list[tuple[list[tuple[Any, ...]], bool, set[int], set[int]]]
) -> None:
    run = uuid.uuid4().hex[:8]
    per_order_tenant, _ = make_tenant(engine, f"per-order-{run}", now)
    page_tenant, _ = make_tenant(engine, f"page-{run}", now)
    per_order = make_channel(engine, per_order_tenant.id, "shop", now)
    page_wise = make_channel(engine, page_tenant.id, "shop", now)
    for number, (specs, third_party, delivered, finished) in enumerate(pages):
        at = now + timedelta(minutes=number)
        page = [
            _version(
                now,
                n,
                minutes=minutes,
                state=state,
                cancelled_line=cancelled,
                extra_line=extra,
                message=message,
                note=note,
            )
            for n, minutes, state, cancelled, extra, message, note in specs
        ]
        with engine.begin() as conn:
            for channel in (per_order, page_wise):  # the merchant system took these orders meanwhile
                conn.execute(
                    sa.update(orders)
                    .where(
                        orders.c.channel_id == channel.id,
                        orders.c.marketplace_order_id.in_([f"M{n}" for n in delivered]),
                        orders.c.merchant_status == MerchantStatus.PENDING.value,
                    )
                    .values(merchant_status=MerchantStatus.DELIVERED.value)
                )
                done = sa.select(orders.c.id).where(
                    orders.c.channel_id == channel.id,
                    orders.c.marketplace_order_id.in_([f"M{n}" for n in finished]),
                )
                conn.execute(
                    sa.update(jobs)
                    .where(jobs.c.channel_id == channel.id, jobs.c.state == "queued")
                    .where(sa.cast(jobs.c.payload["order_id"].as_string(), sa.BigInteger).in_(done))
                    .values(state="succeeded", finished_at=at)
                )
        with engine.begin() as conn:
            _per_order(conn, per_order, page, at, third_party)
        with engine.begin() as conn:
            store_orders(conn, page_wise, page, now=at, third_party=third_party)
        assert _snapshot(engine, page_wise) == _snapshot(engine, per_order), f"after page {number}"


def test_the_equivalence_covers_every_branch(engine: Engine, now: datetime) -> None:
    """A fixed sequence through the branches the random one may miss: the same version again (nothing
    written, ``updated_at`` kept), a new version, a stale one, a version with the update time of the
    stored one and another payload, an order twice in a page, a line cancelled on a delivered order."""
    a = make_channel(engine, make_tenant(engine, "per-order", now)[0].id, "shop", now)
    b = make_channel(engine, make_tenant(engine, "page", now)[0].id, "shop", now)
    waiting, shipping, shipped = STATES[0], STATES[1], STATES[2]
    pages = [
        [_version(now, 1, minutes=0, state=waiting), _version(now, 2, minutes=0, state=shipping)],
        [_version(now, 1, minutes=0, state=waiting), _version(now, 2, minutes=0, state=shipping)],
        [_version(now, 1, minutes=5, state=shipping), _version(now, 2, minutes=0, state=shipping, note=1)],
        [
            _version(now, 1, minutes=0, state=waiting),
            _version(now, 2, minutes=5, state=shipping, cancelled_line=2),
        ],
        [
            _version(now, 3, minutes=0, state=waiting),
            _version(now, 3, minutes=5, state=shipping, message="gift wrap"),
            _version(now, 2, minutes=10, state=shipped),
            _version(now, 3, minutes=0, state=waiting),
        ],
    ]
    for number, page in enumerate(pages):
        at = now + timedelta(minutes=number)
        if number == 3:
            with engine.begin() as conn:
                conn.execute(
                    sa.update(orders)
                    .where(orders.c.marketplace_order_id == "M2")
                    .values(merchant_status=MerchantStatus.DELIVERED.value)
                )
        with engine.begin() as conn:
            _per_order(conn, a, page, at, False)
        with engine.begin() as conn:
            store_orders(conn, b, page, now=at)
        got = _snapshot(engine, b)
        assert got == _snapshot(engine, a), f"after page {number}"
        if number == 1:  # the same versions again: not a row written
            assert [o["updated_at"] for o in got["orders"]] == [now, now]
            assert [len(got["versions"][m]) for m in ("M1", "M2")] == [1, 1]
    # M1: changed by page 2 (page 3's version is stale); M2: a payload with its stored update time
    # (page 2), a cancelled line (3), shipped (4); M3: new, newer, then its first version again (stale).
    assert [o["updated_at"] for o in got["orders"]] == [now + timedelta(minutes=m) for m in (2, 4, 4)]
    assert [len(got["versions"][m]) for m in ("M1", "M2", "M3")] == [2, 4, 2]
    assert [h["state"] for h in got["history"]["M3"]] == ["awaiting_acceptance", "to_ship"]
    assert len([j for j in got["jobs"] if "orders.notify_cancellation" in j]) == 1  # M2's line 2


@contextmanager
def _statements(conn: Connection) -> Iterator[list[str]]:
    """The statements ``conn`` sends meanwhile (an ``executemany`` is one)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(conn, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(conn, "before_cursor_execute", record)


def _page(
    now: datetime, size: int, *, minutes: int, states: list[MiraklOrderState]
) -> list[MarketplaceOrder]:
    return [_version(now, n, minutes=minutes, state=states[n % len(states)]) for n in range(size)]


@pytest.mark.parametrize("size", [100, 250])
def test_a_re_poll_and_a_page_of_new_versions_take_a_few_statements(
    engine: Engine, now: datetime, size: int
) -> None:
    """Half the orders awaiting acceptance (an acceptance job each), half to ship (a delivery job
    each). The same page again: ≤ 5 statements, all reads (before: 13 per order). Then every order
    in a new version (state, line states, address): ≤ 15 statements — the same for 100 and 250."""
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    first = _page(now, size, minutes=0, states=[STATES[0], STATES[1]])
    with engine.begin() as conn:
        store_orders(conn, channel, first, now=now)
    with engine.begin() as conn, _statements(conn) as repoll:
        counts = store_orders(conn, channel, first, now=now + timedelta(minutes=1))
    assert counts == {"created": 0, "to_accept": 0, "cancellations": 0}
    assert len(repoll) <= 5 and set(repoll) == {"SELECT"}, repoll
    newer = _page(now, size, minutes=5, states=[STATES[1], STATES[2]])
    with engine.begin() as conn, _statements(conn) as changed:
        store_orders(conn, channel, newer, now=now + timedelta(minutes=2))
    assert len(changed) <= 15, changed
    with engine.connect() as conn:
        history = conn.execute(sa.select(sa.func.count()).select_from(order_history)).scalar_one()
        versions = conn.execute(sa.select(sa.func.count()).select_from(order_versions)).scalar_one()
        states = set(conn.execute(sa.select(orders.c.state)).scalars())
        line_states = set(conn.execute(sa.select(order_lines.c.state)).scalars())
        updated = set(conn.execute(sa.select(orders.c.updated_at)).scalars())
        delivery_jobs = conn.execute(
            sa.select(sa.func.count()).where(jobs.c.kind == "orders.deliver")
        ).scalar_one()
    assert history == 2 * size and versions == 2 * size  # the re-poll added none
    assert states == {OrderState.TO_SHIP.value, OrderState.SHIPPED.value}
    assert line_states == {"SHIPPING", "SHIPPED"}
    assert updated == {now + timedelta(minutes=2)}
    assert delivery_jobs == size  # one per order: the re-poll queued no second one


@pytest.mark.pg_only
def test_two_pollers_storing_the_same_orders_in_opposite_orders_both_finish(
    engine: Engine, now: datetime
) -> None:
    """Both transactions lock the orders they change in id order: no deadlock, and every order ends
    at its newest version with one history row per state it went through."""
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    first = _page(now, 60, minutes=0, states=[STATES[0]])
    with engine.begin() as conn:
        store_orders(conn, channel, first, now=now)
    newer = _page(now, 60, minutes=5, states=[STATES[1]])
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def poll(page: list[MarketplaceOrder]) -> None:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
                barrier.wait()
                store_orders(conn, channel, page, now=now + timedelta(minutes=1))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=poll, args=(p,)) for p in (newer, list(reversed(newer)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        history = conn.execute(
            sa.select(order_history.c.state, sa.func.count()).group_by(order_history.c.state)
        ).all()
        versions = conn.execute(sa.select(sa.func.count()).select_from(order_versions)).scalar_one()
        states = set(conn.execute(sa.select(orders.c.state)).scalars())
    assert dict(history) == {OrderState.AWAITING_ACCEPTANCE.value: 60, OrderState.TO_SHIP.value: 60}
    assert versions == 120 and states == {OrderState.TO_SHIP.value}


def test_the_same_version_after_the_fulfillments_flow_went_off_makes_the_order_third_party(
    engine: Engine, now: datetime
) -> None:
    """Not "unchanged": the version is the stored one, but the order's merchant status changes."""
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    order = _version(now, 1, minutes=0, state=STATES[1])
    with engine.begin() as conn:
        store_orders(conn, channel, [order], now=now)
    with engine.begin() as conn:
        store_orders(conn, channel, [order], now=now + timedelta(minutes=1), third_party=True)
    with engine.connect() as conn:
        row = conn.execute(sa.select(orders.c.merchant_status, orders.c.updated_at)).one()
    assert tuple(row) == (MerchantStatus.THIRD_PARTY_MANAGED.value, now + timedelta(minutes=1))
