"""Migrations that rebuild a parent table never lose its children's rows.

On SQLite a ``batch_alter_table`` that drops a column copies the table and drops the original; with
foreign keys enforced, that drop deletes every row that references it (ON DELETE CASCADE). Downgrading
0017 rebuilds ``channels`` and 0019 rebuilds ``orders``: the offers, orders, order lines, jobs and audit
events of every channel must survive a downgrade to 0016 and the upgrade back to head. Both stores.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from tradelane.persistence import migrate

_CHILDREN = ("channel_flows", "offer_bindings", "orders", "order_lines", "jobs", "channel_events")


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in _CHILDREN}


def _foreign_keys_enforced(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one())


def _fill(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:

        def insert(sql: str, **params: object) -> int:
            return int(conn.execute(sa.text(sql + " RETURNING id"), {"now": now, **params}).scalar_one())

        tenant = insert("INSERT INTO tenants (name, created_at) VALUES ('acme', :now)")
        channel = insert(
            "INSERT INTO channels (tenant_id, name, connector, lifecycle_state, settings, created_at)"
            " VALUES (:t, 'shop', 'test', 'live', '{}', :now)",
            t=tenant,
        )
        conn.execute(
            sa.text("INSERT INTO channel_flows (channel_id, flow, enabled) VALUES (:c, 'offers', true)"),
            {"c": channel},
        )
        product = insert(
            "INSERT INTO products (tenant_id, sku, labels, attributes, content_hash, created_at, updated_at)"
            " VALUES (:t, 'A', '[]', '{}', :h, :now, :now)",
            t=tenant,
            h="0" * 64,
        )
        insert(
            "INSERT INTO offer_bindings (tenant_id, channel_id, product_id) VALUES (:t, :c, :p)",
            t=tenant,
            c=channel,
            p=product,
        )
        order = insert(
            "INSERT INTO orders (tenant_id, channel_id, marketplace_order_id, state, marketplace_state,"
            " currency, attributes, marketplace_created_at, marketplace_updated_at, created_at, updated_at)"
            " VALUES (:t, :c, 'O-1', 'new', 'WAITING_ACCEPTANCE', 'EUR', '{}', :now, :now, :now, :now)",
            t=tenant,
            c=channel,
        )
        insert(
            "INSERT INTO order_lines (tenant_id, order_id, line_id, sku, offer_sku, quantity, unit_price,"
            " currency, type, state) VALUES (:t, :o, 'L1', 'A', 'A', 1, '9.90', 'EUR', 'product', 'new')",
            t=tenant,
            o=order,
        )
        insert(
            "INSERT INTO jobs (tenant_id, channel_id, kind, payload, state, max_attempts, run_at,"
            " created_at, updated_at) VALUES (:t, :c, 'offers.delta', '{}', 'done', 5, :now, :now, :now)",
            t=tenant,
            c=channel,
        )
        insert(
            "INSERT INTO channel_events (tenant_id, channel_id, at, actor, action, details)"
            " VALUES (:t, :c, :now, 'system', 'flow.pause', '{}')",
            t=tenant,
            c=channel,
        )


def test_children_survive_a_downgrade_to_0016_and_the_upgrade_back(engine: Engine) -> None:
    _fill(engine)
    before = _counts(engine)
    assert all(before.values()), before
    _alembic(engine, "downgrade", "0016")
    try:
        assert _counts(engine) == before
    finally:
        _alembic(engine, "upgrade", "head")
    assert _counts(engine) == before
    if engine.dialect.name == "sqlite":
        # The store's connections enforce foreign keys again once the migration is over.
        assert _foreign_keys_enforced(engine)


def test_a_revision_leaving_a_dangling_reference_is_rolled_back_on_sqlite(engine: Engine) -> None:
    """With enforcement off during migrations, each revision checks the references before committing."""
    if engine.dialect.name != "sqlite":
        pytest.skip("foreign-key enforcement is switched off during migrations on SQLite only")
    raw = sqlite3.connect(engine.url.database or "")
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute(
        "INSERT INTO channel_events (tenant_id, channel_id, at, actor, action, details)"
        " VALUES (99, 99, '2026-12-06 09:00:00', 'system', 'flow.pause', '{}')"
    )
    raw.commit()
    raw.close()
    head = migrate.current(engine)
    with pytest.raises(
        RuntimeError, match=rf"downgrade of {head}\) leaves 2 row\(s\) referencing a missing row"
    ):
        _alembic(engine, "downgrade", "-1")  # the newest revision, whichever it is
    assert migrate.current(engine) == head
    assert _foreign_keys_enforced(engine)
