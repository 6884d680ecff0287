"""On PostgreSQL the signed merchant webhook and the generic inbound webhook are stored by one statement
on the event loop (:mod:`tradelane.web.api.pg_intake`): the same rows as the transactional path, no
statement through the thread-pool engine, connections lost under it replaced, a database that stays
away answered 503, revoked tokens, removed channels and changed systems refused at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from merchant_support import SECRET, register_oms

from tradelane.merchant.signing import SIGNATURE_HEADER, sign
from tradelane.persistence.tables import inbound_events, jobs
from tradelane.services.inbound import APPLY_KEY_PREFIX
from tradelane.services.merchant_webhooks import APPLY_KIND
from tradelane.web.api.pg_intake import PgIntake
from tradelane.web.api.webhook_lane import WebhookLane
from tradelane.web.app import create_app

pytestmark = pytest.mark.pg_only

URL = "/api/v1/merchant/oms/webhook"


@pytest.fixture
def system(container, shop):
    return register_oms(container, shop, "http://127.0.0.1:9/orders")


def _post(client: TestClient, update_id: str, now: Any, secret: str = SECRET):
    body = json.dumps(
        {"type": "shipment", "order": "shop-fr:W-1", "id": update_id, "carrier": "UPS"}
    ).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, now),
        "X-Event-Id": "x",
    }
    return client.post(URL, content=body, headers=headers)


def _event_and_job(engine: sa.Engine, event_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with engine.connect() as conn:
        event = conn.execute(sa.select(inbound_events).where(inbound_events.c.id == event_id)).one()._asdict()
        job = conn.execute(sa.select(jobs).where(jobs.c.payload["event_id"].as_integer() == event_id)).one()
    return event, job._asdict()


def test_the_one_statement_path_stores_the_rows_the_transactional_path_stores(container, system, now):
    lane_app = create_app(container)
    plain_app = create_app(container)  # without the lane: FastAPI's route, the transactional path
    plain_app.user_middleware = [m for m in plain_app.user_middleware if m.cls is not WebhookLane]
    with TestClient(lane_app) as lane, TestClient(plain_app) as plain:
        assert lane_app.state.pg_intake is not None
        fast, slow = _post(lane, "U-1", now), _post(plain, "U-2", now)
    assert fast.status_code == slow.status_code == 202, (fast.text, slow.text)
    fast_event, fast_job = _event_and_job(container.engine, fast.json()["event_id"])
    slow_event, slow_job = _event_and_job(container.engine, slow.json()["event_id"])
    assert fast_job["id"] == fast.json()["job_id"] and slow_job["id"] == slow.json()["job_id"]

    differs = {"id", "external_id", "body"}  # the signature (external id) signs a different body
    assert {k: v for k, v in fast_event.items() if k not in differs} | {"headers": None} == {
        k: v for k, v in slow_event.items() if k not in differs
    } | {"headers": None}
    assert fast_event["external_id"] == fast_event["headers"]["x-event-id"]  # the digest, not the sender's
    assert fast_event["headers"]["x-sender-event-id"] == "x"
    assert set(fast_event["headers"]) == set(slow_event["headers"])
    for job, event in ((fast_job, fast_event), (slow_job, slow_event)):
        assert job["kind"] == APPLY_KIND and job["idempotency_key"] == f"{APPLY_KEY_PREFIX}{event['id']}"
        assert job["payload"] == {"event_id": event["id"], "merchant_system_id": system.id}
    same = {"id", "payload", "idempotency_key"}
    assert {k: v for k, v in fast_job.items() if k not in same} == {
        k: v for k, v in slow_job.items() if k not in same
    }


def test_no_statement_goes_through_the_thread_pool_engine(client, container, system, now):
    assert _post(client, "U-0", now).status_code == 202  # systems read and cached
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(container.engine, "before_cursor_execute", count)
    try:
        for n in range(5):
            assert _post(client, f"U-{n + 1}", now).status_code == 202
    finally:
        sa.event.remove(container.engine, "before_cursor_execute", count)
    assert statements == []
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one() == 6
        assert conn.execute(sa.select(sa.func.count()).where(jobs.c.kind == APPLY_KIND)).scalar_one() == 6


def test_connections_terminated_under_the_intake_are_replaced(client, container, system, now):
    assert _post(client, "U-1", now).status_code == 202
    with container.engine.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert killed >= 1  # the intake's idle connections at least
    for n in range(2, 6):
        response = _post(client, f"U-{n}", now)
        assert response.status_code == 202, response.text
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one() == 5


def test_a_database_that_stays_away_is_answered_503_with_retry_after(container, system, now):
    app = create_app(container)
    app.state.pg_intake = PgIntake("postgresql://tradelane@127.0.0.1:1/nowhere?connect_timeout=2")
    with TestClient(app) as client:
        response = _post(client, "U-1", now)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"].startswith("application/problem+json")
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one() == 0


def test_a_new_event_loop_gets_new_connections(container, system, now):
    app = create_app(container)
    for n in range(3):  # each TestClient session runs the app on an event loop of its own
        with TestClient(app) as client:
            assert _post(client, f"U-{n}", now).status_code == 202
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one() == 3


# The generic inbound webhook (POST /api/v1/webhooks/{source}[/{channel}]) takes the same lane.


@pytest.fixture
def token(container, now) -> str:
    from tradelane.services.tenants import create_tenant

    with container.engine.begin() as conn:
        return create_tenant(conn, "generic-tenant", now=now)[1]


def _generic(client: TestClient, token: str, event_id: str, path: str = "/api/v1/webhooks/hooks"):
    headers = {"Authorization": f"Bearer {token}", "X-Event-Id": event_id, "Content-Type": "application/json"}
    return client.post(path, content=b'{"n": 1}', headers=headers)


def test_generic_events_stored_by_one_statement_match_the_transactional_path(container, token):
    lane_app, plain_app = create_app(container), create_app(container)
    plain_app.user_middleware = [m for m in plain_app.user_middleware if m.cls is not WebhookLane]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with TestClient(lane_app) as lane, TestClient(plain_app) as plain:
        sa.event.listen(container.engine, "before_cursor_execute", count)
        try:
            fast = _generic(lane, token, "G-1")
        finally:
            sa.event.remove(container.engine, "before_cursor_execute", count)
        slow = _generic(plain, token, "G-2")
        duplicate = _generic(lane, token, "G-1")
    assert statements == []  # the new event went through the intake alone
    assert (fast.status_code, slow.status_code, duplicate.status_code) == (202, 202, 200)
    assert duplicate.json() == {"event_id": fast.json()["event_id"], "duplicate": True}
    with container.engine.connect() as conn:
        rows = {
            r.external_id: r._asdict()
            for r in conn.execute(sa.select(inbound_events).where(inbound_events.c.source == "hooks"))
        }
    assert set(rows) == {"G-1", "G-2"}
    differs = {"id", "external_id", "headers"}
    assert {k: v for k, v in rows["G-1"].items() if k not in differs} == {
        k: v for k, v in rows["G-2"].items() if k not in differs
    }
    assert rows["G-1"]["headers"] | {"x-event-id": "G-2"} == rows["G-2"]["headers"]
    assert "authorization" not in rows["G-1"]["headers"]


def test_generic_events_of_a_revoked_token_or_a_removed_channel_are_refused(container, token, shop):
    from tradelane.persistence.tables import api_tokens, channels

    with TestClient(create_app(container)) as client:
        path = "/api/v1/webhooks/hooks/shop-fr"
        assert _generic(client, shop.token, "C-1", path).status_code == 202
        with container.engine.begin() as conn:
            conn.execute(sa.update(channels).values(removed_at=sa.func.now()))
        assert _generic(client, shop.token, "C-2", path).status_code == 404
        assert _generic(client, token, "T-1").status_code == 202
        with container.engine.begin() as conn:
            conn.execute(sa.update(api_tokens).values(revoked_at=sa.func.now()))
        refused = _generic(client, token, "T-2")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    with container.engine.connect() as conn:
        stored = conn.execute(sa.select(inbound_events.c.external_id).order_by(inbound_events.c.id)).scalars()
        assert list(stored) == ["C-1", "T-1"]


def test_an_answer_lost_after_the_commit_is_accepted_not_taken_for_a_replay(
    container, system, now, monkeypatch
):
    """The connection drops after the statement committed: the retry conflicts with this very request's
    event, which is then answered 202 with its event and job, stored once."""
    import psycopg

    real = PgIntake._connection
    lost = []

    class _LosesOneAnswer:
        def __init__(self, conn: Any) -> None:
            self._conn = conn

        async def execute(self, sql: str, params: Any) -> Any:
            cursor = await self._conn.execute(sql, params)
            if not lost and "INSERT INTO" in sql:
                lost.append(sql)
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return cursor

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def connection(self: PgIntake):
        async with real(self) as conn:
            yield _LosesOneAnswer(conn)

    monkeypatch.setattr(PgIntake, "_connection", connection)
    with TestClient(create_app(container)) as client:
        response = _post(client, "U-1", now)
    assert lost and response.status_code == 202, response.text
    _, job = _event_and_job(container.engine, response.json()["event_id"])
    assert job["id"] == response.json()["job_id"] and job["kind"] == APPLY_KIND
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one() == 1
