"""Migration 0012 on a store holding Mirakl-named order states: upgrade → neutral states with the
marketplace's own name beside (Amazon's raw status recovered), downgrade → the old values exactly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from tradelane.persistence import migrate
from tradelane.persistence.tables import channels, order_history, order_versions, orders, tenants

#: (marketplace order id, connector, stored state before 0012, Amazon status or None)
ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    ("M-STAGING", "mirakl", "STAGING", None),
    ("M-WAITING", "mirakl", "WAITING_ACCEPTANCE", None),
    ("M-DEBIT", "mirakl", "WAITING_DEBIT", None),
    ("M-SHIPPING", "mirakl", "SHIPPING", None),
    ("M-COLLECT", "mirakl", "TO_COLLECT", None),
    ("M-RECEIVED", "mirakl", "RECEIVED", None),
    ("M-CLOSED", "mirakl", "CLOSED", None),
    ("M-REFUSED", "mirakl", "REFUSED", None),
    ("M-CANCELED", "mirakl", "CANCELED", None),
    ("A-PARTIAL", "amazon", "SHIPPING", "PARTIALLY_SHIPPED"),
    ("A-PENDING", "amazon", "WAITING_DEBIT_PAYMENT", "PENDING"),
    ("A-GONE", "amazon", "CANCELED", "UNFULFILLABLE"),
)

#: What 0012 makes of each: (state, marketplace_state).
UPGRADED = {
    "M-STAGING": ("pending", "STAGING"),
    "M-WAITING": ("awaiting_acceptance", "WAITING_ACCEPTANCE"),
    "M-DEBIT": ("awaiting_payment", "WAITING_DEBIT"),
    "M-SHIPPING": ("to_ship", "SHIPPING"),
    "M-COLLECT": ("shipped", "TO_COLLECT"),
    "M-RECEIVED": ("delivered", "RECEIVED"),
    "M-CLOSED": ("closed", "CLOSED"),
    "M-REFUSED": ("refused", "REFUSED"),
    "M-CANCELED": ("cancelled", "CANCELED"),
    "A-PARTIAL": ("to_ship", "PARTIALLY_SHIPPED"),
    "A-PENDING": ("awaiting_payment", "PENDING"),
    "A-GONE": ("cancelled", "UNFULFILLABLE"),
}


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


@pytest.fixture
def at_0011(engine: Engine) -> Iterator[Engine]:
    """The test database taken back to 0011 (0012 is data only), brought to head again afterwards."""
    _alembic(engine, "downgrade", "0011")
    try:
        yield engine
    finally:
        _alembic(engine, "upgrade", "head")


def _seed(engine: Engine, now: datetime) -> None:
    with engine.begin() as conn:
        tenant = conn.execute(
            sa.insert(tenants).values(name="acme", created_at=now).returning(tenants.c.id)
        ).scalar_one()
        channel_ids = {}
        for connector in ("mirakl", "amazon"):
            channel_ids[connector] = conn.execute(
                sa.insert(channels)
                .values(tenant_id=tenant, name=connector, connector=connector, settings={}, created_at=now)
                .returning(channels.c.id)
            ).scalar_one()
        for mid, connector, state, status in ROWS:
            attributes = {"amazon_status": status} if status else {}
            order_id = conn.execute(
                sa.insert(orders)
                .values(
                    tenant_id=tenant,
                    channel_id=channel_ids[connector],
                    marketplace_order_id=mid,
                    state=state,
                    marketplace_state=state,  # before 0012 both columns held the (Mirakl-named) state
                    currency="EUR",
                    attributes=attributes,
                    marketplace_created_at=now,
                    marketplace_updated_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .returning(orders.c.id)
            ).scalar_one()
            payload: dict[str, Any] = {"order_id": mid, "order_state": state}
            if status:
                payload = {"orderId": mid, "fulfillment": {"fulfillmentStatus": status}}
            conn.execute(
                sa.insert(order_versions).values(
                    tenant_id=tenant,
                    order_id=order_id,
                    marketplace_state=state,
                    payload=payload,
                    payload_hash=mid,
                    received_at=now,
                )
            )
            for event in (state, "ACCEPTANCE_SENT", "DELIVERED"):
                conn.execute(
                    sa.insert(order_history).values(
                        tenant_id=tenant, order_id=order_id, at=now, state=event, note=None
                    )
                )


def _snapshot(engine: Engine) -> dict[str, tuple[str, str, str, list[str]]]:
    """Per order: (state, marketplace_state, its version's marketplace_state, its history states)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(orders.c.id, orders.c.marketplace_order_id, orders.c.state, orders.c.marketplace_state)
        ).all()
        result = {}
        for row in rows:
            version = conn.execute(
                sa.select(order_versions.c.marketplace_state).where(order_versions.c.order_id == row.id)
            ).scalar_one()
            history = list(
                conn.execute(
                    sa.select(order_history.c.state)
                    .where(order_history.c.order_id == row.id)
                    .order_by(order_history.c.id)
                ).scalars()
            )
            result[row.marketplace_order_id] = (row.state, row.marketplace_state, version, history)
        return result


def test_upgrade_makes_states_neutral_and_keeps_the_raw_state_then_downgrade_restores(at_0011, now):
    engine = at_0011
    _seed(engine, now)
    before = _snapshot(engine)

    _alembic(engine, "upgrade", "0012")
    after = _snapshot(engine)
    for mid, (state, raw) in UPGRADED.items():
        assert after[mid][:3] == (state, raw, raw), mid
        # the state the order entered is neutral too; events (upper case) are left alone
        assert after[mid][3] == [state, "ACCEPTANCE_SENT", "DELIVERED"], mid

    _alembic(engine, "downgrade", "0011")
    restored = _snapshot(engine)
    # History keeps only the neutral state: two Mirakl states sharing one read back as the other.
    merged = {"M-COLLECT": "SHIPPED", "M-DEBIT": "WAITING_DEBIT_PAYMENT"}
    for mid in before:
        assert restored[mid][:3] == before[mid][:3], mid
        entered = merged.get(mid, before[mid][3][0])
        assert restored[mid][3] == [entered, "ACCEPTANCE_SENT", "DELIVERED"], mid
