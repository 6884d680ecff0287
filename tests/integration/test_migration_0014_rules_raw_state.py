"""Migration 0014: a saved rule that tested (or copied) the order's state before 0012 meant the
marketplace's own name; after 0014 it reads ``marketplace_state`` and decides exactly as before."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from tradelane.domain.rules import parse_publish_rule
from tradelane.persistence import migrate
from tradelane.persistence.tables import order_rules, tenants

PUBLISH = {
    "condition": {"field": "state", "op": "equals", "value": "SHIPPING"},
    "then": True,
    "otherwise": False,
}
ATTRIBUTE = {"attribute": "mp_state", "mode": "set", "from": "state"}
LINE = {
    "condition": {"field": "lines.state", "op": "equals", "value": "CANCELED"},
    "then": False,
    "otherwise": None,
}
OTHER = {"condition": {"field": "channel", "op": "equals", "value": "shop"}, "then": True, "otherwise": False}


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


@pytest.fixture
def at_0013(engine: Engine) -> Iterator[Engine]:
    _alembic(engine, "downgrade", "0013")
    try:
        yield engine
    finally:
        _alembic(engine, "upgrade", "head")


def _definitions(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(order_rules.c.definition).order_by(order_rules.c.id)).scalars())


def test_rules_on_the_order_state_read_the_marketplace_state_after_0014_and_back(at_0013: Engine) -> None:
    now = datetime.now(UTC)
    with at_0013.begin() as conn:
        tenant = conn.execute(
            sa.insert(tenants).values(name="acme", created_at=now).returning(tenants.c.id)
        ).scalar_one()
        for position, definition in enumerate((PUBLISH, ATTRIBUTE, LINE, OTHER)):
            conn.execute(
                sa.insert(order_rules).values(
                    tenant_id=tenant,
                    kind="attribute" if "attribute" in definition else "publish",
                    position=position,
                    definition=definition,
                    created_at=now,
                )
            )
    _alembic(at_0013, "upgrade", "0014")
    publish, attribute, line, other = _definitions(at_0013)
    assert publish["condition"] == {"field": "marketplace_state", "op": "equals", "value": "SHIPPING"}
    assert attribute == {"attribute": "mp_state", "mode": "set", "from": "marketplace_state"}
    assert (line, other) == (LINE, OTHER)  # line states stay raw; other fields untouched
    rule = parse_publish_rule(publish)
    assert rule.condition.field == "marketplace_state"  # still a valid rule
    _alembic(at_0013, "downgrade", "0013")
    assert _definitions(at_0013) == [PUBLISH, ATTRIBUTE, LINE, OTHER]
