"""What a catalog change can unblock: orders held in Order Health for SKUs the catalog lacked.

Called after every catalog import (CLI, API, demo) so that "the SKU appears in the catalog" releases
the orders waiting for it without anyone touching them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.persistence.tables import order_quarantine
from tradelane.services.order_health import QuarantineReason, retry_quarantined_for_skus


def release_resolved_orders(conn: Connection, *, tenant_id: int, now: datetime) -> int:
    """Re-queue every ``unknown_sku`` order of the tenant whose lines all resolve now; returns how many."""
    details = conn.execute(
        sa.select(order_quarantine.c.detail).where(
            order_quarantine.c.tenant_id == tenant_id,
            order_quarantine.c.reason_code == QuarantineReason.UNKNOWN_SKU.value,
        )
    ).scalars()
    skus: set[str] = set()
    for detail in details:
        skus.update(s for s in (detail or {}).get("skus") or [] if isinstance(s, str))
        for line in (detail or {}).get("lines") or []:
            skus.update(v for v in (line.get("sku"), line.get("offer_sku")) if isinstance(v, str))
    if not skus:
        return 0
    return retry_quarantined_for_skus(conn, tenant_id=tenant_id, skus=skus, now=now)
