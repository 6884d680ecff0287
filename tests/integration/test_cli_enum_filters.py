"""Unknown enum values on the command line are errors, never an empty answer: `offers list --status` and
`jobs list --state` (like `orders list --state`) exit 2 naming the valid values; known ones match in any
case."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from tradelane.cli import build_app
from tradelane.persistence.tables import offer_bindings, products
from tradelane.security.crypto import generate_key
from tradelane.sync import jobs as jobstore


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return run


@pytest.fixture
def seeded(engine, now: datetime) -> dict[str, int]:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.begin() as conn:
        ids = {}
        for sku, status in (("SKU-PUB", "published"), ("SKU-ERR", "error")):
            product_id = conn.execute(
                sa.insert(products)
                .values(
                    tenant_id=tenant.id, sku=sku, title=sku, price=Decimal("9.90"), currency="EUR",
                    quantity=3, labels=[], attributes={}, content_hash=sku, created_at=now, updated_at=now,
                )
                .returning(products.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(
                sa.insert(offer_bindings).values(
                    tenant_id=tenant.id, channel_id=channel.id, product_id=product_id, status=status
                )
            )
        for kind in ("test.alive", "test.dead"):
            ids[kind] = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, kind, {}), now=now).job_id
    with engine.begin() as conn:
        [claimed] = jobstore.claim(conn, worker="w", now=now, lease_seconds=30, kinds=["test.dead"])
        jobstore.bury(conn, claimed, now=now, error="boom", kind=jobstore.ErrorKind.PERMANENT)
    return ids


def test_offers_list_refuses_an_unknown_status_and_matches_known_ones_in_any_case(cli, seeded):
    flat = " ".join(cli("offers", "list", "--tenant", "acme", "--status", "BOGUS", code=2).split())
    assert "--status: unknown offer status 'BOGUS'" in flat
    assert "valid values: pending, submitted, published, error, blocked" in flat
    listed = json.loads(cli("offers", "list", "--tenant", "acme", "--status", "PUBLISHED", "--json"))
    assert [o["sku"] for o in listed] == ["SKU-PUB"]
    assert len(json.loads(cli("offers", "list", "--tenant", "acme", "--json"))) == 2


def test_jobs_list_refuses_an_unknown_state_and_matches_known_ones_in_any_case(cli, seeded):
    flat = " ".join(cli("jobs", "list", "--tenant", "acme", "--state", "BOGUS", code=2).split())
    assert "--state: unknown job state 'BOGUS'" in flat
    assert "valid values: queued, running, succeeded, dead, cancelled" in flat
    listed = json.loads(cli("jobs", "list", "--tenant", "acme", "--state", "Dead", "--json"))
    assert [j["id"] for j in listed] == [seeded["test.dead"]]
    queued = json.loads(cli("jobs", "list", "--tenant", "acme", "--state", "queued", "--json"))
    assert [j["id"] for j in queued] == [seeded["test.alive"]]
