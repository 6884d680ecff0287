"""Mirakl offers: deltas through OF24, full syncs through OF01, outcomes through OF02/OF03.

A delta takes every dirty binding of the channel (all the changes since the last call, coalesced: a
product changed ten times is sent once, with its latest values) in batches of ``delta_batch_size``,
one OF24 call per batch within the channel's OF24 budget. Sent offers are marked with the import id;
an ``offers.import_check`` job later reads OF02 (and OF03's error report) to set each offer's outcome.
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


def push_delta(ctx: JobContext, channel: Channel) -> dict[str, Any]:
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


def push_full(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """Initial/full sync: every bound offer in one OF01 file (NORMAL mode: create or update)."""
    now = ctx.now()
    with MiraklGateway(ctx, channel) as gw:
        with ctx.engine.connect() as conn:
            everything = offer_service.all_offers(conn, channel.id)
        ready, blocked = _split(everything, gw)
        import_id: int | None = None
        if ready:
            data = offer_csv(
                [o.product for o, _ in ready],
                mode=OfferImportMode.NORMAL,
                settings=gw.settings.offer_settings(),
            )
            import_id = gw.call("OF01", lambda c: c.import_offers(data, OfferImportMode.NORMAL))
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
                    request=f"OF01 import {import_id}",
                )
                _schedule_check(ctx, conn, channel, import_id, _check_delay(gw))
                gw.record(conn, f"import:{import_id}", now=now, only_ops={"OF01"})
            result = {"sent": len(ready), "blocked": len(blocked), "import_id": import_id}
            ctx.complete_in(conn, result)
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
