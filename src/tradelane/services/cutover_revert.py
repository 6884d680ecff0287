"""Revert of a cutover (:mod:`tradelane.services.cutover`): put the account back as the cutover found
it, as far as the marketplace allows, and say exactly what could not be restored.

In order, resumable (a call returns the cutover ``reverting`` while the restore's imports run, and the
next call goes on): the channel's offer syncs that have not started are cancelled (they would send the
catalog over the restored offers; a running one is waited for) and its offers and orders flows paused;
every snapshot offer's price and quantity is sent back; offers the cutover's sync created (listed now,
not in the snapshot) are deleted where the connector can delete offers, else set to quantity 0; the
holiday ends; the cutoff is dropped (the cutover is ``reverted``: order intake no longer applies it); the
flows are put back as they were. The report (``revert_report``) lists what could not be restored.
Audited (``cutover.revert``, phases ``started`` and ``finished``) and notified (``cutover.reverted``).
A revert is one operator's action however many calls it takes: both phases are recorded as the actor
who started it, with the reason given then (kept in ``data["revert"]``); when another process ran
the last call (the engine's ``cutover.advance`` job, as ``system``, or a later ``revert`` by someone
else), the ``finished`` event names it in ``details["run_by"]``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import ListedOffer, OfferUpdate, Operation
from tradelane.domain.channels import Flow
from tradelane.domain.errors import NotFoundError, RetryableError
from tradelane.persistence.tables import jobs, orders
from tradelane.services import audit, channel_lifecycle, notifications
from tradelane.services.channels import Channel
from tradelane.services.cutover import (
    MOVED_FLOWS,
    REVERTED,
    REVERTING,
    SYNC_KIND,
    Cutover,
    CutoverError,
    Deps,
    Run,
    claim,
    current,
    jsonable,
    pause_flows,
    push_offers,
    release,
    reload_cutover,
    snapshot,
    update_of,
)


def revert(deps: Deps, channel: Channel, *, reason: str | None = None) -> Cutover:
    """Put the account back as the cutover found it, as far as the marketplace allows (see the module
    docstring); resumable: returns the cutover ``reverting`` while imports run, ``reverted`` with its
    ``revert_report`` at the end. :class:`NotFoundError` without a cutover, :class:`CutoverError` when it
    is reverted already, :class:`~tradelane.services.cutover.CutoverBusy` (nothing done) while another
    run works on it. ``cutover.revert`` ``started`` and ``finished`` are audited as the actor of the
    call that started the revert, with its ``reason`` (a later call's ``reason``, when given, is the
    finished event's); its flow changes (``flow.pause``/``flow.resume``/``flow.enable``/
    ``flow.disable``, reason ``cutover N revert``) as the actor of the call that makes them."""
    with deps.engine.begin() as conn:
        cutover = current(conn, channel.id)
        if cutover is None:
            raise NotFoundError(f"channel {channel.name} has no cutover")
        if cutover.status == REVERTED:
            raise CutoverError(f"cutover {cutover.id} of {channel.name} is reverted already")
    run = Run(deps, channel, claim(deps, channel, cutover.id))
    try:
        return _revert(run, reason)
    except RetryableError as exc:  # a 429 or a spent budget: the next call resumes
        report = {
            **(reload_cutover(run).revert_report or {}),
            "message": f"the marketplace asks to wait: {exc}",
        }
        run.save(revert_report=report)
        return reload_cutover(run)
    finally:
        run.close()
        release(deps.engine, cutover.id, run.token)


def _revert(run: Run, reason: str | None) -> Cutover:
    channel = run.channel
    report: dict[str, Any] = dict(run.c.revert_report or {})
    with run.deps.engine.begin() as conn:
        if run.c.status != REVERTING:
            report = {"from_status": run.c.status, "from_step": run.c.step, "message": "reverting"}
            run.data["revert"] = {"by": run.deps.actor, "reason": reason}
            pause_flows(conn, run, MOVED_FLOWS, True, reason=f"cutover {run.c.id} revert")
            _cancel_sync(conn, run)
            audit.record(
                conn,
                tenant_id=channel.tenant_id,
                channel_id=channel.id,
                actor=run.deps.actor,
                action="cutover.revert",
                now=run.now,
                reason=reason,
                details={"cutover_id": run.c.id, "phase": "started", "from_step": run.c.step},
            )
        run.save(conn, status=REVERTING, revert_report=report)
    state = run.data["revert"]
    with run.deps.engine.connect() as conn:
        taken = snapshot(conn, run.c.id)
        sync_job = run.data.get("sync", {}).get("job_id")
        running = sync_job is not None and conn.execute(
            sa.select(jobs.c.state).where(jobs.c.id == sync_job)
        ).scalar() in ("queued", "running")
    if running:  # its submissions would land over the restore: let it end first
        report["message"] = f"waiting for the initial sync job {sync_job} to end before restoring"
        run.save(revert_report=report)
        return reload_cutover(run)
    found = {o.sku for o in taken}
    connector = run.connector
    # offers the cutover's sync created (listed now, not in the snapshot): deleted or set to 0
    if "created" not in state:
        if run.c.snapshot_taken_at is not None and connector.capabilities.supports(Operation.LIST_OFFERS):
            listed_now = [o for o in connector.list_offers() if o.sku not in found]
        else:
            listed_now = []
        state["created"] = {
            o.sku: {
                "price": None if o.price is None else str(o.price),
                "currency": o.currency,
                "product_id": o.product_id,
            }
            for o in listed_now
        }
        run.save()
    can_delete = connector.capabilities.delete_offers
    updates: dict[str, OfferUpdate] = {}
    not_restorable: dict[str, str] = {}
    for offer in taken:
        update = update_of(offer, offer.quantity or 0)
        if update is None:
            not_restorable[offer.sku] = "the listing had no price: nothing to restore it with"
        else:
            updates[offer.sku] = update
    for sku, seen in state["created"].items():
        listed = ListedOffer(
            sku,
            None if seen["price"] is None else Decimal(seen["price"]),
            seen["currency"],
            0,
            seen["product_id"],
        )
        update = update_of(listed, 0)
        if update is None:
            not_restorable[sku] = "created by the cutover's sync, listed without a price: left as it is"
            continue
        updates[sku] = OfferUpdate(**{**_fields(update), "delete": can_delete})
    push, done, _ = push_offers(run, "restore", updates)
    if not done:
        with run.deps.engine.begin() as conn:
            report["message"] = f"restoring {len(updates)} offers: {len(push.ok)} done, import running"
            run.save(conn, revert_report=report)
        return reload_cutover(run)
    if run.data.get("holiday_set") and not run.data.get("reopened"):
        restore, said = _holiday_back(run.data.get("holiday"), run.now)
        if restore is None:
            connector.set_holiday(None, None)
        else:
            connector.set_holiday(*restore)
        run.data["reopened"] = True
        run.data["holiday_restored"] = said
        run.save()
    with run.deps.engine.begin() as conn:
        _cancel_sync(conn, run)
        before = run.data.get("flows_before", {})
        why = f"cutover {run.c.id} revert"
        for flow_name, was in before.items():
            flow = Flow(flow_name)
            channel_lifecycle.set_flow(
                conn, channel, flow, bool(was["enabled"]), actor=run.deps.actor, reason=why, now=run.now
            )
            pause_flows(conn, run, [flow], bool(was["paused"]), reason=why)
        accepted = []
        if run.c.orders_cutoff is not None:
            accepted = list(
                conn.execute(
                    sa.select(orders.c.marketplace_order_id)
                    .where(
                        orders.c.channel_id == channel.id,
                        orders.c.marketplace_created_at >= run.c.orders_cutoff,
                    )
                    .order_by(orders.c.id)
                ).scalars()
            )
        created = sorted(state["created"])
        failed = {sku: reasons for sku, reasons in push.errors.items()}
        already = sorted(push.already)
        restored = sorted(sku for sku in push.ok if sku in found)
        could_not: list[str] = []
        for sku, reasons in sorted(failed.items()):
            could_not.append(f"{sku}: the marketplace refused the restore ({' / '.join(reasons)})")
        for sku, why in sorted(not_restorable.items()):
            could_not.append(f"{sku}: {why}")
        if created:
            could_not.append(
                f"{len(created)} offer(s) created by the cutover's sync did not exist before: "
                + (
                    "deleted"
                    if can_delete
                    else "left on the marketplace with quantity 0 (the connector cannot delete offers)"
                )
                + f" ({', '.join(created[:20])})"
                + (
                    f"; already deleted when checked again after a lost answer: {', '.join(gone[:20])}"
                    if (gone := [sku for sku in created if sku in push.already])
                    else ""
                )
            )
        if accepted:
            could_not.append(
                f"{len(accepted)} order(s) created after the cutoff were imported (and accepted where the "
                f"marketplace requires it) by tradelane; they stay so: {', '.join(accepted[:20])}"
            )
        holiday_said = run.data.get("holiday_restored") if run.data.get("holiday_set") else None
        if holiday_said and not holiday_said.startswith("closing period restored"):
            could_not.append(holiday_said)
        could_not.append(
            "only prices and quantities are restored; other offer fields are sent as the channel's settings"
        )
        report.update(
            restored=len(restored),
            snapshot=len(taken),
            created_by_sync=created,
            deleted=created if can_delete else [],
            errors=failed,
            already_in_effect=already,
            holiday=holiday_said,
            orders_after_cutoff=accepted,
            not_restored=could_not,
            message=f"reverted: {len(restored)} of {len(taken)} offers restored"
            + (
                f"; {holiday_said}"
                if holiday_said and holiday_said.startswith("closing period restored")
                else ""
            )
            + "; not restored: "
            + " | ".join(could_not),
        )
        # The revert's end is its starter's, whoever ran this last call (see the module docstring).
        started_by = str(state.get("by") or run.deps.actor)
        finished: dict[str, Any] = {"cutover_id": run.c.id, "phase": "finished", **jsonable(report)}
        if started_by != run.deps.actor:
            finished["run_by"] = run.deps.actor
        audit.record(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            actor=started_by,
            action="cutover.revert",
            now=run.now,
            reason=reason or state.get("reason"),
            details=finished,
        )
        notifications.notify(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            event="cutover.reverted",
            subject=f"[{channel.name}] cutover {run.c.id} reverted",
            body=report["message"],
            details=jsonable(report),
            now=run.now,
        )
        run.save(conn, status=REVERTED, reverted_at=run.now, revert_report=report)
    return reload_cutover(run)


def _holiday_back(holiday: Any, now: datetime) -> tuple[tuple[datetime, datetime] | None, str]:
    """What ending the cutover's closing period sets: the account's earlier closing period (step 2 kept
    it in ``data["holiday"]["previous"]``) when there was one and it is not over, else nothing (the shop
    reopens); with the sentence the report gives."""
    if not isinstance(holiday, dict) or "previous" not in holiday:
        return None, (
            "the shop was reopened; a closing period set before the cutover was not recorded (this "
            "cutover started before step 2 read it) and is not restored"
        )
    previous = holiday["previous"]
    if previous is None:
        return None, (
            "the shop was reopened; the connector could not read a closing period set before the "
            "cutover, so none is restored"
        )
    start = _when(previous.get("closed_from"))
    end = _when(previous.get("closed_to"))
    if start is None and end is None:
        return None, "the shop was reopened, as it was open before the cutover (no closing period)"
    if start is None or end is None:
        only = "closed_from" if start is not None else "closed_to"
        return None, (
            f"the shop was reopened; the closing period set before the cutover had only {only} "
            f"({previous.get(only)}), which cannot be set back alone"
        )
    if end <= now:
        return None, (
            f"the shop was reopened: the closing period set before the cutover ({start.isoformat()} → "
            f"{end.isoformat()}) is over"
        )
    return (
        start,
        end,
    ), f"closing period restored as before the cutover: {start.isoformat()} → {end.isoformat()}"


def _when(value: Any) -> datetime | None:
    return None if value in (None, "") else datetime.fromisoformat(str(value))


def _cancel_sync(conn: Connection, run: Run) -> int:
    """Cancel the channel's offer syncs that have not started — the cutover's initial sync and any
    delta queued meanwhile: they would send the catalog over the restored offers (a running one is
    waited for). Returns how many were cancelled."""
    return int(
        conn.execute(
            sa.update(jobs)
            .where(
                jobs.c.channel_id == run.channel.id,
                jobs.c.kind.in_([SYNC_KIND, "offers.delta"]),
                jobs.c.state == "queued",
            )
            .values(
                state="cancelled",
                last_error=f"cutover {run.c.id} reverted",
                finished_at=run.now,
                updated_at=run.now,
            )
        ).rowcount
    )


def _fields(update: OfferUpdate) -> dict[str, Any]:
    return {
        "sku": update.sku,
        "price": update.price,
        "currency": update.currency,
        "quantity": update.quantity,
        "gtin": update.gtin,
        "title": update.title,
        "attributes": dict(update.attributes),
    }
