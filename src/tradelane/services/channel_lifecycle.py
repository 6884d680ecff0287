"""A channel's lifecycle Setup -> Testing -> Live, and its flow switches; every change audited.

* **Setup** — a new channel: its credentials are checked, nothing is sent. The scheduler enqueues
  nothing for a channel in Setup and the job dispatcher completes any marketplace job of it without a
  call (``skipped``), so a catalog import or a manual run sends nothing either — except the read-only
  kinds (``connectors.dispatch.SETUP_READ_ONLY_KINDS``: the reconciler's dry run, the unique-ID
  match), which only read the listings and run, so that go-live is prepared in Setup.
* :func:`activate` ("Save and activate") — only from Setup and only with a passing credentials check
  (:func:`tradelane.connectors.registry.check_channel`, run by the caller *before* the transaction:
  it calls the marketplace): the channel moves to **Testing** for ``testing_days`` (default 30,
  per channel). In Testing the connector uses the staging/test account when the channel has one, and
  the flows can be switched on one at a time (:func:`set_flow`).
* :func:`promote` — Testing -> **Live**, explicitly or, once the testing period has ended, by the
  engine (:func:`end_testing`, the job :data:`~tradelane.sync.scheduler.LIFECYCLE_DUE` queued by the
  scheduler). Promotion is refused while :func:`go_live_blockers` reports any (unique-ID match
  conflicts) unless overridden with a reason (audited ``lifecycle.override``). Nothing goes Live
  silently: an automatic promotion is audited (actor ``system``), raises an info alert and notifies;
  a blocked one keeps Testing, raises a warning alert saying why and is tried again an hour later.
* :func:`set_testing_period` — change the length of the testing period while in Testing (audited, with
  a reason): the end is recomputed from its start; a period already over is promoted by the engine at
  its next check (blockers apply).
* :func:`set_state` — the bare ``channel state`` command, routed through the moves above (Setup and
  Disabled are reachable from any state; Testing means activate, Live means promote).
* :func:`set_flow` switches a flow on or off, :func:`pause` pauses or resumes flows.

The rules themselves (which move each state allows, the testing period, when a promotion is due) are
pure, in :mod:`tradelane.domain.lifecycle`.

Every change is recorded by :func:`tradelane.services.audit.record` in the caller's transaction. A
change of a **Live** channel needs a reason (who, when, *why*).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import Capabilities
from tradelane.connectors.registry import CONNECTORS, ChannelCheck, ConnectorSpec
from tradelane.domain.channels import Flow, LifecycleState
from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.domain.lifecycle import Move, end_of_testing, promotion_due, refusal
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import alerts, channel_flows, channels
from tradelane.services import audit, id_match_conflicts, notifications
from tradelane.services.channels import (
    FLOW_PAUSE,
    FLOW_RESUME,
    Channel,
    get_channel_by_id,
    set_enabled,
    set_paused,
)
from tradelane.sync.context import JobContext
from tradelane.sync.registry import JobRegistry
from tradelane.sync.scheduler import LIFECYCLE_DUE

#: A blocked automatic promotion is tried again this much later.
PROMOTION_RETRY = timedelta(hours=1)
#: ``alerts.kind`` of the go-live alerts (promoted automatically: info; blocked: warning).
GO_LIVE_ALERT = "channel_golive"

ACTIVATE = "lifecycle.activate"
PROMOTE = "lifecycle.promote"
OVERRIDE = "lifecycle.override"
PROMOTION_BLOCKED = "lifecycle.promote_blocked"
TO_SETUP = "lifecycle.setup"
DISABLE = "lifecycle.disable"
TESTING_PERIOD = "lifecycle.testing_period"
FLOW_ON = "flow.enable"
FLOW_OFF = "flow.disable"


class GoLiveBlocked(ConflictError):
    """Promotion refused: go-live blockers exist and no override reason was given."""

    def __init__(self, channel: Channel, blockers: list[str]) -> None:
        self.blockers = blockers
        super().__init__(
            f"{channel.name} cannot go live: " + "; ".join(blockers) + ". Resolve them (`tradelane channel "
            f"id-match {channel.name}` lists the conflicts: fix the catalog's parent SKU and match again, or "
            "accept ours with `--accept SKU|--accept-all --reason ...`), or override with a reason "
            f"(`tradelane channel promote {channel.name} --override-reason TEXT`)."
        )


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where a channel stands: its state and testing period."""

    state: LifecycleState
    testing_days: int
    testing_started_at: datetime | None
    testing_ends_at: datetime | None
    live_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "state": self.state.value,
            "testing_days": self.testing_days,
            "testing_started_at": iso(self.testing_started_at),
            "testing_ends_at": iso(self.testing_ends_at),
            "live_at": iso(self.live_at),
        }


def lifecycle(conn: Connection, channel: Channel) -> Lifecycle:
    row = conn.execute(
        sa.select(
            channels.c.lifecycle_state,
            channels.c.testing_days,
            channels.c.testing_started_at,
            channels.c.testing_ends_at,
            channels.c.live_at,
        ).where(channels.c.id == channel.id)
    ).one()
    return Lifecycle(
        LifecycleState(row.lifecycle_state),
        row.testing_days,
        row.testing_started_at,
        row.testing_ends_at,
        row.live_at,
    )


def _state(conn: Connection, channel: Channel) -> LifecycleState:
    """The state as stored now (``channel`` may have been read before another change)."""
    return LifecycleState(
        conn.execute(sa.select(channels.c.lifecycle_state).where(channels.c.id == channel.id)).scalar_one()
    )


def _require_reason(state: LifecycleState, reason: str | None, what: str) -> None:
    if state is LifecycleState.LIVE and not (reason and reason.strip()):
        raise ValidationError(f"{what} of a live channel needs a reason (who, when and why are recorded)")


# --- moves ------------------------------------------------------------------------------------------


def activate(
    conn: Connection,
    channel: Channel,
    *,
    checked: ChannelCheck,
    actor: str,
    now: datetime,
    testing_days: int | None = None,
    reason: str | None = None,
) -> Lifecycle:
    """ "Save and activate": Setup -> Testing for ``testing_days`` (default: the channel's, 30 unless
    changed), given the credentials check's result ``checked`` (refused with its message when it
    failed). :class:`ConflictError` unless the channel is in Setup."""
    state = _state(conn, channel)
    refused = refusal(channel.name, state, Move.ACTIVATE)
    if refused:
        raise ConflictError(refused)
    if not checked.ok:
        raise ValidationError(
            f"{channel.name} stays in setup: the credentials check failed: {checked.message}"
        )
    if testing_days is None:
        testing_days = lifecycle(conn, channel).testing_days
    try:
        ends = end_of_testing(now, testing_days)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel.id)
        .values(
            lifecycle_state=LifecycleState.TESTING.value,
            testing_days=testing_days,
            testing_started_at=now,
            testing_ends_at=ends,
            promotion_check_at=None,
        )
    )
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=ACTIVATE,
        now=now,
        reason=reason,
        details={
            "from": state.value,
            "to": LifecycleState.TESTING.value,
            "testing_days": testing_days,
            "testing_ends_at": ends.isoformat(),
            "check": checked.message,
        },
    )
    return lifecycle(conn, channel)


def go_live_blockers(conn: Connection, channel: Channel) -> list[str]:
    """Why ``channel`` may not go live now (empty: it may): the unresolved conflicts (same ID,
    conflicting grouping) of its latest unique-ID match, naming their SKUs
    (``id_match_conflicts.unresolved``: conflicts the operator accepted are resolved)."""
    conflicts = id_match_conflicts.unresolved(conn, channel.id)
    if not conflicts:
        return []
    skus = sorted({c.sku for c in conflicts})
    shown = ", ".join(skus[:5]) + (f" and {len(skus) - 5} more" if len(skus) > 5 else "")
    return [
        f"{len(conflicts)} unique-ID match conflict(s) unresolved (same ID, conflicting grouping): {shown}"
    ]


def promote(
    conn: Connection,
    channel: Channel,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    override_reason: str | None = None,
) -> Lifecycle:
    """Testing -> Live, audited and notified. :class:`GoLiveBlocked` while :func:`go_live_blockers`
    reports any, unless ``override_reason`` is given (then audited as ``lifecycle.override`` with the
    blockers). :class:`ConflictError` unless the channel is in Testing."""
    refused = refusal(channel.name, _state(conn, channel), Move.PROMOTE)
    if refused:
        raise ConflictError(refused)
    blockers = go_live_blockers(conn, channel)
    overridden = bool(blockers) and bool(override_reason and override_reason.strip())
    if blockers and not overridden:
        raise GoLiveBlocked(channel, blockers)
    if overridden:
        audit.record(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            actor=actor,
            action=OVERRIDE,
            now=now,
            reason=override_reason,
            details={"blockers": blockers},
        )
    _go_live(conn, channel, actor=actor, now=now, reason=reason or override_reason, automatic=False)
    message = f"{channel.name} went live, promoted by {actor}" + (
        f" despite {'; '.join(blockers)} (override: {override_reason})" if overridden else ""
    )
    _notify(conn, channel, event="golive.done", subject=message, body=message, now=now)
    return lifecycle(conn, channel)


def _go_live(
    conn: Connection, channel: Channel, *, actor: str, now: datetime, reason: str | None, automatic: bool
) -> None:
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel.id)
        .values(lifecycle_state=LifecycleState.LIVE.value, live_at=now, promotion_check_at=None)
    )
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=PROMOTE,
        now=now,
        reason=reason,
        details={
            "from": LifecycleState.TESTING.value,
            "to": LifecycleState.LIVE.value,
            "automatic": automatic,
        },
    )
    _resolve_alert(conn, channel, blocked=True, now=now)


def set_testing_period(
    conn: Connection, channel: Channel, testing_days: int, *, actor: str, now: datetime, reason: str | None
) -> Lifecycle:
    """Change the testing period of a channel in Testing to ``testing_days`` (1..365), audited
    (``lifecycle.testing_period``, with the old and new period) — a reason is required: the period
    decides when the channel goes live. The end is recomputed from the period's start (not from now).

    A period that is then already over is promoted by the engine at its next check (the scheduler's
    :data:`~tradelane.sync.scheduler.LIFECYCLE_DUE`; go-live blockers apply as always): a pending
    retry of a blocked promotion is reset so that the next check happens at once. A period extended
    past now resolves the "stays in testing" alert of a blocked promotion. :class:`ConflictError`
    unless the channel is in Testing; :class:`ValidationError` for a period out of range or no reason.
    A change to the current period records nothing."""
    view = lifecycle(conn, channel)
    if view.state is not LifecycleState.TESTING or view.testing_started_at is None:
        setup = view.state is LifecycleState.SETUP
        raise ConflictError(
            f"{channel.name} is {view.state.value}: only a channel in testing has a testing period to "
            "change" + (" (activate it with `--testing-days N`)" if setup else "")
        )
    try:
        ends = end_of_testing(view.testing_started_at, testing_days)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    if testing_days == view.testing_days and ends == view.testing_ends_at:
        return view
    if not (reason and reason.strip()):
        raise ValidationError(
            f"changing the testing period of {channel.name} needs a reason (it decides when the channel "
            "goes live)"
        )
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel.id)
        .values(testing_days=testing_days, testing_ends_at=ends, promotion_check_at=None)
    )
    if ends > now:
        _resolve_alert(conn, channel, blocked=True, now=now)
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=TESTING_PERIOD,
        now=now,
        reason=reason,
        details={
            "from_days": view.testing_days,
            "to_days": testing_days,
            "testing_started_at": view.testing_started_at.isoformat(),
            "testing_ends_at": ends.isoformat(),
            "already_over": ends <= now,
        },
    )
    return lifecycle(conn, channel)


def set_state(
    conn: Connection,
    channel: Channel,
    target: LifecycleState,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    checked: ChannelCheck | None = None,
    override_reason: str | None = None,
) -> Lifecycle:
    """Move to ``target``: Testing = :func:`activate` (needs ``checked``), Live = :func:`promote`;
    Setup (sends nothing again) and Disabled (jobs skipped) from any other state, audited."""
    if target is LifecycleState.TESTING:
        if checked is None:
            raise ValidationError("moving to testing checks the credentials first (`channel activate`)")
        return activate(conn, channel, checked=checked, actor=actor, now=now, reason=reason)
    if target is LifecycleState.LIVE:
        return promote(conn, channel, actor=actor, now=now, reason=reason, override_reason=override_reason)
    state = _state(conn, channel)
    if state is target:
        return lifecycle(conn, channel)
    _require_reason(state, reason, f"moving to {target.value}")
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel.id)
        .values(lifecycle_state=target.value, testing_ends_at=None, promotion_check_at=None)
    )
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=TO_SETUP if target is LifecycleState.SETUP else DISABLE,
        now=now,
        reason=reason,
        details={"from": state.value, "to": target.value},
    )
    _resolve_alert(conn, channel, blocked=True, now=now)
    return lifecycle(conn, channel)


# --- the end of the testing period (the engine) ----------------------------------------------------


def _alert_key(channel: Channel, *, blocked: bool) -> str:
    return f"channel:{channel.id}:golive:{'blocked' if blocked else 'live'}"


def _raise_alert(conn: Connection, channel: Channel, *, blocked: bool, message: str, now: datetime) -> bool:
    """Raise (or re-open with ``message``) the channel's go-live alert; True when newly raised."""
    key = _alert_key(channel, blocked=blocked)
    inserted = conn.execute(
        insert_ignore(conn, alerts)
        .values(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            kind=GO_LIVE_ALERT,
            key=key,
            severity="warning" if blocked else "info",
            message=message,
            created_at=now,
        )
        .returning(alerts.c.id)
    ).scalar()
    if inserted is not None:
        return True
    reopened = conn.execute(
        sa.update(alerts)
        .where(
            alerts.c.tenant_id == channel.tenant_id, alerts.c.key == key, alerts.c.resolved_at.is_not(None)
        )
        .values(message=message, resolved_at=None, created_at=now)
    ).rowcount
    if not reopened:  # still open: keep it, with the latest message
        conn.execute(
            sa.update(alerts)
            .where(alerts.c.tenant_id == channel.tenant_id, alerts.c.key == key)
            .values(message=message)
        )
    return bool(reopened)


def _resolve_alert(conn: Connection, channel: Channel, *, blocked: bool, now: datetime) -> None:
    conn.execute(
        sa.update(alerts)
        .where(
            alerts.c.tenant_id == channel.tenant_id,
            alerts.c.key == _alert_key(channel, blocked=blocked),
            alerts.c.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )


def go_live_alert(conn: Connection, channel: Channel) -> tuple[str, str] | None:
    """The channel's open go-live alert as (severity, message), if any."""
    row = conn.execute(
        sa.select(alerts.c.severity, alerts.c.message)
        .where(
            alerts.c.tenant_id == channel.tenant_id,
            alerts.c.channel_id == channel.id,
            alerts.c.kind == GO_LIVE_ALERT,
            alerts.c.resolved_at.is_(None),
        )
        .order_by(alerts.c.id.desc())
    ).first()
    return (row.severity, row.message) if row is not None else None


def _notify(
    conn: Connection, channel: Channel, *, event: str, subject: str, body: str, now: datetime
) -> None:
    """A notification to the tenant's (and channel's) destinations, in this transaction."""
    notifications.notify(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        event=event,
        subject=subject,
        body=body,
        details={"channel": channel.name},
        now=now,
    )


def end_testing(conn: Connection, channel: Channel, *, now: datetime) -> dict[str, Any]:
    """The engine's promotion of a channel whose testing period has ended (actor ``system``).

    Promoted: audited, an info alert and a notification say so. Blocked: the channel stays in Testing,
    a warning alert says why (audited and notified once, when first raised), and the promotion is tried
    again after :data:`PROMOTION_RETRY`. A channel no longer in Testing, or whose period was extended,
    is left alone."""
    view = lifecycle(conn, channel)
    if not promotion_due(view.state, view.testing_ends_at, None, now):
        return {"skipped": f"{channel.name} is {view.state.value}, not at the end of a testing period"}
    blockers = go_live_blockers(conn, channel)
    if blockers:
        message = (
            f"{channel.name} stays in testing: its testing period ended on {view.testing_ends_at:%Y-%m-%d} "
            f"but go-live is blocked: {'; '.join(blockers)}. Resolve them, or promote with "
            f"`tradelane channel promote {channel.name} --override-reason TEXT`."
        )
        conn.execute(
            sa.update(channels)
            .where(channels.c.id == channel.id)
            .values(promotion_check_at=now + PROMOTION_RETRY)
        )
        if _raise_alert(conn, channel, blocked=True, message=message, now=now):
            audit.record(
                conn,
                tenant_id=channel.tenant_id,
                channel_id=channel.id,
                actor=audit.SYSTEM,
                action=PROMOTION_BLOCKED,
                now=now,
                reason="testing period ended",
                details={"blockers": blockers},
            )
            _notify(conn, channel, event="golive.blocked", subject=message, body=message, now=now)
        return {"promoted": False, "blockers": blockers}
    _go_live(conn, channel, actor=audit.SYSTEM, now=now, reason="testing period ended", automatic=True)
    message = (
        f"{channel.name} went live automatically: its {view.testing_days}-day testing period ended on "
        f"{view.testing_ends_at:%Y-%m-%d %H:%M} UTC."
    )
    _raise_alert(conn, channel, blocked=False, message=message, now=now)
    _notify(conn, channel, event="golive.done", subject=message, body=message, now=now)
    return {"promoted": True}


def _end_testing_job(ctx: JobContext) -> dict[str, Any] | None:
    if ctx.job.channel_id is None:
        return {"skipped": "no channel"}
    with ctx.transaction() as conn:
        channel = get_channel_by_id(conn, ctx.job.tenant_id, ctx.job.channel_id)
        return end_testing(conn, channel, now=ctx.now())


def register(registry: JobRegistry) -> None:
    """The engine's job :data:`LIFECYCLE_DUE` (queued by the scheduler for each due channel)."""
    registry.register(LIFECYCLE_DUE, _end_testing_job)


# --- flows -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowChange:
    flow: Flow
    enabled: bool
    changed: bool


def channel_capabilities(
    channel: Channel, connectors: Mapping[str, ConnectorSpec] = CONNECTORS
) -> Capabilities | None:
    """What the channel's connector declares with its settings (None: a connector the registry does
    not know declares nothing)."""
    spec = connectors.get(channel.connector)
    return spec.channel_capabilities(channel.settings) if spec is not None else None


def set_flow(
    conn: Connection,
    channel: Channel,
    flow: Flow,
    enabled: bool,
    *,
    actor: str,
    reason: str | None,
    now: datetime,
    confirmed_dry_run: int | None = None,
    connectors: Mapping[str, ConnectorSpec] = CONNECTORS,
) -> FlowChange:
    """Switch one flow of the channel on or off, audited (``flow.enable`` / ``flow.disable``).

    Refused (:class:`ValidationError`, nothing changed): switching Fulfillments off on a connector that
    declares ``fulfilment_mandatory``; enabling the Reconciler without ``confirmed_dry_run`` (the id of
    the reconciler dry-run report the operator saw — the reconciler service verifies it and calls this);
    any change of a live channel without a reason. Switching Fulfillments off makes new orders Third
    Party Managed (imported, never updated back). A switch to the current value changes nothing and
    records nothing."""
    current = conn.execute(
        sa.select(channel_flows.c.enabled, channel_flows.c.frequency_seconds).where(
            channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value
        )
    ).first()
    if current is None:
        raise NotFoundError(f"{channel.name} has no {flow.value} flow")
    if bool(current.enabled) == enabled:
        return FlowChange(flow, enabled, False)
    if flow is Flow.FULFILLMENTS and not enabled:
        caps = channel_capabilities(channel, connectors)
        if caps is not None and caps.fulfilment_mandatory:
            raise ValidationError(
                f"connector {channel.connector!r} declares fulfilment mandatory: the Fulfillments flow of "
                f"{channel.name} cannot be switched off"
            )
    if flow is Flow.RECONCILER and enabled and confirmed_dry_run is None:
        raise ValidationError(
            f"the reconciler of {channel.name} is switched on only after its dry run: review what it would "
            f"remove (`tradelane channel reconcile {channel.name}` prints the report and its id), then "
            f"confirm that report (`tradelane channel reconcile {channel.name} --enable REPORT_ID`)"
        )
    _require_reason(
        _state(conn, channel), reason, f"switching the {flow.value} flow {'on' if enabled else 'off'}"
    )
    set_enabled(conn, channel, flow, enabled)
    if enabled and current.frequency_seconds is not None:
        conn.execute(
            sa.update(channel_flows)
            .where(channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value)
            .values(next_run_at=now)
        )
    details: dict[str, Any] = {"flow": flow.value, "enabled": enabled}
    if confirmed_dry_run is not None:
        details["dry_run_report"] = confirmed_dry_run
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=FLOW_ON if enabled else FLOW_OFF,
        now=now,
        reason=reason,
        details=details,
    )
    return FlowChange(flow, enabled, True)


def pause(
    conn: Connection,
    channel: Channel,
    flows: Iterable[Flow] | None,
    paused: bool,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> list[Flow]:
    """Pause (or resume) flows of the channel — all when ``flows`` is None — audited as ``flow.pause`` /
    ``flow.resume`` (see :func:`tradelane.services.channels.set_paused`; no reason is required: a pause
    is how an operator stops sending at once)."""
    changed = set_paused(conn, channel, flows, paused)
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=FLOW_PAUSE if paused else FLOW_RESUME,
        now=now,
        reason=reason,
        details={"flows": [f.value for f in changed]},
    )
    return changed
