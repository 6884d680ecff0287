"""Mirakl offers: deltas through OF24, full syncs through OF01, outcomes through OF02/OF03.

A delta takes every dirty binding of the channel (all the changes since the last call, coalesced: a
product changed ten times is sent once, with its latest values) in batches of ``delta_batch_size``,
one OF24 call per batch within the channel's OF24 budget. Sent offers are marked with the import id;
an ``offers.import_check`` job later reads OF02 (and OF03's error report) to set each offer's outcome.

First sync and full syncs (so that no offer is sent twice when a channel starts):

* a full sync supersedes deltas: while an ``offers.full`` of the channel is running or due, a delta
  stands aside and sends nothing (the full sends every offer, the dirty ones included; anything changed
  after the full read the catalog stays dirty for the next scheduled delta). A full sync backing off
  after a failure does not hold deltas back: stock must not go stale;
* a channel's first sync is a full one: a delta with offers to send, on a channel that never completed
  a full sync, queues one ``offers.full`` instead (once per channel — idempotency key
  ``offers.first_full:<channel>`` — coalesced with a full the operator asked for) and sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from tradelane.connectors.mirakl.gateway import MiraklGateway
from tradelane.connectors.mirakl.mapping import (
    OfferImportMode,
    error_report_rows_to_offer_errors,
    offer_blockers,
    offer_csv,
    offer_update_json,
)
from tradelane.domain.channels import Flow
from tradelane.domain.errors import RetryableError
from tradelane.services import offers as offer_service
from tradelane.services.channels import Channel
from tradelane.services.outbox import OFFERS_DELTA
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue

IMPORT_CHECK = "offers.import_check"
#: A full sync reports its progress every ``max(1, min(FULL_CHUNK, total // 20))`` offers built.
FULL_CHUNK = 500
#: Seconds between two looks at a running import (OF02's own budget may space them further).
IMPORT_POLL_SECONDS = 15.0


def _split(offers: Sequence[offer_service.DirtyOffer], gw: MiraklGateway) -> tuple[list[Any], list[Any]]:
    settings = gw.settings.offer_settings()
    ready: list[Any] = []
    blocked: list[Any] = []
    for offer in offers:
        reasons = offer_blockers(offer.product, settings)
        (blocked if reasons else ready).append((offer, reasons))
    return ready, blocked


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


def push_delta(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    aside = _stand_aside(ctx, channel)
    if aside is not None:
        return aside
    now = ctx.now()
    with MiraklGateway(ctx, channel) as gw:
        with ctx.engine.connect() as conn:
            batch = offer_service.dirty_offers(conn, channel.id, limit=gw.settings.delta_batch_size)
        if not batch:
            return {"sent": 0}
        ready, blocked = _split(batch, gw)
        import_id: int | None = None
        if ready:
            body = offer_update_json([o.product for o, _ in ready], gw.settings.offer_settings())
            import_id = gw.call("OF24", lambda c: c.update_offers(body))
        with ctx.transaction() as conn:
            for offer, reasons in blocked:
                offer_service.block(conn, offer, reasons, now=now)
            if import_id is not None:
                offer_service.mark_sent(
                    conn,
                    [o for o, _ in ready],
                    status=offer_service.OfferStatus.SUBMITTED,
                    now=now,
                    import_ref=str(import_id),
                    request=f"OF24 import {import_id}",
                )
                _schedule_check(ctx, conn, channel, import_id, _check_delay(gw))
                gw.record(conn, f"import:{import_id}", now=now)
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
                "sent": len(ready),
                "blocked": len(blocked),
                "import_id": import_id,
                "remaining": remaining,
            }
            ctx.complete_in(conn, result)
    return result


def _report(ctx: JobContext, channel: Channel, done: int, total: int, stage: str) -> None:
    report: offer_service.OfferSyncProgressFn | None = ctx.services.get(offer_service.OFFER_SYNC_PROGRESS)
    if report is not None:
        report(offer_service.OfferSyncProgress(channel.id, done, total, stage))


def _build_in_chunks(
    ctx: JobContext, channel: Channel, everything: Sequence[offer_service.DirtyOffer], gw: MiraklGateway
) -> tuple[list[Any], list[Any]]:
    """:func:`_split` chunk by chunk, reporting the progress after each chunk."""
    total = len(everything)
    size = max(1, min(FULL_CHUNK, total // 20))
    ready: list[Any] = []
    blocked: list[Any] = []
    _report(ctx, channel, 0, total, "building")
    for start in range(0, total, size):
        part_ready, part_blocked = _split(everything[start : start + size], gw)
        ready.extend(part_ready)
        blocked.extend(part_blocked)
        _report(ctx, channel, min(total, start + size), total, "building")
    return ready, blocked


def push_full(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """Initial/full sync: every bound offer in one OF01 file (NORMAL mode: create or update).

    Records the channel's ``full_synced_at`` (the instant the catalog was read), so later deltas stay
    deltas; the optional :data:`~tradelane.services.offers.OFFER_SYNC_PROGRESS` service hears of every
    chunk of offers built and of the upload."""
    now = ctx.now()
    with MiraklGateway(ctx, channel) as gw:
        with ctx.engine.connect() as conn:
            everything = offer_service.all_offers(conn, channel.id)
        ready, blocked = _build_in_chunks(ctx, channel, everything, gw)
        import_id: int | None = None
        if ready:
            data = offer_csv(
                [o.product for o, _ in ready],
                mode=OfferImportMode.NORMAL,
                settings=gw.settings.offer_settings(),
            )
            import_id = gw.call("OF01", lambda c: c.import_offers(data, OfferImportMode.NORMAL))
        with ctx.transaction() as conn:
            offer_service.mark_full_synced(conn, channel.id, read_at=now)
            for offer, reasons in blocked:
                offer_service.block(conn, offer, reasons, now=now)
            if import_id is not None:
                offer_service.mark_sent(
                    conn,
                    [o for o, _ in ready],
                    status=offer_service.OfferStatus.SUBMITTED,
                    now=now,
                    import_ref=str(import_id),
                    request=f"OF01 import {import_id}",
                )
                _schedule_check(ctx, conn, channel, import_id, _check_delay(gw))
                gw.record(conn, f"import:{import_id}", now=now, only_ops={"OF01"})
            result = {"sent": len(ready), "blocked": len(blocked), "import_id": import_id}
            ctx.complete_in(conn, result)
    _report(ctx, channel, len(everything), len(everything), "sent")
    return result


def _check_delay(gw: MiraklGateway) -> float:
    """Never look at an import sooner than the OF02 budget allows (a wasted token delays the result)."""
    limit = gw.settings.limit("OF02")
    return max(IMPORT_POLL_SECONDS, limit.per_seconds / limit.calls)


def _schedule_check(ctx: JobContext, conn: Any, channel: Channel, import_id: int, delay: float) -> None:
    enqueue(
        conn,
        JobSpec(
            tenant_id=channel.tenant_id,
            kind=IMPORT_CHECK,
            payload={"import_id": import_id},
            channel_id=channel.id,
            flow=Flow.OFFERS.value,
            idempotency_key=f"{IMPORT_CHECK}:{channel.id}:{import_id}",
            run_at=ctx.now() + timedelta(seconds=delay),
        ),
        now=ctx.now(),
    )


def check_import(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """OF02 until the import is finished, then OF03's per-line errors onto the offers they concern."""
    import_id = int(ctx.job.payload["import_id"])
    now = ctx.now()
    with MiraklGateway(ctx, channel) as gw:
        status = gw.call("OF02", lambda c: c.offer_import_status(import_id))
        if not status.finished:
            raise RetryableError(
                f"import {import_id} is {status.status.value}", retry_after=IMPORT_POLL_SECONDS
            )
        errors: dict[str, list[str]] = {}
        report_text = None
        if status.has_error_report:
            rows = gw.call("OF03", lambda c: c.offer_import_error_report(import_id))
            report_text = json.dumps(list(rows), ensure_ascii=False)[:65_536]
            offer_settings = gw.settings.offer_settings()
            for offer_sku, messages in error_report_rows_to_offer_errors(rows).items():
                errors[offer_settings.product_sku(offer_sku) or offer_sku] = messages
        with ctx.transaction() as conn:
            published, failed = offer_service.apply_import_result(
                conn, channel.id, str(import_id), errors, response=report_text or json.dumps(dict(status.raw))
            )
            gw.record(conn, f"import:{import_id}", now=now)
            result = {
                "import_id": import_id,
                "status": status.status.value,
                "published": published,
                "failed": failed,
                "lines_in_error": status.lines_in_error,
            }
            ctx.complete_in(conn, result)
    return result
