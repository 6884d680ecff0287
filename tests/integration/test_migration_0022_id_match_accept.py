"""Migration 0022 on both stores: downgrading to 0021 drops ``id_match_acceptances`` (nothing else),
upgrading creates it again with its keys and its one acceptance per channel and SKU."""

from __future__ import annotations

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


def test_0022_downgrades_and_upgrades(engine: Engine) -> None:
    before = set(sa.inspect(engine).get_table_names())
    assert "id_match_acceptances" in before
    _alembic(engine, "downgrade", "0021")
    assert set(sa.inspect(engine).get_table_names()) == before - {"id_match_acceptances"}
    _alembic(engine, "upgrade", "head")
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) == before
    assert {fk["referred_table"] for fk in inspector.get_foreign_keys("id_match_acceptances")} == {
        "channels",
        "tenants",
    }
    assert [u["column_names"] for u in inspector.get_unique_constraints("id_match_acceptances")] == [
        ["channel_id", "sku"]
    ]
