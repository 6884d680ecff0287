"""ID match conflicts hold offers back (issue 11), against the Mirakl sandbox pre-filled by "another
integrator" whose offers carry a variant group (an offer custom field mapped to ``:parent_sku``).

A channel in Testing, matched before its first sync: SKU-1 is listed under group G-X while ours is G-0.
The first full sync sends every other offer and not SKU-1 (blocked with the reason; the sandbox keeps
their offer as it was), a delta neither; go-live is blocked. Fixing our parent SKU and matching again
releases it (the next delta sends it); accepting ours (audited, with a reason) lets it go and unblocks
go-live."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from mirakl_world import API_KEY, GENEROUS, SHOP_ID, World, build_world, catalog, ean
from tradelane.cli import build_app
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.tables import channels, jobs, offer_bindings, products
from tradelane.security.crypto import KeyRing, generate_key
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


def test_cli_shows_the_hold_and_accepts_ours(world: World, db_url, monkeypatch, tmp_path) -> None:
    _prepare(world)
    key = generate_key()
    with world.engine.begin() as conn:  # the CLI's key
        conn.execute(
            sa.update(channels)
            .where(channels.c.id == world.channel.id)
            .values(credentials=KeyRing([key]).encrypt({"api_key": API_KEY}))
        )
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    cli, name = build_app(), world.channel.name

    match = CliRunner().invoke(cli, ["channel", "id-match", name])
    assert match.exit_code == 0, match.output
    text = " ".join(match.output.split())
    assert "go-live is blocked while 1 conflict(s) remain unresolved" in text
    assert f"tradelane channel id-match {name} --accept SKU|--accept-all --reason" in text

    both = CliRunner().invoke(cli, ["channel", "id-match", name, "--accept", "SKU-1", "--accept-all"])
    assert both.exit_code == 1 and "not both" in both.output
    no_reason = CliRunner().invoke(cli, ["channel", "id-match", name, "--accept", "SKU-1"])
    assert no_reason.exit_code == 1 and "needs a reason" in " ".join(no_reason.output.split())
    wrong = CliRunner().invoke(cli, ["channel", "id-match", name, "--accept", "SKU-3", "--reason", "r"])
    assert wrong.exit_code == 1
    assert "no unresolved ID match conflict on marketplace-x for SKU-3 (unresolved: SKU-1)" in " ".join(
        wrong.output.split()
    )
    accepted = CliRunner().invoke(
        cli, ["channel", "id-match", name, "--accept", "SKU-1", "--reason", "catalog is right", "--json"]
    )
    assert accepted.exit_code == 0, accepted.output
    body = json.loads(accepted.stdout)
    assert body["unresolved"] == 0
    assert [(c["sku"], c["accepted"], c["reason"]) for c in body["accepted"]] == [
        ("SKU-1", True, "catalog is right")
    ]
    with world.engine.connect() as conn:
        [event] = audit.history(conn, world.channel.id, prefix="idmatch.accept")
    assert event.actor.startswith("cli:") and event.reason == "catalog is right"

    again = CliRunner().invoke(cli, ["channel", "id-match", name, "--json"])
    assert again.exit_code == 0, again.output
    shown = json.loads(again.stdout)
    assert shown["unresolved"] == 0 and shown["conflicts"][0]["accepted_by"] == event.actor
    table = CliRunner().invoke(cli, ["channel", "id-match", name])
    lines = table.output.splitlines()
    assert (
        f"accepted ours for SKU-1 ({event.actor}: catalog is right): sent, may overwrite their listing"
        in lines
    )
    assert "go-live is blocked" not in table.output
