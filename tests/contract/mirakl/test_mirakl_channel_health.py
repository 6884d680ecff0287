"""Channel hardening against the Mirakl sandbox: the first sync sends each offer once, a full sync
reports its progress in chunks, rejected credentials raise an alert and pause the channel until
``update`` fixes them, and removal keeps the orders."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from mirakl_world import API_KEY, SHOP_ID, catalog
from tradelane.connectors.mirakl.connector import add_channel, check_channel, update_channel
from tradelane.domain.channels import Flow
from tradelane.domain.errors import NotFoundError
from tradelane.persistence.tables import alerts, channel_flows, jobs, offer_bindings, orders
from tradelane.services import channels as channel_service
from tradelane.services.offers import OFFER_SYNC_PROGRESS, OfferSyncProgress, list_offers
from tradelane.sync.jobs import JobSpec, enqueue


def _jobs(world, *kinds: str) -> list[sa.Row]:
    with world.engine.connect() as conn:
        stmt = sa.select(jobs).order_by(jobs.c.id)
        if kinds:
            stmt = stmt.where(jobs.c.kind.in_(kinds))
        return list(conn.execute(stmt))


def _run_scheduled(world, rounds: int, step: float = 20.0) -> None:
    """The worker with its scheduler on (periodic deltas and polls), for ``rounds`` steps of time."""
    world.worker.config.schedule = True
    for _ in range(rounds):
        world.worker.run(burst=True)
        world.advance(step)


@pytest.mark.parametrize("order", ["full_then_scheduler", "scheduler_then_full"])
def test_first_sync_after_add_sends_each_offer_once(world, order):
    skus = [p.sku for p in catalog(10)]
    world.add_products(catalog(10))  # bound to the new channel, dirty: a delta is pending already
    if order == "scheduler_then_full":
        # A worker was already running: its scheduler's first delta queues the first full sync.
        world.worker.config.schedule = True
        world.worker.run(burst=True, max_jobs=1)
        [first] = _jobs(world, "offers.full")
        assert first.state == "queued" and world.state.calls("OF24") == []
    with world.engine.begin() as conn:  # `tradelane channel sync NAME --flow offers --full`
        run = channel_service.run_flow_now(conn, world.channel, Flow.OFFERS, full=True, now=world.clock())
    assert run.created is (order == "full_then_scheduler")
    _run_scheduled(world, 8)

    sent = sum(
        int((j.result or {}).get("sent", 0))
        for j in _jobs(world, "offers.delta", "offers.full")
        if j.state == "succeeded"
    )
    assert sent == len(skus)  # each offer once, whatever ran first
    assert len(world.state.calls("OF01")) == 1 and world.state.calls("OF24") == []
    assert sorted(world.state.shop_offers(SHOP_ID)) == sorted(skus)
    with world.engine.connect() as conn:
        statuses = {r["status"] for r in list_offers(conn, world.tenant_id, limit=100)}
    assert statuses == {"published"}

    # Afterwards deltas are deltas again: one change, one OF24 with one offer.
    world.change("SKU-3", quantity=1)
    _run_scheduled(world, 4)
    assert len(world.state.calls("OF24")) == 1 and len(world.state.calls("OF01")) == 1


def test_full_sync_asked_for_while_one_runs_is_that_one(world):
    world.add_products(catalog(3))
    full_id = world.enqueue("offers.full", flow="offers")
    with world.engine.begin() as conn:  # a worker has claimed it and is sending
        conn.execute(sa.update(jobs).where(jobs.c.id == full_id).values(state="running"))
        run = channel_service.run_flow_now(conn, world.channel, Flow.OFFERS, full=True, now=world.clock())
    assert (run.job_id, run.created, run.running) == (full_id, False, True)
    assert "already running" in run.message()
    assert len(_jobs(world, "offers.full")) == 1


def test_a_delta_on_a_never_synced_channel_does_the_first_full_sync_once(world):
    world.add_products(catalog(5))
    world.run(step=20)
    assert len(world.state.calls("OF01")) == 1 and world.state.calls("OF24") == []
    [full] = _jobs(world, "offers.full")
    assert full.state == "succeeded" and full.idempotency_key == f"offers.first_full:{world.channel.id}"


def test_deltas_do_not_wait_for_a_full_sync_backing_off(world):
    world.add_products(catalog(4))
    world.run(step=20)  # first sync
    with world.engine.begin() as conn:  # a full sync that failed and waits out its backoff
        enqueue(
            conn,
            JobSpec(world.tenant_id, "offers.full", {}, channel_id=world.channel.id, flow="offers"),
            now=world.clock(),
        )
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.kind == "offers.full", jobs.c.state == "queued")
            .values(run_at=world.clock() + timedelta(minutes=10))
        )
    world.change("SKU-2", quantity=0)
    world.run()
    assert len(world.state.calls("OF24")) == 1  # the stock change went out at once
    world.run(step=20)  # the marketplace applies the import
    assert world.state.shop_offers(SHOP_ID)["SKU-2"].quantity == 0


def test_full_sync_reports_progress_chunk_by_chunk(world):
    world.add_products(catalog(100))
    seen: list[OfferSyncProgress] = []
    world.worker.services[OFFER_SYNC_PROGRESS] = seen.append
    world.enqueue("offers.full", flow="offers")
    world.run()
    built = [s.done for s in seen if s.stage == "building"]
    assert all(s.total == 100 and s.channel_id == world.channel.id for s in seen)
    assert built == sorted(built) and built[0] == 0 and built[-1] == 100
    assert len(set(built)) >= 10  # advances in chunks, not 0 then 100
    # Then the upload: nothing sent before the one OF01, everything after it.
    assert [(s.stage, s.done) for s in seen[len(built) :]] == [("sent", 0), ("sent", 100)]


def test_rejected_credentials_alert_pause_and_update_resumes(world):
    world.add_products(catalog(5))
    with world.engine.begin() as conn:
        update_channel(conn, world.channel, keyring=world.keyring, api_key="not-the-key")
    poll = world.enqueue("orders.poll")
    full = world.enqueue("offers.full", flow="offers")
    world.run()

    dead = [j for j in _jobs(world) if j.state == "dead"]
    assert len(dead) == 1 and dead[0].error_kind == "auth"  # dead-lettered once, not per job
    assert dead[0].id == poll and "HTTP 401" in dead[0].last_error
    assert {j.id: j.state for j in _jobs(world, "offers.full")} == {full: "queued"}  # waits, paused
    with world.engine.connect() as conn:
        flows = {r.flow: (r.paused, r.pause_reason) for r in conn.execute(sa.select(channel_flows))}
        [alert] = conn.execute(sa.select(alerts)).all()
    assert set(flows.values()) == {(True, "auth")}
    assert alert.resolved_at is None and alert.channel_id == world.channel.id
    assert alert.message.startswith(f"marketplace-x: credentials rejected by {world.url}: ")
    assert "HTTP 401" in alert.message
    world.advance(60)
    world.run()
    assert len([j for j in _jobs(world) if j.state == "dead"]) == 1  # paused: nothing else is tried

    # An operator-paused flow stays paused after the fix; the auth-paused ones resume.
    with world.engine.begin() as conn:
        channel_service.set_paused(conn, world.channel, [Flow.RECONCILER], True)
        channel = update_channel(conn, world.channel, keyring=world.keyring, api_key=API_KEY)
    with world.engine.connect() as conn:
        assert check_channel(conn, channel, world.keyring).ok
    with world.engine.begin() as conn:
        fixed = channel_service.credentials_accepted(conn, channel, actor="cli:test", now=world.clock())
    assert set(fixed.resumed) == {Flow.OFFERS, Flow.ORDERS, Flow.FULFILLMENTS}
    assert fixed.replayed_jobs == [dead[0].id] and fixed.alert_resolved
    world.run(step=20)
    assert {j.state for j in _jobs(world)} == {"succeeded"}
    assert sorted(world.state.shop_offers(SHOP_ID)) == sorted(p.sku for p in catalog(5))
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(alerts.c.resolved_at)).scalar_one() is not None
        reconciler = conn.execute(
            sa.select(channel_flows.c.paused).where(channel_flows.c.flow == "reconciler")
        ).scalar_one()
    assert reconciler is True

    # Rejected again later: the same alert re-opens.
    with world.engine.begin() as conn:
        update_channel(conn, channel, keyring=world.keyring, api_key="revoked")
    world.enqueue("orders.poll")
    world.run()
    with world.engine.connect() as conn:
        [alert] = conn.execute(sa.select(alerts)).all()
    assert alert.resolved_at is None


def test_remove_keeps_orders_deletes_bindings_cancels_jobs_and_frees_the_name(world):
    world.add_products(catalog(3))
    world.run(step=20)  # the first sync publishes the offers
    world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run(step=20)
    world.enqueue("orders.poll")  # pending when the channel is removed
    with world.engine.begin() as conn:  # a delivery of one of its orders to the OMS, pending too
        delivery = enqueue(
            conn,
            JobSpec(world.tenant_id, "orders.deliver", {"order_id": 1}, channel_id=world.channel.id),
            now=world.clock(),
        ).job_id
    with world.engine.begin() as conn:
        preview = channel_service.removal_preview(conn, world.channel)
        done = channel_service.remove_channel(
            conn, world.channel, actor="cli:ops", now=world.clock(), reason="shop closed"
        )
    assert preview == {"orders": 1, "offer_bindings": 3, "pending_jobs": 1}
    assert (done.orders_kept, done.offer_bindings_deleted, done.jobs_cancelled) == (1, 3, 1)
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(offer_bindings)).scalar_one() == 0
        with pytest.raises(NotFoundError):
            channel_service.get_channel(conn, world.tenant_id, "marketplace-x")
        assert channel_service.list_channels(conn, world.tenant_id) == []
        assert channel_service.channel_credentials(conn, world.channel, world.keyring) == {}
        delivery_state = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == delivery)).scalar_one()
    assert delivery_state == "queued"  # the order already taken in still reaches the merchant system
    calls = len(world.state.requests)
    world.run(step=20)
    assert len(world.state.requests) == calls  # nothing runs against the removed channel
    with world.engine.begin() as conn:  # the name is free again
        again = add_channel(
            conn,
            tenant_id=world.tenant_id,
            name="marketplace-x",
            hostname=world.url,
            shop_id=str(SHOP_ID),
            api_key=API_KEY,
            keyring=world.keyring,
            now=world.clock(),
        )
    assert again.id != world.channel.id
