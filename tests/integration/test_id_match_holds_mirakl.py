"""ID match conflicts hold offers back (issue 11), against the Mirakl sandbox pre-filled by "another
integrator" whose offers carry a variant group (an offer custom field mapped to ``:parent_sku``).

A channel in Testing, matched before its first sync: SKU-1 is listed under group G-X while ours is G-0.
The first full sync sends every other offer and not SKU-1 (blocked with the reason; the sandbox keeps
their offer as it was), a delta neither; go-live is blocked. Fixing our parent SKU and matching again
releases it (the next delta sends it); accepting ours (audited, with a reason) lets it go and unblocks
go-live."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from mirakl_world import API_KEY, GENEROUS, SHOP_ID, World, build_world, catalog, ean
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.tables import channels, jobs, offer_bindings, products
from tradelane.services import audit, channel_lifecycle, id_match, id_match_conflicts
from tradelane.services.offers import OFFERS_FULL
from tradelane.services.outbox import OFFERS_DELTA

GROUP_FIELD = "variant-group"


@pytest.fixture
def world(engine, now) -> Iterator[World]:
    options = {"offer": {"custom_fields": {GROUP_FIELD: ":parent_sku"}}}
    yield from build_world(
        engine, now, sandbox_limits={}, channel_limits={**GENEROUS, "OF21": [1000, 1]}, options=options
    )


def _prepare(world: World) -> None:
    """Catalog SKU-0..SKU-3 (parent G-<n//2>), all selected, never sent; the channel in Testing; the
    shop lists SKU-0 (G-0: matched) and SKU-1 (G-X: conflict) at 12.50 x 3."""
    world.state.config.offer_fields = frozenset({GROUP_FIELD})
    world.add_products(catalog(4))
    with world.engine.begin() as conn:
        for i in range(4):
            conn.execute(
                sa.update(products)
                .where(products.c.tenant_id == world.tenant_id, products.c.sku == f"SKU-{i}")
                .values(parent_sku=f"G-{i // 2}")
            )
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="testing")
        )
        conn.execute(sa.delete(jobs))  # the delta binding the products queued: the test runs the syncs
    other = MiraklClient(world.url, API_KEY, str(SHOP_ID))
    other.update_offers(
        [
            {
                "shop_sku": sku,
                "product_id": ean(n),
                "product_id_type": "EAN",
                "price": "12.50",
                "quantity": 3,
                "state_code": "11",
                "update_delete": "update",
                "offer_additional_fields": [{"code": GROUP_FIELD, "value": group}],
            }
            for sku, n, group in (("SKU-0", 0, "G-0"), ("SKU-1", 1, "G-X"))
        ]
    )
    other.close()
    world.advance(61)
    assert sorted(world.state.shop_offers(SHOP_ID)) == ["SKU-0", "SKU-1"]


def _match(world: World) -> dict:
    with world.engine.begin() as conn:
        job_id = id_match.queue_run(conn, world.channel, actor="cli:test", now=world.clock())
    world.run(step=61)
    return _succeeded(world, job_id)


def _succeeded(world: World, job_id: int) -> dict:
    with world.engine.connect() as conn:
        row = conn.execute(
            sa.select(jobs.c.state, jobs.c.result, jobs.c.last_error).where(jobs.c.id == job_id)
        ).one()
    assert row.state == "succeeded", row.last_error
    return dict(row.result)


def _binding(world: World, sku: str) -> tuple[str, bool, str | None]:
    with world.engine.connect() as conn:
        row = conn.execute(
            sa.select(offer_bindings.c.status, offer_bindings.c.dirty, offer_bindings.c.last_error)
            .join(products, products.c.id == offer_bindings.c.product_id)
            .where(offer_bindings.c.channel_id == world.channel.id, products.c.sku == sku)
        ).one()
    return row.status, row.dirty, row.last_error


def _theirs_untouched(world: World) -> None:
    offer = world.state.offer(SHOP_ID, "SKU-1")
    assert offer is not None
    assert (offer.price, offer.quantity, offer.additional_fields) == (
        Decimal("12.50"),
        3,
        {GROUP_FIELD: "G-X"},
    )


def _full_sync_holds_the_conflict(world: World) -> None:
    _prepare(world)
    result = _match(world)
    assert (result["conflict"], result["released"]) == (1, [])
    full = world.enqueue(OFFERS_FULL, flow="offers")
    world.run(step=61)
    assert _succeeded(world, full)["blocked"] == 1
    world.advance(120)
    shop = world.state.shop_offers(SHOP_ID)
    assert sorted(shop) == ["SKU-0", "SKU-1", "SKU-2", "SKU-3"]
    assert shop["SKU-0"].price == Decimal("10.00") and shop["SKU-3"].price == Decimal("13.00")
    _theirs_untouched(world)
    status, dirty, reason = _binding(world, "SKU-1")
    assert (status, dirty) == ("blocked", False)
    assert reason == (
        "grouping conflict with the listing on marketplace-x: ours G-0 vs theirs G-X; resolve it or accept "
        "ours: `tradelane channel id-match marketplace-x --accept SKU-1|--accept-all --reason ...`"
    )
    assert _binding(world, "SKU-2")[0] == "published"
    with world.engine.connect() as conn:
        assert id_match.unresolved_conflicts(conn, world.channel.id) == 1
        assert channel_lifecycle.go_live_blockers(conn, world.channel) != []


def test_held_by_full_sync_and_delta_then_released_by_a_match_after_the_fix(world: World) -> None:
    _full_sync_holds_the_conflict(world)
    # a change of the held offer (it queues a delta): the delta holds it too
    world.change("SKU-1", quantity=7)
    world.run(step=61)
    with world.engine.connect() as conn:
        delta = conn.execute(
            sa.select(sa.func.max(jobs.c.id)).where(jobs.c.kind == OFFERS_DELTA)
        ).scalar_one()
    assert _succeeded(world, delta) == {"sent": 0, "blocked": 1, "import_id": None, "remaining": 0}
    assert _binding(world, "SKU-1")[:2] == ("blocked", False)
    world.advance(120)
    _theirs_untouched(world)

    # our catalog is fixed (SKU-1 belongs to G-X) — still held until the match says so
    world.change("SKU-1", parent_sku="G-X")
    world.enqueue(OFFERS_DELTA, flow="offers")
    world.run(step=61)
    world.advance(120)
    _theirs_untouched(world)
    assert _binding(world, "SKU-1")[0] == "blocked"

    result = _match(world)
    assert (result["conflict"], result["released"]) == (0, ["SKU-1"])  # dirty again, a delta queued
    with world.engine.connect() as conn:
        assert id_match.unresolved_conflicts(conn, world.channel.id) == 0
        assert channel_lifecycle.go_live_blockers(conn, world.channel) == []
    world.advance(120)  # the delta the release queued ran with the match; its import completes
    offer = world.state.offer(SHOP_ID, "SKU-1")
    assert offer is not None and (offer.price, offer.quantity) == (Decimal("11.00"), 7)
    assert offer.additional_fields == {GROUP_FIELD: "G-X"}
    assert _binding(world, "SKU-1")[0] == "published"


def test_accepting_ours_sends_it_and_unblocks_go_live(world: World) -> None:
    _full_sync_holds_the_conflict(world)
    with world.engine.begin() as conn:
        with pytest.raises(ValidationError, match="needs a reason"):
            id_match_conflicts.accept(
                conn, world.channel, skus=["SKU-1"], actor="cli:t", now=world.clock(), reason=" "
            )
        with pytest.raises(
            ValidationError, match="no unresolved ID match conflict on marketplace-x for SKU-0"
        ):
            id_match_conflicts.accept(
                conn, world.channel, skus=["SKU-0"], actor="cli:t", now=world.clock(), reason="r"
            )
    with world.engine.begin() as conn:
        [accepted] = id_match_conflicts.accept(
            conn, world.channel, skus=None, actor="cli:ops", now=world.clock(), reason="ours is the truth"
        )
    assert (accepted.sku, accepted.accepted_by, accepted.reason) == ("SKU-1", "cli:ops", "ours is the truth")
    with world.engine.connect() as conn:
        assert id_match.unresolved_conflicts(conn, world.channel.id) == 0
        assert channel_lifecycle.go_live_blockers(conn, world.channel) == []
        [event] = audit.history(conn, world.channel.id, prefix="idmatch.")
    assert (event.action, event.actor, event.reason) == ("idmatch.accept", "cli:ops", "ours is the truth")
    assert event.details["conflicts"] == [{"sku": "SKU-1", "our_group": "G-0", "their_group": "G-X"}]
    assert event.details["all"] is True
    assert _binding(world, "SKU-1")[:2] == ("pending", True)

    world.run(step=61)  # the delta the acceptance scheduled: ours overwrites theirs, as chosen
    world.advance(120)
    offer = world.state.offer(SHOP_ID, "SKU-1")
    assert offer is not None and (offer.price, offer.additional_fields) == (
        Decimal("11.00"),
        {GROUP_FIELD: "G-0"},
    )
    with (
        world.engine.begin() as conn,
        pytest.raises(ValidationError, match="no unresolved ID match conflict to accept"),
    ):
        id_match_conflicts.accept(
            conn, world.channel, skus=None, actor="cli:t", now=world.clock(), reason="r"
        )


def test_an_acceptance_holds_for_the_same_conflict_only(world: World) -> None:
    _prepare(world)
    with world.engine.begin() as conn, pytest.raises(NotFoundError, match="no unique-ID match yet"):
        id_match_conflicts.accept(
            conn, world.channel, skus=None, actor="cli:t", now=world.clock(), reason="r"
        )
    _match(world)
    with world.engine.begin() as conn:
        id_match_conflicts.accept(
            conn, world.channel, skus=["SKU-1"], actor="cli:t", now=world.clock(), reason="r"
        )
    assert _match(world)["conflict"] == 1  # the same conflict again: still accepted
    with world.engine.connect() as conn:
        assert id_match.unresolved_conflicts(conn, world.channel.id) == 0
    world.change("SKU-1", parent_sku="G-7")  # ours changed: another conflict, not the one accepted
    _match(world)
    with world.engine.connect() as conn:
        [conflict] = id_match_conflicts.unresolved(conn, world.channel.id)
        assert (conflict.sku, conflict.our_group, conflict.their_group) == ("SKU-1", "G-7", "G-X")
        assert id_match_conflicts.held_offers(conn, world.channel).keys() == {"SKU-1"}
