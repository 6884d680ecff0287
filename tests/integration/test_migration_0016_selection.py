"""Migration 0016 on both stores: bindings existing before it are "selected" and channels have no
selection (every product); downgrading drops the selections and the column, keeping the bindings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from tradelane.persistence import migrate
from tradelane.persistence.tables import channel_selections, channels, offer_bindings, products, tenants


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


@pytest.fixture
def at_0016(engine: Engine) -> Iterator[Engine]:
    """The store at 0016 with a channel whose selection left its one bound product on the marketplace."""
    _alembic(engine, "downgrade", "0016")
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            tenant = conn.execute(
                sa.insert(tenants).values(name="acme", created_at=now).returning(tenants.c.id)
            ).scalar_one()
            channel = conn.execute(
                sa.insert(channels)
                .values(tenant_id=tenant, name="shop", connector="test", settings={}, created_at=now)
                .returning(channels.c.id)
            ).scalar_one()
            product = conn.execute(
                sa.insert(products)
                .values(
                    tenant_id=tenant,
                    sku="A",
                    labels=["x"],
                    attributes={},
                    content_hash="0" * 64,
                    created_at=now,
                    updated_at=now,
                )
                .returning(products.c.id)
            ).scalar_one()
            conn.execute(
                sa.insert(offer_bindings).values(
                    tenant_id=tenant, channel_id=channel, product_id=product, selection_state="left"
                )
            )
            conn.execute(
                sa.insert(channel_selections).values(
                    channel_id=channel, tenant_id=tenant, rule={"labels": ["y"], "where": []}, updated_at=now
                )
            )
        yield engine
    finally:
        _alembic(engine, "upgrade", "head")


def _columns(engine: Engine, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns(table)}


def test_downgrade_drops_the_selection_and_upgrade_starts_from_every_product(at_0016: Engine) -> None:
    _alembic(at_0016, "downgrade", "0015")
    assert "channel_selections" not in sa.inspect(at_0016).get_table_names()
    assert "selection_state" not in _columns(at_0016, "offer_bindings")
    with at_0016.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM offer_bindings")).scalar_one() == 1
    _alembic(at_0016, "upgrade", "0016")
    with at_0016.connect() as conn:
        assert conn.execute(sa.select(offer_bindings.c.selection_state)).scalars().all() == ["selected"]
        assert conn.execute(sa.select(sa.func.count()).select_from(channel_selections)).scalar_one() == 0
