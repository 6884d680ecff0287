"""ID match conflicts hold offers back (issue 11), against the Amazon SP-API sandbox pre-filled with
another integrator's listings: A-1 is a variation child of their parent THEIR-PARENT, ours is PARENT-1.

The first full sync of the channel (in Testing) — a feed UPDATE that would replace A-1's attributes and
drop their variation parent — sends every other offer and not A-1 (blocked with the reason; the
sandbox listing keeps its parent and price). Accepting ours sends it; fixing our parent SKU and matching
again releases it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import FakeClock, make_tenant
from tradelane.bootstrap import register_handlers
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon.sandbox import AmazonSandboxServer, AmazonSandboxState, SandboxSettings
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.persistence.tables import channels, jobs, offer_bindings, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import id_match, id_match_conflicts
from tradelane.services.channels import Channel
from tradelane.services.offers import OFFERS_FULL
from tradelane.services.outbox import bind_new_products
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

DE = "A1PA6795UKMFR9"


class Hub:
    def __init__(self, engine: Any, now: datetime, state: AmazonSandboxState, url: str) -> None:
        self.engine, self.state, self.clock = engine, state, FakeClock(now)
        seller = next(a for a in state.accounts.values() if DE in a.marketplace_ids)
        self.seller_id = seller.seller_id
        tenant, _ = make_tenant(engine, "acme", now)
        self.tenant_id = tenant.id
        keyring = KeyRing([generate_key()])
        registry = JobRegistry()
        register_handlers(registry)
        with engine.begin() as conn:
            self.channel: Channel = amazon.add_channel(
                conn, tenant_id=tenant.id, name="amazon-de", seller_id=seller.seller_id, marketplace_id=DE,
                client_id=state.application.client_id, client_secret=state.application.client_secret,
                refresh_token=seller.refresh_token, keyring=keyring, now=now, region="eu",
                endpoint=url, token_endpoint=url,
            )  # fmt: skip
            conn.execute(
                sa.update(channels).where(channels.c.id == self.channel.id).values(lifecycle_state="testing")
            )
        self.worker = Worker(
            engine,
            registry,
            self.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": keyring},
            name="holds-worker",
            sleep=self.advance,
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.state.advance(seconds)

    def run(self) -> None:
        for _ in range(100):
            self.worker.run(burst=True)
            with self.engine.connect() as conn:
                pending = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(jobs)
                    .where(jobs.c.state.in_(["queued", "running"]))
                ).scalar_one()
            if not pending:
                return
            self.advance(5)
        raise AssertionError("jobs still pending")

    def job(
        self, kind: str, payload: dict[str, Any] | None = None, flow: str | None = None
    ) -> dict[str, Any]:
        with self.engine.begin() as conn:
            job_id = enqueue(
                conn,
                JobSpec(self.tenant_id, kind, payload or {}, channel_id=self.channel.id, flow=flow),
                now=self.clock(),
            ).job_id
        self.run()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs.c.state, jobs.c.result, jobs.c.last_error).where(jobs.c.id == job_id)
            ).one()
        assert row.state == "succeeded", row.last_error
        return dict(row.result)

    def binding(self, sku: str) -> tuple[str, str | None]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(offer_bindings.c.status, offer_bindings.c.last_error)
                .join(products, products.c.id == offer_bindings.c.product_id)
                .where(offer_bindings.c.channel_id == self.channel.id, products.c.sku == sku)
            ).one()
        return row.status, row.last_error

    def listing(self, sku: str) -> tuple[float, list[str]]:
        """(price, variation parent SKUs) of the seller's listing ``sku`` in the sandbox."""
        attributes = self.state.listings[(self.seller_id, sku)].attributes
        price = attributes["purchasable_offer"][0]["our_price"][0]["schedule"][0]["value_with_tax"]
        parents = [r["parent_sku"] for r in attributes.get("child_parent_sku_relationship", [])]
        return price, parents


@pytest.fixture
def hub(engine: Any, now: datetime) -> Iterator[Hub]:
    state = AmazonSandboxState(
        7,
        rate_limits="published",
        region="eu",
        products=8,
        settings=SandboxSettings(feed_queue_seconds=5, feed_processing_seconds=5),
        clock=SandboxClock(now),
    )
    with AmazonSandboxServer(state) as server:
        hub = Hub(engine, now, state, server.url)
        catalog = list(state.catalog.values())
        with engine.begin() as conn:
            ids = [
                conn.execute(
                    sa.insert(products)
                    .values(
                        tenant_id=hub.tenant_id,
                        sku=f"A-{i}",
                        gtin=catalog[i].gtin,
                        parent_sku="PARENT-1",
                        price=Decimal("9.90"),
                        currency="EUR",
                        quantity=1,
                        labels=[],
                        attributes={},
                        content_hash=f"A-{i}",
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(products.c.id)
                ).scalar_one()
                for i in range(4)
            ]
            bind_new_products(conn, hub.tenant_id, ids, now=now)
            conn.execute(sa.delete(jobs))  # the test runs the syncs itself
        for sku, item, parent in (("A-0", catalog[0], "PARENT-1"), ("A-1", catalog[1], "THEIR-PARENT")):
            state.add_offer(hub.seller_id, sku, item.asin, Decimal("11.00"), 4, parent_sku=parent)
        yield hub


def _first_full_sync_holds_a1(hub: Hub) -> None:
    match = hub.job(id_match.RUN, {"actor": "cli:test"})
    assert (match["conflict"], match["matched"], match["only_ours"]) == (1, 1, 2)
    full = hub.job(OFFERS_FULL, flow="offers")
    assert (full["sent"], full["blocked"]) == (3, 1)
    hub.run()
    hub.advance(30)
    assert sorted(sku for (_, sku) in hub.state.listings) == ["A-0", "A-1", "A-2", "A-3"]
    assert hub.listing("A-0")[0] == 9.9
    assert hub.listing("A-1") == (11.0, ["THEIR-PARENT"])  # their variation parent survives
    status, reason = hub.binding("A-1")
    assert status == "blocked"
    assert reason is not None and reason.startswith(
        "grouping conflict with the listing on amazon-de: ours PARENT-1 vs theirs THEIR-PARENT; resolve it"
    )
    assert hub.binding("A-2")[0] == "published"


def test_accepting_ours_sends_the_held_offer(hub: Hub) -> None:
    _first_full_sync_holds_a1(hub)
    with hub.engine.begin() as conn:
        id_match_conflicts.accept(
            conn, hub.channel, skus=["A-1"], actor="api:acme", now=hub.clock(), reason="merchant's grouping"
        )
        assert id_match.unresolved_conflicts(conn, hub.channel.id) == 0
    hub.run()  # the delta the acceptance queued
    hub.advance(30)
    hub.run()
    assert hub.listing("A-1")[0] == 9.9
    assert hub.binding("A-1") == ("published", None)


def test_fixing_our_parent_and_matching_again_releases_it(hub: Hub) -> None:
    _first_full_sync_holds_a1(hub)
    with hub.engine.begin() as conn:
        conn.execute(sa.update(products).where(products.c.sku == "A-1").values(parent_sku="THEIR-PARENT"))
    match = hub.job(id_match.RUN, {"actor": "cli:test"})
    assert (match["conflict"], match["released"]) == (0, ["A-1"])
    hub.advance(30)
    hub.run()
    assert hub.listing("A-1")[0] == 9.9
    assert hub.binding("A-1") == ("published", None)
