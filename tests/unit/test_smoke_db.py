from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from tradelane.persistence.tables import products
from tradelane.services.tenants import create_tenant, get_tenant, tenant_for_token


def test_tenant_token_roundtrip_and_decimal_exact(engine, now):
    with engine.begin() as conn:
        tenant, token = create_tenant(conn, "acme", now=now)
        conn.execute(
            sa.insert(products).values(
                tenant_id=tenant.id,
                sku="A",
                price=Decimal("19.99"),
                currency="EUR",
                quantity=1,
                labels=[],
                attributes={},
                content_hash="x",
                created_at=now,
                updated_at=now,
            )
        )
    with engine.connect() as conn:
        assert tenant_for_token(conn, token) == tenant
        assert tenant_for_token(conn, token + "x") is None
        assert get_tenant(conn, "acme").id == tenant.id
        row = conn.execute(sa.select(products.c.price, products.c.created_at)).one()
        assert row.price == Decimal("19.99")
        assert row.created_at == now and row.created_at.tzinfo is not None


def test_duplicate_tenant_is_conflict(engine, now):
    from tradelane.domain.errors import ConflictError

    with engine.begin() as conn:
        create_tenant(conn, "acme", now=now)
        with pytest.raises(ConflictError):
            create_tenant(conn, "acme", now=now)
