"""Two runs creating a channel's first cutover at the same instant: the unique index on open cutovers
decides (one row, one ConflictError), never a read before the insert."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from helpers import make_channel, make_tenant
from tradelane.connectors.base import HolidayMode
from tradelane.domain.errors import ConflictError
from tradelane.persistence.db import is_postgres
from tradelane.persistence.tables import cutovers
from tradelane.services.cutover import start


def _start(conn: sa.Connection, channel, now: datetime):
    return start(conn, channel, scheduled_at=now, actor="cli:test", holiday_mode=HolidayMode.NONE, now=now)


def test_a_second_open_cutover_is_refused_by_the_index(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.begin() as conn:
        first = _start(conn, channel, now)
    with engine.begin() as conn, pytest.raises(ConflictError, match=f"already has cutover {first.id}"):
        _start(conn, channel, now)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cutovers)).scalar_one() == 1


def test_concurrent_creation_yields_one_cutover(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.connect() as probe:
        if not is_postgres(probe):
            pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): no two inserts overlap")
    outcome: dict[str, object] = {}
    with engine.begin() as conn:
        _start(conn, channel, now)  # uncommitted while the second run tries

        def second() -> None:
            try:
                with engine.begin() as other:
                    _start(other, channel, now)
                outcome["result"] = "created"
            except ConflictError as exc:
                outcome["result"] = str(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), "the second insert must wait for the first transaction"
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert "already has cutover" in str(outcome["result"])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cutovers)).scalar_one() == 1
