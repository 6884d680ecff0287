"""services.inbound: header filtering, delivery ids and idempotent storage."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from tradelane.domain.errors import ValidationError
from tradelane.persistence.tables import inbound_events
from tradelane.services.inbound import external_id_for, storable_headers, store_inbound_event
from tradelane.services.tenants import create_tenant


def test_storable_headers_drop_credentials_and_join_repeats():
    kept = storable_headers(
        [
            ("Authorization", "Bearer x"),
            ("Cookie", "s=1"),
            ("X-A", "1"),
            ("x-a", "2"),
            ("Content-Type", "a/b"),
        ]
    )
    assert kept == {"x-a": "1, 2", "content-type": "a/b"}
    assert storable_headers({"Proxy-Authorization": "Basic y", "X-B": "v"}) == {"x-b": "v"}
    with pytest.raises(ValidationError):
        storable_headers({"x-bad": "a\x00b"})


def test_external_id_prefers_delivery_headers_in_order():
    body = b"{}"
    assert external_id_for({"x-webhook-id": "w", "x-event-id": "e"}, body) == "e"
    assert external_id_for({"x-webhook-id": "w", "x-shopify-webhook-id": "s"}, body) == "s"
    assert external_id_for({"x-event-id": "  "}, body) == "sha256:" + hashlib.sha256(body).hexdigest()
    with pytest.raises(ValidationError):
        external_id_for({"x-event-id": "x" * 301}, body)


def test_store_is_idempotent_per_tenant_and_source(engine, now):
    with engine.begin() as conn:
        tenant, _ = create_tenant(conn, "acme", now=now)
        args = {"tenant_id": tenant.id, "channel_id": None, "content_type": "application/json", "now": now}
        first = store_inbound_event(conn, source="s", headers={"X-Event-Id": "1"}, body=b"a", **args)
        again = store_inbound_event(conn, source="s", headers={"X-Event-Id": "1"}, body=b"b", **args)
        other_source = store_inbound_event(conn, source="t", headers={"X-Event-Id": "1"}, body=b"a", **args)
    assert first[1] is True and again == (first[0], False)
    assert other_source[1] is True and other_source[0] != first[0]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one() == 2


def test_store_refuses_values_the_table_cannot_hold(engine, now):
    bad_values: list[dict[str, object]] = [
        {"source": ""},
        {"source": "s" * 101},
        {"source": "a\x00"},
        {"content_type": "c" * 201},
    ]
    with engine.begin() as conn:
        tenant, _ = create_tenant(conn, "acme", now=now)
        for bad in bad_values:
            args: dict[str, object] = {
                "tenant_id": tenant.id,
                "source": "s",
                "channel_id": None,
                "headers": {},
                "body": b"",
                "content_type": None,
                "now": now,
                **bad,
            }
            with pytest.raises(ValidationError):
                store_inbound_event(conn, **args)  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one() == 0
