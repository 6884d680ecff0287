"""The ``orders.deliver`` job: hand one marketplace order to every enabled merchant system of its
tenant that receives orders (:mod:`tradelane.merchant.capabilities`; a catalog- or stock-only system,
e.g. a Files drop folder, is never a target), whole or not at all.

At most one ``orders.deliver`` job of an order is queued or running at any time (the jobs'
``exclusive_key`` index, :func:`~tradelane.services.order_health.enqueue_delivery`): a re-poll that sees
the order while its delivery runs does not start a second one. Within the job, a system already holding
the order (its ``order_deliveries`` row is ``delivered``) is never sent it again, and its
``external_ref`` is never overwritten. The one re-send left is inherent: a worker killed after POSTing
but before recording the answer re-sends on recovery, with the same ``Idempotency-Key``, which the
merchant system must honour.

Steps (payload ``{"order_id": N}``):

1. Load the order. Skip (job succeeds, nothing sent) when it is third-party managed, already delivered,
   released, not yet released by the marketplace (``not_ready``), or refused/cancelled there. When some
   system holds it and every target does (a worker died after the last hand-over, or the holder was
   disabled since), it is marked delivered at once, without validating again.
2. Apply the channel's attribute rules (:func:`tradelane.services.rules.apply_attribute_rules`).
3. Validate *before* contacting anyone: every deliverable line's SKU must resolve
   (:mod:`tradelane.persistence.sku_mappings`) and the mandatory fields must be present — otherwise the
   order is quarantined (``unknown_sku`` with the SKUs, ``missing_field`` with the field paths). No enabled
   system receiving orders → ``no_merchant_system``, naming the systems that exist and what they do.
4. For each target not yet holding the order (re-checked in a lease-fenced transaction right before
   the call, which also marks the hand-over in flight, see below): the adapter delivers the
   :class:`~tradelane.merchant.schema.OmsOrder` (``Idempotency-Key: order-<id>``). The raw request and
   response are kept on the ``order_deliveries`` row at every attempt.

   * delivered → the row is ``delivered`` with the OMS's order id;
   * rejected (4xx) → the order is quarantined ``oms_rejected`` with the OMS's status and body;
   * transient (5xx, timeout, 408, 429) → :class:`RetryableError` (``Retry-After`` honoured) so the
     engine retries with backoff; on the job's last attempt the order is quarantined
     ``oms_unavailable`` instead, so it shows in Order Health rather than only in dead letters.

5. Once every target holds it: ``merchant_status = delivered``, the quarantine row (if any) removed,
   a history row written — in the same transaction that completes the job.

A hand-over in flight is fenced on its ``order_deliveries`` row: the lease-fenced transaction that
decides to send marks the row with the attempt's lease token and the time (``sending_token``,
``sending_since``); the answer clears it. The answer of a merchant system that *accepted* the order is
recorded even when the job's lease was lost meanwhile (it is a fact about the merchant system, not a
decision of the job; the job's own completion stays fenced). A runner of the delivery that finds
another attempt's marker on a target (the first runner's lease was lost, e.g. its heartbeat starved,
while its request was in flight, and the engine handed the job over) does not send: it waits
(:class:`RetryableError` with a short ``retry_after``, which costs no attempt) until that answer is
recorded, then finds the order held. Only a marker older than any request can take (twice the
system's request timeout plus 10 s: :func:`sending_grace`) is presumed to belong to a dead runner, and
the order is sent again, with the same ``Idempotency-Key``.

An order that a merchant system accepted is never quarantined afterwards: when one system holds the
order and another target refuses it (or cannot be used, or stays unavailable past the retry budget, or
the order no longer validates), the order is marked delivered, the refusal kept on that system's
``order_deliveries`` row, and a ``delivery_incomplete`` alert and a ``DELIVERY_INCOMPLETE`` history row
name the system and the reason.

The ``orders.notify_cancellation`` job (payload ``{"order_id": N, "lines": [line ids] | null}``, queued
by :func:`enqueue_cancellation_notice` when the marketplace cancels a delivered order or some of its
lines) tells every merchant system holding the order (:meth:`MerchantAdapter.notify_cancellation`,
idempotency key = the job's). Accepted → history ``CANCELLATION_NOTIFIED``; refused or not supported →
history ``CANCELLATION_REFUSED`` and a ``cancellation_not_accepted`` alert, and the job succeeds (no retry
can help); transient → :class:`RetryableError` (on the last attempt: refused, as above).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from tradelane.domain.errors import NotFoundError, PermanentError, RetryableError
from tradelane.domain.orders import DEAD_STATES, MerchantStatus
from tradelane.merchant.base import (
    AdapterFactory,
    Capability,
    DeliveryOutcome,
    MerchantAdapter,
    MerchantSystem,
    OutcomeKind,
)
from tradelane.merchant.capabilities import capabilities_of, describe_capabilities
from tradelane.merchant.http_oms import http_adapter
from tradelane.merchant.schema import (
    DEFAULT_REQUIRED_FIELDS,
    InvalidOrderDocument,
    OmsOrder,
    build_oms_order,
    deliverable_lines,
    missing_fields,
)
from tradelane.persistence.db import insert_ignore, read_only
from tradelane.persistence.merchant_systems import list_merchant_systems, merchant_credentials
from tradelane.persistence.sku_mappings import resolve_line_skus, unknown_skus
from tradelane.persistence.tables import merchant_systems, order_deliveries, orders
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.order_health import (
    DELIVER_KIND,
    DELIVERY_MAX_ATTEMPTS,
    QuarantineReason,
    clear_quarantine,
    enqueue_delivery,
    quarantine,
)
from tradelane.services.orders import add_history, get_order, raise_alert, set_merchant_status
from tradelane.services.rules import apply_attribute_rules
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import EnqueueResult, JobSpec, enqueue
from tradelane.sync.registry import Handler, JobRegistry

__all__ = [
    "DEFAULT_ADAPTERS",
    "DELIVER_KIND",
    "NOTIFY_CANCELLATION_KIND",
    "cancellation_key",
    "enqueue_cancellation_notice",
    "enqueue_delivery",
    "oms_document",
    "oms_document_for_order",
    "register",
]

#: Adapter factories by ``merchant_systems.kind``. Other adapters (e.g. Shopify) are added by the
#: composition root: ``register(registry, adapters={**DEFAULT_ADAPTERS, "shopify": factory})``.
DEFAULT_ADAPTERS: dict[str, AdapterFactory] = {"http": http_adapter}

_SKIP_STATUSES = {
    MerchantStatus.DELIVERED.value: "already delivered",
    MerchantStatus.RELEASED.value: "released to the operator",
    MerchantStatus.THIRD_PARTY_MANAGED.value: "third-party managed",
    MerchantStatus.NOT_READY.value: "not released by the marketplace yet",
}
_SKIP_STATES = {state.value for state in DEAD_STATES}
NOTIFY_CANCELLATION_KIND = "orders.notify_cancellation"
log = structlog.get_logger("tradelane.order_delivery")
#: A merchant system's request timeout when its settings name none (the HTTP adapters' default).
DEFAULT_REQUEST_SECONDS = 10.0
#: How often a runner waiting for another attempt's hand-over looks again (seconds).
WAIT_POLL_SECONDS = 1.0


def sending_grace(system: MerchantSystem) -> timedelta:
    """How long a hand-over marked in flight may still be waiting for its answer: twice the system's
    request timeout (an adapter may make a second request, e.g. a lookup) plus 10 s for the runner to
    record it. A marker older than this belongs to a runner that died (or hung) mid-request."""
    configured = system.settings.get("timeout_seconds")
    seconds = (
        float(configured)
        if isinstance(configured, int | float) and configured > 0
        else DEFAULT_REQUEST_SECONDS
    )
    return timedelta(seconds=2 * seconds + 10)


def register(registry: JobRegistry, adapters: Mapping[str, AdapterFactory] | None = None) -> None:
    """Register the ``orders.deliver`` and ``orders.notify_cancellation`` handlers with the given
    adapter factories."""
    factories = dict(adapters or DEFAULT_ADAPTERS)
    registry.register(DELIVER_KIND, make_handler(factories))
    registry.register(NOTIFY_CANCELLATION_KIND, make_cancellation_handler(factories))


def _skip_reason(order: Mapping[str, Any]) -> str | None:
    if order["third_party_managed"]:
        return "third-party managed"
    if order["merchant_status"] in _SKIP_STATUSES:
        return _SKIP_STATUSES[order["merchant_status"]]
    if order["state"] in _SKIP_STATES:
        return f"order is {order['state']} on the marketplace"
    return None


def _channel_id(conn: Connection, order_id: int) -> int:
    return int(conn.execute(sa.select(orders.c.channel_id).where(orders.c.id == order_id)).scalar_one())


def oms_document(
    conn: Connection, *, tenant_id: int, order: dict[str, Any], channel_id: int
) -> tuple[OmsOrder, list[str]]:
    """The document a merchant system would receive for ``order``, and the line SKUs that do not
    resolve (unknown SKUs pass through unmapped in the document)."""
    attributes = apply_attribute_rules(conn, tenant_id=tenant_id, channel_id=channel_id, order=order)
    resolved = resolve_line_skus(
        conn, tenant_id=tenant_id, channel_id=channel_id, lines=deliverable_lines(order)
    )
    sku_map = {sku: merchant for sku, merchant in resolved.items() if merchant is not None}
    return build_oms_order(order, attributes, sku_map=sku_map), unknown_skus(resolved)


def oms_document_for_order(conn: Connection, *, tenant_id: int, order_id: int) -> tuple[OmsOrder, list[str]]:
    """:func:`oms_document` of one of the tenant's orders (NotFoundError if it is not theirs)."""
    order = get_order(conn, tenant_id, order_id)
    return oms_document(conn, tenant_id=tenant_id, order=order, channel_id=_channel_id(conn, order_id))


def _required_fields(systems: list[MerchantSystem]) -> list[str]:
    required: set[str] = set()
    for system in systems:
        configured = system.settings.get("required_fields")
        required.update(configured if isinstance(configured, list) else DEFAULT_REQUIRED_FIELDS)
    return sorted(required or DEFAULT_REQUIRED_FIELDS)


@dataclass(frozen=True)
class _Sending:
    """Another attempt's hand-over in flight (its row's marker), or the held order's ``external_ref``."""

    held: bool
    external_ref: str | None = None
    since: datetime | None = None


def _mark_sending(
    conn: Connection, *, tenant_id: int, order_id: int, system: MerchantSystem, token: str, now: datetime
) -> _Sending | None:
    """In the job's fenced transaction, right before the call: mark the (order, system) row as being
    sent by this attempt (``token``), unless the system holds the order already or another attempt's
    marker is younger than :func:`sending_grace`. None means "marked: send"; otherwise what is there.
    One conditional UPDATE decides (never check-then-write): two runners cannot both mark the row."""
    conn.execute(
        insert_ignore(conn, order_deliveries).values(
            tenant_id=tenant_id,
            order_id=order_id,
            merchant_system_id=system.id,
            status="pending",
            attempts=0,
            created_at=now,
        )
    )
    row = (order_deliveries.c.order_id == order_id, order_deliveries.c.merchant_system_id == system.id)
    marked = conn.execute(
        sa.update(order_deliveries)
        .where(
            *row,
            order_deliveries.c.status != "delivered",
            sa.or_(
                order_deliveries.c.sending_token.is_(None),
                order_deliveries.c.sending_token == token,
                order_deliveries.c.sending_since < now - sending_grace(system),
            ),
        )
        .values(sending_token=token, sending_since=now)
    )
    if marked.rowcount == 1:
        return None
    found = conn.execute(
        sa.select(
            order_deliveries.c.status, order_deliveries.c.external_ref, order_deliveries.c.sending_since
        ).where(*row)
    ).one()
    if found.status == "delivered":
        return _Sending(True, external_ref=found.external_ref)
    return _Sending(False, since=found.sending_since)


def _clear_marker(engine: Any, order_id: int, system_id: int, token: str) -> None:
    """Unfenced: this attempt's request is over (whoever holds the job now may send again). Best
    effort: if the database fails here, the marker lapses after :func:`sending_grace`."""
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(order_deliveries)
                .where(
                    order_deliveries.c.order_id == order_id,
                    order_deliveries.c.merchant_system_id == system_id,
                    order_deliveries.c.sending_token == token,
                )
                .values(sending_token=None, sending_since=None)
            )
    except sa.exc.SQLAlchemyError:
        log.warning("delivery.marker_not_cleared", order_id=order_id, merchant_system_id=system_id)


def _wait_for_other_attempt(ctx: JobContext, prepared: _Prepared) -> None:
    """Raise :class:`RetryableError` (a short ``retry_after``, no attempt counted) while another attempt's
    hand-over to a target that does not hold the order yet may still be in flight."""
    now = ctx.now()
    for system in prepared.systems:
        marker = prepared.sending.get(system.id)
        if marker is None or system.id in prepared.delivered_to or marker[0] == ctx.job.lease_token:
            continue
        left = (marker[1] + sending_grace(system) - now).total_seconds()
        if left > 0:
            raise RetryableError(
                f"{system.name}: another attempt has been sending this order since "
                f"{marker[1].isoformat()}; waiting for its answer",
                retry_after=min(max(left, 0.1), WAIT_POLL_SECONDS),
            )


def _markers(conn: Connection, order_id: int) -> dict[int, tuple[str, datetime]]:
    """Hand-overs marked in flight on the order's rows not delivered yet: system id -> (token, since)."""
    rows = conn.execute(
        sa.select(
            order_deliveries.c.merchant_system_id,
            order_deliveries.c.sending_token,
            order_deliveries.c.sending_since,
        ).where(
            order_deliveries.c.order_id == order_id,
            order_deliveries.c.status != "delivered",
            order_deliveries.c.sending_token.is_not(None),
        )
    )
    return {int(r.merchant_system_id): (r.sending_token, r.sending_since) for r in rows}


def _delivered_to(conn: Connection, order_id: int) -> set[int]:
    return set(
        conn.execute(
            sa.select(order_deliveries.c.merchant_system_id).where(
                order_deliveries.c.order_id == order_id, order_deliveries.c.status == "delivered"
            )
        ).scalars()
    )


def _record_attempt(
    conn: Connection,
    *,
    tenant_id: int,
    order_id: int,
    system: MerchantSystem,
    outcome: DeliveryOutcome,
    now: datetime,
) -> None:
    """Keep the raw exchange on the (order, system) delivery row; one row per pair, ever. A row
    already ``delivered`` is left as it is: the accepted exchange and its ``external_ref`` stay."""
    conn.execute(
        insert_ignore(conn, order_deliveries).values(
            tenant_id=tenant_id,
            order_id=order_id,
            merchant_system_id=system.id,
            status="pending",
            attempts=0,
            created_at=now,
        )
    )
    status = {
        OutcomeKind.DELIVERED: "delivered",
        OutcomeKind.REJECTED: "quarantined",
        OutcomeKind.RETRY: "pending",
    }[outcome.kind]
    values: dict[str, Any] = {
        "status": status,
        "sending_token": None,  # the hand-over's answer is in: it is no longer in flight
        "sending_since": None,
        "attempts": order_deliveries.c.attempts + 1,
        "last_request": outcome.request,
        "last_response": outcome.response if outcome.response is not None else outcome.reason,
    }
    if outcome.kind is OutcomeKind.DELIVERED:
        values.update(external_ref=outcome.external_ref, delivered_at=now)
    conn.execute(
        sa.update(order_deliveries)
        .where(
            order_deliveries.c.order_id == order_id,
            order_deliveries.c.merchant_system_id == system.id,
            order_deliveries.c.status != "delivered",
        )
        .values(**values)
    )


def make_handler(adapters: dict[str, AdapterFactory]) -> Handler:
    def handle(ctx: JobContext) -> dict[str, Any] | None:
        return _deliver(ctx, adapters)

    return handle


@dataclass
class _Prepared:
    """Everything one delivery attempt needs, read in one short read-only transaction."""

    order: dict[str, Any]
    document: OmsOrder | None
    invalid: InvalidOrderDocument | None
    unknown: list[str]
    systems: list[MerchantSystem]  # the enabled systems that receive orders: the targets
    delivered_to: set[int]
    credentials: dict[int, dict[str, Any] | Exception]
    others: list[MerchantSystem] = field(default_factory=list)  # enabled, not receiving orders
    #: Hand-overs marked in flight (system id -> lease token of the sending attempt, since when).
    sending: dict[int, tuple[str, datetime]] = field(default_factory=dict)

    def accepted(self) -> bool:
        """Some merchant system (a target or not, e.g. one disabled since) already holds the order."""
        return bool(self.delivered_to)

    def held_by_all(self) -> bool:
        """Accepted, and every target holds it: nothing is left to send."""
        return self.accepted() and all(s.id in self.delivered_to for s in self.systems)


def _prepare(ctx: JobContext, order_id: int) -> _Prepared | str:
    """The prepared attempt, or why the order is skipped."""
    tenant_id = ctx.job.tenant_id
    keyring: KeyRing = ctx.services["keyring"]
    with read_only(ctx.engine) as conn:
        try:
            order = get_order(conn, tenant_id, order_id)
        except NotFoundError:
            raise PermanentError(f"order {order_id} does not exist for tenant {tenant_id}") from None
        skip = _skip_reason(order)
        if skip is not None:
            return skip
        document: OmsOrder | None = None
        invalid: InvalidOrderDocument | None = None
        unknown: list[str] = []
        try:
            document, unknown = oms_document(
                conn, tenant_id=tenant_id, order=order, channel_id=_channel_id(conn, order_id)
            )
        except InvalidOrderDocument as exc:
            invalid = exc
        enabled = list_merchant_systems(conn, tenant_id, enabled_only=True)
        systems = [s for s in enabled if Capability.RECEIVE_ORDERS in capabilities_of(s)]
        others = [s for s in enabled if s not in systems]
        credentials: dict[int, dict[str, Any] | Exception] = {}
        for system in systems:
            try:
                credentials[system.id] = merchant_credentials(conn, system, keyring)
            except CredentialError as exc:
                credentials[system.id] = exc
        return _Prepared(
            order,
            document,
            invalid,
            unknown,
            systems,
            _delivered_to(conn, order_id),
            credentials,
            others,
            _markers(conn, order_id),
        )


def _problem(prepared: _Prepared) -> tuple[QuarantineReason, str, dict[str, Any]] | None:
    """Why the order cannot be handed over at all (checked before any merchant system is contacted)."""
    if prepared.invalid is not None:
        detail: dict[str, Any] = {
            "skus": [],
            "lines": [],
            "missing_fields": [],
            "invalid_fields": prepared.invalid.fields,
        }
        return QuarantineReason.MISSING_FIELD, str(prepared.invalid), detail
    assert prepared.document is not None
    missing = missing_fields(prepared.document, _required_fields(prepared.systems))
    unknown = prepared.unknown
    if unknown or missing:
        unknown_lines = [
            {"line_id": ln["line_id"], "sku": ln["sku"], "offer_sku": ln["offer_sku"]}
            for ln in deliverable_lines(prepared.order)
            if ln["sku"] in unknown
        ]
        detail = {"skus": unknown, "lines": unknown_lines, "missing_fields": missing}
        if unknown:
            return QuarantineReason.UNKNOWN_SKU, f"unknown SKU(s): {', '.join(unknown)}", detail
        return QuarantineReason.MISSING_FIELD, f"missing field(s): {', '.join(missing)}", detail
    if not prepared.systems:
        if not prepared.others:
            return QuarantineReason.NO_MERCHANT_SYSTEM, "the tenant has no enabled merchant system", {}
        what = "; ".join(
            f"{s.name} ({s.kind}): {describe_capabilities(capabilities_of(s))}" for s in prepared.others
        )
        reason = f"no enabled merchant system receives orders (enabled: {what})"
        detail = {
            "merchant_systems": [
                {"name": s.name, "kind": s.kind, "capabilities": capabilities_of(s).names()}
                for s in prepared.others
            ]
        }
        return QuarantineReason.NO_MERCHANT_SYSTEM, reason, detail
    return None


def _deliver(ctx: JobContext, adapters: dict[str, AdapterFactory]) -> dict[str, Any]:
    order_id = int(ctx.job.payload["order_id"])
    prepared = _prepare(ctx, order_id)
    if isinstance(prepared, str):
        return {"order_id": order_id, "status": "skipped", "reason": prepared}
    if prepared.held_by_all():
        return _complete_delivered(ctx, order_id, [])
    _wait_for_other_attempt(ctx, prepared)  # decide nothing while another hand-over may be in flight
    problem = _problem(prepared)
    if problem is not None:
        if prepared.accepted():
            return _incomplete_and_complete(ctx, order_id, [], problem[1], None)
        return _quarantine_and_complete(ctx, order_id, *problem)
    assert prepared.document is not None
    delivered: list[dict[str, Any]] = []
    for system in prepared.systems:
        if system.id in prepared.delivered_to:
            continue
        outcome = _attempt(
            ctx, adapters, system, prepared.credentials[system.id], prepared.document, order_id
        )
        accepted = bool(delivered) or prepared.accepted()
        if isinstance(outcome, str):
            if accepted:
                return _incomplete_and_complete(ctx, order_id, delivered, outcome, None)
            detail = {"merchant_system": system.name}
            return _quarantine_and_complete(
                ctx, order_id, QuarantineReason.MERCHANT_SYSTEM_ERROR, outcome, detail
            )
        if outcome.kind is OutcomeKind.DELIVERED:
            delivered.append({"merchant_system": system.name, "external_ref": outcome.external_ref})
            continue
        return _failed(ctx, order_id, system, outcome, delivered if accepted else None)
    return _complete_delivered(ctx, order_id, delivered)


def _attempt(
    ctx: JobContext,
    adapters: dict[str, AdapterFactory],
    system: MerchantSystem,
    credentials: dict[str, Any] | Exception,
    document: OmsOrder,
    order_id: int,
) -> DeliveryOutcome | str:
    """One hand-over to one system (a delivered one is recorded at once), or a configuration problem.

    Right before the call, a lease-fenced transaction re-checks whether the system holds the order
    already (then nothing is sent: the held ``external_ref`` is the outcome) and marks the hand-over in
    flight (:func:`_mark_sending`; another attempt's live marker: :class:`RetryableError`, wait). An
    accepted order is recorded whether or not the lease still holds (see the module docstring); any
    other answer clears this attempt's marker, and is recorded by the caller under the lease."""
    adapter = _adapter(adapters, system, credentials)
    if isinstance(adapter, str):
        return adapter
    token = ctx.job.lease_token
    now = ctx.now()
    try:
        with ctx.transaction() as conn:
            other = _mark_sending(
                conn, tenant_id=ctx.job.tenant_id, order_id=order_id, system=system, token=token, now=now
            )
    except BaseException:
        adapter.close()
        raise
    if other is not None:
        adapter.close()
        if other.held:
            return DeliveryOutcome(
                OutcomeKind.DELIVERED, "already held", request="", external_ref=other.external_ref
            )
        raise RetryableError(
            f"{system.name}: another attempt has been sending this order since "
            f"{other.since.isoformat() if other.since else '?'}; waiting for its answer",
            retry_after=WAIT_POLL_SECONDS,
        )
    recorded = False
    try:
        outcome = adapter.deliver_order(document, idempotency_key=f"order-{order_id}", now=now)
        if outcome.kind is OutcomeKind.DELIVERED:
            with ctx.engine.begin() as conn:  # not fenced: the merchant system holds the order
                _record_attempt(
                    conn,
                    tenant_id=ctx.job.tenant_id,
                    order_id=order_id,
                    system=system,
                    outcome=outcome,
                    now=now,
                )
            recorded = True
    finally:
        adapter.close()
        if not recorded:  # the request is over without an accepted order: no longer in flight
            _clear_marker(ctx.engine, order_id, system.id, token)
    return outcome


def _failed(
    ctx: JobContext,
    order_id: int,
    system: MerchantSystem,
    outcome: DeliveryOutcome,
    accepted: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A rejection quarantines; a transient failure retries (or quarantines on the last attempt).

    ``accepted`` (not None: another system holds the order already) turns the quarantine into an
    incomplete delivery (:func:`_incomplete_and_complete`)."""
    detail = {
        "merchant_system": system.name,
        "status": outcome.status_code,
        "response": outcome.response_body,
        "error": outcome.reason,
    }
    attempt = (system, outcome)
    if outcome.kind is OutcomeKind.REJECTED:
        reason = f"{system.name}: {outcome.reason}"
        if accepted is not None:
            return _incomplete_and_complete(ctx, order_id, accepted, reason, attempt)
        return _quarantine_and_complete(
            ctx, order_id, QuarantineReason.OMS_REJECTED, reason, detail, attempt=attempt
        )
    if outcome.retry_after is None and ctx.job.attempts >= ctx.job.max_attempts:
        reason = f"{system.name}: {outcome.reason} (gave up after {ctx.job.attempts} attempts)"
        if accepted is not None:
            return _incomplete_and_complete(ctx, order_id, accepted, reason, attempt)
        return _quarantine_and_complete(
            ctx, order_id, QuarantineReason.OMS_UNAVAILABLE, reason, detail, attempt=attempt
        )
    with ctx.transaction() as conn:
        _record_attempt(
            conn,
            tenant_id=ctx.job.tenant_id,
            order_id=order_id,
            system=system,
            outcome=outcome,
            now=ctx.now(),
        )
    raise RetryableError(
        f"{system.name}: {outcome.reason}", retry_after=outcome.retry_after, raw=outcome.response
    )


def _complete_delivered(ctx: JobContext, order_id: int, delivered: list[dict[str, Any]]) -> dict[str, Any]:
    """Every system holds the order: mark it delivered and finish the job, in one transaction."""
    now = ctx.now()
    result = {"order_id": order_id, "status": "delivered", "deliveries": delivered}
    with ctx.transaction() as conn:
        clear_quarantine(conn, order_id)
        set_merchant_status(conn, order_id, MerchantStatus.DELIVERED, now=now)
        note = "delivered to " + ", ".join(_holders(conn, order_id))
        add_history(conn, ctx.job.tenant_id, order_id, "DELIVERED", now=now, note=note)
        ctx.complete_in(conn, result)
    return result


def _incomplete_and_complete(
    ctx: JobContext,
    order_id: int,
    delivered: list[dict[str, Any]],
    reason: str,
    attempt: tuple[MerchantSystem, DeliveryOutcome] | None,
) -> dict[str, Any]:
    """Some system accepted the order but another cannot take it: the order is delivered (never
    quarantined once accepted); the failure is kept on the delivery row, in the history and as a
    ``delivery_incomplete`` alert — all in the transaction that completes the job."""
    now = ctx.now()
    tenant_id = ctx.job.tenant_id
    result = {"order_id": order_id, "status": "incomplete", "deliveries": delivered, "reason": reason}
    with ctx.transaction() as conn:
        if attempt is not None:
            system, outcome = attempt
            _record_attempt(
                conn, tenant_id=tenant_id, order_id=order_id, system=system, outcome=outcome, now=now
            )
        clear_quarantine(conn, order_id)
        set_merchant_status(conn, order_id, MerchantStatus.DELIVERED, now=now)
        holders = ", ".join(_holders(conn, order_id))
        add_history(conn, tenant_id, order_id, "DELIVERED", now=now, note=f"delivered to {holders}")
        add_history(conn, tenant_id, order_id, "DELIVERY_INCOMPLETE", now=now, note=reason)
        marketplace_id = conn.execute(
            sa.select(orders.c.marketplace_order_id).where(orders.c.id == order_id)
        ).scalar_one()
        raise_alert(
            conn,
            tenant_id=tenant_id,
            kind="delivery_incomplete",
            key=f"delivery_incomplete:{order_id}",
            message=(
                f"order {marketplace_id} was accepted by {holders} but not delivered everywhere: {reason}; "
                "it is not quarantined (a merchant system holds it): enter it there by hand"
            ),
            now=now,
            channel_id=ctx.job.channel_id,
            order_id=order_id,
        )
        ctx.complete_in(conn, result)
    return result


def _holders(conn: Connection, order_id: int) -> list[str]:
    """``name (their order id)`` of every merchant system holding the order."""
    rows = conn.execute(
        sa.select(merchant_systems.c.name, order_deliveries.c.external_ref)
        .join(merchant_systems, merchant_systems.c.id == order_deliveries.c.merchant_system_id)
        .where(order_deliveries.c.order_id == order_id, order_deliveries.c.status == "delivered")
        .order_by(merchant_systems.c.name)
    )
    return [f"{r.name} ({r.external_ref})" if r.external_ref else r.name for r in rows]


def _adapter(
    adapters: dict[str, AdapterFactory], system: MerchantSystem, credentials: dict[str, Any] | Exception
) -> MerchantAdapter | str:
    """The system's adapter, or why there is none (a configuration problem, quarantined as such)."""
    if isinstance(credentials, Exception):
        return f"{system.name}: credentials cannot be decrypted with the configured keys"
    factory = adapters.get(system.kind)
    if factory is None:
        return f"{system.name}: no adapter for merchant systems of kind {system.kind!r}"
    try:
        return factory(system, credentials)
    except ValueError as exc:
        return f"{system.name}: {exc}"


def _quarantine_and_complete(
    ctx: JobContext,
    order_id: int,
    code: QuarantineReason,
    reason: str,
    detail: dict[str, Any],
    *,
    attempt: tuple[MerchantSystem, DeliveryOutcome] | None = None,
) -> dict[str, Any]:
    """Quarantine the order and finish the job in one transaction (the job did its work: the order
    now waits in Order Health, where it is retried or released)."""
    now = ctx.now()
    result = {"order_id": order_id, "status": "quarantined", "reason_code": code.value, "reason": reason}
    with ctx.transaction() as conn:
        if attempt is not None:
            system, outcome = attempt
            _record_attempt(
                conn, tenant_id=ctx.job.tenant_id, order_id=order_id, system=system, outcome=outcome, now=now
            )
        quarantine(
            conn,
            tenant_id=ctx.job.tenant_id,
            order_id=order_id,
            reason_code=code,
            reason=reason,
            detail=detail,
            now=now,
        )
        ctx.complete_in(conn, result)
    return result


# --- cancellations made on the marketplace ------------------------------------------------------


def cancellation_key(order_id: int, lines: list[str] | None) -> str:
    """The job's (and the merchant system's) idempotency key: one per order and set of lines."""
    cancelled = "order" if lines is None else ",".join(sorted(lines))
    digest = hashlib.sha256(cancelled.encode("utf-8")).hexdigest()[:16]
    return f"{NOTIFY_CANCELLATION_KIND}:{order_id}:{digest}"


def enqueue_cancellation_notice(
    conn: Connection,
    *,
    tenant_id: int,
    order_id: int,
    channel_id: int | None,
    lines: list[str] | None,
    now: datetime,
) -> EnqueueResult:
    """Queue ``orders.notify_cancellation`` for the whole order (``lines`` None) or these marketplace
    line ids; queued once per order and set of lines."""
    chosen = None if lines is None else sorted(lines)
    return enqueue(
        conn,
        JobSpec(
            tenant_id=tenant_id,
            kind=NOTIFY_CANCELLATION_KIND,
            payload={"order_id": order_id, "lines": chosen},
            channel_id=channel_id,
            idempotency_key=cancellation_key(order_id, chosen),
            priority=40,
            max_attempts=DELIVERY_MAX_ATTEMPTS,
        ),
        now=now,
    )


def make_cancellation_handler(adapters: dict[str, AdapterFactory]) -> Handler:
    def handle(ctx: JobContext) -> dict[str, Any] | None:
        return _notify_cancellation(ctx, adapters)

    return handle


def _as_delivered(order: dict[str, Any], lines: list[str] | None) -> dict[str, Any]:
    """The order with the cancelled ``lines`` counted as deliverable again, so its document carries
    them (with the merchant's SKUs and quantities) as the merchant system received them."""
    restored = set(lines or [])
    return {
        **order,
        "lines": [{**ln, "state": ""} if ln["line_id"] in restored else ln for ln in order["lines"]],
    }


def _notify_cancellation(ctx: JobContext, adapters: dict[str, AdapterFactory]) -> dict[str, Any]:
    order_id = int(ctx.job.payload["order_id"])
    lines: list[str] | None = ctx.job.payload.get("lines")
    tenant_id = ctx.job.tenant_id
    keyring: KeyRing = ctx.services["keyring"]
    with read_only(ctx.engine) as conn:
        try:
            order = get_order(conn, tenant_id, order_id)
            document, _ = oms_document(
                conn,
                tenant_id=tenant_id,
                order=_as_delivered(order, lines),
                channel_id=_channel_id(conn, order_id),
            )
        except NotFoundError:
            raise PermanentError(f"order {order_id} does not exist for tenant {tenant_id}") from None
        except InvalidOrderDocument as exc:
            raise PermanentError(f"order {order_id} cannot be expressed as a document: {exc}") from None
        held = _delivered_to(conn, order_id)
        systems = [s for s in list_merchant_systems(conn, tenant_id) if s.id in held]
        credentials: dict[int, dict[str, Any] | Exception] = {}
        for system in systems:
            try:
                credentials[system.id] = merchant_credentials(conn, system, keyring)
            except CredentialError as exc:
                credentials[system.id] = exc
    key = cancellation_key(order_id, lines)
    notified: list[str] = []
    refused: list[tuple[MerchantSystem, str]] = []
    for system in systems:
        adapter = _adapter(adapters, system, credentials[system.id])
        if isinstance(adapter, str):
            refused.append((system, adapter))
            continue
        try:
            outcome = adapter.notify_cancellation(document, lines=lines, idempotency_key=key, now=ctx.now())
        finally:
            adapter.close()
        if outcome.kind is OutcomeKind.DELIVERED:
            notified.append(system.name)
        elif outcome.kind is OutcomeKind.RETRY and ctx.job.attempts < ctx.job.max_attempts:
            # Nothing recorded yet: the retry re-sends to every system, which dedupe on the key.
            raise RetryableError(
                f"{system.name}: {outcome.reason}", retry_after=outcome.retry_after, raw=outcome.response
            )
        else:
            refused.append((system, _refusal(outcome)))
    return _complete_cancellation(ctx, order, lines, notified, refused)


def _refusal(outcome: DeliveryOutcome) -> str:
    """Why a merchant system did not take a cancellation, for a human (pure): the adapter's classified
    reason, which names the answer and what the system said (e.g. ``OMS rejected the cancellation with
    HTTP 404: Not Found`` for a ``{"detail": "Not Found"}`` body), with the HTTP status put in front
    when the reason does not name it; a retryable outcome says it was given up after the last attempt."""
    reason = outcome.reason
    if outcome.status_code is not None and f"HTTP {outcome.status_code}" not in reason:
        reason = f"HTTP {outcome.status_code}: {reason}"
    if outcome.kind is OutcomeKind.RETRY:
        return f"{reason} (gave up after the last attempt)"
    return reason


def _complete_cancellation(
    ctx: JobContext,
    order: dict[str, Any],
    lines: list[str] | None,
    notified: list[str],
    refused: list[tuple[MerchantSystem, str]],
) -> dict[str, Any]:
    """History for each outcome, an alert per refusing system, and the job's end, in one transaction."""
    now = ctx.now()
    order_id = int(order["id"])
    what = "the order" if lines is None else f"line(s) {', '.join(lines)}"
    result = {
        "order_id": order_id,
        "lines": lines,
        "notified": notified,
        "refused": [{"merchant_system": s.name, "reason": r} for s, r in refused],
    }
    with ctx.transaction() as conn:
        if notified:
            note = f"merchant system notified of the cancellation of {what}: {', '.join(notified)}"
            add_history(conn, ctx.job.tenant_id, order_id, "CANCELLATION_NOTIFIED", now=now, note=note)
        for system, reason in refused:
            note = f"merchant system refused the cancellation: {system.name}: {reason}"
            add_history(conn, ctx.job.tenant_id, order_id, "CANCELLATION_REFUSED", now=now, note=note)
            raise_alert(
                conn,
                tenant_id=ctx.job.tenant_id,
                kind="cancellation_not_accepted",
                key=f"{cancellation_key(order_id, lines)}:{system.id}",
                message=(
                    f"order {order['marketplace_order_id']} was cancelled on the marketplace ({what}) but "
                    f"{system.name} refused the cancellation: {reason}; cancel it there by hand"
                ),
                now=now,
                channel_id=ctx.job.channel_id,
                order_id=order_id,
            )
        ctx.complete_in(conn, result)
    return result
