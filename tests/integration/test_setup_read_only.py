"""In Setup, read-only marketplace work runs; nothing is sent (Mirakl sandbox, both stores).

"Setup: credentials checked, mappings built, nothing sent." An operator prepares go-live in Setup with
the reconciler's dry run and the unique-ID match, which only read the shop's listings (OF21): both
produce their reports. A reconciler removal and an offers push of the same channel are completed as
skipped, and the sandbox receives no offer import (OF24).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from mirakl_world import API_KEY, GENEROUS, SHOP_ID, World, build_world, catalog, ean
from tradelane.connectors.dispatch import SETUP_READ_ONLY_KINDS
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.domain.channels import Flow
from tradelane.persistence.tables import channels, jobs, offer_bindings, products, reconciler_reports
from tradelane.services import id_match, reconciler
from tradelane.services.channels import get_channel_by_id, set_enabled


@pytest.fixture
def world(engine, now) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={}, channel_limits=GENEROUS, products_count=6)


def _prepare(world: World) -> None:
    """Catalog SKU-0..SKU-3, SKU-0..SKU-2 selected; the shop lists SKU-0 and SKU-3 (not selected) and
    OTHER-1 (unknown), put there by another integrator. The channel is back in Setup."""
    world.add_products(catalog(4))
    with world.engine.begin() as conn:
        unselected = sa.select(products.c.id).where(products.c.sku == "SKU-3")
        conn.execute(sa.delete(offer_bindings).where(offer_bindings.c.product_id.in_(unselected)))
        conn.execute(sa.update(offer_bindings).values(dirty=False))
        set_enabled(conn, world.channel, Flow.RECONCILER, False)
    other = MiraklClient(world.url, API_KEY, str(SHOP_ID))
    other.update_offers(
        [
            {"shop_sku": sku, "product_id": ean(n), "product_id_type": "EAN", "price": "12.50",
             "quantity": 3, "state_code": "11", "update_delete": "update"}
            for sku, n in (("SKU-0", 0), ("SKU-3", 3), ("OTHER-1", 5))
        ]
    )  # fmt: skip
    other.close()
    world.advance(61)  # the import completes
    with world.engine.begin() as conn:
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="setup")
        )
        world.channel = get_channel_by_id(conn, world.tenant_id, world.channel.id)


def _result(world: World, job_id: int) -> dict:
    with world.engine.connect() as conn:
        row = conn.execute(
            sa.select(jobs.c.state, jobs.c.result, jobs.c.last_error).where(jobs.c.id == job_id)
        ).one()
    assert row.state == "succeeded", row.last_error
    assert row.result is not None
    return dict(row.result)


def test_dry_run_and_id_match_report_in_setup_while_writes_are_skipped(world: World) -> None:
    _prepare(world)
    assert {reconciler.DRY_RUN, id_match.RUN} == SETUP_READ_ONLY_KINDS
    imports_before = len(world.state.calls("OF24"))
    with world.engine.begin() as conn:
        dry_run_job = reconciler.queue_dry_run(conn, world.channel, actor="cli:test", now=world.clock())
        match_job = id_match.queue_run(conn, world.channel, actor="cli:test", now=world.clock())
    world.run(step=61)

    dry = _result(world, dry_run_job)
    assert "skipped" not in dry
    with world.engine.connect() as conn:
        report = reconciler.get_report(conn, world.channel, int(dry["report_id"]))
        run = id_match.latest_run(conn, world.channel.id)
    assert report.kind == "dry_run"
    assert report.not_selected == ["SKU-3"] and report.to_remove == ["SKU-3"]
    assert report.unmanaged == ["OTHER-1"] and report.not_listed == ["SKU-1", "SKU-2"]
    match = _result(world, match_job)
    assert run is not None and run.id == match["run_id"]
    assert run.counts() == {"listed": 3, "matched": 2, "conflict": 0, "only_theirs": 1, "only_ours": 2}

    # The reconciler confirmed and on, offers dirty: still nothing reaches the marketplace in Setup.
    with world.engine.begin() as conn:
        conn.execute(
            sa.update(reconciler_reports)
            .where(reconciler_reports.c.id == report.id)
            .values(confirmed_at=world.clock(), confirmed_by="cli:test")
        )
        set_enabled(conn, world.channel, Flow.RECONCILER, True)
        conn.execute(sa.update(offer_bindings).values(dirty=True))
    removal_job = world.enqueue(reconciler.RUN, flow="reconciler")
    push_job = world.enqueue("offers.delta", flow="offers")
    world.run(step=61)
    world.advance(61)
    for job_id in (removal_job, push_job):
        assert "is in setup: nothing is sent" in _result(world, job_id)["skipped"]
    assert len(world.state.calls("OF24")) == imports_before
    assert sorted(world.state.shop_offers(SHOP_ID)) == ["OTHER-1", "SKU-0", "SKU-3"]
    with world.engine.connect() as conn:
        kinds = conn.execute(
            sa.select(reconciler_reports.c.kind).where(reconciler_reports.c.channel_id == world.channel.id)
        ).scalars()
        assert sorted(kinds) == ["dry_run"]
