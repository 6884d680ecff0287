"""Group commit of the webhook routes (:mod:`tradelane.web.api.group_commit`): concurrent units share
one transaction, a failing unit never fails its neighbours, results come back only once committed, the
queue is bounded; and through the app, concurrent webhook posts are each stored once with the right
answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from apitest_support import World
from sqlalchemy.engine import Connection

from tradelane.bootstrap import Container
from tradelane.domain.errors import RetryableError
from tradelane.persistence.tables import inbound_events
from tradelane.services.inbound import insert_inbound_event, prepare_inbound_event
from tradelane.web.api.group_commit import GroupCommitWriter
from tradelane.web.app import create_app


def _insert(tenant_id: int, external_id: str, now: datetime) -> Callable[[Connection], tuple[int, bool]]:
    event = prepare_inbound_event(
        source="gc", headers={"x-event-id": external_id}, body=b"{}", content_type=None
    )
    return lambda conn: insert_inbound_event(conn, tenant_id, None, event, now)


def _stored(container: Container) -> list[str]:
    with container.engine.connect() as conn:
        rows = conn.execute(
            sa.select(inbound_events.c.external_id)
            .where(inbound_events.c.source == "gc")
            .order_by(inbound_events.c.external_id)
        )
        return [row.external_id for row in rows]


class _Gate:
    """A first unit that holds the writer until released, so that the next units queue up behind it
    and are taken as one batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: Connection) -> str:
        self.entered.set()
        assert self.release.wait(10)
        return "gate"


async def _batched(writer: GroupCommitWriter, units: list[Callable[[Connection], Any]]) -> list[Any]:
    """Run ``units`` as one batch behind a gate; each outcome is a result or the exception raised."""
    gate = _Gate()
    first = asyncio.ensure_future(writer.run(gate))
    assert await asyncio.to_thread(gate.entered.wait, 10)
    tasks = [asyncio.ensure_future(writer.run(unit)) for unit in units]
    await asyncio.sleep(0.01)  # every unit queued
    gate.release.set()
    assert await first == "gate"
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def test_concurrent_units_commit_in_one_batch(container: Container, world: World, now: datetime) -> None:
    writer = GroupCommitWriter(container.engine, threads=1)  # batches behind the gate
    try:
        units = [_insert(world.acme.id, f"e{i:02d}", now) for i in range(20)]
        units.append(_insert(world.acme.id, "e03", now))  # a duplicate within the batch
        outcomes = asyncio.run(_batched(writer, units))
    finally:
        writer.close()
    assert [created for _, created in outcomes] == [True] * 20 + [False]
    assert outcomes[20][0] == outcomes[3][0]  # the duplicate answers with the original's id
    assert _stored(container) == [f"e{i:02d}" for i in range(20)]
    assert writer.largest_batch == 21 and writer.fallbacks == 0


def _raises_after_insert(tenant_id: int, now: datetime) -> Callable[[Connection], Any]:
    insert = _insert(tenant_id, "poison", now)

    def unit(conn: Connection) -> Any:
        insert(conn)  # written, then the unit fails: the row must not survive
        raise ValueError("poisoned")

    return unit


def _database_error(conn: Connection) -> Any:
    # NOT NULL violated: on PostgreSQL the whole transaction is aborted, not just this statement.
    conn.execute(sa.insert(inbound_events).values(source=None))


@pytest.mark.parametrize("poison", ["python", "database"])
def test_a_failing_unit_never_fails_its_neighbours(
    container: Container, world: World, now: datetime, poison: str
) -> None:
    writer = GroupCommitWriter(container.engine, threads=1)  # batches behind the gate
    bad = _raises_after_insert(world.acme.id, now) if poison == "python" else _database_error
    try:
        units = [_insert(world.acme.id, f"n{i}", now) for i in range(5)]
        outcomes = asyncio.run(_batched(writer, [*units[:2], bad, *units[2:]]))
    finally:
        writer.close()
    assert isinstance(outcomes[2], ValueError if poison == "python" else sa.exc.IntegrityError)
    good = outcomes[:2] + outcomes[3:]
    assert all(isinstance(o, tuple) and o[1] is True for o in good), outcomes
    assert _stored(container) == [f"n{i}" for i in range(5)]  # and no "poison"
    assert writer.fallbacks == 1


def test_a_result_is_returned_only_once_committed(container: Container, world: World, now: datetime) -> None:
    writer = GroupCommitWriter(container.engine, threads=1)  # batches behind the gate
    seen: list[list[str]] = []

    async def main() -> None:
        await writer.run(_insert(world.acme.id, "durable", now))
        seen.append(await asyncio.to_thread(_stored, container))  # another connection sees it

    try:
        asyncio.run(main())
    finally:
        writer.close()
    assert seen == [["durable"]]


def test_the_queue_is_bounded(container: Container) -> None:
    writer = GroupCommitWriter(container.engine, max_queue=1, threads=1)

    async def main() -> tuple[Any, ...]:
        gate = _Gate()
        first = asyncio.ensure_future(writer.run(gate))
        assert await asyncio.to_thread(gate.entered.wait, 10)
        queued = asyncio.ensure_future(writer.run(lambda conn: "queued"))
        await asyncio.sleep(0.01)
        with pytest.raises(RetryableError) as refused:
            await writer.run(lambda conn: "refused")
        gate.release.set()
        return await first, await queued, refused.value.retry_after

    try:
        assert asyncio.run(main()) == ("gate", "queued", 1)
    finally:
        writer.close()
    with pytest.raises(RetryableError):  # closed: refused, never left waiting
        asyncio.run(writer.run(lambda conn: "late"))


def test_the_thread_stops_when_idle_and_starts_again(container: Container) -> None:
    writer = GroupCommitWriter(container.engine, idle_seconds=0.05, threads=2)
    try:
        assert asyncio.run(writer.run(lambda conn: 1)) == 1
        deadline = threading.Event()
        for _ in range(100):
            if not writer._threads:
                break
            deadline.wait(0.02)
        assert not writer._threads
        assert asyncio.run(writer.run(lambda conn: 2)) == 2
    finally:
        writer.close()


def test_concurrent_webhook_posts_are_each_stored_once(container: Container, world: World) -> None:
    """Through the app (lane and writer): 30 new events, 10 of them delivered twice, and refusals (a
    wrong token, an unknown channel, an over-long delivery id) mixed in; every answer is right."""
    app = create_app(container)
    auth = {**world.acme.auth, "Content-Type": "application/json"}

    async def post(client: httpx.AsyncClient, path: str, event_id: str, headers: dict[str, str]) -> int:
        response = await client.post(path, content=b'{"n": 1}', headers={**headers, "X-Event-Id": event_id})
        return response.status_code

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            calls = [post(client, "/api/v1/webhooks/gc", f"d{i}", auth) for i in range(30)]
            calls += [post(client, "/api/v1/webhooks/gc", f"d{i}", auth) for i in range(10)]
            calls.append(post(client, "/api/v1/webhooks/gc", "x1", {"Authorization": "Bearer nope"}))
            calls.append(post(client, "/api/v1/webhooks/gc/no-such-channel", "x2", auth))
            calls.append(post(client, "/api/v1/webhooks/gc", "x" * 400, auth))
            return list(await asyncio.gather(*calls))

    try:
        statuses = asyncio.run(main())
    finally:
        app.state.webhook_writer.close()
    new, again, refused = statuses[:30], statuses[30:40], statuses[40:]
    assert new.count(202) + again.count(202) == 30 and new.count(200) + again.count(200) == 10
    assert refused == [401, 404, 422]
    assert _stored(container) == sorted(f"d{i}" for i in range(30))
