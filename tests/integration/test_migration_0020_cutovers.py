"""Migration 0020: the cutover tables come and go with the revision; at most one cutover per channel
that is not reverted (partial unique index), on both stores."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from helpers import make_channel, make_tenant
from tradelane.persistence import migrate
from tradelane.persistence.tables import cutovers


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


def _row(tenant_id: int, channel_id: int, status: str, now: datetime) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "channel_id": channel_id,
        "status": status,
        "step": 1,
        "steps": {},
        "data": {},
        "scheduled_at": now,
        "holiday_mode": "none",
        "created_by": "cli:test",
        "created_at": now,
        "updated_at": now,
    }


def test_cutover_tables_down_and_up_and_one_open_cutover_per_channel(engine: Engine) -> None:
    _alembic(engine, "downgrade", "0019")
    try:
        assert not {"cutovers", "cutover_offers"} & set(sa.inspect(engine).get_table_names())
    finally:
        _alembic(engine, "upgrade", "head")
    assert {"cutovers", "cutover_offers"} <= set(sa.inspect(engine).get_table_names())
    now = datetime.now(UTC)
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.begin() as conn:
        conn.execute(sa.insert(cutovers).values(_row(tenant.id, channel.id, "reverted", now)))
        conn.execute(sa.insert(cutovers).values(_row(tenant.id, channel.id, "waiting", now)))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(cutovers).values(_row(tenant.id, channel.id, "in_progress", now)))
