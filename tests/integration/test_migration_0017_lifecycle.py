"""Migration 0017: channels that exist at upgrade have been operating, so those in Setup go Live (with a
``system`` audit event each); Testing channels start a 30-day period; downgrade drops the columns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from tradelane.persistence import migrate


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


@pytest.fixture
def at_0016(engine: Engine) -> Iterator[Engine]:
    _alembic(engine, "downgrade", "0016")
    try:
        yield engine
    finally:
        _alembic(engine, "upgrade", "head")


def test_operating_channels_go_live_audited_and_the_columns_come_and_go(at_0016: Engine) -> None:
    now = datetime.now(UTC)
    with at_0016.begin() as conn:
        tenant_id = conn.execute(
            sa.text("INSERT INTO tenants (name, created_at) VALUES ('acme', :now) RETURNING id"), {"now": now}
        ).scalar_one()
        for name, state in (
            ("running", "setup"),
            ("trial", "testing"),
            ("off", "disabled"),
            ("done", "live"),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO channels (tenant_id, name, connector, lifecycle_state, settings, created_at)"
                    " VALUES (:tenant, :name, 'test', :state, '{}', :now)"
                ),
                {"tenant": tenant_id, "name": name, "state": state, "now": now},
            )
    _alembic(at_0016, "upgrade", "0017")
    with at_0016.connect() as conn:
        rows = {
            r.name: r
            for r in conn.execute(
                sa.text(
                    "SELECT id, name, lifecycle_state, testing_days, testing_ends_at, live_at FROM channels"
                )
            )
        }
        events = conn.execute(sa.text("SELECT channel_id, actor, action, details FROM channel_events")).all()
    assert {n: r.lifecycle_state for n, r in rows.items()} == {
        "running": "live",
        "trial": "testing",
        "off": "disabled",
        "done": "live",
    }
    assert rows["running"].live_at is not None and rows["done"].live_at is None
    assert {r.testing_days for r in rows.values()} == {30}
    ends = rows["trial"].testing_ends_at
    if isinstance(ends, str):  # SQLite through a raw text query
        ends = datetime.fromisoformat(ends)
    if ends.tzinfo is None:
        ends = ends.replace(tzinfo=UTC)
    assert abs(ends - (now + timedelta(days=30))) < timedelta(minutes=5)
    assert [(e.channel_id, e.actor, e.action) for e in events] == [
        (rows["running"].id, "system", "lifecycle.migrated")
    ]
    _alembic(at_0016, "downgrade", "0016")
    with at_0016.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("channels")}
    assert not columns & {
        "testing_days",
        "testing_started_at",
        "testing_ends_at",
        "promotion_check_at",
        "live_at",
    }
