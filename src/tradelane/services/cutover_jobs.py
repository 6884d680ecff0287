"""The engine's side of a cutover: the ``cutover.advance`` job, so a cutover started from the API or the
dashboard keeps going while a step waits (outstanding orders, imports, the initial sync, the live test
order) without anyone calling ``run`` again.

:func:`follow` queues the next look (at most one pending per channel, ``dedupe_key``) after a call of
:func:`~tradelane.services.cutover.advance` or :func:`~tradelane.services.cutover.revert` left the
cutover waiting or reverting — never while step 1 waits for the operator's confirmation (only a person
gives it), at the scheduled date when step 1 waits for it. The job calls ``advance`` (or ``revert``)
once, as actor :data:`~tradelane.services.audit.SYSTEM`, and follows again. The CLI's ``run`` does the
same in its own process; only one works on the cutover at a time (its claim,
:func:`~tradelane.services.cutover.claim`): a job that finds another run at work does nothing and
looks again :data:`POLL_SECONDS` later (or when that run's claim lapses, if sooner).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import PermanentError
from tradelane.persistence.tables import cutovers
from tradelane.services import audit, cutover
from tradelane.services.channels import get_channel_by_id
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry

KIND = "cutover.advance"
#: Seconds between two looks at a waiting cutover.
POLL_SECONDS = 15.0


def follow(conn: Connection, found: cutover.Cutover, *, now: datetime) -> int | None:
    """Queue the next look at ``found`` if it waits on something that moves by itself; the job id."""
    if found.status == cutover.REVERTING:
        run_at = now + timedelta(seconds=POLL_SECONDS)
    elif found.status == cutover.WAITING:
        if found.step == 1 and found.confirmed_at is None:
            return None  # waits for a person's confirmation
        run_at = max(found.scheduled_at, now + timedelta(seconds=POLL_SECONDS))
    else:
        return None
    queued = enqueue(
        conn,
        JobSpec(
            tenant_id=found.tenant_id,
            kind=KIND,
            payload={"cutover_id": found.id},
            channel_id=found.channel_id,
            dedupe_key=f"{KIND}:{found.channel_id}",
            run_at=run_at,
        ),
        now=now,
    )
    return queued.job_id


def look_again(conn: Connection, found: cutover.Cutover, *, now: datetime, after: float) -> int:
    """Queue a look at ``found`` in ``after`` seconds, whatever it waits on (another run held it)."""
    return enqueue(
        conn,
        JobSpec(
            tenant_id=found.tenant_id,
            kind=KIND,
            payload={"cutover_id": found.id},
            channel_id=found.channel_id,
            dedupe_key=f"{KIND}:{found.channel_id}",
            run_at=now + timedelta(seconds=max(after, 1.0)),
        ),
        now=now,
    ).job_id


def advance_job(ctx: JobContext) -> dict[str, Any]:
    """``cutover.advance``: one ``advance`` (or ``revert`` step) of the job's cutover, then follow."""
    cutover_id = int(ctx.job.payload["cutover_id"])
    with ctx.engine.connect() as conn:
        row = conn.execute(
            sa.select(cutovers.c.channel_id, cutovers.c.status).where(cutovers.c.id == cutover_id)
        ).first()
        if row is None:
            raise PermanentError(f"cutover {cutover_id} does not exist")
        channel = get_channel_by_id(conn, ctx.job.tenant_id, row.channel_id)
        latest = cutover.current(conn, channel.id)
    if latest is None or latest.id != cutover_id:
        return {"skipped": f"cutover {cutover_id} is no longer the channel's"}
    deps = cutover.Deps(
        engine=ctx.engine, clock=ctx.clock, keyring=ctx.services["keyring"], actor=audit.SYSTEM
    )
    try:
        if latest.status == cutover.REVERTING:
            found = cutover.revert(deps, channel)
        elif latest.status in (cutover.WAITING, cutover.ACTIVE):
            found = cutover.advance(deps, channel)
        else:
            return {"status": latest.status, "step": latest.step}
    except cutover.CutoverBusy as busy:
        with ctx.transaction() as conn:
            job_id = look_again(conn, latest, now=ctx.now(), after=min(POLL_SECONDS, busy.retry_after))
            result = {"busy": str(busy), "next_look": job_id}
            ctx.complete_in(conn, result)
        return result
    with ctx.transaction() as conn:
        follow(conn, found, now=ctx.now())
        result = {"status": found.status, "step": found.step}
        ctx.complete_in(conn, result)
    return result


def register(registry: JobRegistry) -> None:
    registry.register(KIND, advance_job)
