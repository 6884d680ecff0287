"""Offer publishing, written once for every marketplace and driven through the port: job kinds
``offers.delta``, ``offers.full`` and ``offers.import_check``.

A delta takes the channel's dirty offers (every change since the last call, coalesced: a product changed
ten times is sent once, with its latest values), at most ``capabilities.batch_size(SUBMIT_OFFERS_DELTA)``
of them per job, and submits them in one call; it queues the next delta while dirty offers remain. A full
sync submits every bound offer, in calls of at most ``batch_size(SUBMIT_OFFERS_FULL)`` (default: one
call). Offers are marked with the import reference; when the connector declares
``asynchronous_offer_imports``, an ``offers.import_check`` job reads the import's result later (as often as
the connector says: ``retry_after``) and sets each offer's outcome — errors on the SKUs the marketplace
named, published for the rest. A synchronous import's result is applied at once.

An offer whose product is no longer selected on the channel while its reconciler is on (binding
``delisting``, see :mod:`tradelane.services.selection`) goes as a deletion (:func:`offer_deletion`), in a
delta or a full sync alike; its binding is removed once the marketplace accepted it. Where the connector
does not declare ``delete_offers`` the deletion is blocked with the reason instead (nothing sent). Products
left on the marketplace (reconciler off: ``left``) are never sent.

Offers that cannot be sent are ``blocked`` with the reasons, never sent: without a price (the hub's own
check) or refused by the connector before any call (the failed outcomes of a submission whose result is
not done yet, or of one that sent nothing). An offer whose SKU has an unresolved conflict in the
channel's latest unique-ID match (the listing there is grouped otherwise: sending ours would overwrite
it) is held back the same way, by deltas and full syncs alike, with the reason saying how to resolve it
(:mod:`tradelane.services.id_match_conflicts`, which also releases it once resolved).

First sync and full syncs (so that no offer is sent twice when a channel starts):

* a full sync supersedes deltas: while an ``offers.full`` of the channel is running or due, a delta
  stands aside and sends nothing (the full sends every offer, the dirty ones included; anything changed
  after the full read the catalog stays dirty for the next scheduled delta). A full sync backing off
  after a failure does not hold deltas back: stock must not go stale;
* a channel's first sync is a full one: a delta with offers to send, on a channel that never completed
  a full sync, queues one ``offers.full`` instead (once per channel — idempotency key
  ``offers.first_full:<channel>`` — coalesced with a full the operator asked for) and sends nothing.

The per-job connector comes from a session (:class:`PortSession`): the connector, and the recording of
the job's raw exchanges under a subject (``import:<reference>``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from tradelane.connectors.base import (
    Capabilities,
    ImportRef,
    ImportResult,
    MarketplaceConnector,
    OfferOutcome,
    OfferUpdate,
    Operation,
    SubmitMode,
)
from tradelane.domain.catalog import Product
from tradelane.domain.channels import Flow
from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.http_edge import Exchange
from tradelane.services import id_match_conflicts
from tradelane.services import offers as offer_service
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.outbox import OFFERS_DELTA
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue

IMPORT_CHECK = "offers.import_check"
#: Channel cursor where a full sync records its progress (JSON: job id, last binding sent...).
FULL_PROGRESS_CURSOR = "offers.full.progress"
#: Offers per delta job when the connector declares no largest batch.
DEFAULT_DELTA_BATCH = 5_000
#: A full sync reports its progress every ``max(1, min(FULL_CHUNK, total // 20))`` offers built.
FULL_CHUNK = 500
#: Why a deletion is not sent when the connector declares no ``delete_offers``.
_CANNOT_DELETE = "not selected, but this marketplace connector cannot delete offers: left on the marketplace"
#: Seconds before the first look at an import when the connector gives no ``retry_after``.
IMPORT_POLL_SECONDS = 15.0


class PortSession(Protocol):
    """One job's use of a channel's connector (built by the hub: credentials, rate budget, exchanges)."""

    @property
    def connector(self) -> MarketplaceConnector: ...

    @property
    def exchanges(self) -> list[Exchange]:
        """The raw exchanges of this job so far (what :meth:`record` stores)."""
        ...

    def record(self, conn: Connection, subject: str, *, now: datetime) -> None:
        """Store the raw exchanges of this job so far under ``subject`` (in ``conn``'s transaction)."""
        ...


#: Opens the session of one job on one channel (a context manager: the connector is closed after).
OpenSession = Callable[[JobContext, Channel], AbstractContextManager[PortSession]]


# --- pure ------------------------------------------------------------------------------------------


def offer_update(product: Product) -> OfferUpdate | list[str]:
    """The offer the hub wants for ``product``, or why it cannot be one (pure).

    The product's own ``parent_sku`` and ``brand`` travel in ``attributes`` as ``":parent_sku"`` and
    ``":brand"`` (connectors may carry them, e.g. as custom fields)."""
    if product.price is None or product.currency is None:
        return ["no price"]
    if not product.price.is_finite() or product.price < 0:
        return [f"invalid price {product.price}"]
    attributes: dict[str, Any] = dict(product.attributes)
    if product.parent_sku:
        attributes[":parent_sku"] = product.parent_sku
    if product.brand:
        attributes[":brand"] = product.brand
    return OfferUpdate(
        sku=product.sku,
        price=product.price,
        currency=product.currency,
        quantity=product.quantity,
        gtin=product.gtin,
        title=product.title,
        attributes=attributes,
    )


def offer_deletion(product: Product) -> OfferUpdate:
    """The deletion of ``product``'s offer (pure): what the marketplace needs to find it (SKU, GTIN,
    the attributes it was listed with); price and quantity as stored (0 and "" when the product has
    none: a deletion needs neither)."""
    listed = offer_update(product)
    if isinstance(listed, OfferUpdate):
        return replace(listed, delete=True)
    return OfferUpdate(
        sku=product.sku,
        price=product.price if product.price is not None else Decimal(0),
        currency=product.currency or "",
        quantity=product.quantity,
        gtin=product.gtin,
        title=product.title,
        attributes=dict(product.attributes),
        delete=True,
    )


def errors_by_sku(outcomes: Sequence[OfferOutcome]) -> dict[str, list[str]]:
    """Failed outcomes as SKU → reasons (accepted ones dropped; a failure without reasons says so)."""
    errors: dict[str, list[str]] = {}
    for outcome in outcomes:
        if not outcome.ok:
            errors.setdefault(outcome.sku, []).extend(outcome.errors or ("rejected by the marketplace",))
    return errors


def _require(connector: MarketplaceConnector, operation: Operation) -> Capabilities:
    capabilities = connector.capabilities
    if not capabilities.supports(operation):
        raise PermanentError(f"connector {connector.name!r} does not support {operation.value}")
    return capabilities


# --- the jobs --------------------------------------------------------------------------------------


def _stand_aside(ctx: JobContext, channel: Channel) -> dict[str, Any] | None:
    """The delta's answer when a full sync does its work (see the module docstring), else None."""
    with ctx.engine.connect() as conn:
        full_job = offer_service.full_sync_in_flight(conn, channel.id, now=ctx.now(), other_than=ctx.job.id)
        first = (
            full_job is None
            and offer_service.never_fully_synced(conn, channel.id)
            and offer_service.count_dirty(conn, channel.id) > 0
        )
    if full_job is None and not first:
        return None
    with ctx.transaction() as conn:
        if full_job is None:
            queued = enqueue(
                conn,
                JobSpec(
                    tenant_id=channel.tenant_id,
                    kind=offer_service.OFFERS_FULL,
                    payload={"first_sync": True},
                    channel_id=channel.id,
                    flow=Flow.OFFERS.value,
                    idempotency_key=f"offers.first_full:{channel.id}",
                    dedupe_key=f"{offer_service.OFFERS_FULL}:{channel.id}",
                ),
                now=ctx.now(),
            )
            in_flight = offer_service.full_sync_in_flight(
                conn, channel.id, now=ctx.now(), job_id=queued.job_id
            )
            if not queued.created and in_flight is None:
                # The first full sync was queued before and is not in flight now (it died, was
                # cancelled, or backs off after a failure): never queue fulls over and over, and never
                # let stock go stale waiting for one — send the changes as a delta.
                return None
            full_job = queued.job_id
        result = {"sent": 0, "superseded_by_full_sync": full_job}
        ctx.complete_in(conn, result)
    return result


class _Batch:
    """Offers built for one submission: the sendable ones by SKU, and those the hub blocks itself (a
    deletion is blocked when the connector does not declare ``delete_offers``: the offer stays listed;
    an offer ``held`` by an unresolved ID match conflict — SKU → reason — is blocked with that reason
    first, and with its own reasons too when it could not be built either)."""

    def __init__(self, capabilities: Capabilities, held: Mapping[str, str]) -> None:
        self.can_delete = capabilities.delete_offers
        self.held = held
        self.ready: list[offer_service.DirtyOffer] = []
        self.updates: list[OfferUpdate] = []
        self.blocked: list[tuple[offer_service.DirtyOffer, list[str]]] = []

    def add(self, offer: offer_service.DirtyOffer) -> None:
        built: OfferUpdate | list[str]
        if offer.delete:
            built = offer_deletion(offer.product) if self.can_delete else [_CANNOT_DELETE]
        else:
            built = offer_update(offer.product)
        hold = self.held.get(offer.product.sku)
        if hold is not None:
            self.blocked.append((offer, [hold, *([] if isinstance(built, OfferUpdate) else built)]))
        elif isinstance(built, OfferUpdate):
            self.ready.append(offer)
            self.updates.append(built)
        else:
            self.blocked.append((offer, built))


def _submit(
    ctx: JobContext,
    conn: Connection,
    channel: Channel,
    offers: Sequence[offer_service.DirtyOffer],
    ref: ImportRef,
    *,
    now: datetime,
) -> list[offer_service.DirtyOffer]:
    """Record one submission and return the offers it carried.

    Nothing sent (``submitted`` 0): the outcomes are refusals, those offers are blocked. A result
    already done (a synchronous import): every offer is marked sent and the outcomes applied as the
    import's (its ``summary`` becomes each offer's last response). A result not done yet: its failed
    outcomes are offers refused before sending (blocked), the others are marked sent with the reference
    and the check is scheduled after ``retry_after``; its ``summary`` (e.g. why the connector chose a
    feed over per-offer calls) is kept in each offer's last request, where the operator sees it."""
    early = ref.result
    sent_nothing = not ref.submitted or not ref.reference
    settled = early is not None and early.done and not sent_nothing
    refused = errors_by_sku(early.outcomes) if early is not None and not settled else {}
    sent = [o for o in offers if o.product.sku not in refused]
    for offer in offers:
        if offer.product.sku in refused:
            offer_service.block(conn, offer, refused[offer.product.sku], now=now)
    if sent_nothing:
        return []
    offer_service.mark_sent(
        conn,
        sent,
        status=offer_service.OfferStatus.SUBMITTED,
        now=now,
        import_ref=ref.reference,
        request=_request_text(ref, settled=settled),
    )
    if early is not None and settled:
        _apply(conn, channel, ref.reference, early)
    else:
        delay = early.retry_after if early is not None and early.retry_after is not None else None
        _schedule_check(ctx, conn, channel, ref, IMPORT_POLL_SECONDS if delay is None else delay)
    return sent


def _request_text(ref: ImportRef, *, settled: bool) -> str:
    """What an offer's last request says of the submission that carried it: the mode and reference,
    and the connector's summary of a pending import (a settled one's goes to the last response)."""
    text = f"{ref.mode.value} import {ref.reference}"
    if ref.result is not None and ref.result.summary and not settled:
        text += f": {ref.result.summary}"
    return text


def push_delta(ctx: JobContext, channel: Channel, open_session: OpenSession) -> dict[str, Any]:
    """``offers.delta``: the oldest dirty offers of the channel in one submission (see the module)."""
    aside = _stand_aside(ctx, channel)
    if aside is not None:
        return aside
    now = ctx.now()
    with open_session(ctx, channel) as session:
        capabilities = _require(session.connector, Operation.SUBMIT_OFFERS_DELTA)
        limit = capabilities.batch_size(Operation.SUBMIT_OFFERS_DELTA, DEFAULT_DELTA_BATCH)
        with ctx.engine.connect() as conn:
            dirty = offer_service.dirty_offers(conn, channel.id, limit=limit)
            held = id_match_conflicts.held_offers(conn, channel) if dirty else {}
        if not dirty:
            return {"sent": 0}
        batch = _Batch(capabilities, held)
        for offer in dirty:
            batch.add(offer)
        ref = session.connector.submit_offers(batch.updates, SubmitMode.DELTA) if batch.updates else None
        with ctx.transaction() as conn:
            for offer, reasons in batch.blocked:
                offer_service.block(conn, offer, reasons, now=now)
            sent = [] if ref is None else _submit(ctx, conn, channel, batch.ready, ref, now=now)
            if sent and ref is not None:
                session.record(conn, f"import:{ref.reference}", now=now)
            remaining = offer_service.count_dirty(conn, channel.id)
            if remaining:
                enqueue(
                    conn,
                    JobSpec(
                        tenant_id=channel.tenant_id,
                        kind=OFFERS_DELTA,
                        payload={},
                        channel_id=channel.id,
                        flow=Flow.OFFERS.value,
                        dedupe_key=f"{OFFERS_DELTA}:{channel.id}",
                    ),
                    now=now,
                )
            result = {
                "sent": len(sent),
                "blocked": len(dirty) - len(sent),
                "import_id": ref.reference if ref is not None and sent else None,
                "remaining": remaining,
            }
            ctx.complete_in(conn, result)
    return result


def _report(ctx: JobContext, channel: Channel, done: int, total: int, stage: str) -> None:
    report: offer_service.OfferSyncProgressFn | None = ctx.services.get(offer_service.OFFER_SYNC_PROGRESS)
    if report is not None:
        report(offer_service.OfferSyncProgress(channel.id, done, total, stage))


def _build_in_chunks(
    ctx: JobContext,
    channel: Channel,
    everything: Sequence[offer_service.DirtyOffer],
    capabilities: Capabilities,
    held: Mapping[str, str],
) -> _Batch:
    """Every offer built, reporting the progress after each chunk."""
    total = len(everything)
    size = max(1, min(FULL_CHUNK, total // 20))
    batch = _Batch(capabilities, held)
    _report(ctx, channel, 0, total, "building")
    for start in range(0, total, size):
        for offer in everything[start : start + size]:
            batch.add(offer)
        _report(ctx, channel, min(total, start + size), total, "building")
    return batch


def _full_progress(conn: Connection, channel: Channel, job_id: int) -> dict[str, Any] | None:
    """What earlier attempts of full sync ``job_id`` recorded (see :func:`push_full`), or None."""
    raw = order_service.get_cursor(conn, channel.id, FULL_PROGRESS_CURSOR)
    if not raw:
        return None
    data = json.loads(raw)
    return data if isinstance(data, dict) and data.get("job") == job_id else None


def push_full(ctx: JobContext, channel: Channel, open_session: OpenSession) -> dict[str, Any]:
    """``offers.full`` (initial/full sync): every bound offer, in as few submissions as the connector's
    largest batch allows (one when it declares none), in binding order.

    Each submission is recorded in its own transaction as soon as it is made, with the job's progress
    (channel cursor :data:`FULL_PROGRESS_CURSOR`: the last binding sent, the catalog's first read): a
    retried attempt (e.g. the budget ran out after some submissions) resumes with the offers not sent
    yet instead of sending everything again. Offers an earlier attempt sent that changed since stay
    dirty for the next delta. Records the channel's ``full_synced_at`` (the instant the catalog was first
    read) once every offer went, so later deltas stay deltas; the optional
    :data:`~tradelane.services.offers.OFFER_SYNC_PROGRESS` service hears of every chunk of offers built
    (stage ``building``), then of the upload: once before the first submission and after each one
    (stage ``sent``: the offers handled so far — submitted, or blocked — of all of them), so a sync of
    several submissions advances as each one goes, not only when the last did."""
    now = ctx.now()
    with open_session(ctx, channel) as session:
        capabilities = _require(session.connector, Operation.SUBMIT_OFFERS_FULL)
        with ctx.engine.connect() as conn:
            progress = _full_progress(conn, channel, ctx.job.id)
            everything = offer_service.all_offers(conn, channel.id)
            held = id_match_conflicts.held_offers(conn, channel)
        read_at = datetime.fromisoformat(progress["read_at"]) if progress else now
        after: int | None = progress["after"] if progress else None
        sent = int(progress["sent"]) if progress else 0
        refused = int(progress["refused"]) if progress else 0
        references: list[str] = list(progress["imports"]) if progress else []
        batch = _build_in_chunks(ctx, channel, everything, capabilities, held)
        if batch.blocked:
            with ctx.transaction() as conn:
                for offer, reasons in batch.blocked:
                    offer_service.block(conn, offer, reasons, now=now)
        todo = [
            (offer, update)
            for offer, update in zip(batch.ready, batch.updates, strict=True)
            if after is None or offer.binding_id > after
        ]
        size = max(1, capabilities.batch_size(Operation.SUBMIT_OFFERS_FULL, len(todo) or 1))
        handled = len(everything) - len(todo)  # blocked, or sent by an earlier attempt
        _report(ctx, channel, handled, len(everything), "sent")
        for start in range(0, len(todo), size):
            part = todo[start : start + size]
            ref = session.connector.submit_offers([update for _, update in part], SubmitMode.FULL)
            recorded = len(session.exchanges)
            with ctx.transaction() as conn:
                carried = _submit(ctx, conn, channel, [offer for offer, _ in part], ref, now=now)
                sent += len(carried)
                refused += len(part) - len(carried)
                if carried:
                    references.append(ref.reference)
                    session.record(conn, f"import:{ref.reference}", now=now)
                state = {
                    "job": ctx.job.id,
                    "read_at": read_at.isoformat(),
                    "after": part[-1][0].binding_id,
                    "sent": sent,
                    "refused": refused,
                    "imports": references,
                }
                order_service.set_cursor(conn, channel.id, FULL_PROGRESS_CURSOR, json.dumps(state), now=now)
            del session.exchanges[:recorded]  # stored with this submission
            handled += len(part)
            _report(ctx, channel, handled, len(everything), "sent")
        with ctx.transaction() as conn:
            offer_service.mark_full_synced(conn, channel.id, read_at=read_at)
            result = {
                "sent": sent,
                "blocked": len(batch.blocked) + refused,
                "import_id": references[0] if len(references) == 1 else (references or None),
            }
            ctx.complete_in(conn, result)
    return result


def _schedule_check(
    ctx: JobContext, conn: Connection, channel: Channel, ref: ImportRef, delay: float
) -> None:
    enqueue(
        conn,
        JobSpec(
            tenant_id=channel.tenant_id,
            kind=IMPORT_CHECK,
            payload={"import_id": ref.reference, "mode": ref.mode.value, "submitted": ref.submitted},
            channel_id=channel.id,
            flow=Flow.OFFERS.value,
            idempotency_key=f"{IMPORT_CHECK}:{channel.id}:{ref.reference}",
            run_at=ctx.now() + timedelta(seconds=delay),
        ),
        now=ctx.now(),
    )


def _apply(conn: Connection, channel: Channel, reference: str, result: ImportResult) -> tuple[int, int]:
    return offer_service.apply_import_result(
        conn, channel.id, reference, errors_by_sku(result.outcomes), response=result.summary
    )


def check_import(ctx: JobContext, channel: Channel, open_session: OpenSession) -> dict[str, Any]:
    """``offers.import_check``: the import's result until it is done (a retryable error with the
    connector's ``retry_after`` meanwhile), then each offer's outcome."""
    payload = ctx.job.payload
    reference = str(payload["import_id"])
    ref = ImportRef(
        reference, SubmitMode(payload.get("mode", SubmitMode.DELTA.value)), int(payload.get("submitted", 0))
    )
    now = ctx.now()
    with open_session(ctx, channel) as session:
        _require(session.connector, Operation.READ_IMPORT)
        outcome = session.connector.import_result(ref)
        if not outcome.done:
            wait = IMPORT_POLL_SECONDS if outcome.retry_after is None else outcome.retry_after
            raise RetryableError(outcome.summary or f"import {reference} is not finished", retry_after=wait)
        with ctx.transaction() as conn:
            published, failed = _apply(conn, channel, reference, outcome)
            session.record(conn, f"import:{reference}", now=now)
            result = {"import_id": reference, "published": published, "failed": failed}
            ctx.complete_in(conn, result)
    return result
