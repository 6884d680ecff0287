"""``insert_ignore`` is compiled once and reused from SQLAlchemy's statement cache (it was compiled on
every call: 34 % of the webhook's CPU on SQLite), and keeps its meaning: only uniqueness conflicts are
ignored."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradelane.persistence.db import insert_ignore

_meta = sa.MetaData()
_things = sa.Table(
    "insert_ignore_things",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(20), nullable=False, unique=True),
    sa.Column("label", sa.String(20), nullable=False),
)


@pytest.fixture
def things(engine: Engine):
    _meta.create_all(engine)
    yield _things
    _meta.drop_all(engine)


def test_the_statement_is_cached_after_its_first_compilation(engine: Engine, things: sa.Table) -> None:
    with engine.begin() as conn:
        hits = []
        for i in range(4):
            stmt = insert_ignore(conn, things).values(key=f"k{i % 2}", label="x").returning(things.c.id)
            result = conn.execute(stmt)
            hits.append((result.scalar() is not None, result.context.cache_hit))
            bound = conn.execute(
                insert_ignore(conn, things).returning(things.c.id), {"key": f"b{i % 2}", "label": "y"}
            )
            hits.append((bound.scalar() is not None, bound.context.cache_hit))
    cached = conn.dialect.CACHE_HIT
    assert [h[0] for h in hits] == [True, True, True, True, False, False, False, False]
    assert [h[1] == cached for h in hits[2:]] == [True] * 6, hits


def test_only_uniqueness_conflicts_are_ignored(engine: Engine, things: sa.Table) -> None:
    with engine.begin() as conn:
        conn.execute(insert_ignore(conn, things), {"key": "a", "label": "x"})
        conn.execute(insert_ignore(conn, things), {"key": "a", "label": "other"})
        assert conn.execute(sa.select(things.c.label)).scalars().all() == ["x"]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(insert_ignore(conn, things), {"key": "b", "label": None})


def test_each_table_gets_its_own_statement(engine: Engine, things: sa.Table) -> None:
    with engine.connect() as conn:
        assert insert_ignore(conn, things) is insert_ignore(conn, things)
        assert insert_ignore(conn, things).table is things
        other = sa.Table("insert_ignore_other", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
        assert insert_ignore(conn, other).table is other
