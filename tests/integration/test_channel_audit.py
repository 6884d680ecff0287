"""The channel audit trail: append, read back in order, filter by prefix, export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from helpers import make_channel, make_tenant
from tradelane.persistence.db import read_only, transaction
from tradelane.services import audit


def test_events_are_recorded_in_order_and_exported(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    t0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    with transaction(engine) as conn:
        audit.record(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            actor="cli:ops",
            action="lifecycle.activate",
            now=t0,
        )
        audit.record(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            actor=audit.SYSTEM,
            action="cutover.step",
            now=t0 + timedelta(minutes=1),
            reason="holiday set",
            details={"step": 2, "closed_to": "2026-12-07T00:00:00+00:00"},
        )
    with read_only(engine) as conn:
        every = audit.history(conn, channel.id)
        cutover = audit.history(conn, channel.id, prefix="cutover.")
        last = audit.history(conn, channel.id, limit=1)
    assert [e.action for e in every] == ["lifecycle.activate", "cutover.step"]
    assert [e.action for e in cutover] == ["cutover.step"]
    assert [e.action for e in last] == ["cutover.step"]
    assert every[1].details == {"step": 2, "closed_to": "2026-12-07T00:00:00+00:00"}
    assert every[0].at == t0
    rows = list(csv.DictReader(io.StringIO(audit.to_csv(every))))
    assert [r["actor"] for r in rows] == ["cli:ops", "system"]
    assert rows[1]["reason"] == "holiday set" and '"step": 2' in rows[1]["details"]


def test_an_action_needs_an_actor(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with transaction(engine) as conn, pytest.raises(ValueError, match="actor"):
        audit.record(
            conn, tenant_id=tenant.id, channel_id=channel.id, actor=" ", action="x", now=datetime.now(UTC)
        )
