"""Lifecycle Setup -> Testing -> Live and flow switches (services/channel_lifecycle.py), on the Mirakl
sandbox: nothing sent in Setup, activation refused on bad credentials, the engine promoting at the end of
the testing period (audited, alerted), promotion blocked by unique-ID conflicts and its override, flow
switches (mandatory fulfilment, the reconciler's dry run, reasons once live), Fulfillments off -> orders
Third Party Managed and no update sent, and the communication frequency recomputed on read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import make_channel, put_live
from mirakl_world import API_KEY, SHOP_ID, World, build_world, catalog
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.registry import CONNECTORS, check_channel
from tradelane.domain.channels import Flow, LifecycleState
from tradelane.domain.errors import ConflictError, ValidationError
from tradelane.persistence.tables import alerts, channels, jobs, orders
from tradelane.services import audit, id_match, notification_settings, notifications
from tradelane.services import channel_lifecycle as lc
from tradelane.services import order_updates as updates
from tradelane.services.channels import Channel, get_channel_by_id
from tradelane.services.communication import communication_frequency
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.scheduler import LIFECYCLE_DUE, enqueue_due
from tradelane.sync.worker import Worker, WorkerConfig

ACTOR = "cli:tester"


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def new_channel(world: World, name: str = "shop-new", api_key: str = API_KEY) -> Channel:
    """A second Mirakl channel of the world's tenant, on the same sandbox shop, in Setup."""
    with world.engine.begin() as conn:
        return add_channel(
            conn,
            tenant_id=world.tenant_id,
            name=name,
            hostname=world.url,
            shop_id=str(SHOP_ID),
            api_key=api_key,
            keyring=world.keyring,
            now=world.clock(),
        )


def activate(world: World, channel: Channel, days: int = 30) -> lc.Lifecycle:
    with world.engine.connect() as conn:
        checked = check_channel(conn, channel, world.keyring)
    with world.engine.begin() as conn:
        return lc.activate(conn, channel, checked=checked, actor=ACTOR, now=world.clock(), testing_days=days)


def state_of(world: World, channel: Channel) -> str:
    with world.engine.connect() as conn:
        return str(
            conn.execute(sa.select(channels.c.lifecycle_state).where(channels.c.id == channel.id)).scalar()
        )


def actions(world: World, channel: Channel) -> list[tuple[str, str]]:
    with world.engine.connect() as conn:
        return [(e.actor, e.action) for e in audit.history(conn, channel.id)]


BLOCKER = "3 unique-ID match conflict(s) unresolved (same ID, conflicting grouping): SKU-0, SKU-1, SKU-2"


def conflicting_match(world: World, channel: Channel, count: int) -> None:
    """A unique-ID match run of ``channel`` with ``count`` conflicts (same SKU, other grouping)."""
    rows = [
        id_match.MatchRow(
            id_match.CONFLICT, sku=f"SKU-{n}", their_sku=f"SKU-{n}", our_group="P-1", their_group="X"
        )
        for n in range(count)
    ]
    with world.engine.begin() as conn:
        id_match.store_run(conn, channel, count, rows, actor=ACTOR, now=world.clock())


def test_a_channel_in_setup_sends_nothing_until_activated(world: World) -> None:
    channel = new_channel(world)
    assert state_of(world, channel) == "setup"
    with world.engine.begin() as conn:  # the world's own channel too: the sandbox must hear nothing
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="setup")
        )
    world.state.clear_requests()
    now = world.clock()
    with world.engine.begin() as conn:  # the scheduler: nothing due for a channel in setup
        enqueue_due(conn, now=now, known_kinds=set(world.registry.kinds()))
        queued = conn.execute(sa.select(jobs.c.kind).where(jobs.c.channel_id == channel.id)).all()
        assert queued == []
        job_id = enqueue(  # a manual run (or a catalog change) is completed without a call
            conn, JobSpec(world.tenant_id, "orders.poll", {}, channel_id=channel.id, flow="orders"), now=now
        ).job_id
    world.run()
    with world.engine.connect() as conn:
        job = conn.execute(sa.select(jobs.c.state, jobs.c.result).where(jobs.c.id == job_id)).one()
    assert job.state == "succeeded"
    assert "is in setup: nothing is sent" in job.result["skipped"]
    assert world.state.requests == []

    activate(world, channel)
    with world.engine.begin() as conn:
        enqueue_due(conn, now=world.clock(), known_kinds=set(world.registry.kinds()))
        kinds = {r.kind for r in conn.execute(sa.select(jobs.c.kind).where(jobs.c.channel_id == channel.id))}
    assert {"orders.poll", "offers.delta"} <= kinds


def test_activation_checks_the_credentials_on_the_sandbox(world: World) -> None:
    wrong = new_channel(world, "shop-wrong", api_key="not-the-key")
    with pytest.raises(ValidationError, match="shop-wrong stays in setup: the credentials check failed"):
        activate(world, wrong)
    assert state_of(world, wrong) == "setup"
    assert actions(world, wrong) == []

    good = new_channel(world)
    view = activate(world, good, days=14)
    assert view.state is LifecycleState.TESTING
    assert view.testing_started_at == world.clock()
    assert view.testing_ends_at == world.clock() + timedelta(days=14)
    with world.engine.connect() as conn:
        [event] = audit.history(conn, good.id)
    assert (event.actor, event.action, event.details["testing_days"]) == (ACTOR, lc.ACTIVATE, 14)
    with pytest.raises(ConflictError, match="only a channel in setup can be activated"):
        activate(world, good)


def test_the_engine_promotes_at_the_end_of_the_testing_period(world: World) -> None:
    channel = new_channel(world)
    activate(world, channel, days=2)
    with world.engine.begin() as conn:
        notification_settings.configure(
            conn, world.keyring, tenant_id=world.tenant_id, channel_id=None, emails=["ops@example.com"],
            actor=ACTOR, now=world.clock(),
        )  # fmt: skip
    worker = Worker(
        world.engine,
        world.registry,
        world.clock,
        WorkerConfig(schedule=True),
        services={"keyring": world.keyring},
        name="lifecycle-worker",
    )
    world.advance(86_400)
    worker.run(burst=True)
    assert state_of(world, channel) == "testing"  # one day left
    world.advance(86_400 + 1)
    worker.run(burst=True)
    assert state_of(world, channel) == "live"
    with world.engine.connect() as conn:
        promoted = audit.history(conn, channel.id, prefix=lc.PROMOTE)
        alert = lc.go_live_alert(conn, channel)
        job = conn.execute(sa.select(jobs.c.state).where(jobs.c.kind == LIFECYCLE_DUE)).scalar()
    assert [(e.actor, e.details["automatic"]) for e in promoted] == [(audit.SYSTEM, True)]
    assert alert is not None and alert[0] == "info" and "went live automatically" in alert[1]
    assert job == "succeeded"
    with world.engine.connect() as conn:
        [sent] = notifications.recent(conn, world.tenant_id, channel_id=channel.id)
    assert (sent.event, sent.subject) == ("golive.done", alert[1])


def test_go_live_is_blocked_by_id_conflicts_unless_overridden(world: World) -> None:
    channel = new_channel(world)
    activate(world, channel, days=1)
    conflicting_match(world, channel, 3)
    with world.engine.begin() as conn:
        notification_settings.configure(
            conn, world.keyring, tenant_id=world.tenant_id, channel_id=None, emails=["ops@example.com"],
            actor=ACTOR, now=world.clock(),
        )  # fmt: skip
    with (
        world.engine.begin() as conn,
        pytest.raises(lc.GoLiveBlocked, match="3 unique-ID match conflict") as blocked,
    ):
        lc.promote(conn, channel, actor=ACTOR, now=world.clock())
    assert "SKU-0, SKU-1, SKU-2" in str(blocked.value)
    assert "`tradelane channel id-match shop-new`" in str(blocked.value)
    assert "--override-reason" in str(blocked.value)

    world.advance(86_400 + 1)  # the automatic promotion keeps Testing and says why, once
    for _ in range(2):
        with world.engine.begin() as conn:
            result = lc.end_testing(conn, channel, now=world.clock())
        assert result == {
            "promoted": False,
            "blockers": [BLOCKER],
        }
    with world.engine.connect() as conn:
        alert = lc.go_live_alert(conn, channel)
        retry_at = conn.execute(
            sa.select(channels.c.promotion_check_at).where(channels.c.id == channel.id)
        ).scalar()
    assert alert is not None and alert[0] == "warning" and "stays in testing" in alert[1]
    assert retry_at == world.clock() + lc.PROMOTION_RETRY
    assert state_of(world, channel) == "testing"
    with world.engine.begin() as conn:  # not due again before the retry time
        enqueue_due(conn, now=world.clock(), known_kinds={LIFECYCLE_DUE})
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.kind == LIFECYCLE_DUE)
            ).scalar()
            == 0
        )

    with world.engine.begin() as conn:
        lc.promote(
            conn, channel, actor=ACTOR, now=world.clock(), override_reason="conflicts are old SKUs, agreed"
        )
    assert state_of(world, channel) == "live"
    with world.engine.connect() as conn:
        events = audit.history(conn, channel.id)
        open_alerts = conn.execute(
            sa.select(alerts.c.key).where(alerts.c.channel_id == channel.id, alerts.c.resolved_at.is_(None))
        ).all()
    override = next(e for e in events if e.action == lc.OVERRIDE)
    assert (override.actor, override.reason) == (ACTOR, "conflicts are old SKUs, agreed")
    assert override.details == {"blockers": [BLOCKER]}
    assert [e.action for e in events] == [lc.ACTIVATE, lc.PROMOTION_BLOCKED, lc.OVERRIDE, lc.PROMOTE]
    with world.engine.connect() as conn:
        sent = notifications.recent(conn, world.tenant_id, channel_id=channel.id)
    assert [n.event for n in sent] == ["golive.done", "golive.blocked"]  # newest first, blocked said once
    assert sent[0].subject == (
        f"shop-new went live, promoted by {ACTOR} despite 3 unique-ID match conflict(s) unresolved (same ID, "
        "conflicting grouping): SKU-0, SKU-1, SKU-2 (override: conflicts are old SKUs, agreed)"
    )
    assert open_alerts == []


def test_flow_switches_are_audited_and_guarded(engine: Any, now: datetime) -> None:
    from helpers import make_tenant

    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now, lifecycle=LifecycleState.TESTING)
    mandatory = replace(
        CONNECTORS["mirakl"],
        name="test",
        channel_capabilities=lambda settings: replace(
            CONNECTORS["mirakl"].capabilities, fulfilment_mandatory=True
        ),
    )
    with engine.begin() as conn:
        with pytest.raises(ValidationError, match="declares fulfilment mandatory"):
            lc.set_flow(
                conn,
                channel,
                Flow.FULFILLMENTS,
                False,
                actor=ACTOR,
                reason=None,
                now=now,
                connectors={"test": mandatory},
            )
        assert lc.set_flow(
            conn, channel, Flow.FULFILLMENTS, False, actor=ACTOR, reason="3PL", now=now
        ).changed
        assert not lc.set_flow(
            conn, channel, Flow.FULFILLMENTS, False, actor=ACTOR, reason=None, now=now
        ).changed
        assert not lc.set_flow(
            conn, channel, Flow.RECONCILER, False, actor=ACTOR, reason=None, now=now
        ).changed
        with pytest.raises(ValidationError, match="only after its dry run"):
            lc.set_flow(conn, channel, Flow.RECONCILER, True, actor=ACTOR, reason=None, now=now)
        lc.set_flow(
            conn, channel, Flow.RECONCILER, True, actor=ACTOR, reason=None, now=now, confirmed_dry_run=7
        )
        put_live(conn, channel.id)
        with pytest.raises(ValidationError, match="needs a reason"):
            lc.set_flow(conn, channel, Flow.ORDERS, False, actor=ACTOR, reason=" ", now=now)
        events = audit.history(conn, channel.id)
    assert [(e.action, e.details["flow"], e.reason) for e in events] == [
        (lc.FLOW_OFF, "fulfillments", "3PL"),
        (lc.FLOW_ON, "reconciler", None),
    ]
    assert events[-1].details["dry_run_report"] == 7


def test_fulfillments_off_imports_orders_as_third_party_managed_and_sends_no_update(world: World) -> None:
    with world.engine.begin() as conn:
        lc.set_flow(
            conn,
            world.channel,
            Flow.FULFILLMENTS,
            False,
            actor=ACTOR,
            reason="the 3PL ships",
            now=world.clock(),
        )
    world.state.add_offer(SHOP_ID, "SKU-1", "OP-1", Decimal("3.00"), 50)
    order_id = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run(step=30)
    world.advance(120)
    world.enqueue("orders.poll")
    world.run(step=30)
    with world.engine.connect() as conn:
        tpm = conn.execute(
            sa.select(orders.c.third_party_managed).where(orders.c.marketplace_order_id == order_id)
        ).scalar_one()
    assert tpm is True
    world.state.clear_requests()
    with world.engine.begin() as conn:
        shipped = updates.record_shipment(
            conn,
            tenant_id=world.tenant_id,
            order_ref=f"{world.channel.name}:{order_id}",
            carrier="UPS",
            tracking_number="1Z999",
            tracking_url=None,
            lines=None,
            external_id=None,
            now=world.clock(),
        )
    assert shipped.status is updates.UpdateStatus.SKIPPED and "third party managed" in str(shipped.detail)
    world.run()
    assert [r.op_id for r in world.state.requests if r.op_id in {"OR23", "OR24", "ST01"}] == []


def test_communication_frequency_is_recomputed_on_read(world: World) -> None:
    world.add_products(catalog(3))
    with world.engine.connect() as conn:
        before = communication_frequency(conn, world.channel)
    assert before.skus == 3 and before.full_sync.basis.value == "budget"
    world.add_products(catalog(2, prefix="MORE"))
    world.enqueue("offers.full", flow="offers")
    world.run(step=20)
    with world.engine.connect() as conn:
        after = communication_frequency(conn, get_channel_by_id(conn, world.tenant_id, world.channel.id))
    assert after.skus == 5
    assert after.full_sync.basis.value == "measured"
    assert after.orders_seen.basis.value == "budget"
    assert after.sentences()[0].startswith("a full sync takes ~")


def _change_period(world: World, channel: Channel, days: int, reason: str | None = "agreed") -> lc.Lifecycle:
    with world.engine.begin() as conn:
        return lc.set_testing_period(conn, channel, days, actor=ACTOR, now=world.clock(), reason=reason)


def test_the_testing_period_is_changed_while_testing_and_an_ended_one_is_promoted(world: World) -> None:
    channel = new_channel(world)
    with pytest.raises(ConflictError, match="only a channel in testing has a testing period"):
        _change_period(world, channel, 10)
    started = world.clock()
    activate(world, channel, days=30)
    worker = Worker(
        world.engine, world.registry, world.clock, WorkerConfig(schedule=True),
        services={"keyring": world.keyring}, name="lifecycle-worker",
    )  # fmt: skip
    world.advance(3 * 86_400)
    with pytest.raises(ValidationError, match="needs a reason"):
        _change_period(world, channel, 10, reason=" ")
    with pytest.raises(ValidationError, match="1-365 days"):
        _change_period(world, channel, 0)
    view = _change_period(world, channel, 10, reason="merchant wants to go live sooner")
    assert (view.testing_days, view.testing_started_at, view.testing_ends_at) == (
        10, started, started + timedelta(days=10),
    )  # fmt: skip
    with world.engine.connect() as conn:
        [event] = audit.history(conn, channel.id, prefix=lc.TESTING_PERIOD)
    assert (event.actor, event.reason) == (ACTOR, "merchant wants to go live sooner")
    assert (event.details["from_days"], event.details["to_days"], event.details["already_over"]) == (
        30,
        10,
        False,
    )
    worker.run(burst=True)
    assert state_of(world, channel) == "testing"

    # Two days ago is the end of a 1-day period: over, so the engine's next check promotes it.
    assert _change_period(world, channel, 1).testing_ends_at == started + timedelta(days=1)
    worker.run(burst=True)
    assert state_of(world, channel) == "live"
    with world.engine.connect() as conn:
        promoted = audit.history(conn, channel.id, prefix=lc.PROMOTE)
    assert [(e.actor, e.reason) for e in promoted] == [(audit.SYSTEM, "testing period ended")]
    with pytest.raises(ConflictError, match="is live"):
        _change_period(world, channel, 20)


def test_a_shortened_period_still_waits_for_the_blockers(world: World) -> None:
    channel = new_channel(world)
    activate(world, channel, days=30)
    conflicting_match(world, channel, 2)
    world.advance(2 * 86_400)
    _change_period(world, channel, 1)
    worker = Worker(
        world.engine, world.registry, world.clock, WorkerConfig(schedule=True),
        services={"keyring": world.keyring}, name="lifecycle-worker",
    )  # fmt: skip
    worker.run(burst=True)
    assert state_of(world, channel) == "testing"
    with world.engine.connect() as conn:
        alert = lc.go_live_alert(conn, channel)
    assert alert is not None and "stays in testing" in alert[1] and "2 unique-ID match conflict" in alert[1]
    assert "SKU-0, SKU-1" in alert[1]
    _change_period(world, channel, 30, reason="conflicts need a week")  # no longer over: the alert goes
    with world.engine.connect() as conn:
        assert lc.go_live_alert(conn, channel) is None
