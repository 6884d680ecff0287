"""Migration 0018 on both stores: downgrading to 0017 drops the reconciler reports and the ID match runs
and rows (and the later revisions' tables), upgrading creates them again with their index and keys."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from tradelane.persistence import migrate

TABLES = {"reconciler_reports", "id_match_runs", "id_match_rows"}


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


def test_0018_downgrades_and_upgrades(engine: Engine) -> None:
    before = set(sa.inspect(engine).get_table_names())
    assert before >= TABLES
    _alembic(engine, "downgrade", "0017")
    after_down = set(sa.inspect(engine).get_table_names())
    assert not TABLES & after_down and {"channels", "channel_events", "channel_selections"} <= after_down
    _alembic(engine, "upgrade", "head")
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) == before
    assert {ix["name"] for ix in inspector.get_indexes("id_match_rows")} == {"ix_id_match_rows_run_id"}
    assert {fk["referred_table"] for fk in inspector.get_foreign_keys("reconciler_reports")} == {
        "channels",
        "tenants",
    }
