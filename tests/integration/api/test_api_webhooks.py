"""Inbound webhooks: stored durably before the 2xx, exactly once per delivery."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from apitest_support import CHANNEL
from fastapi.testclient import TestClient
from sqlalchemy import event

from tradelane.persistence.db import make_engine, read_only
from tradelane.persistence.tables import inbound_events


def _events(db_url: str) -> list[sa.Row]:
    """The stored events, read through a brand-new engine (so only committed data is visible)."""
    engine = make_engine(db_url)
    try:
        with read_only(engine) as conn:
            return list(conn.execute(sa.select(inbound_events).order_by(inbound_events.c.id)))
    finally:
        engine.dispose()


def test_event_is_committed_before_the_202(client: TestClient, world, db_url, now):
    body = b'{"id": 42, "status": "paid"}'
    response = client.post(
        "/api/v1/webhooks/shopify",
        headers={**world.acme.auth, "Content-Type": "application/json", "X-Shopify-Topic": "orders/paid"},
        content=body,
    )
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    assert response.json() == {"event_id": event_id, "duplicate": False}
    [row] = _events(db_url)
    assert row.id == event_id and row.tenant_id == world.acme.id and row.channel_id is None
    assert row.source == "shopify" and row.body == body and row.content_type == "application/json"
    assert row.status == "received" and row.received_at == now
    assert row.headers["x-shopify-topic"] == "orders/paid"
    assert "authorization" not in row.headers and world.acme.token not in str(row.headers)
    assert row.external_id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_channel_route_records_the_channel(client: TestClient, world, db_url):
    response = client.post(f"/api/v1/webhooks/mirakl/{CHANNEL}", headers=world.acme.auth, content=b"x")
    assert response.status_code == 202
    [row] = _events(db_url)
    assert row.channel_id == world.acme.channel_id
    assert (
        client.post("/api/v1/webhooks/mirakl/nope", headers=world.acme.auth, content=b"x").status_code == 404
    )
    assert len(_events(db_url)) == 1


@pytest.mark.parametrize("header", ["X-Event-Id", "X-Shopify-Webhook-Id", "X-Webhook-Id"])
def test_duplicate_delivery_id_answers_200_with_the_original(client: TestClient, world, db_url, header):
    url = "/api/v1/webhooks/shopify"
    first = client.post(url, headers={**world.acme.auth, header: "d-1"}, content=b"first")
    second = client.post(url, headers={**world.acme.auth, header: "d-1"}, content=b"second")
    assert first.status_code == 202 and second.status_code == 200
    assert second.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    [row] = _events(db_url)
    assert row.body == b"first" and row.external_id == "d-1"
    # Another source with the same delivery id is another event.
    assert (
        client.post("/api/v1/webhooks/amazon", headers={**world.acme.auth, header: "d-1"}).status_code == 202
    )


def test_without_delivery_id_the_body_hash_deduplicates(client: TestClient, world, db_url):
    url = "/api/v1/webhooks/shopify"
    a = client.post(url, headers=world.acme.auth, content=b"same")
    b = client.post(url, headers=world.acme.auth, content=b"same")
    c = client.post(url, headers=world.acme.auth, content=b"different")
    assert (a.status_code, b.status_code, c.status_code) == (202, 200, 202)
    assert a.json()["event_id"] == b.json()["event_id"] != c.json()["event_id"]
    assert len(_events(db_url)) == 2


def test_concurrent_duplicates_store_one_event(client: TestClient, world, db_url):
    def deliver(_: int):
        return client.post(
            "/api/v1/webhooks/shopify", headers={**world.acme.auth, "X-Event-Id": "race"}, content=b"payload"
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(deliver, range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 15 + [202]
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert len(_events(db_url)) == 1


def test_no_2xx_when_the_commit_fails(client: TestClient, world, container, db_url, monkeypatch):
    def failing_commit(_conn) -> None:
        raise RuntimeError("disk full")

    on_postgres = container.engine.dialect.name == "postgresql"
    if on_postgres:
        # PostgreSQL stores the event by one autocommit statement on an async connection (pg_intake):
        # its commit is the statement's, and a failing commit fails the statement.
        import psycopg

        async def failing_statement(self, query, params=None, **kwargs):
            raise psycopg.errors.DiskFull("could not extend file: disk full")

        monkeypatch.setattr(psycopg.AsyncConnection, "execute", failing_statement)
    event.listen(container.engine, "commit", failing_commit)
    try:
        response = client.post("/api/v1/webhooks/shopify", headers=world.acme.auth, content=b"lost?")
    finally:
        event.remove(container.engine, "commit", failing_commit)
        monkeypatch.undo()
    # PostgreSQL: the statement is tried twice, then 503 with Retry-After (the sender retries later).
    assert response.status_code == (503 if on_postgres else 500), response.text
    assert "disk full" not in response.text
    assert _events(db_url) == []
    # The sender's retry is then stored normally.
    assert (
        client.post("/api/v1/webhooks/shopify", headers=world.acme.auth, content=b"lost?").status_code == 202
    )


def test_invalid_deliveries_are_422_and_store_nothing(client: TestClient, world, db_url):
    cases: list[tuple[str, dict[str, str]]] = [
        ("/api/v1/webhooks/bad source", {}),
        ("/api/v1/webhooks/-leading-dash", {}),
        ("/api/v1/webhooks/" + "s" * 101, {}),
        ("/api/v1/webhooks/shopify", {"X-Event-Id": "e" * 301}),
        ("/api/v1/webhooks/shopify", {"Content-Type": "text/plain; x=" + "y" * 200}),
    ]
    for path, headers in cases:
        response = client.post(path, headers={**world.acme.auth, **headers}, content=b"{}")
        assert response.status_code == 422, (path, headers, response.text)
    assert _events(db_url) == []
