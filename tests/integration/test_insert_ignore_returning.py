"""``insert_ignore(conn, t).returning(...)`` is one shared statement per column list, so SQLAlchemy
runs it straight from its compiled cache without adapting result metadata on every execution; copies
that carry their own values are never confused with it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradelane.persistence.db import insert_ignore

_meta = sa.MetaData()
_rows = sa.Table(
    "insert_ignore_returning_rows",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(20), nullable=False, unique=True),
    sa.Column("label", sa.String(20), nullable=False),
)


@pytest.fixture
def rows(engine: Engine):
    _meta.create_all(engine)
    yield _rows
    _meta.drop_all(engine)


def test_the_same_columns_give_the_same_statement(engine: Engine, rows: sa.Table) -> None:
    with engine.connect() as conn:
        by_id = insert_ignore(conn, rows).returning(rows.c.id)
        assert insert_ignore(conn, rows).returning(rows.c.id) is by_id
        both = insert_ignore(conn, rows).returning(rows.c.id, rows.c.key)
        assert both is not by_id
        assert insert_ignore(conn, rows).returning(rows.c.id, rows.c.key) is both


def test_it_runs_from_the_cache_without_adaptation(engine: Engine, rows: sa.Table) -> None:
    with engine.begin() as conn:
        contexts = []
        for i in range(3):
            stmt = insert_ignore(conn, rows).returning(rows.c.id)
            result = conn.execute(stmt, {"key": f"k{i}", "label": "x"})
            assert result.scalar() is not None
            contexts.append(result.context)
        assert contexts[-1].cache_hit == conn.dialect.CACHE_HIT
        # The compiled statement is the very statement executed: nothing to adapt.
        assert contexts[-1].compiled.statement is contexts[-1].invoked_statement


def test_a_copy_with_values_keeps_them(engine: Engine, rows: sa.Table) -> None:
    with engine.begin() as conn:
        shared = insert_ignore(conn, rows).returning(rows.c.id)
        own = insert_ignore(conn, rows).values(key="v", label="own").returning(rows.c.id)
        assert own is not shared
        assert own.values(label="again").returning(rows.c.id) is not shared
        new_id = conn.execute(own).scalar()
        assert conn.execute(sa.select(rows.c.key, rows.c.label).where(rows.c.id == new_id)).one() == (
            "v",
            "own",
        )
        assert conn.execute(own).scalar() is None  # the same key again: ignored
