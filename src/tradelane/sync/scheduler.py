"""Periodic work per (channel, flow), inside the engine (not cron).

Each enabled, unpaused flow with a frequency has ``next_run_at``; any worker that finds it due moves
it forward and enqueues the flow's job with a dedupe key, so several workers produce one pending job.
A channel in Setup sends nothing: its flows are not scheduled (they run once it is activated).

The same pass queues :data:`LIFECYCLE_DUE` for each channel whose testing period has ended
(``services.channel_lifecycle`` handles it: promotion to Live, or an alert saying why not).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.channels import Flow
from tradelane.persistence.db import is_postgres
from tradelane.persistence.tables import channel_flows, channels
from tradelane.sync.jobs import JobSpec, enqueue

#: The job kind that performs one scheduled run of a flow.
FLOW_JOB_KINDS: dict[str, str] = {
    Flow.OFFERS.value: "offers.delta",
    Flow.ORDERS.value: "orders.poll",
    Flow.RECONCILER.value: "reconciler.run",
    Flow.FULFILLMENTS.value: "fulfillments.flush",
}

#: The job kind that ends a channel's testing period (queued by :func:`enqueue_due`).
LIFECYCLE_DUE = "lifecycle.end_testing"
#: ``channels.lifecycle_state`` of channels whose flows are never scheduled.
_SETUP = "setup"


def enqueue_due(conn: Connection, *, now: datetime, known_kinds: set[str]) -> int:
    """Enqueue the job of every due flow whose kind has a handler; returns how many were due."""
    stmt = (
        sa.select(
            channel_flows.c.channel_id,
            channel_flows.c.flow,
            channel_flows.c.frequency_seconds,
            channels.c.tenant_id,
        )
        .join(channels, channels.c.id == channel_flows.c.channel_id)
        .where(
            channel_flows.c.enabled.is_(True),
            channel_flows.c.paused.is_(False),
            channel_flows.c.frequency_seconds.is_not(None),
            channel_flows.c.next_run_at <= now,
            channels.c.lifecycle_state != _SETUP,
        )
        .limit(500)
    )
    if is_postgres(conn):
        stmt = stmt.with_for_update(of=channel_flows, skip_locked=True)
    due = conn.execute(stmt).all()
    for row in due:
        conn.execute(
            sa.update(channel_flows)
            .where(channel_flows.c.channel_id == row.channel_id, channel_flows.c.flow == row.flow)
            .values(next_run_at=now + timedelta(seconds=row.frequency_seconds), last_run_at=now)
        )
        kind = FLOW_JOB_KINDS.get(row.flow)
        if kind is None or kind not in known_kinds:
            continue
        enqueue(
            conn,
            JobSpec(
                tenant_id=row.tenant_id,
                kind=kind,
                payload={"scheduled": True},
                channel_id=row.channel_id,
                flow=row.flow,
                dedupe_key=f"{kind}:{row.channel_id}",
            ),
            now=now,
        )
    if LIFECYCLE_DUE in known_kinds:
        _enqueue_testing_ends(conn, now=now)
    return len(due)


def _enqueue_testing_ends(conn: Connection, *, now: datetime) -> None:
    """Queue :data:`LIFECYCLE_DUE` (deduplicated) for every channel in Testing whose period ended and
    whose last blocked promotion, if any, is due for another try."""
    due = conn.execute(
        sa.select(channels.c.id, channels.c.tenant_id)
        .where(
            channels.c.lifecycle_state == "testing",
            channels.c.testing_ends_at <= now,
            channels.c.removed_at.is_(None),
            sa.or_(channels.c.promotion_check_at.is_(None), channels.c.promotion_check_at <= now),
        )
        .limit(100)
    ).all()
    for row in due:
        enqueue(
            conn,
            JobSpec(
                tenant_id=row.tenant_id,
                kind=LIFECYCLE_DUE,
                payload={},
                channel_id=row.id,
                dedupe_key=f"{LIFECYCLE_DUE}:{row.id}",
            ),
            now=now,
        )


#: A job result carrying this key (true) says that the job's flow did not run at all — its channel is in
#: Setup or disabled, say: the job is completed, but it is not a success of the flow (the flow's last
#: success and last error stay as they are).
FLOW_NOT_RUN = "flow_not_run"


def flow_ran(result: Mapping[str, Any] | None) -> bool:
    """Whether a completed job's ``result`` counts as a run of its flow (see :data:`FLOW_NOT_RUN`)."""
    return not (result and result.get(FLOW_NOT_RUN))


def record_flow_result(
    conn: Connection, channel_id: int, flow: str, *, now: datetime, error: str | None
) -> None:
    """Remember the last success (or error) of a flow for the operator views. A job whose flow did not
    run (:func:`flow_ran`) is recorded neither way: the caller does not call this for it."""
    values: dict[str, object] = {"last_error": error}
    if error is None:
        values["last_success_at"] = now
    conn.execute(
        sa.update(channel_flows)
        .where(channel_flows.c.channel_id == channel_id, channel_flows.c.flow == flow)
        .values(**values)
    )
