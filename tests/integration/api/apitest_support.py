"""Seed data of the API tests: two tenants ("acme" and "globex") that each own a channel named
``shop-fr``, products and jobs (one queued, one dead)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from helpers import put_live
from tradelane.bootstrap import Container
from tradelane.persistence.tables import products
from tradelane.services.channels import create_channel
from tradelane.services.tenants import create_tenant
from tradelane.sync import jobs as jobstore

CHANNEL = "shop-fr"


@dataclass
class TenantWorld:
    id: int
    name: str
    token: str
    channel_id: int
    skus: list[str]
    queued_job: int
    dead_job: int
    extra_jobs: list[int] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    acme: TenantWorld
    globex: TenantWorld


def _product(tenant_id: int, sku: str, price: str, now: datetime) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "sku": sku,
        "title": f"Product {sku}",
        "price": Decimal(price),
        "currency": "EUR",
        "quantity": 3,
        "labels": ["new"],
        "attributes": {"color": "red"},
        "content_hash": "0" * 64,
        "created_at": now,
        "updated_at": now,
    }


def seed_tenant(container: Container, name: str, now: datetime, skus: dict[str, str]) -> TenantWorld:
    """A tenant with a token, channel ``shop-fr``, the given products, one queued and one dead job."""
    engine = container.engine
    with engine.begin() as conn:
        tenant, token = create_tenant(conn, name, now=now)
        if skus:
            conn.execute(sa.insert(products), [_product(tenant.id, s, p, now) for s, p in skus.items()])
        channel = create_channel(
            conn,
            tenant_id=tenant.id,
            name=CHANNEL,
            connector="mirakl",
            settings={},
            credentials={"api_key": f"secret-of-{name}"},
            keyring=container.keyring,
            now=now,
        )
        put_live(conn, channel.id)
        dead_kind = f"test.fail.{name}"
        queued = jobstore.enqueue(
            conn,
            jobstore.JobSpec(tenant.id, "system.noop", {"n": 1}, channel_id=channel.id, flow="orders"),
            now=now,
        )
        doomed = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, dead_kind, {"order": "A-1"}), now=now)
    with engine.begin() as conn:
        [claimed] = jobstore.claim(conn, worker="w-test", now=now, lease_seconds=30, kinds=[dead_kind])
        jobstore.bury(conn, claimed, now=now, error="marketplace said no", kind=jobstore.ErrorKind.PERMANENT)
    return TenantWorld(tenant.id, name, token, channel.id, sorted(skus), queued.job_id, doomed.job_id)
