"""Seed data and helpers of the dashboard page tests.

``seed_shop`` gives a tenant a Mirakl channel ``shop-fr`` with products, a rejected offer (with its raw
request/response and the import's recorded exchange), a quarantined order (unknown SKU), an order waiting
for acceptance, one queued and one dead job, a used rate bucket and an open alert. Each tenant's names
carry its own prefix, so a page showing another tenant's data is easy to catch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from fastapi.testclient import TestClient

from helpers import put_live
from tradelane.bootstrap import Container
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.mapping import MiraklOrderState, neutral_state
from tradelane.domain.orders import MarketplaceOrder, MarketplaceOrderLine
from tradelane.persistence.tables import exchanges, offer_bindings, products, rate_buckets
from tradelane.services.order_health import QuarantineReason, quarantine
from tradelane.services.orders import ingest_order, raise_alert
from tradelane.services.tenants import create_tenant
from tradelane.sync import jobs as jobstore

CHANNEL = "shop-fr"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')
NONCE_RE = re.compile(r'name="nonce" value="([^"]+)"')


@dataclass
class Shop:
    tenant_id: int
    name: str
    token: str
    channel_id: int
    prefix: str
    failed_offer_id: int
    quarantined_order_id: int
    waiting_order_id: int
    queued_job_id: int
    dead_job_id: int

    @property
    def unknown_sku(self) -> str:
        return f"{self.prefix}-LEGACY"

    @property
    def failed_sku(self) -> str:
        return f"{self.prefix}-BAD"


def _product(tenant_id: int, sku: str, now: datetime) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "sku": sku,
        "title": f"Product {sku}",
        "price": Decimal("19.90"),
        "currency": "EUR",
        "quantity": 5,
        "labels": [],
        "attributes": {},
        "content_hash": "0" * 64,
        "created_at": now,
        "updated_at": now,
    }


def _order(mid: str, state: MiraklOrderState, skus: list[str], now: datetime) -> MarketplaceOrder:
    return MarketplaceOrder(
        marketplace_order_id=mid,
        state=neutral_state(state),
        raw_state=state.value,
        currency="EUR",
        created_at=now - timedelta(hours=2),
        updated_at=now - timedelta(hours=1),
        lines=tuple(
            MarketplaceOrderLine(
                line_id=f"{mid}-{i}",
                offer_sku=sku,
                quantity=1,
                unit_price=Decimal("19.90"),
                currency="EUR",
                state=state.value,
            )
            for i, sku in enumerate(skus, start=1)
        ),
        acceptance_deadline=now + timedelta(hours=20),
        raw={"order_id": mid, "order_state": state.value, "note": f"raw payload of {mid}"},
    )


def seed_shop(container: Container, name: str, prefix: str, now: datetime) -> Shop:
    engine = container.engine
    with engine.begin() as conn:
        tenant, token = create_tenant(conn, name, now=now)
        good, bad = f"{prefix}-1", f"{prefix}-BAD"
        conn.execute(sa.insert(products), [_product(tenant.id, s, now) for s in (good, bad)])
        channel = add_channel(
            conn,
            tenant_id=tenant.id,
            name=CHANNEL,
            hostname="http://127.0.0.1:9",
            shop_id="2000",
            api_key=f"key-of-{name}",
            keyring=container.keyring,
            now=now,
        )
        put_live(conn, channel.id)
        bad_id = conn.execute(
            sa.select(offer_bindings.c.id)
            .join(products, products.c.id == offer_bindings.c.product_id)
            .where(products.c.tenant_id == tenant.id, products.c.sku == bad)
        ).scalar_one()
        conn.execute(
            sa.update(offer_bindings)
            .where(offer_bindings.c.id == bad_id)
            .values(
                dirty=False,
                dirty_since=None,
                status="error",
                import_ref="77",
                last_error=f"2004|{prefix} product not found in the operator catalog",
                last_request=f"offer-sku;price\n{bad};19.90",
                last_response='{"lines_in_error": 1}',
                last_synced_at=now - timedelta(minutes=30),
            )
        )
        conn.execute(
            sa.update(offer_bindings)
            .where(offer_bindings.c.channel_id == channel.id, offer_bindings.c.id != bad_id)
            .values(status="published", dirty=True, dirty_since=now - timedelta(minutes=12))
        )
        conn.execute(
            sa.insert(exchanges).values(
                tenant_id=tenant.id,
                channel_id=channel.id,
                subject="import:77",
                operation="OF03",
                method="GET",
                url="http://127.0.0.1:9/api/offers/imports/77/error_report",
                status=200,
                request=None,
                response=f"offer-sku;error-message\n{bad};{prefix} ERROR REPORT LINE",
                at=now - timedelta(minutes=29),
            )
        )
        stuck = ingest_order(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            order=_order(f"{prefix}-ORD-Q", MiraklOrderState.SHIPPING, [good, f"{prefix}-LEGACY"], now),
            now=now,
        )
        quarantine(
            conn,
            tenant_id=tenant.id,
            order_id=stuck.order_id,
            reason_code=QuarantineReason.UNKNOWN_SKU,
            reason=f"unknown SKU(s): {prefix}-LEGACY",
            detail={"skus": [f"{prefix}-LEGACY"], "lines": [], "missing_fields": []},
            now=now - timedelta(minutes=40),
        )
        waiting = ingest_order(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            order=_order(f"{prefix}-ORD-W", MiraklOrderState.WAITING_ACCEPTANCE, [good], now),
            now=now,
        )
        conn.execute(
            sa.insert(rate_buckets).values(
                channel_id=channel.id,
                bucket="mirakl:OR11",
                tokens=0.0,
                updated_at=now - timedelta(seconds=15),
            )
        )
        raise_alert(
            conn,
            tenant_id=tenant.id,
            kind="acceptance_deadline_missed",
            key=f"{prefix}-alert",
            message=f"{prefix} order missed its deadline",
            now=now,
            channel_id=channel.id,
        )
        queued = jobstore.enqueue(
            conn,
            jobstore.JobSpec(tenant.id, "system.noop", {"n": 1}, channel_id=channel.id, flow="orders"),
            now=now,
        )
        dead_kind = f"test.fail.{prefix}"
        doomed = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, dead_kind, {"order": prefix}), now=now)
    with engine.begin() as conn:
        [claimed] = jobstore.claim(conn, worker="w-test", now=now, lease_seconds=30, kinds=[dead_kind])
        jobstore.bury(
            conn, claimed, now=now, error=f"{prefix} marketplace said no", kind=jobstore.ErrorKind.PERMANENT
        )
    return Shop(
        tenant_id=tenant.id,
        name=name,
        token=token,
        channel_id=channel.id,
        prefix=prefix,
        failed_offer_id=bad_id,
        quarantined_order_id=stuck.order_id,
        waiting_order_id=waiting.order_id,
        queued_job_id=queued.job_id,
        dead_job_id=doomed.job_id,
    )


def login(client: TestClient, token: str) -> None:
    """Log ``client`` in with ``token`` through the login form (asserts it worked)."""
    page = client.get("/dashboard/login")
    nonce = NONCE_RE.search(page.text)
    assert nonce is not None
    answer = client.post(
        "/dashboard/login",
        data={"token": token, "nonce": nonce.group(1), "next": "/dashboard"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard", answer.text


def csrf_of(client: TestClient, page: str = "/dashboard") -> str:
    found = CSRF_RE.search(client.get(page).text)
    assert found is not None
    return found.group(1)
