"""Reconciler and unique-ID match against the Amazon SP-API sandbox, pre-filled with another
integrator's listings (one a variation child whose parent SKU conflicts with ours), through the job
dispatcher and the published budgets; and a connector that cannot delete offers (a fake one behind the
port): its report says so and its run removes nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import FakeClock, make_tenant
from tradelane.bootstrap import register_handlers
from tradelane.connectors import dispatch
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon.sandbox import AmazonSandboxServer, AmazonSandboxState, SandboxSettings
from tradelane.connectors.base import (
    Capabilities,
    ConnectorEnv,
    ImportRef,
    ListedOffer,
    OfferUpdate,
    Operation,
    SubmitMode,
)
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.connectors.registry import ConnectorSpec
from tradelane.domain.channels import Flow
from tradelane.persistence.tables import channels, jobs, offer_bindings, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import id_match, reconciler
from tradelane.services.channels import Channel, create_channel, set_enabled
from tradelane.services.outbox import bind_new_products
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

DE = "A1PA6795UKMFR9"


@dataclass
class Hub:
    engine: Any
    clock: FakeClock
    tenant_id: int
    channel: Channel
    keyring: KeyRing
    registry: JobRegistry
    advance_remote: Any = None
    worker: Worker = field(init=False)

    def __post_init__(self) -> None:
        self.worker = Worker(
            self.engine,
            self.registry,
            self.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": self.keyring},
            name="reconciler-worker",
            sleep=self.advance,
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.advance_remote is not None:
            self.advance_remote(seconds)

    def run(self, step: float = 5.0) -> None:
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
            self.advance(step)
        raise AssertionError("jobs still pending")

    def job(self, kind: str, payload: dict[str, Any] | None = None, flow: str | None = None) -> int:
        with self.engine.begin() as conn:
            return enqueue(
                conn,
                JobSpec(self.tenant_id, kind, payload or {}, channel_id=self.channel.id, flow=flow),
                now=self.clock(),
            ).job_id

    def result(self, job_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs.c.state, jobs.c.result, jobs.c.last_error).where(jobs.c.id == job_id)
            ).one()
        assert row.state == "succeeded", row.last_error
        return dict(row.result)

    def add_products(self, rows: list[dict[str, Any]], *, selected: Sequence[str]) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            ids = [
                conn.execute(
                    sa.insert(products)
                    .values(
                        tenant_id=self.tenant_id,
                        labels=[],
                        attributes={},
                        content_hash=row["sku"],
                        created_at=now,
                        updated_at=now,
                        currency="EUR",
                        quantity=1,
                        **row,
                    )
                    .returning(products.c.id)
                ).scalar_one()
                for row in rows
            ]
            bind_new_products(conn, self.tenant_id, ids, now=now)
            unselected = sa.select(products.c.id).where(products.c.sku.not_in(list(selected)))
            conn.execute(sa.delete(offer_bindings).where(offer_bindings.c.product_id.in_(unselected)))
            conn.execute(sa.update(offer_bindings).values(dirty=False))
            conn.execute(
                sa.update(channels).where(channels.c.id == self.channel.id).values(lifecycle_state="live")
            )
            set_enabled(conn, self.channel, Flow.RECONCILER, False)


@pytest.fixture
def amazon_hub(engine: Any, now: datetime) -> Iterator[tuple[Hub, AmazonSandboxState, str]]:
    state = AmazonSandboxState(
        7,
        rate_limits="published",
        region="eu",
        products=8,
        settings=SandboxSettings(feed_queue_seconds=5, feed_processing_seconds=5),
        clock=SandboxClock(now),
    )
    seller = next(a for a in state.accounts.values() if DE in a.marketplace_ids)
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    registry = JobRegistry()
    register_handlers(registry)
    with AmazonSandboxServer(state) as server:
        with engine.begin() as conn:
            channel = amazon.add_channel(
                conn, tenant_id=tenant.id, name="amazon-de", seller_id=seller.seller_id, marketplace_id=DE,
                client_id=state.application.client_id, client_secret=state.application.client_secret,
                refresh_token=seller.refresh_token, keyring=keyring, now=now, region="eu",
                endpoint=server.url, token_endpoint=server.url,
            )  # fmt: skip
        hub = Hub(engine, FakeClock(now), tenant.id, channel, keyring, registry, advance_remote=state.advance)
        yield hub, state, seller.seller_id


def test_amazon_dry_run_enable_run_and_id_match(amazon_hub: tuple[Hub, AmazonSandboxState, str]) -> None:
    hub, state, seller_id = amazon_hub
    asins = [item.asin for item in state.catalog.values()]
    gtins = [item.gtin for item in state.catalog.values()]
    hub.add_products(
        [
            {"sku": f"A-{i}", "gtin": gtins[i], "parent_sku": "PARENT-1", "price": Decimal("9.90")}
            for i in range(5)
        ],
        selected=["A-0", "A-1", "A-2"],
    )
    # another integrator's listings: A-0 (same parent), A-1 (another parent: conflict), A-3 (not
    # selected), X-1 and X-2 (unknown to our catalog)
    for sku, asin, parent in [
        ("A-0", asins[0], "PARENT-1"),
        ("A-1", asins[1], "THEIR-PARENT"),
        ("A-3", asins[3], None),
        ("X-1", asins[5], None),
        ("X-2", asins[6], None),
    ]:
        state.add_offer(seller_id, sku, asin, Decimal("11.00"), 4, parent_sku=parent)

    dry = hub.job(reconciler.DRY_RUN, {"actor": "cli:test"})
    hub.run()
    with hub.engine.connect() as conn:
        report = reconciler.get_report(conn, hub.channel, hub.result(dry)["report_id"])
    assert (report.not_listed, report.not_selected, report.unmanaged) == (["A-2"], ["A-3"], ["X-1", "X-2"])
    assert report.to_remove == ["A-3"] and report.can_delete
    assert report.warning is not None and report.warning.startswith("2 listings exist")
    assert sorted(sku for (_, sku) in state.listings) == ["A-0", "A-1", "A-3", "X-1", "X-2"]

    match = hub.job(id_match.RUN, {"actor": "cli:test"})
    hub.run()
    with hub.engine.connect() as conn:
        run = id_match.get_run(conn, hub.channel, hub.result(match)["run_id"])
        rows = id_match.run_rows(conn, run.id)
    assert run.counts() == {"listed": 5, "matched": 2, "conflict": 1, "only_theirs": 2, "only_ours": 1}
    assert [(r.category, r.sku or r.their_sku, r.their_group) for r in rows] == [
        ("conflict", "A-1", "THEIR-PARENT"),
        ("only_theirs", "X-1", None),
        ("only_theirs", "X-2", None),
        ("only_ours", "A-2", None),
        ("matched", "A-0", "PARENT-1"),
        ("matched", "A-3", None),
    ]

    with hub.engine.begin() as conn:
        reconciler.enable_reconciler(
            conn, hub.channel, report.id, actor="cli:test", now=hub.clock(), reason="go"
        )
    removal = hub.job(reconciler.RUN, flow="reconciler")
    hub.run()
    assert hub.result(removal)["removal_requested"] == 1
    hub.advance(30)
    assert sorted(sku for (_, sku) in state.listings) == ["A-0", "A-1", "X-1", "X-2"]


# --- a connector that cannot delete offers ------------------------------------------------------------


@dataclass
class NoDelete:
    """Lists offers, cannot delete them (``delete_offers`` False); records every submission."""

    env: ConnectorEnv
    listed: list[ListedOffer]
    submitted: list[OfferUpdate]
    name: str = "nodelete"
    capabilities: Capabilities = field(
        default_factory=lambda: Capabilities(
            operations=frozenset({Operation.LIST_OFFERS, Operation.SUBMIT_OFFERS_DELTA}),
            hints={"delete_offers": "the marketplace has no offer deletion"},
        )
    )

    def list_offers(self) -> Sequence[ListedOffer]:
        return list(self.listed)

    def submit_offers(self, offers: Sequence[OfferUpdate], mode: SubmitMode) -> ImportRef:
        self.submitted.extend(offers)
        return ImportRef("x", mode, len(offers))

    def close(self) -> None:
        pass


def test_a_connector_without_delete_reports_and_removes_nothing(engine: Any, now: datetime) -> None:
    listed = [ListedOffer(sku, Decimal("1"), "EUR", 1) for sku in ("N-0", "N-1", "U-1")]
    submitted: list[OfferUpdate] = []
    caps = NoDelete(None, [], []).capabilities  # type: ignore[arg-type]
    spec = ConnectorSpec(
        name="nodelete",
        title="No delete",
        capabilities=caps,
        factory=lambda env: NoDelete(env, listed, submitted),  # type: ignore[arg-type,return-value]
        validate_settings=lambda settings, credentials: dict(settings),
        channel_capabilities=lambda settings: caps,
    )
    registry = JobRegistry()
    dispatch.register_connectors(registry, {"nodelete": spec})
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    with engine.begin() as conn:
        channel = create_channel(
            conn, tenant_id=tenant.id, name="nd", connector="nodelete", settings={}, credentials={},
            keyring=keyring, now=now,
        )  # fmt: skip
    hub = Hub(engine, FakeClock(now), tenant.id, channel, keyring, registry)
    hub.add_products([{"sku": s, "price": Decimal("1")} for s in ("N-0", "N-1")], selected=["N-0"])

    dry = hub.job(reconciler.DRY_RUN, {"actor": "cli:test"})
    hub.run()
    with hub.engine.connect() as conn:
        report = reconciler.get_report(conn, channel, hub.result(dry)["report_id"])
    assert not report.can_delete and report.to_remove == [] and report.not_selected == ["N-1"]
    assert report.hint == (
        "connector 'nodelete' cannot remove offers from the marketplace: listings that are not selected are "
        "reported, never removed (the marketplace has no offer deletion)"
    )
    with hub.engine.begin() as conn:
        reconciler.enable_reconciler(conn, channel, report.id, actor="cli:test", now=hub.clock(), reason="r")
    run = hub.job(reconciler.RUN, flow="reconciler")
    hub.run()
    assert hub.result(run)["removal_requested"] == 0 and submitted == []
