"""Lifecycle follow-ups (issue 11), both stores:

* the communication frequency counts the *selected* SKUs: bindings a selection left on the marketplace
  ("left") or is delisting are not kept updated, so they are not counted;
* a flow whose job was skipped because its channel is in Setup gets no "last success": a skipped run is
  not a success (``channel_flows.last_success_at``, shown by ``channel show``/the API);
* the flows paused by rejected credentials, and resumed once they pass, and the channel's removal are in
  its history (every change of a channel's status or flows is audited).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from mirakl_world import World, build_world, catalog
from tradelane.domain.catalog import Product
from tradelane.domain.channels import Flow
from tradelane.domain.selection import selection
from tradelane.persistence.tables import channels, jobs, offer_bindings
from tradelane.services import audit
from tradelane.services import channels as channel_service
from tradelane.services import selection as selections
from tradelane.services.channels import flow_statuses, get_channel_by_id
from tradelane.services.communication import communication_frequency
from tradelane.services.offers import LEFT, SELECTED


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def _labelled(count: int, label: str, prefix: str) -> list[Product]:
    return [replace(p, labels=(label,)) for p in catalog(count, prefix=prefix)]


def test_the_frequency_counts_only_the_selected_skus(world: World) -> None:
    world.add_products(_labelled(2, "keep", "KEEP") + _labelled(3, "drop", "DROP"))
    with world.engine.begin() as conn:
        # The five were sent once: de-selecting them leaves them on the marketplace (reconciler off).
        conn.execute(sa.update(offer_bindings).values(synced_seq=1, dirty=False))
        before = communication_frequency(conn, world.channel)
        selections.set_selection(
            conn, world.channel, selection(labels=["keep"]), actor="cli:test", now=world.clock()
        )
        states = sorted(conn.execute(sa.select(offer_bindings.c.selection_state)).scalars())
        after = communication_frequency(conn, world.channel)
    assert before.skus == 5
    assert states == [LEFT, LEFT, LEFT, SELECTED, SELECTED]
    assert after.skus == 2


def _last_success(world: World, flow: Flow) -> datetime | None:
    with world.engine.connect() as conn:
        return next(s.last_success_at for s in flow_statuses(conn, world.channel.id) if s.flow is flow)


def _set_state(world: World, state: str) -> None:
    with world.engine.begin() as conn:
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state=state)
        )
        world.channel = get_channel_by_id(conn, world.tenant_id, world.channel.id)


def test_a_run_skipped_in_setup_is_not_a_success(world: World) -> None:
    _set_state(world, "setup")
    job_id = world.enqueue("orders.poll", flow=Flow.ORDERS.value)
    world.run()
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(jobs.c.state, jobs.c.result).where(jobs.c.id == job_id)).one()
    assert row.state == "succeeded" and "is in setup" in row.result["skipped"]
    assert _last_success(world, Flow.ORDERS) is None
    # Once it runs, the same flow's success is recorded.
    _set_state(world, "testing")
    world.enqueue("orders.poll", flow=Flow.ORDERS.value)
    world.run()
    assert _last_success(world, Flow.ORDERS) == world.clock()


def test_flows_paused_and_resumed_by_the_credentials_are_in_the_history(world: World) -> None:
    """Every change of a live channel's flows is audited: the pause when the marketplace rejects the
    credentials (actor ``system``, why), once, and the resume when the check passes again (who)."""
    with world.engine.begin() as conn:
        channel_service.credentials_rejected(
            conn, world.channel, host="mirakl.example", reason="401 Unauthorized", now=world.clock()
        )
        channel_service.credentials_rejected(  # the next job's rejection pauses nothing more
            conn, world.channel, host="mirakl.example", reason="401 Unauthorized", now=world.clock()
        )
        fixed = channel_service.credentials_accepted(conn, world.channel, actor="cli:ops", now=world.clock())
        events = audit.history(conn, world.channel.id, prefix="flow.")
    flows = sorted(f.value for f in fixed.resumed)
    assert flows and flows == sorted(f.value for f in Flow)
    assert [(e.actor, e.action, e.reason) for e in events] == [
        ("system", "flow.pause", "credentials rejected by mirakl.example: 401 Unauthorized"),
        ("cli:ops", "flow.resume", "credentials accepted again (the channel check passed)"),
    ]
    assert events[0].details == {"flows": flows, "pause_reason": "auth"}
    assert events[1].details == {"flows": flows, "pause_reason": "auth"}


def test_removing_a_channel_is_in_its_history(world: World) -> None:
    world.add_products(catalog(2))
    with world.engine.begin() as conn:
        done = channel_service.remove_channel(
            conn, world.channel, actor="cli:ops", now=world.clock(), reason="shop closed"
        )
        [event] = audit.history(conn, world.channel.id, prefix="channel.")
    assert (event.actor, event.action, event.reason, event.at) == (
        "cli:ops",
        "channel.remove",
        "shop closed",
        world.clock(),
    )
    assert event.details == {
        "from": "live",
        "to": "disabled",
        "archived_as": done.archived_as,
        "orders_kept": 0,
        "offer_bindings_deleted": 2,
        "jobs_cancelled": done.jobs_cancelled,
    }
