"""A cutover whose channel had its Listings flow switched off: step 5's initial sync is a Listings job
(a switched-off flow's jobs are skipped), so the cutover switches Listings on first — audited as the
run's actor with the reason — and the sync reaches the marketplace."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from cutover_support import advance_until, deps, put_live

from mirakl_world import SHOP_ID, World, build_world, catalog
from tradelane.domain.channels import Flow
from tradelane.services import audit, channel_lifecycle, cutover


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    for w in build_world(engine, now, sandbox_limits={}):
        put_live(w)
        w.state.add_offer(SHOP_ID, "SKU-0", "OP-0", Decimal("31.50"), 5)
        w.add_products(catalog(2))
        yield w


def test_step_5_switches_listings_on_for_the_initial_sync(world: World) -> None:
    with world.engine.begin() as conn:
        channel_lifecycle.set_flow(
            conn, world.channel, Flow.OFFERS, False, actor="cli:ops", reason="not yet", now=world.clock()
        )
    cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    at_6 = advance_until(world, world.channel, lambda c: c.step == 6)
    assert at_6.status != "stopped", at_6.message
    assert world.state.calls("OF01") or world.state.calls("OF24")
    listed = {sku: o.quantity for sku, o in world.state.shop_offers(SHOP_ID).items()}
    assert listed.get("SKU-1") == 10  # our catalog reached the marketplace
    with world.engine.connect() as conn:
        enabled = [
            e
            for e in audit.history(conn, world.channel.id, prefix="flow.enable")
            if e.details.get("flow") == "offers"
        ]
    assert enabled and enabled[-1].reason == "cutover step 5: the initial sync"
