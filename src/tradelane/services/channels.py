"""Channels: creation (with their flows and offer bindings), lookup, pause/resume per flow, manual runs,
credential health (alert and pause on rejected credentials, resume once fixed) and removal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.channels import DEFAULT_FREQUENCIES, MIN_FREQUENCY_SECONDS, Flow, LifecycleState
from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import (
    alerts,
    channel_flows,
    channels,
    jobs,
    offer_bindings,
    orders,
    products,
)
from tradelane.security.crypto import KeyRing
from tradelane.services import audit
from tradelane.services.offers import OFFERS_FULL
from tradelane.sync.jobs import ErrorKind, JobSpec, JobState, enqueue, replay
from tradelane.sync.scheduler import FLOW_JOB_KINDS

#: ``channel_flows.pause_reason`` of flows paused because the marketplace rejected the credentials.
AUTH_PAUSE = "auth"
#: ``channel_flows.pause_reason`` of the flows of a removed channel.
REMOVED_PAUSE = "removed"
#: ``alerts.kind`` of a channel whose credentials were rejected.
CREDENTIALS_ALERT = "channel_credentials"


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    tenant_id: int
    name: str
    connector: str
    lifecycle_state: str
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlowStatus:
    flow: Flow
    enabled: bool
    paused: bool
    frequency_seconds: int | None
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    #: Why the flow is paused: None (the operator) or :data:`AUTH_PAUSE` (credentials rejected).
    pause_reason: str | None = None


def _row_to_channel(row: Any) -> Channel:
    return Channel(row.id, row.tenant_id, row.name, row.connector, row.lifecycle_state, dict(row.settings))


def create_channel(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    connector: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    keyring: KeyRing,
    now: datetime,
    frequencies: dict[Flow, int | None] | None = None,
) -> Channel:
    """Create a channel, in Setup (nothing is sent before ``channel_lifecycle.activate``), with every
    flow row (all on but the reconciler, switched on through its dry run), and bind all the tenant's
    products to it (dirty, so the first offers sync publishes them)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("channel name must be 1-100 characters")
    freqs = {**DEFAULT_FREQUENCIES, **(frequencies or {})}
    for flow, seconds in freqs.items():
        if seconds is not None and seconds < MIN_FREQUENCY_SECONDS:
            raise ValidationError(f"{flow.value} frequency below the {MIN_FREQUENCY_SECONDS}s floor")
    try:
        with conn.begin_nested():
            channel_id = conn.execute(
                sa.insert(channels)
                .values(
                    tenant_id=tenant_id,
                    name=name,
                    connector=connector,
                    settings=settings,
                    credentials=keyring.encrypt(credentials) if credentials is not None else None,
                    created_at=now,
                )
                .returning(channels.c.id)
            ).scalar_one()
    except sa.exc.IntegrityError:
        raise ConflictError(f"channel {name!r} already exists") from None
    conn.execute(
        sa.insert(channel_flows),
        [
            {
                "channel_id": channel_id,
                "flow": flow.value,
                # The reconciler removes listings: it is switched on only through its dry run.
                "enabled": flow is not Flow.RECONCILER,
                "frequency_seconds": seconds,
                "next_run_at": now if seconds is not None else None,
            }
            for flow, seconds in freqs.items()
        ],
    )
    conn.execute(
        sa.insert(offer_bindings).from_select(
            ["tenant_id", "channel_id", "product_id", "dirty", "dirty_since"],
            sa.select(
                products.c.tenant_id,
                sa.literal(channel_id),
                products.c.id,
                sa.true(),
                sa.literal(now, type_=offer_bindings.c.dirty_since.type),
            ).where(products.c.tenant_id == tenant_id),
        )
    )
    return get_channel_by_id(conn, tenant_id, channel_id)


def get_channel(conn: Connection, tenant_id: int, name: str) -> Channel:
    """The tenant's channel called ``name`` (removed channels are not found by name)."""
    row = conn.execute(
        sa.select(channels).where(
            channels.c.tenant_id == tenant_id, channels.c.name == name, channels.c.removed_at.is_(None)
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no channel named {name!r}")
    return _row_to_channel(row)


def get_channel_by_id(conn: Connection, tenant_id: int, channel_id: int) -> Channel:
    row = conn.execute(
        sa.select(channels).where(channels.c.tenant_id == tenant_id, channels.c.id == channel_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no channel with id {channel_id}")
    return _row_to_channel(row)


def list_channels(conn: Connection, tenant_id: int) -> list[Channel]:
    rows = conn.execute(
        sa.select(channels)
        .where(channels.c.tenant_id == tenant_id, channels.c.removed_at.is_(None))
        .order_by(channels.c.name)
    )
    return [_row_to_channel(r) for r in rows]


def channel_credentials(conn: Connection, channel: Channel, keyring: KeyRing) -> dict[str, Any]:
    token = conn.execute(sa.select(channels.c.credentials).where(channels.c.id == channel.id)).scalar_one()
    return keyring.decrypt(token) if token is not None else {}


def update_channel_config(
    conn: Connection,
    channel: Channel,
    *,
    settings: dict[str, Any],
    credentials: dict[str, Any],
    keyring: KeyRing,
) -> Channel:
    """Store new (already validated) settings and credentials; the credentials are encrypted anew."""
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel.id)
        .values(settings=settings, credentials=keyring.encrypt(credentials))
    )
    return get_channel_by_id(conn, channel.tenant_id, channel.id)


def flow_statuses(conn: Connection, channel_id: int) -> list[FlowStatus]:
    rows = conn.execute(
        sa.select(channel_flows)
        .where(channel_flows.c.channel_id == channel_id)
        .order_by(channel_flows.c.flow)
    )
    return [
        FlowStatus(
            Flow(r.flow),
            r.enabled,
            r.paused,
            r.frequency_seconds,
            r.next_run_at,
            r.last_run_at,
            r.last_success_at,
            r.last_error,
            r.pause_reason if r.paused else None,
        )
        for r in rows
    ]


def set_paused(conn: Connection, channel: Channel, flows: Iterable[Flow] | None, paused: bool) -> list[Flow]:
    """Pause (or resume) the given flows of a channel, or all of them when ``flows`` is None.

    Paused flows keep their queued jobs; workers simply do not claim them until resumed. An operator's
    pause or resume clears the pause reason (a flow the operator paused stays paused after
    :func:`credentials_accepted`)."""
    stmt = sa.update(channel_flows).where(channel_flows.c.channel_id == channel.id)
    selected = list(flows) if flows is not None else list(Flow)
    stmt = stmt.where(channel_flows.c.flow.in_([f.value for f in selected])).values(
        paused=paused, pause_reason=None
    )
    conn.execute(stmt)
    return selected


def set_enabled(conn: Connection, channel: Channel, flow: Flow, enabled: bool) -> None:
    conn.execute(
        sa.update(channel_flows)
        .where(channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value)
        .values(enabled=enabled)
    )


def set_frequency(conn: Connection, channel: Channel, flow: Flow, seconds: int | None, now: datetime) -> None:
    if seconds is not None and seconds < MIN_FREQUENCY_SECONDS:
        raise ValidationError(f"frequency below the {MIN_FREQUENCY_SECONDS}s floor")
    conn.execute(
        sa.update(channel_flows)
        .where(channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value)
        .values(frequency_seconds=seconds, next_run_at=now if seconds is not None else None)
    )


def set_lifecycle(conn: Connection, channel: Channel, state: LifecycleState) -> None:
    """Move a channel through setup -> testing (flows use the staging account) -> live; disabled
    channels keep their data but their jobs are skipped."""
    conn.execute(sa.update(channels).where(channels.c.id == channel.id).values(lifecycle_state=state.value))


# --- manual runs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManualRun:
    """The answer to "run FLOW now": the job, whether it is new, and when it will run.

    ``held_until``/``hold_reason``: the pending job is held by a rate limit (a ``Retry-After`` from the
    marketplace, or the channel's own budget) that a manual run does not override. ``paused``: the flow
    is paused (``pause_reason`` says why), so the job waits for a resume."""

    job_id: int
    kind: str
    created: bool
    run_at: datetime
    held_until: datetime | None = None
    hold_reason: str | None = None
    paused: bool = False
    pause_reason: str | None = None
    #: A full sync of the channel is already running: it is the answer (no second one is queued).
    running: bool = False

    def message(self) -> str:
        if self.running:
            return f"{self.kind} job {self.job_id} already running (it sends every offer)"
        text = f"{self.kind} job {self.job_id} " + ("queued" if self.created else "already pending")
        if self.held_until is not None:
            text += (
                f"; held by a rate limit until {self.held_until:%H:%M:%S} UTC, not sooner"
                f" ({self.hold_reason or 'Retry-After'})"
            )
        elif not self.created:
            text += "; due now"
        if self.paused:
            why = "credentials rejected" if self.pause_reason == AUTH_PAUSE else "paused by an operator"
            text += f"; the flow is paused ({why}): it runs once resumed"
        return text


def manual_job_kind(flow: Flow, *, full: bool) -> str:
    """The job a manual run of ``flow`` enqueues (``offers.full`` for a full offer sync)."""
    return OFFERS_FULL if full and flow is Flow.OFFERS else FLOW_JOB_KINDS[flow.value]


def run_flow_now(conn: Connection, channel: Channel, flow: Flow, *, full: bool, now: datetime) -> ManualRun:
    """Enqueue ``flow`` of ``channel`` to run now (coalesced with its pending job, if any).

    A pending job waiting out a retry backoff is brought forward to ``now``; one held by a rate limit
    (error kind ``throttled``: the marketplace's ``Retry-After`` or the channel's own budget) keeps its
    time — the answer says until when. A full offer sync asked for while one is running is that one
    (it reads and sends every offer). The caller checks that the kind has a handler."""
    kind = manual_job_kind(flow, full=full)
    if kind == OFFERS_FULL:
        running = conn.execute(
            sa.select(jobs.c.id, jobs.c.run_at).where(
                jobs.c.channel_id == channel.id,
                jobs.c.kind == OFFERS_FULL,
                jobs.c.state == JobState.RUNNING.value,
            )
        ).first()
        if running is not None:
            return ManualRun(running.id, kind, False, running.run_at, running=True)
    result = enqueue(
        conn,
        JobSpec(
            tenant_id=channel.tenant_id,
            kind=kind,
            payload={"manual": True},
            channel_id=channel.id,
            flow=flow.value,
            dedupe_key=f"{kind}:{channel.id}",
        ),
        now=now,
    )
    job = conn.execute(
        sa.select(jobs.c.state, jobs.c.run_at, jobs.c.error_kind, jobs.c.last_error).where(
            jobs.c.id == result.job_id
        )
    ).one()
    run_at = job.run_at
    held_until = hold_reason = None
    if job.state == JobState.QUEUED.value and run_at > now:
        if job.error_kind == ErrorKind.THROTTLED.value:
            held_until, hold_reason = run_at, job.last_error
        else:
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == result.job_id, jobs.c.state == JobState.QUEUED.value)
                .values(run_at=now, updated_at=now)
            )
            run_at = now
    status = conn.execute(
        sa.select(channel_flows.c.paused, channel_flows.c.pause_reason).where(
            channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value
        )
    ).first()
    paused = bool(status and status.paused)
    return ManualRun(
        result.job_id,
        kind,
        result.created,
        run_at,
        held_until,
        hold_reason,
        paused,
        status.pause_reason if status is not None and paused else None,
    )


# --- credential health ------------------------------------------------------------------------------


#: Audit actions of a flow paused or resumed (by an operator, ``channel_lifecycle.pause``, or by the
#: credentials' rejection and acceptance here).
FLOW_PAUSE = "flow.pause"
FLOW_RESUME = "flow.resume"


def credentials_alert_key(channel_id: int) -> str:
    return f"channel:{channel_id}:credentials"


def credentials_rejected(
    conn: Connection, channel: Channel, *, host: str | None, reason: str, now: datetime
) -> str:
    """The marketplace rejected the channel's credentials: raise (or re-open) the channel's credentials
    alert and pause every unpaused flow with reason :data:`AUTH_PAUSE` (their queued jobs wait; flows an
    operator paused keep their own reason). Returns the alert message."""
    message = (
        f"{channel.name}: credentials rejected by {host or 'the marketplace'}: {reason}. Every flow of "
        f"the channel is paused; fix them with `tradelane channel update {channel.name} --api-key ...`."
    )
    inserted = conn.execute(
        insert_ignore(conn, alerts)
        .values(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            kind=CREDENTIALS_ALERT,
            key=credentials_alert_key(channel.id),
            severity="error",
            message=message,
            created_at=now,
        )
        .returning(alerts.c.id)
    ).scalar()
    if inserted is None:  # raised before: re-open it (a resolved one) with the latest message
        conn.execute(
            sa.update(alerts)
            .where(alerts.c.tenant_id == channel.tenant_id, alerts.c.key == credentials_alert_key(channel.id))
            .values(
                message=message,
                resolved_at=None,
                created_at=sa.case((alerts.c.resolved_at.is_(None), alerts.c.created_at), else_=now),
            )
        )
    paused = [
        Flow(r.flow)
        for r in conn.execute(
            sa.update(channel_flows)
            .where(channel_flows.c.channel_id == channel.id, channel_flows.c.paused.is_(False))
            .values(paused=True, pause_reason=AUTH_PAUSE)
            .returning(channel_flows.c.flow)
        )
    ]
    if paused:  # the flows it paused now: an earlier rejection's are not recorded twice
        audit.record(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            actor=audit.SYSTEM,
            action=FLOW_PAUSE,
            now=now,
            reason=f"credentials rejected by {host or 'the marketplace'}: {reason}",
            details={"flows": sorted(f.value for f in paused), "pause_reason": AUTH_PAUSE},
        )
    return message


def credentials_alert(conn: Connection, channel: Channel) -> str | None:
    """The open credentials alert's message of the channel, if any."""
    return conn.execute(
        sa.select(alerts.c.message).where(
            alerts.c.tenant_id == channel.tenant_id,
            alerts.c.key == credentials_alert_key(channel.id),
            alerts.c.resolved_at.is_(None),
        )
    ).scalar()


@dataclass(frozen=True, slots=True)
class CredentialsFixed:
    resumed: list[Flow]
    replayed_jobs: list[int]
    alert_resolved: bool


def credentials_accepted(
    conn: Connection, channel: Channel, *, actor: str, now: datetime
) -> CredentialsFixed:
    """The credentials work again (a successful check, made by ``actor``): resume the flows paused for
    :data:`AUTH_PAUSE` (audited ``flow.resume`` when there were any), re-queue the jobs dead-lettered by
    the rejection (error kind ``auth``) and resolve the alert. Flows paused by an operator stay
    paused."""
    resumed = [
        Flow(r.flow)
        for r in conn.execute(
            sa.update(channel_flows)
            .where(
                channel_flows.c.channel_id == channel.id,
                channel_flows.c.paused.is_(True),
                channel_flows.c.pause_reason == AUTH_PAUSE,
            )
            .values(paused=False, pause_reason=None)
            .returning(channel_flows.c.flow)
        )
    ]
    dead = [
        r.id
        for r in conn.execute(
            sa.select(jobs.c.id).where(
                jobs.c.channel_id == channel.id,
                jobs.c.state == JobState.DEAD.value,
                jobs.c.error_kind == ErrorKind.AUTH.value,
            )
        )
    ]
    if resumed:
        audit.record(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            actor=actor,
            action=FLOW_RESUME,
            now=now,
            reason="credentials accepted again (the channel check passed)",
            details={"flows": sorted(f.value for f in resumed), "pause_reason": AUTH_PAUSE},
        )
    replayed = replay(conn, channel.tenant_id, dead, now=now) if dead else []
    resolved = conn.execute(
        sa.update(alerts)
        .where(
            alerts.c.tenant_id == channel.tenant_id,
            alerts.c.key == credentials_alert_key(channel.id),
            alerts.c.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )
    return CredentialsFixed(sorted(resumed), replayed, bool(resolved.rowcount))


# --- removal ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRemoval:
    """What ``channel remove`` did (see :func:`remove_channel`)."""

    channel: str
    archived_as: str
    orders_kept: int
    offer_bindings_deleted: int
    jobs_cancelled: int


def _marketplace_jobs_pending(channel: Channel) -> tuple[sa.ColumnElement[bool], ...]:
    """Queued jobs of the channel's flows (marketplace calls). Merchant-side jobs of its orders (delivery
    to the OMS, cancellation notices: no flow) are not among them: they still run after a removal."""
    return (
        jobs.c.channel_id == channel.id,
        jobs.c.state == JobState.QUEUED.value,
        jobs.c.flow.is_not(None),
    )


def removal_preview(conn: Connection, channel: Channel) -> dict[str, int]:
    """What removing ``channel`` would touch: orders kept, offer bindings deleted, pending jobs cancelled."""

    def count(table: sa.Table, *cond: sa.ColumnElement[bool]) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*cond)).scalar_one())

    return {
        "orders": count(orders, orders.c.channel_id == channel.id),
        "offer_bindings": count(offer_bindings, offer_bindings.c.channel_id == channel.id),
        "pending_jobs": count(jobs, *_marketplace_jobs_pending(channel)),
    }


#: Audit action of a channel's removal.
REMOVE = "channel.remove"


def check_removal(conn: Connection, channel: Channel, reason: str | None) -> None:
    """:class:`ValidationError` when removing ``channel`` with ``reason`` is refused: a **live** channel
    is removed only with a reason ("every change of a live channel's status is audited: who, when,
    why"); in Setup or Testing the reason is optional. The CLI asks this before its confirmation."""
    state = conn.execute(
        sa.select(channels.c.lifecycle_state).where(channels.c.id == channel.id)
    ).scalar_one()
    if state == LifecycleState.LIVE.value and not (reason and reason.strip()):
        raise ValidationError(
            f"{channel.name} is live: removing it needs a reason (--reason TEXT, or ?reason= in the API; "
            "who, when and why are recorded)"
        )


def remove_channel(
    conn: Connection, channel: Channel, *, actor: str, now: datetime, reason: str | None = None
) -> ChannelRemoval:
    """Remove a channel from service, keeping its history; audited (``channel.remove``: ``actor``,
    ``reason``, the state it left and what was kept, deleted and cancelled) in ``conn``'s transaction.

    * its orders (with lines, versions, history, messages, returns, exchanges) are **kept**, read-only,
      for audit — the channel row stays, stamped ``removed_at``, renamed ``NAME (removed #ID)`` so the
      name can be used again, ``disabled``, with its flows off and paused;
    * its credentials are erased; its offer bindings (the listing outbox) are deleted, and the queued
      jobs of its flows (marketplace calls) are cancelled — a job already running finishes its call;
      merchant-side jobs of its orders (delivery to the OMS, cancellation notices) still run, so no
      order already taken in is dropped;
    * its listings on the marketplace are **not** deleted: do that on the marketplace if wanted.

    A live channel needs a ``reason`` (:func:`check_removal`; :class:`ValidationError`, nothing changed).
    """
    check_removal(conn, channel, reason)
    preview = removal_preview(conn, channel)
    was = conn.execute(sa.select(channels.c.lifecycle_state).where(channels.c.id == channel.id)).scalar_one()
    archived = f"{channel.name[:70]} (removed #{channel.id})"
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel.id, channels.c.removed_at.is_(None))
        .values(
            name=archived,
            removed_at=now,
            lifecycle_state=LifecycleState.DISABLED.value,
            credentials=None,
            staging_credentials=None,
        )
    )
    conn.execute(
        sa.update(channel_flows)
        .where(channel_flows.c.channel_id == channel.id)
        .values(enabled=False, paused=True, pause_reason=REMOVED_PAUSE, next_run_at=None)
    )
    deleted = conn.execute(sa.delete(offer_bindings).where(offer_bindings.c.channel_id == channel.id))
    cancelled = conn.execute(
        sa.update(jobs)
        .where(*_marketplace_jobs_pending(channel))
        .values(
            state=JobState.CANCELLED.value,
            last_error=f"channel {channel.name} removed",
            finished_at=now,
            updated_at=now,
        )
    )
    conn.execute(
        sa.update(alerts)
        .where(
            alerts.c.tenant_id == channel.tenant_id,
            alerts.c.key == credentials_alert_key(channel.id),
            alerts.c.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )
    done = ChannelRemoval(
        channel.name,
        archived,
        preview["orders"],
        int(deleted.rowcount or 0),
        int(cancelled.rowcount or 0),
    )
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=REMOVE,
        now=now,
        reason=reason,
        details={
            "from": was,
            "to": LifecycleState.DISABLED.value,
            "archived_as": archived,
            "orders_kept": done.orders_kept,
            "offer_bindings_deleted": done.offer_bindings_deleted,
            "jobs_cancelled": done.jobs_cancelled,
        },
    )
    return done
