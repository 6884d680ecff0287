"""saved order rules that tested the order state keep their meaning

Until 0012 an order's ``state`` held the marketplace's own (Mirakl) name — ``SHIPPING``, ``CANCELED``...
— and a saved rule comparing ``state`` to such a name (or copying ``state`` into an attribute) meant that
name. 0012 made ``state`` marketplace-neutral (``to_ship``...) and put the marketplace's name in
``marketplace_state``, so such a rule would silently stop matching. This rewrites every saved rule whose
condition field or attribute source is the order's ``state`` to read ``marketplace_state``: the same
values as before, the same decisions. (Line fields such as ``lines.state`` keep the raw line state and are
not touched.) Downgrade turns them back.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 07:50:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_rules = sa.table(
    "order_rules",
    sa.column("id", sa.BigInteger()),
    sa.column("definition", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
)


def rewrite(definition: Any, old: str, new: str) -> Any:
    """``definition`` with a condition ``field`` or an attribute source ``from`` equal to ``old`` set to
    ``new`` (pure; anything else, including malformed definitions, is returned as it is)."""
    if not isinstance(definition, dict):
        return definition
    result = dict(definition)
    if result.get("from") == old:
        result["from"] = new
    condition = result.get("condition")
    if isinstance(condition, dict) and condition.get("field") == old:
        result["condition"] = {**condition, "field": new}
    return result


def _apply(old: str, new: str) -> None:
    conn = op.get_bind()
    for row in conn.execute(sa.select(_rules.c.id, _rules.c.definition)).all():
        changed = rewrite(row.definition, old, new)
        if changed != row.definition:
            conn.execute(sa.update(_rules).where(_rules.c.id == row.id).values(definition=changed))


def upgrade() -> None:
    _apply("state", "marketplace_state")


def downgrade() -> None:
    _apply("marketplace_state", "state")
