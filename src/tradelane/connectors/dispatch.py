"""Generic job kinds (``orders.poll``, ``offers.delta``...) dispatched through the channel's connector.

The engine registers one dispatcher per kind, which loads the job's channel, resolves its connector
through the registry (:mod:`tradelane.connectors.registry`) and runs the kind's generic handler — a
service written once and driven through the port (:func:`generic_kinds`), for any channel whose
connector declares the operation the kind needs with the channel's settings
(``ConnectorSpec.channel_capabilities``, not the connector's defaults). A kind not yet served
generically runs the connector's own handler (``ConnectorSpec.handlers``). Otherwise the job is
dead-lettered with a clear reason (the connector's hint for the operation, when it has one).

Channel health is handled here, for every connector: a handler that raises
:class:`~tradelane.domain.errors.AuthenticationError` raises the channel's credentials alert and pauses
its flows (the worker then dead-letters that one job, error kind ``auth``); a job claimed before its flow
was paused goes back to the queue without running (a throttled retry, no attempt spent).

So are the lifecycle and the flow switches: a marketplace job of a channel in Setup (except the
read-only kinds, :data:`SETUP_READ_ONLY_KINDS`) or of a flow switched off (:data:`KIND_FLOWS`; a job
queued before the switch) is completed as skipped — no marketplace call, and not a success of its flow
(:data:`~tradelane.sync.scheduler.FLOW_NOT_RUN`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import Capabilities, Operation
from tradelane.connectors.registry import CONNECTORS, ConnectorSpec
from tradelane.domain.channels import Flow, LifecycleState
from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError, ValidationError
from tradelane.persistence.tables import channel_flows
from tradelane.services import (
    feeds,
    fulfilment_push,
    id_match,
    offer_publishing,
    order_acceptance,
    order_intake,
    reconciler,
    test_orders,
)
from tradelane.services.channels import AUTH_PAUSE, Channel, credentials_rejected, get_channel_by_id
from tradelane.services.connector_session import ConnectorSession
from tradelane.sync.context import JobContext
from tradelane.sync.registry import Handler, JobRegistry
from tradelane.sync.scheduler import FLOW_JOB_KINDS, FLOW_NOT_RUN

#: A connector's own handler of a job kind.
ChannelHandler = Callable[[JobContext, Channel], dict[str, Any] | None]
#: A generic handler: the job, its channel, and the channel's connector.
ConnectorHandler = Callable[[JobContext, Channel, ConnectorSpec], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class GenericKind:
    """A job kind served for every connector that declares ``operation`` (None: every connector)."""

    handler: ConnectorHandler
    operation: Operation | None


def order_kinds() -> dict[str, GenericKind]:
    """The ``orders.*`` kinds: intake, acceptance, and the secondary feeds."""
    return {
        order_intake.POLL: GenericKind(order_intake.poll_orders, Operation.FETCH_ORDERS),
        order_intake.ACCEPT: GenericKind(order_acceptance.accept_order, Operation.ACCEPT),
        feeds.MESSAGES: GenericKind(feeds.poll_messages, Operation.FETCH_MESSAGES),
        feeds.RETURNS: GenericKind(feeds.poll_returns, Operation.FETCH_RETURNS),
    }


def _sessions(spec: ConnectorSpec) -> Callable[[JobContext, Channel], ConnectorSession]:
    """Opens the job's :class:`ConnectorSession` on ``spec``'s connector (a context manager)."""
    return lambda ctx, channel: ConnectorSession(ctx, channel, spec.factory)


def _through(run: Callable[[JobContext, Channel, Any], dict[str, Any]]) -> ConnectorHandler:
    """A service taking a session opener (offer publishing, fulfilment push) as a generic handler."""
    return lambda ctx, channel, spec: run(ctx, channel, _sessions(spec))


def offer_and_fulfilment_kinds() -> dict[str, GenericKind]:
    """The ``offers.*`` and ``fulfillments.*`` kinds: offer publishing and fulfilment push."""
    return {
        "offers.delta": GenericKind(_through(offer_publishing.push_delta), Operation.SUBMIT_OFFERS_DELTA),
        "offers.full": GenericKind(_through(offer_publishing.push_full), Operation.SUBMIT_OFFERS_FULL),
        offer_publishing.IMPORT_CHECK: GenericKind(
            _through(offer_publishing.check_import), Operation.READ_IMPORT
        ),
        "fulfillments.ship": GenericKind(_through(fulfilment_push.ship), Operation.SHIP),
        "fulfillments.cancel": GenericKind(_through(fulfilment_push.cancel), Operation.CANCEL),
        "fulfillments.refund": GenericKind(_through(fulfilment_push.refund), Operation.REFUND),
        "fulfillments.label": GenericKind(_through(fulfilment_push.upload_label), Operation.UPLOAD_DOCUMENT),
    }


def listing_kinds() -> dict[str, GenericKind]:
    """The kinds reading the marketplace's listings: the reconciler's dry run and run, the ID match."""
    return {
        reconciler.DRY_RUN: GenericKind(_through(reconciler.dry_run_job), Operation.LIST_OFFERS),
        reconciler.RUN: GenericKind(_through(reconciler.run_job), Operation.LIST_OFFERS),
        id_match.RUN: GenericKind(_through(id_match.run_job), Operation.LIST_OFFERS),
    }


#: The kinds that only read the marketplace (its listings) and change nothing on it. They run for a
#: channel in Setup too — "credentials checked, mappings built, nothing sent": an operator prepares
#: go-live with the reconciler's dry run and the unique-ID match there. Every other marketplace job of a
#: channel in Setup (anything that writes: offers, acceptances, fulfilments, the reconciler's removals)
#: is completed as skipped without calling the connector. A kind belongs here only if its handler never
#: sends anything to the marketplace.
SETUP_READ_ONLY_KINDS: frozenset[str] = frozenset({reconciler.DRY_RUN, id_match.RUN})


#: The flow each marketplace job kind belongs to — the one place that says it. A job of a flow switched
#: off (``channel_flows.enabled`` false; e.g. queued before `channel flow NAME offers off`) is completed
#: as skipped, with the reason, without calling the connector: Listings off sends no offer, Orders off
#: polls and accepts nothing (nor reads messages and returns), Fulfillments off sends no update (an
#: update queued before the switch shows ``skipped`` with that reason), Reconciler off removes nothing.
#: Not listed, so they run whatever the switches: the import check (it reads the outcome of an import
#: already sent), the reconciler's dry run (it is how the reconciler gets switched on) and the unique-ID
#: match (read-only, prepares go-live).
KIND_FLOWS: dict[str, Flow] = {
    **{kind: Flow(flow) for flow, kind in FLOW_JOB_KINDS.items()},  # the scheduled run of each flow
    "offers.delta": Flow.OFFERS,
    "offers.full": Flow.OFFERS,
    order_intake.POLL: Flow.ORDERS,
    order_intake.ACCEPT: Flow.ORDERS,
    feeds.MESSAGES: Flow.ORDERS,
    feeds.RETURNS: Flow.ORDERS,
    "fulfillments.ship": Flow.FULFILLMENTS,
    "fulfillments.cancel": Flow.FULFILLMENTS,
    "fulfillments.refund": Flow.FULFILLMENTS,
    "fulfillments.label": Flow.FULFILLMENTS,
    reconciler.RUN: Flow.RECONCILER,
}

#: What a flow switched off does not do, for the skip's reason.
_OFF_MEANS: dict[Flow, str] = {
    Flow.OFFERS: "no offer is sent to the marketplace",
    Flow.ORDERS: "orders are neither read from nor accepted on the marketplace",
    Flow.FULFILLMENTS: "the update is not sent to the marketplace",
    Flow.RECONCILER: "no listing is removed from the marketplace",
}


def flow_off_reason(channel: Channel, flow: Flow) -> str:
    """Why a job of ``flow``, switched off on ``channel``, was skipped (the job's ``skipped`` result, and
    so the status detail of an order update it carried)."""
    return (
        f"flow {flow.value} is off on channel {channel.name}: {_OFF_MEANS[flow]} "
        f"(`tradelane channel flow {channel.name} {flow.value} on` to switch it on)"
    )


def generic_kinds() -> dict[str, GenericKind]:
    """Every kind served by a service through the port."""
    return {**order_kinds(), **offer_and_fulfilment_kinds(), **listing_kinds()}


def _resolve(
    kind: str, spec: ConnectorSpec, generic: Mapping[str, GenericKind], capabilities: Capabilities
) -> ChannelHandler | None:
    """The handler of ``kind`` for a channel of ``spec`` whose connector declares ``capabilities`` (the
    channel's, from its settings): the generic one when they declare its operation, else the
    connector's own, else None."""
    served = generic.get(kind)
    if served is not None and (served.operation is None or capabilities.supports(served.operation)):
        handler = served.handler
        return lambda ctx, channel: handler(ctx, channel, spec)
    return spec.handlers.get(kind)


def _channel_capabilities(spec: ConnectorSpec, channel: Channel) -> Capabilities:
    """What ``channel``'s connector declares with the channel's settings (not the connector's defaults:
    e.g. a Mirakl shop's partial shipments follow its multi-shipment setting). Settings the connector
    refuses are a permanent error naming the channel."""
    try:
        return spec.channel_capabilities(channel.settings)
    except ValidationError as exc:
        raise PermanentError(f"channel {channel.name}: settings refused by {spec.name}: {exc}") from exc


def _unsupported(kind: str, channel: Channel, generic: Mapping[str, GenericKind], caps: Capabilities) -> str:
    served = generic.get(kind)
    hint = caps.hints.get(served.operation.value) if served is not None and served.operation else None
    return f"connector {channel.connector!r} does not support {kind} on channel {channel.name}" + (
        f" ({hint})" if hint else ""
    )


def _dispatcher(
    kind: str, connectors: Mapping[str, ConnectorSpec], generic: Mapping[str, GenericKind]
) -> Handler:
    def handle(ctx: JobContext) -> dict[str, Any] | None:
        if ctx.job.channel_id is None:
            raise PermanentError(f"{kind} job has no channel")
        with ctx.engine.connect() as conn:
            channel = get_channel_by_id(conn, ctx.job.tenant_id, ctx.job.channel_id)
            paused = _paused_since_claim(conn, ctx)
            switched_off = _switched_off(conn, channel, kind)
            test_order = test_orders.never_sent(conn, kind, ctx.job.payload)
        if channel.lifecycle_state == LifecycleState.DISABLED.value:
            return {"skipped": f"channel {channel.name} is disabled", FLOW_NOT_RUN: True}
        if test_order is not None:  # e.g. a replayed acceptance: a test order never reaches a marketplace
            return {"skipped": test_order}
        if channel.lifecycle_state == LifecycleState.SETUP.value and kind not in SETUP_READ_ONLY_KINDS:
            return {
                "skipped": f"channel {channel.name} is in setup: nothing is sent to the marketplace before "
                f"`tradelane channel activate {channel.name}`",
                FLOW_NOT_RUN: True,  # not the flow's success
            }
        if switched_off is not None:  # a job queued before its flow was switched off
            return {"skipped": flow_off_reason(channel, switched_off), FLOW_NOT_RUN: True}
        if paused is not None:
            # E.g. another job of the channel met rejected credentials after this batch was claimed.
            raise RetryableError(
                f"{ctx.job.flow} flow of {channel.name} was paused ({paused}); back in the queue",
                retry_after=0.0,
            )
        spec = connectors.get(channel.connector)
        if spec is None:
            raise PermanentError(f"connector {channel.connector!r} does not support {kind}")
        capabilities = _channel_capabilities(spec, channel)
        handler = _resolve(kind, spec, generic, capabilities)
        if handler is None:
            raise PermanentError(_unsupported(kind, channel, generic, capabilities))
        try:
            return handler(ctx, channel)
        except AuthenticationError as exc:
            with ctx.engine.begin() as conn:
                credentials_rejected(conn, channel, host=exc.host, reason=exc.reason, now=ctx.now())
            raise

    return handle


def _switched_off(conn: Connection, channel: Channel, kind: str) -> Flow | None:
    """The flow of ``kind`` (:data:`KIND_FLOWS`) when it is switched off on ``channel``, else None."""
    flow = KIND_FLOWS.get(kind)
    if flow is None:
        return None
    enabled = conn.execute(
        sa.select(channel_flows.c.enabled).where(
            channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value
        )
    ).scalar_one_or_none()
    return flow if enabled is False else None


def _paused_since_claim(conn: Connection, ctx: JobContext) -> str | None:
    """Why the job's flow is paused now (it was not when the job was claimed), or None."""
    if ctx.job.flow is None or ctx.job.channel_id is None:
        return None
    row = conn.execute(
        sa.select(channel_flows.c.paused, channel_flows.c.pause_reason).where(
            channel_flows.c.channel_id == ctx.job.channel_id, channel_flows.c.flow == ctx.job.flow
        )
    ).first()
    if row is None or not row.paused:
        return None
    return "credentials rejected" if row.pause_reason == AUTH_PAUSE else "by an operator"


def register_connectors(
    registry: JobRegistry,
    connectors: Mapping[str, ConnectorSpec] | None = None,
    generic: Mapping[str, GenericKind] | None = None,
) -> None:
    """Register a dispatcher for every generic kind (default :func:`generic_kinds`) and every kind a
    connector handles itself, over ``connectors`` (default: the registry's)."""
    if connectors is None:
        connectors = CONNECTORS
    served = generic_kinds() if generic is None else dict(generic)
    kinds = sorted(set(served) | {kind for spec in connectors.values() for kind in spec.handlers})
    for kind in kinds:
        registry.register(kind, _dispatcher(kind, connectors, served))
