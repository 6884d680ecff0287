"""The reconciler: the marketplace's listings of a channel against what the hub manages for it, and —
once an operator confirmed a dry run — the removal of what should not be listed.

A report sorts every listing and every selected product into:

* **not listed** — selected for the channel but not on the marketplace (the Listings flow lists them);
* **not selected** — listed, known to the catalog, not selected for the channel: a run **removes**
  them, only where the connector declares ``delete_offers`` (else the report says it cannot, and why)
  — except offers being delisted (de-selected with the reconciler on), whose deletion the offers delta
  sends already;
* **unmanaged** — listed under an SKU the catalog does not know: **kept**, with the oversell warning
  (:func:`oversell_warning`: their stock is not kept in sync), unless the operator explicitly includes
  them in the removal (``include_unmanaged``).

Always a dry run first: :func:`dry_run_job` (job :data:`DRY_RUN`, queued by :func:`queue_dry_run`)
stores a report and removes nothing. :func:`enable_reconciler` confirms one recent report of the
channel (at most :data:`CONFIRMATION_MAX_AGE` old) and switches the Reconciler flow on through
:func:`tradelane.services.channel_lifecycle.set_flow`. The flow's periodic job :data:`RUN`
(:func:`run_job`) computes a fresh report and removes its ``to_remove`` with ``OfferUpdate.delete``
deltas within the connector's batch size and the channel's budgets, and stores what it submitted — but
only while the flow is on **and** a confirmed dry run exists: the include-unmanaged choice of the last
confirmed report governs every run. A removal the marketplace processes asynchronously (Mirakl OF24) is
recorded as requested with its import reference; the next report shows whether it is gone. Enabling
and every removal are audited (:mod:`tradelane.services.audit`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import Capabilities, ListedOffer, OfferUpdate, Operation, SubmitMode
from tradelane.domain.channels import Flow, LifecycleState
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.tables import channel_flows, reconciler_reports
from tradelane.services import audit
from tradelane.services.channel_lifecycle import set_flow
from tradelane.services.channels import Channel
from tradelane.services.connector_session import ConnectorSession
from tradelane.services.listings import catalog_side, read_listings
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.scheduler import FLOW_NOT_RUN

#: Job kinds: an operator's dry run, and the Reconciler flow's periodic run (scheduler FLOW_JOB_KINDS).
DRY_RUN = "reconciler.dry_run"
RUN = "reconciler.run"
#: A dry run older than this cannot be confirmed: run a fresh one.
CONFIRMATION_MAX_AGE = timedelta(hours=24)
#: Deletions per submission when the connector declares no delta batch size.
DEFAULT_BATCH = 100
ENABLE_ACTION = "reconciler.enable"
REMOVE_ACTION = "reconciler.remove"

SessionOpener = Callable[[JobContext, Channel], ConnectorSession]


def oversell_warning(count: int) -> str | None:
    """The warning a report carries while listings exist that tradelane does not manage (None: none)."""
    if not count:
        return None
    return (
        f"{count} listings exist that tradelane does not manage: their stock is not kept in sync — "
        "risk of overselling"
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """The three groups of a report, each sorted; ``to_remove`` is what a run removes."""

    listed_count: int
    selected_count: int
    not_listed: tuple[str, ...]
    not_selected: tuple[str, ...]
    unmanaged: tuple[str, ...]
    to_remove: tuple[str, ...]
    can_delete: bool
    include_unmanaged: bool


def compare(
    listed_skus: Iterable[str],
    catalog_skus: Iterable[str],
    selected_skus: Iterable[str],
    *,
    can_delete: bool,
    include_unmanaged: bool,
    delisting_skus: Iterable[str] = (),
) -> Comparison:
    """Sort the listings and the selection into the report's groups (pure). ``delisting_skus`` (offers
    the Listings flow is deleting already) are reported as not selected but never removed twice."""
    listed = set(listed_skus)
    catalog = set(catalog_skus)
    selected = set(selected_skus)
    not_selected = sorted((listed & catalog) - selected)
    unmanaged = sorted(listed - catalog)
    delisting = set(delisting_skus)
    removable = [s for s in not_selected if s not in delisting] + (unmanaged if include_unmanaged else [])
    return Comparison(
        listed_count=len(listed),
        selected_count=len(selected),
        not_listed=tuple(sorted(selected - listed)),
        not_selected=tuple(not_selected),
        unmanaged=tuple(unmanaged),
        to_remove=tuple(sorted(removable)) if can_delete else (),
        can_delete=can_delete,
        include_unmanaged=include_unmanaged,
    )


def cannot_delete_hint(channel: Channel, capabilities: Capabilities) -> str | None:
    """Why a run of ``channel`` removes nothing (None: it can remove)."""
    if capabilities.delete_offers:
        return None
    hint = capabilities.hints.get("delete_offers")
    return (
        f"connector {channel.connector!r} cannot remove offers from the marketplace: listings that are "
        f"not selected are reported, never removed{f' ({hint})' if hint else ''}"
    )


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    channel_id: int
    created_at: datetime
    actor: str
    kind: str
    can_delete: bool
    include_unmanaged: bool
    listed_count: int
    selected_count: int
    not_listed: list[str]
    not_selected: list[str]
    unmanaged: list[str]
    to_remove: list[str]
    removals: list[dict[str, Any]]
    warning: str | None
    hint: str | None
    confirmed_at: datetime | None
    confirmed_by: str | None

    def counts(self) -> dict[str, int]:
        return {
            "listed": self.listed_count,
            "selected": self.selected_count,
            "not_listed": len(self.not_listed),
            "not_selected": len(self.not_selected),
            "unmanaged": len(self.unmanaged),
            "to_remove": len(self.to_remove),
            "removal_requested": sum(1 for r in self.removals if r.get("ok")),
            "removal_refused": sum(1 for r in self.removals if not r.get("ok")),
        }

    def as_json(self, *, sample: int | None = None) -> dict[str, Any]:
        """The report for the CLI and the API; ``sample`` cuts each SKU list to its first N."""

        def cut(skus: list[str]) -> list[str]:
            return skus if sample is None else skus[:sample]

        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "kind": self.kind,
            "can_delete": self.can_delete,
            "include_unmanaged": self.include_unmanaged,
            "counts": self.counts(),
            "not_listed": cut(self.not_listed),
            "not_selected": cut(self.not_selected),
            "unmanaged": cut(self.unmanaged),
            "to_remove": cut(self.to_remove),
            "removals": self.removals if sample is None else self.removals[:sample],
            "warning": self.warning,
            "hint": self.hint,
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
            "confirmed_by": self.confirmed_by,
        }


def _report(row: Any) -> Report:
    return Report(
        id=row.id,
        channel_id=row.channel_id,
        created_at=row.created_at,
        actor=row.actor,
        kind=row.kind,
        can_delete=bool(row.can_delete),
        include_unmanaged=bool(row.include_unmanaged),
        listed_count=row.listed_count,
        selected_count=row.selected_count,
        not_listed=list(row.not_listed),
        not_selected=list(row.not_selected),
        unmanaged=list(row.unmanaged),
        to_remove=list(row.to_remove),
        removals=list(row.removals),
        warning=row.warning,
        hint=row.hint,
        confirmed_at=row.confirmed_at,
        confirmed_by=row.confirmed_by,
    )


def store_report(
    conn: Connection,
    channel: Channel,
    comparison: Comparison,
    *,
    kind: str,
    actor: str,
    hint: str | None,
    now: datetime,
    removals: Sequence[dict[str, Any]] = (),
) -> Report:
    report_id = conn.execute(
        sa.insert(reconciler_reports)
        .values(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            created_at=now,
            actor=actor,
            kind=kind,
            can_delete=comparison.can_delete,
            include_unmanaged=comparison.include_unmanaged,
            listed_count=comparison.listed_count,
            selected_count=comparison.selected_count,
            not_listed=list(comparison.not_listed),
            not_selected=list(comparison.not_selected),
            unmanaged=list(comparison.unmanaged),
            to_remove=list(comparison.to_remove),
            removals=list(removals),
            warning=oversell_warning(0 if comparison.include_unmanaged else len(comparison.unmanaged)),
            hint=hint,
        )
        .returning(reconciler_reports.c.id)
    ).scalar_one()
    return get_report(conn, channel, int(report_id))


def get_report(conn: Connection, channel: Channel, report_id: int) -> Report:
    """Report ``report_id`` of ``channel``; :class:`NotFoundError` when the channel has no such report."""
    row = conn.execute(
        sa.select(reconciler_reports).where(
            reconciler_reports.c.id == report_id, reconciler_reports.c.channel_id == channel.id
        )
    ).first()
    if row is None:
        raise NotFoundError(f"{channel.name} has no reconciler report {report_id}")
    return _report(row)


def latest_report(conn: Connection, channel_id: int, *, kind: str | None = None) -> Report | None:
    """The channel's newest report (of ``kind``, when given), or None."""
    stmt = sa.select(reconciler_reports).where(reconciler_reports.c.channel_id == channel_id)
    if kind is not None:
        stmt = stmt.where(reconciler_reports.c.kind == kind)
    row = conn.execute(stmt.order_by(reconciler_reports.c.id.desc()).limit(1)).first()
    return _report(row) if row is not None else None


def confirmed_report(conn: Connection, channel_id: int) -> Report | None:
    """The dry run most recently confirmed for the channel (its choices govern the runs), or None."""
    row = conn.execute(
        sa.select(reconciler_reports)
        .where(reconciler_reports.c.channel_id == channel_id, reconciler_reports.c.confirmed_at.is_not(None))
        .order_by(reconciler_reports.c.confirmed_at.desc(), reconciler_reports.c.id.desc())
        .limit(1)
    ).first()
    return _report(row) if row is not None else None


def queue_dry_run(
    conn: Connection, channel: Channel, *, actor: str, now: datetime, include_unmanaged: bool = False
) -> int:
    """Queue a dry run of ``channel`` (job :data:`DRY_RUN`); returns the job id. The job's result
    carries ``report_id``."""
    return enqueue(
        conn,
        JobSpec(
            tenant_id=channel.tenant_id,
            kind=DRY_RUN,
            payload={"actor": actor, "include_unmanaged": include_unmanaged},
            channel_id=channel.id,
        ),
        now=now,
    ).job_id


def enable_reconciler(
    conn: Connection,
    channel: Channel,
    report_id: int,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> Report:
    """Switch the Reconciler flow of ``channel`` on, confirming dry-run report ``report_id``.

    Refused (:class:`ValidationError`, nothing changed) unless the report is a dry run of this channel
    at most :data:`CONFIRMATION_MAX_AGE` old, and on a live channel without a ``reason``;
    :class:`NotFoundError` when the channel has no such report. The flow switch goes through
    ``channel_lifecycle.set_flow`` (its own rules apply too). A flow already on — e.g. a flow row
    enabled by default — stays on: the confirmation is what lets its runs remove anything. The report
    is marked confirmed and the enabling audited (``reconciler.enable``), all in ``conn``'s
    transaction."""
    report = get_report(conn, channel, report_id)
    if channel.lifecycle_state == LifecycleState.LIVE.value and not (reason or "").strip():
        raise ValidationError(f"{channel.name} is live: enabling its reconciler needs a reason")
    if report.kind != "dry_run":
        raise ValidationError(f"report {report_id} is a {report.kind}, not a dry run: confirm a dry run")
    age = now - report.created_at
    if age > CONFIRMATION_MAX_AGE:
        hours = int(CONFIRMATION_MAX_AGE.total_seconds() // 3600)
        raise ValidationError(
            f"dry run {report_id} of {channel.name} is {int(age.total_seconds() // 3600)} h old (more than "
            f"{hours} h): run a fresh dry run and confirm that one"
        )
    set_flow(
        conn, channel, Flow.RECONCILER, True, actor=actor, reason=reason, now=now, confirmed_dry_run=report_id
    )
    conn.execute(
        sa.update(reconciler_reports)
        .where(reconciler_reports.c.id == report_id)
        .values(confirmed_at=now, confirmed_by=actor)
    )
    counts = report.counts()
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=ENABLE_ACTION,
        now=now,
        reason=reason,
        details={
            "report_id": report_id,
            "to_remove": counts["to_remove"],
            "unmanaged": counts["unmanaged"],
            "include_unmanaged": report.include_unmanaged,
            "can_delete": report.can_delete,
        },
    )
    return get_report(conn, channel, report_id)


# --- jobs --------------------------------------------------------------------------------------------


def _compare_now(
    conn: Connection,
    channel: Channel,
    listed: Sequence[ListedOffer],
    capabilities: Capabilities,
    *,
    include_unmanaged: bool,
) -> Comparison:
    side = catalog_side(conn, channel)
    return compare(
        (o.sku for o in listed),
        side.items,
        side.selected,
        can_delete=capabilities.delete_offers,
        include_unmanaged=include_unmanaged,
        delisting_skus=side.delisting,
    )


def dry_run_job(ctx: JobContext, channel: Channel, sessions: SessionOpener) -> dict[str, Any]:
    """Job :data:`DRY_RUN`: read every listing, store the report; nothing is sent to the marketplace."""
    payload = ctx.job.payload
    actor = str(payload.get("actor") or audit.SYSTEM)
    with sessions(ctx, channel) as session:
        connector = session.connector
        listed = read_listings(connector, channel, "the reconciler")
        now = ctx.now()
        with ctx.transaction() as conn:
            comparison = _compare_now(
                conn,
                channel,
                listed,
                connector.capabilities,
                include_unmanaged=bool(payload.get("include_unmanaged")),
            )
            session.record(conn, f"reconciler:{channel.id}", now=now)
            report = store_report(
                conn,
                channel,
                comparison,
                kind="dry_run",
                actor=actor,
                hint=cannot_delete_hint(channel, connector.capabilities),
                now=now,
            )
            result = {"report_id": report.id, **report.counts()}
            ctx.complete_in(conn, result)
    return result


def _flow_on(conn: Connection, channel_id: int) -> bool:
    row = conn.execute(
        sa.select(channel_flows.c.enabled, channel_flows.c.paused).where(
            channel_flows.c.channel_id == channel_id, channel_flows.c.flow == Flow.RECONCILER.value
        )
    ).first()
    return row is not None and bool(row.enabled) and not bool(row.paused)


def _deletion(offer: ListedOffer) -> OfferUpdate:
    """A listing as the deletion of itself (its listed price and currency; nothing else is sent)."""
    return OfferUpdate(
        sku=offer.sku,
        price=offer.price if offer.price is not None else Decimal(0),
        currency=offer.currency or "",
        quantity=0,
        delete=True,
    )


def run_job(ctx: JobContext, channel: Channel, sessions: SessionOpener) -> dict[str, Any]:
    """Job :data:`RUN` (the Reconciler flow): a fresh report and, while the flow is on and a dry run was
    confirmed, the removal of its ``to_remove`` (deltas of at most the connector's batch size, each
    call within the channel's budget). The report stores what was submitted and what the marketplace
    refused at once; the removals are audited (``reconciler.remove``, actor ``system``). A job that
    fails midway (a budget wait too long, a dropped connection) records nothing: its retry reads the
    listings again, so what an earlier attempt removed is no longer listed and not sent twice (a Mirakl
    deletion still being imported may be sent again; Mirakl reports it as an offer that no longer
    exists). Skipped while the flow is off or no dry run was confirmed: then the flow did not run
    (:data:`~tradelane.sync.scheduler.FLOW_NOT_RUN`, no last success)."""
    with ctx.engine.connect() as conn:
        on = _flow_on(conn, channel.id)
        confirmed = confirmed_report(conn, channel.id)
    if not on:
        return {"skipped": f"the reconciler flow of {channel.name} is off", FLOW_NOT_RUN: True}
    if confirmed is None:
        return {
            "skipped": f"no confirmed dry run for {channel.name}: nothing is removed before an operator "
            "confirms one (tradelane channel reconcile NAME, then --enable REPORT_ID)",
            FLOW_NOT_RUN: True,
        }
    with sessions(ctx, channel) as session:
        connector = session.connector
        caps = connector.capabilities
        listed = read_listings(connector, channel, "the reconciler")
        with ctx.engine.connect() as conn:
            comparison = _compare_now(
                conn, channel, listed, caps, include_unmanaged=confirmed.include_unmanaged
            )
        by_sku = {o.sku: o for o in listed}
        removals: list[dict[str, Any]] = []
        batch = max(1, caps.batch_size(Operation.SUBMIT_OFFERS_DELTA, DEFAULT_BATCH))
        todo = list(comparison.to_remove) if caps.supports(Operation.SUBMIT_OFFERS_DELTA) else []
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            ref = connector.submit_offers([_deletion(by_sku[sku]) for sku in chunk], SubmitMode.DELTA)
            refused = {o.sku: o for o in (ref.result.outcomes if ref.result else ()) if not o.ok}
            for sku in chunk:
                outcome = refused.get(sku)
                removals.append(
                    {
                        "sku": sku,
                        "ok": outcome is None,
                        "reference": ref.reference or None,
                        "errors": list(outcome.errors) if outcome is not None else [],
                    }
                )
        now = ctx.now()
        with ctx.transaction() as conn:
            session.record(conn, f"reconciler:{channel.id}", now=now)
            report = store_report(
                conn,
                channel,
                comparison,
                kind="run",
                actor=audit.SYSTEM,
                hint=cannot_delete_hint(channel, caps),
                now=now,
                removals=removals,
            )
            if removals:
                audit.record(
                    conn,
                    tenant_id=channel.tenant_id,
                    channel_id=channel.id,
                    actor=audit.SYSTEM,
                    action=REMOVE_ACTION,
                    now=now,
                    details={
                        "report_id": report.id,
                        "confirmed_dry_run": confirmed.id,
                        "requested": [r["sku"] for r in removals if r["ok"]],
                        "refused": [r["sku"] for r in removals if not r["ok"]],
                        "references": sorted({r["reference"] for r in removals if r["reference"]}),
                    },
                )
            result = {"report_id": report.id, **report.counts()}
            ctx.complete_in(conn, result)
    return result
