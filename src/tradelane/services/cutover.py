"""The reversible cutover of a live marketplace account from a previous integrator to tradelane.

A cutover is one ``cutovers`` row per channel (at most one not reverted) moving through six steps; the
row holds each step's state and the step's working data, so a crash or a restart resumes at the right
step, and every step is idempotent (running a completed or half-done step again is safe):

1. **schedule** — the date (default: now; nothing happens before it) and the operator's confirmation
   that the previous integrator will disable their connection (``previous_integrator_disabled``;
   without it the cutover waits here). The channel's offers and orders flows are paused (their state
   before is kept for ``revert``): nothing of the hub's reaches the account while it moves.
2. **holiday** — a closing period where the connector has one (:attr:`HolidayMode.CLOSING_PERIOD`,
   e.g. Mirakl A02 ``closed_from``/``closed_to``, from now for ``holiday_days``); the closing period
   the account had before (``current_holiday``, Mirakl A01) is read first and kept in
   ``data["holiday"]["previous"]`` (``{"closed_from", "closed_to"}`` as ISO text or None; None when
   unreadable) for ``revert``. Where it has none, the closest equivalent, zero stock, is set here,
   before the count (step 3's snapshot and zeroing, the same idempotent code; step 3 then finds it
   done): an order placed while step 2 waits is impossible or counted, none falls between the count
   and the cutoff. Then it waits until
   the *outstanding orders* are processed: orders the marketplace shows (connector's initial look-back
   read) as pending, awaiting acceptance, awaiting payment (Amazon's withheld Pending orders
   included), to ship or partially shipped, plus the hub's own orders of the channel in those states
   or ready but not yet delivered to the merchant system. The live count is kept in the step.
3. **snapshot** — the marketplace's offers (``list_offers``: price, currency, quantity, product id) are
   stored once (``cutover_offers``; never overwritten, so never by the zeroed quantities), then every
   quantity is set to 0 (``submit_offers`` delta batches within the connector's batch size and
   budgets; each import's result checked; refusals stop the step, listed per SKU).
4. **cutoff** — the order-import cutoff is set to now rounded DOWN to the whole second (marketplaces
   date orders to the second: an order created at or after the cutoff is imported, one in the same
   second is not dropped): order intake never imports an order created before it
   (:func:`tradelane.services.order_intake.orders_cutoff`) and, so that none after it is missed,
   the channel's orders watermark must precede it: an existing watermark does; without one, the
   connector's initial read is made now and its cursor stored (orders it returns from the cutoff on
   are stored as a poll would).
5. **sync** — the offers flow resumes and an initial full sync (``offers.full``, the selected catalog)
   is queued; the cutover waits for the job and its imports. Offers the marketplace refused (or the hub
   blocked) STOP the cutover here, the store still on holiday, the errors listed per SKU with the raw
   reason; ``advance`` again retries the sync (a new full sync) — or ``revert``.
6. **live** — the holiday ends, the regular flows (offers, orders, fulfillments) are enabled and
   resumed, and the cutover waits for a live test order (an order created after the cutoff, imported
   and delivered to the merchant system) and a dummy status update (an update of one of the channel's
   orders pushed and confirmed by the marketplace) → done.

A cutover takes over the LIVE account: while the channel's connector works on a staging account (a
channel in Testing with one, :meth:`MarketplaceConnector.staging_account`) ``advance`` stops at the
current step with the reason (promote the channel or remove the staging account) and ``plan`` says so
(``refused``). While the store should be closed (steps 2-5, a stopped step 5 included), a closing
period ending within a day is extended (A02 again, to now + ``holiday_days``; audited and notified
``cutover.holiday_extended``): the marketplace never reopens the shop by itself mid-cutover.

``advance`` goes as far as it can and returns (never sleeps): a step that waits (the date, the
confirmation, outstanding orders, imports, the sync job, the test order) leaves the cutover
``waiting`` with a message; the CLI's ``run`` calls it again with a progress display (bounded) or
returns at once (``--no-wait``); the sync job runs on any worker (or the CLI's in-process one).

``revert`` (from any state but reverted, also half-way) restores the snapshot's prices and quantities,
deletes the offers the cutover's sync created (where the connector can delete offers; else sets them
to 0), ends the holiday, drops the cutoff and puts the flows back as they were; its report says exactly
what it could not restore. Like ``advance`` it is resumable.

Modules: this one (the state machine and its steps), :mod:`.cutover_plan` (the dry run and the live
count of outstanding orders), :mod:`.cutover_revert`, :mod:`.cutover_remote` (the connector for a
command, offer pushes tracked across calls), :mod:`.cutover_jobs` (the engine's ``cutover.advance``).

Every step's start, finish, wait and problem is audited (``cutover.<step>``, :mod:`.audit`) and every
completed step and problem is notified (:func:`tradelane.services.notifications.notify`; an email an
operator reads on its own: channel, step, what happened, what next), in the same transaction as the
change. The cutover's own flow changes go through :mod:`.channel_lifecycle` (``set_flow``, ``pause``):
audited like any flow change, as the run's actor, reason ``cutover step N``.

One run at a time: ``advance`` and ``revert`` take the cutover's claim (:func:`claim`, a token with an
expiry in ``data["claim"]``, renewed at every save) and drop it when they return; another run meanwhile
gets :class:`CutoverBusy` and does nothing (the CLI says so, the ``cutover.advance`` job looks again).
Local test orders (``orders.is_test``) count neither as outstanding (step 2) nor for step 6.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradelane.connectors.base import (
    ConnectorFactory,
    HolidayMode,
    ListedOffer,
    MarketplaceConnector,
    OfferUpdate,
    Operation,
)
from tradelane.connectors.registry import get_connector
from tradelane.domain.channels import Flow, LifecycleState
from tradelane.domain.errors import (
    AuthenticationError,
    ConflictError,
    PermanentError,
    RetryableError,
    ValidationError,
)
from tradelane.domain.orders import MerchantStatus
from tradelane.http_edge import Exchange
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import (
    channel_flows,
    cutover_offers,
    cutovers,
    exchanges,
    jobs,
    offer_bindings,
    orders,
    products,
)
from tradelane.security.crypto import KeyRing
from tradelane.services import audit, channel_lifecycle, cutover_plan, notifications, order_intake
from tradelane.services import offers as offer_service
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel, run_flow_now
from tradelane.services.cutover_plan import count_outstanding, holiday_text
from tradelane.services.cutover_remote import OfferPush, open_connector
from tradelane.sync.jobs import JobSpec, enqueue

STEPS: dict[int, str] = {1: "schedule", 2: "holiday", 3: "snapshot", 4: "cutoff", 5: "sync", 6: "live"}
TITLES: dict[int, str] = {
    1: "Schedule; previous integrator disables their connection",
    2: "Store on holiday; outstanding orders processed",
    3: "Snapshot of the marketplace's offers; every quantity set to 0",
    4: "Order-import cutoff",
    5: "Initial sync of the selected catalog",
    6: "Off holiday, flows on, live test order and status update confirmed",
}
#: Flows the cutover pauses from step 1 and enables at step 6.
MOVED_FLOWS = (Flow.OFFERS, Flow.ORDERS)
REGULAR_FLOWS = (Flow.OFFERS, Flow.ORDERS, Flow.FULFILLMENTS)
#: How long a closing period lasts unless told otherwise (step 6 ends it earlier).
DEFAULT_HOLIDAY_DAYS = 7
#: Reads of the orders listing one count may make (a budget stop returns a continuation cursor).
_MAX_ORDER_READS = 50
SYNC_KIND = "offers.full"

ACTIVE, WAITING, STOPPED, DONE, REVERTING, REVERTED = (
    "in_progress",
    "waiting",
    "stopped",
    "done",
    "reverting",
    "reverted",
)


class CutoverError(ValidationError):
    """The cutover cannot do what was asked (no cutover, already reverted, a step refused...)."""


#: How long a run's claim on a cutover holds without being renewed (every save renews it): a run that
#: died holding it keeps others out for at most this long.
CLAIM_SECONDS = 300


class CutoverBusy(ConflictError):
    """Another run (a CLI's ``run`` or ``revert``, the API, the engine's ``cutover.advance`` job) holds
    the cutover's claim: nothing was done; try again after ``retry_after`` seconds at the latest."""

    def __init__(self, channel: Channel, claim: dict[str, Any], now: datetime) -> None:
        until = datetime.fromisoformat(claim["until"])
        self.claim = claim
        self.retry_after = max(0.0, (until - now).total_seconds())
        super().__init__(
            f"another run ({claim.get('by')}) is working on step {claim.get('step')} of the cutover of "
            f"{channel.name} since {claim.get('since')}, try again (its claim lapses at {claim['until']} "
            "if that run died)"
        )


@dataclass(frozen=True, slots=True)
class Cutover:
    """A cutover as stored (see the module docstring); ``steps`` maps ``"1".."6"`` to
    ``{"state", "message", "started_at", "finished_at"}``."""

    id: int
    tenant_id: int
    channel_id: int
    status: str
    step: int
    steps: dict[str, dict[str, Any]]
    data: dict[str, Any]
    scheduled_at: datetime
    confirmed_at: datetime | None
    confirmed_by: str | None
    holiday_mode: str
    holiday_from: datetime | None
    holiday_to: datetime | None
    snapshot_taken_at: datetime | None
    orders_cutoff: datetime | None
    revert_report: dict[str, Any] | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    reverted_at: datetime | None

    @property
    def message(self) -> str:
        """What the current step says (why it waits, what stopped it, what it did)."""
        if self.status in (REVERTING, REVERTED):
            return str((self.revert_report or {}).get("message", ""))
        return str(self.steps.get(str(self.step), {}).get("message", ""))

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "status": self.status,
            "step": self.step,
            "step_name": STEPS.get(self.step),
            "step_state": self.steps.get(str(self.step), {}).get("state", "pending"),
            "message": self.message,
            "steps": [
                {
                    "step": n,
                    "name": STEPS[n],
                    "title": TITLES[n],
                    **self.steps.get(str(n), {"state": "pending"}),
                }
                for n in STEPS
            ],
            "scheduled_at": iso(self.scheduled_at),
            "previous_integrator_confirmed_at": iso(self.confirmed_at),
            "previous_integrator_confirmed_by": self.confirmed_by,
            "holiday_mode": self.holiday_mode,
            "holiday_from": iso(self.holiday_from),
            "holiday_to": iso(self.holiday_to),
            "snapshot_taken_at": iso(self.snapshot_taken_at),
            "orders_cutoff": iso(self.orders_cutoff),
            "outstanding_orders": self.data.get("outstanding"),
            "sync_errors": self.data.get("sync", {}).get("errors", {}),
            "sync_progress": self.data.get("sync", {}).get("progress"),
            # listings tradelane does not manage, zeroed at step 3 and left at 0 (known once step 6 is done)
            "unmanaged_listings": self.data.get("unmanaged_listings"),
            "confirmations": self.data.get("confirmations"),
            "previous_holiday": self.data.get("holiday", {}).get("previous"),
            "claim": (
                None
                if not self.data.get("claim")
                else {k: self.data["claim"].get(k) for k in ("by", "step", "since", "until")}
            ),
            "revert_report": self.revert_report,
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
            "reverted_at": iso(self.reverted_at),
        }


def _row(row: Any) -> Cutover:
    return Cutover(
        id=row.id,
        tenant_id=row.tenant_id,
        channel_id=row.channel_id,
        status=row.status,
        step=row.step,
        steps=dict(row.steps),
        data=dict(row.data),
        scheduled_at=row.scheduled_at,
        confirmed_at=row.previous_integrator_confirmed_at,
        confirmed_by=row.previous_integrator_confirmed_by,
        holiday_mode=row.holiday_mode,
        holiday_from=row.holiday_from,
        holiday_to=row.holiday_to,
        snapshot_taken_at=row.snapshot_taken_at,
        orders_cutoff=row.orders_cutoff,
        revert_report=None if row.revert_report is None else dict(row.revert_report),
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        reverted_at=row.reverted_at,
    )


def current(conn: Connection, channel_id: int) -> Cutover | None:
    """The channel's latest cutover (reverted ones included), or None."""
    row = conn.execute(
        sa.select(cutovers).where(cutovers.c.channel_id == channel_id).order_by(cutovers.c.id.desc()).limit(1)
    ).first()
    return None if row is None else _row(row)


def snapshot(conn: Connection, cutover_id: int) -> list[ListedOffer]:
    """The offers as the cutover found them (step 3), by SKU."""
    rows = conn.execute(
        sa.select(cutover_offers)
        .where(cutover_offers.c.cutover_id == cutover_id)
        .order_by(cutover_offers.c.sku)
    ).all()
    return [ListedOffer(r.sku, r.price, r.currency, r.quantity, r.product_id, dict(r.raw)) for r in rows]


def log(conn: Connection, channel_id: int) -> list[audit.ChannelEvent]:
    """The cutover's audit trail, oldest first (export with :func:`audit.to_csv`)."""
    return audit.history(conn, channel_id, prefix="cutover.", limit=None)


# --- dependencies ---------------------------------------------------------------------------------


@dataclass
class Deps:
    """What a cutover needs: the store, the clock, the key ring (channel credentials), who acts
    (``actor``: :func:`audit.cli_actor`, ``api:<tenant>``, ``dashboard:<tenant>``), and how the
    channel's connector is built (``factory``; None: the channel's connector from the registry).
    ``sleep`` is how a rate-limit wait passes (default: real time)."""

    engine: Engine
    clock: Callable[[], datetime]
    keyring: KeyRing
    actor: str
    factory: ConnectorFactory | None = None
    sleep: Callable[[float], None] | None = None
    exchanges: list[Exchange] = field(default_factory=list)

    def connector_factory(self, channel: Channel) -> ConnectorFactory:
        return self.factory if self.factory is not None else get_connector(channel.connector).factory

    def open(self, channel: Channel) -> Any:
        return open_connector(
            self.engine,
            channel,
            self.connector_factory(channel),
            keyring=self.keyring,
            clock=self.clock,
            exchanges=self.exchanges,
            sleep=self.sleep,
        )


# --- plan ---------------------------------------------------------------------------------------


def plan(deps: Deps, channel: Channel) -> dict[str, Any]:
    """The dry run (see :func:`tradelane.services.cutover_plan.plan`), plus ``staging_account`` and
    ``refused`` (why ``run`` would refuse) when the channel's connector works on a staging account."""
    planned = cutover_plan.plan(deps, channel)
    with deps.open(channel) as connector:
        staging = connector.staging_account()
    planned["staging_account"] = staging
    planned["refused"] = None if staging is None else staging_refusal(channel, staging)
    return planned


def staging_refusal(channel: Channel, account: str) -> str:
    """Why a cutover does not run on a channel whose connector uses its staging account."""
    return (
        f"channel {channel.name} is in {channel.lifecycle_state} with a staging account ({account}): its "
        "connector works on that account, not on the live account a cutover takes over; promote the "
        f"channel first (`tradelane channel promote {channel.name}`) or remove its staging account, then "
        "run again"
    )


# --- the claim: one run at a time ------------------------------------------------------------------


def claim(deps: Deps, channel: Channel, cutover_id: int) -> Cutover:
    """Take the cutover's claim for one run (``data["claim"]``: a token, who, the step, since when,
    until when) and return the cutover with it, or raise :class:`CutoverBusy` while another run's claim
    is unexpired. The row is read with ``FOR UPDATE`` (PostgreSQL) inside a write transaction (``BEGIN
    IMMEDIATE`` on SQLite), so two runs never both take it. Every :meth:`Run.save` renews it;
    :func:`release` drops it."""
    now = deps.clock()
    with deps.engine.begin() as conn:
        row = conn.execute(sa.select(cutovers).where(cutovers.c.id == cutover_id).with_for_update()).one()
        data = dict(row.data)
        held = data.get("claim")
        if held and datetime.fromisoformat(held["until"]) > now:
            raise CutoverBusy(channel, held, now)
        data["claim"] = {
            "token": uuid.uuid4().hex,
            "by": deps.actor,
            "step": row.step,
            "since": now.isoformat(),
            "until": (now + timedelta(seconds=CLAIM_SECONDS)).isoformat(),
        }
        conn.execute(sa.update(cutovers).where(cutovers.c.id == cutover_id).values(data=data))
        found = conn.execute(sa.select(cutovers).where(cutovers.c.id == cutover_id)).one()
    return _row(found)


def release(engine: Engine, cutover_id: int, token: str) -> None:
    """Drop the claim ``token`` holds (nothing when another run's claim replaced it)."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(cutovers.c.data).where(cutovers.c.id == cutover_id).with_for_update()
        ).first()
        if row is None:
            return
        data = dict(row.data)
        if (data.get("claim") or {}).get("token") != token:
            return
        data.pop("claim")
        conn.execute(sa.update(cutovers).where(cutovers.c.id == cutover_id).values(data=data))


# --- persistence helpers --------------------------------------------------------------------------


class Run:
    """One call of :func:`advance` / :func:`revert` on one cutover, holding its claim (:func:`claim`;
    ``cutover`` is the claimed row): the row's state in memory, written back by :meth:`save` (with the
    audit events and notifications of what changed), which renews the claim — or raises
    :class:`CutoverBusy` when the claim lapsed and another run took it (nothing written)."""

    def __init__(self, deps: Deps, channel: Channel, cutover: Cutover) -> None:
        self.deps = deps
        self.channel = channel
        self.c = cutover
        self.steps = {k: dict(v) for k, v in cutover.steps.items()}
        self.data = dict(cutover.data)
        self.token = str(self.data["claim"]["token"])
        self.values: dict[str, Any] = {}
        self._connector: MarketplaceConnector | None = None
        self._cm: Any = None

    @property
    def now(self) -> datetime:
        return self.deps.clock()

    @property
    def connector(self) -> MarketplaceConnector:
        if self._connector is None:
            self._cm = self.deps.open(self.channel)
            self._connector = self._cm.__enter__()
        return self._connector

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None
            self._connector = None

    def save(self, conn: Connection | None = None, **values: Any) -> None:
        """Write the row (data, steps and ``values``) in ``conn``'s transaction, or in a new one."""
        if conn is None:
            with self.deps.engine.begin() as own:
                self.save(own, **values)
            return
        self.values.update(values)
        held = conn.execute(
            sa.select(cutovers.c.data, cutovers.c.step).where(cutovers.c.id == self.c.id).with_for_update()
        ).one()
        claimed = dict(held.data).get("claim") or {}
        if claimed.get("token") != self.token:
            raise (
                CutoverBusy(self.channel, claimed, self.now)
                if claimed
                else CutoverError(
                    f"this run's claim on cutover {self.c.id} of {self.channel.name} lapsed: run again"
                )
            )
        self.data["claim"] = {
            **claimed,
            "step": self.values.get("step", held.step),
            "until": (self.now + timedelta(seconds=CLAIM_SECONDS)).isoformat(),
        }
        conn.execute(
            sa.update(cutovers)
            .where(cutovers.c.id == self.c.id)
            .values(steps=self.steps, data=self.data, updated_at=self.now, **self.values)
        )
        self._store_exchanges(conn)
        self.values = {}

    def _store_exchanges(self, conn: Connection) -> None:
        rows: list[dict[str, Any]] = [
            {
                "tenant_id": self.channel.tenant_id,
                "channel_id": self.channel.id,
                "subject": f"cutover:{self.c.id}",
                "operation": ex.op,
                "method": ex.method,
                "url": ex.url,
                "status": ex.status,
                "request": _text(ex.request_body),
                "response": _text(
                    ex.response_body if ex.error is None else f"{ex.error}\n{ex.response_body or ''}"
                ),
                "at": self.now,
            }
            for ex in self.deps.exchanges
        ]
        if rows:
            conn.execute(sa.insert(exchanges), rows)
            self.deps.exchanges.clear()

    # -- step bookkeeping, audited and notified --

    def state(self, n: int) -> str:
        return str(self.steps.get(str(n), {}).get("state", "pending"))

    def begin(self, conn: Connection, n: int) -> None:
        entry = self.steps.setdefault(str(n), {"state": "pending"})
        if entry.get("state") in (None, "pending"):
            entry.update(state="running", started_at=self.now.isoformat())
            self._audit(conn, n, "started", None)

    def wait(self, conn: Connection, n: int, message: str, **details: Any) -> None:
        entry = self.steps.setdefault(str(n), {})
        first = entry.get("state") != "waiting"
        entry.update(state="waiting", message=message)
        if first:
            self._audit(conn, n, "waiting", message, details)

    def finish(self, conn: Connection, n: int, message: str, **details: Any) -> None:
        entry = self.steps.setdefault(str(n), {})
        entry.update(state="done", message=message, finished_at=self.now.isoformat())
        self._audit(conn, n, "finished", message, details)
        notifications.notify(
            conn,
            tenant_id=self.channel.tenant_id,
            channel_id=self.channel.id,
            event="cutover.step_done",
            subject=f"[{self.channel.name}] cutover step {n} ({STEPS[n]}) done",
            body=self._email(n, f"step {n} of {len(STEPS)} done: {TITLES[n]}.", message, details)
            + (
                f"\n\nNext: step {n + 1}, {TITLES[n + 1].lower()}."
                if n + 1 in STEPS
                else "\n\nThe cutover is complete: tradelane now runs this account."
            ),
            details={"cutover_id": self.c.id, "step": n, **jsonable(details)},
            now=self.now,
        )

    def problem(self, conn: Connection, n: int, message: str, **details: Any) -> None:
        entry = self.steps.setdefault(str(n), {})
        entry.update(state="failed", message=message)
        self._audit(conn, n, "problem", message, details)
        notifications.notify(
            conn,
            tenant_id=self.channel.tenant_id,
            channel_id=self.channel.id,
            event="cutover.problem",
            subject=f"[{self.channel.name}] cutover stopped at step {n} ({STEPS[n]}): {headline(message)}",
            body=self._email(n, f"stopped at step {n} of {len(STEPS)}: {TITLES[n]}.", message, details)
            + "\n\nNothing moves until someone acts: fix the cause, then run "
            f"`tradelane cutover run {self.channel.name}` again to retry the step, or "
            f"`tradelane cutover revert {self.channel.name}` to put the account back as it was found.",
            details={"cutover_id": self.c.id, "step": n, **jsonable(details)},
            now=self.now,
        )

    def _email(self, n: int, what: str, message: str, details: dict[str, Any]) -> str:
        """An email body an operator reads on its own: which cutover, channel and step, what happened
        (the step's message), the offers refused one per line, where to look."""
        lines = [
            f"Cutover {self.c.id} of channel {self.channel.name} ({self.channel.connector}): {what}",
            "",
            f"What happened: {message}",
        ]
        errors = details.get("errors") or {}
        if errors:
            lines += ["", f"Refused offers ({len(errors)}):"]
            for sku, reason in sorted(errors.items())[:50]:
                shown = " / ".join(reason) if isinstance(reason, (list, tuple)) else str(reason)
                lines.append(f"  - {sku}: {shown}")
            if len(errors) > 50:
                lines.append(f"  ... and {len(errors) - 50} more (`tradelane cutover status`)")
        lines += [
            "",
            f"Every step: `tradelane cutover status {self.channel.name}`; the audit log: "
            f"`tradelane cutover log {self.channel.name}`.",
        ]
        return "\n".join(lines)

    def _audit(self, conn: Connection, n: int, phase: str, reason: str | None, details: Any = None) -> None:
        audit.record(
            conn,
            tenant_id=self.channel.tenant_id,
            channel_id=self.channel.id,
            actor=self.deps.actor,
            action=f"cutover.{STEPS[n]}",
            now=self.now,
            reason=reason,
            details={"cutover_id": self.c.id, "step": n, "phase": phase, **jsonable(details or {})},
        )


def headline(message: str, limit: int = 120) -> str:
    """The first clause of a step's message (up to ``; ``, `` (`` or ``: ``), for a subject line."""
    first = re.split(r"; | \(|: ", message, maxsplit=1)[0].strip()
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _text(value: str | None) -> str | None:
    """Exchange excerpts as storable text (PostgreSQL text cannot hold NUL)."""
    return None if value is None else value.replace("\x00", "\\0")


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, (Decimal, datetime)):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    return value


# --- start ----------------------------------------------------------------------------------------


def start(
    conn: Connection,
    channel: Channel,
    *,
    scheduled_at: datetime,
    actor: str,
    holiday_mode: HolidayMode,
    now: datetime,
) -> Cutover:
    """Create the channel's cutover at step 1 (:class:`ConflictError` when one not reverted exists).

    The unique index on open cutovers decides, not a prior read: of two runs creating the channel's
    first cutover at the same instant, one inserts it and the other gets the :class:`ConflictError`
    (on PostgreSQL it waits for the first to commit)."""
    if scheduled_at.tzinfo is None:
        raise ValidationError("the cutover date must carry a timezone")
    cutover_id = conn.execute(
        insert_ignore(conn, cutovers)
        .values(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            status=ACTIVE,
            step=1,
            steps={str(n): {"state": "pending"} for n in STEPS},
            data={},
            scheduled_at=scheduled_at,
            holiday_mode=holiday_mode.value,
            created_by=actor,
            created_at=now,
            updated_at=now,
        )
        .returning(cutovers.c.id)
    ).scalar()
    if cutover_id is None:
        existing = current(conn, channel.id)
        state = f"{existing.id} ({existing.status})" if existing is not None else "being created"
        raise ConflictError(f"channel {channel.name} already has cutover {state}")
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action="cutover.create",
        now=now,
        details={"cutover_id": cutover_id, "scheduled_at": scheduled_at.isoformat()},
    )
    found = current(conn, channel.id)
    assert found is not None
    return found


# --- advance --------------------------------------------------------------------------------------


def advance(
    deps: Deps,
    channel: Channel,
    *,
    previous_integrator_disabled: bool = False,
    scheduled_at: datetime | None = None,
    holiday_days: int = DEFAULT_HOLIDAY_DAYS,
) -> Cutover:
    """Create the channel's cutover if it has none (or only a reverted one) and take it as far as it
    goes now; returns it (``status`` waiting, stopped or done; the current step's message says why).
    A stopped cutover (step 5's errors) retries its sync; a done or reverting one is returned as is.
    One run at a time (:func:`claim`): :class:`CutoverBusy` (nothing done) while another works on it."""
    now = deps.clock()
    with deps.engine.begin() as conn:
        cutover = current(conn, channel.id)
        if cutover is None or cutover.status == REVERTED:
            caps = get_connector(channel.connector).channel_capabilities(channel.settings)
            try:
                cutover = start(
                    conn,
                    channel,
                    scheduled_at=scheduled_at or now,
                    actor=deps.actor,
                    holiday_mode=caps.holiday_mode,
                    now=now,
                )
            except ConflictError:  # another run created it meanwhile: work on that one (claimed below)
                cutover = current(conn, channel.id)
                if cutover is None:
                    raise
    if cutover.status in (DONE, REVERTING):
        return cutover
    run = Run(deps, channel, claim(deps, channel, cutover.id))
    try:
        handlers: dict[int, Callable[[Run], bool]] = {
            1: lambda r: _step_schedule(r, previous_integrator_disabled),
            2: lambda r: _step_holiday(r, holiday_days),
            3: _step_snapshot,
            4: _step_cutoff,
            5: _step_sync,
            6: _step_live,
        }
        step = cutover.step
        while step in handlers:
            if not _guarded(run, step, _refuse_staging):
                break
            if 2 <= step <= 5 and not _guarded(run, step, partial(_keep_closed, n=step)):
                break
            if not _guarded(run, step, handlers[step]):
                break
            step += 1
            with deps.engine.begin() as conn:
                if step in handlers:
                    run.save(conn, step=step, status=ACTIVE)
                else:
                    run.save(conn, status=DONE, finished_at=run.now)
                    audit.record(
                        conn,
                        tenant_id=channel.tenant_id,
                        channel_id=channel.id,
                        actor=deps.actor,
                        action="cutover.done",
                        now=run.now,
                        details={"cutover_id": cutover.id},
                    )
    finally:
        run.close()
        release(deps.engine, cutover.id, run.token)
    with deps.engine.connect() as conn:
        found = current(conn, channel.id)
    assert found is not None
    return found


def _guarded(run: Run, n: int, handler: Callable[[Run], bool]) -> bool:
    """Run step ``n``; a marketplace asking to wait (429, budget) leaves the cutover waiting, an error
    that needs someone (refused credentials, a permanent refusal) stops it at the step with the
    reason; both are resumed by the next call."""
    try:
        return handler(run)
    except RetryableError as exc:
        wait = f" (about {exc.retry_after:.0f} s)" if exc.retry_after else ""
        with run.deps.engine.begin() as conn:
            run.wait(conn, n, f"the marketplace asks to wait{wait}: {exc}; run again to resume")
            run.steps[str(n)]["message"] = f"the marketplace asks to wait{wait}: {exc}; run again to resume"
            run.save(conn, status=WAITING)
        return False
    except (PermanentError, AuthenticationError) as exc:
        with run.deps.engine.begin() as conn:
            run.problem(conn, n, f"{exc}; run again to retry, or revert")
            run.save(conn, status=STOPPED)
        return False


def _refuse_staging(run: Run) -> bool:
    """Stop (at the current step, nothing sent) while the channel's connector would work on its staging
    account: a cutover takes over the LIVE account."""
    account = run.connector.staging_account()
    if account is None:
        return True
    with run.deps.engine.begin() as conn:
        n = int(run.values.get("step", run.c.step))
        run.problem(conn, n, staging_refusal(run.channel, account))
        run.save(conn, status=STOPPED)
    return False


#: A closing period ending sooner than this is extended (the marketplace would reopen the shop by itself).
EXTEND_HOLIDAY_WITHIN = timedelta(days=1)


def _keep_closed(run: Run, n: int) -> bool:
    """While the store should be closed (a closing period set, not yet ended by step 6), extend the
    closing period when it ends within :data:`EXTEND_HOLIDAY_WITHIN`: A02 again from its start to now +
    the cutover's holiday days, audited (``cutover.<step>``, phase ``holiday_extended``) and notified
    (``cutover.holiday_extended``). Always True (a remote error is the caller's)."""
    ends = run.c.holiday_to
    if not run.data.get("holiday_set") or run.data.get("reopened") or ends is None:
        return True
    if ends - run.now >= EXTEND_HOLIDAY_WITHIN:
        return True
    start_at = run.c.holiday_from or run.now
    end_at = run.now + timedelta(days=int(run.data.get("holiday_days", DEFAULT_HOLIDAY_DAYS)))
    run.connector.set_holiday(start_at, end_at)
    message = (
        f"holiday extended to {end_at.isoformat()} (it was to end {ends.isoformat()}, while the cutover is "
        f"still at step {n}, {STEPS[n]}: the marketplace would have reopened the store by itself)"
    )
    with run.deps.engine.begin() as conn:
        run._audit(conn, n, "holiday_extended", message, {"holiday_to": end_at, "was": ends})
        notifications.notify(
            conn,
            tenant_id=run.channel.tenant_id,
            channel_id=run.channel.id,
            event="cutover.holiday_extended",
            subject=f"[{run.channel.name}] cutover: holiday extended to {end_at.isoformat()}",
            body=run._email(n, f"still at step {n} of {len(STEPS)}: {TITLES[n]}.", message, {}),
            details={"cutover_id": run.c.id, "step": n, "holiday_to": end_at.isoformat()},
            now=run.now,
        )
        run.save(conn, holiday_to=end_at)
    run.c = reload_cutover(run)
    return True


def _set_status(run: Run, conn: Connection, n: int) -> None:
    failed = run.state(n) == "failed"
    run.save(conn, status=STOPPED if failed else WAITING)


def _step_schedule(run: Run, confirmed: bool) -> bool:
    with run.deps.engine.begin() as conn:
        run.begin(conn, 1)
        if run.channel.lifecycle_state not in (LifecycleState.TESTING.value, LifecycleState.LIVE.value):
            run.problem(
                conn,
                1,
                f"channel {run.channel.name} is {run.channel.lifecycle_state}: a cutover needs a channel "
                f"in testing or live (`tradelane channel activate {run.channel.name}` first)",
            )
            _set_status(run, conn, 1)
            return False
        if run.c.confirmed_at is None and not confirmed:
            run.wait(
                conn,
                1,
                "waiting for the operator's confirmation that the previous integrator disables their "
                "connection (run again with --previous-integrator-disabled)",
            )
            _set_status(run, conn, 1)
            return False
        if run.c.confirmed_at is None:
            run.values.update(
                previous_integrator_confirmed_at=run.now, previous_integrator_confirmed_by=run.deps.actor
            )
        if run.c.scheduled_at > run.now:
            run.wait(conn, 1, f"scheduled for {run.c.scheduled_at.isoformat()}")
            _set_status(run, conn, 1)
            return False
        if "flows_before" not in run.data:
            rows = conn.execute(
                sa.select(channel_flows).where(channel_flows.c.channel_id == run.channel.id)
            ).all()
            run.data["flows_before"] = {
                r.flow: {"enabled": r.enabled, "paused": r.paused, "pause_reason": r.pause_reason}
                for r in rows
            }
        pause_flows(conn, run, MOVED_FLOWS, True, reason="cutover step 1")
        run.finish(
            conn,
            1,
            f"date {run.c.scheduled_at.isoformat()}; previous integrator's disconnection confirmed by "
            f"{run.c.confirmed_by or run.deps.actor}; offers and orders flows paused",
        )
        run.save(conn)
    return True


def _step_holiday(run: Run, holiday_days: int) -> bool:
    with run.deps.engine.begin() as conn:
        run.begin(conn, 2)
        run.save(conn)
    run.data.setdefault("holiday_days", holiday_days)
    mode = HolidayMode(run.c.holiday_mode)
    caps = run.connector.capabilities
    if mode is HolidayMode.CLOSING_PERIOD and caps.supports(Operation.SET_HOLIDAY):
        if not run.data.get("holiday_set"):
            if "previous" not in run.data.get("holiday", {}):  # read once, before ours overwrites it
                found = run.connector.current_holiday()
                run.data["holiday"] = {
                    "previous": None
                    if found is None
                    else {"closed_from": _iso(found[0]), "closed_to": _iso(found[1])}
                }
                run.save()
            start_at = run.c.holiday_from or run.now
            end_at = run.c.holiday_to or start_at + timedelta(days=holiday_days)
            run.connector.set_holiday(start_at, end_at)
            run.data["holiday_set"] = True
            run.save(holiday_from=start_at, holiday_to=end_at)
            run.c = reload_cutover(run)
        holiday = f"closing period {run.c.holiday_from.isoformat() if run.c.holiday_from else ''} → " + (
            run.c.holiday_to.isoformat() if run.c.holiday_to else ""
        )
    else:
        holiday = holiday_text(mode, run.channel.connector)
        # zero stock is the holiday here: in place before the count, so an order placed while it is
        # waited for is either impossible or counted (none falls between the count and the cutoff)
        if not _zero_offers(run, 2, retrying=run.state(2) == "failed"):
            return False
        holiday += "; every quantity set to 0 before counting"
    with run.deps.engine.connect() as conn:
        outstanding = count_outstanding(conn, run.channel, run.connector, now=run.now)
    run.data["outstanding"] = outstanding.as_json()
    with run.deps.engine.begin() as conn:
        if not outstanding.settled:  # orders outstanding, or a count cut short ("at least N"): wait
            run.wait(conn, 2, f"{holiday}; waiting: {outstanding.text()}")
            # the live count changes between calls: keep the message current
            run.steps["2"]["message"] = f"{holiday}; waiting: {outstanding.text()}"
            _set_status(run, conn, 2)
            return False
        run.finish(conn, 2, f"{holiday}; no outstanding order", outstanding=outstanding.as_json())
        run.save(conn)
    return True


def reload_cutover(run: Run) -> Cutover:
    with run.deps.engine.connect() as conn:
        found = current(conn, run.channel.id)
    assert found is not None
    return found


def _take_snapshot(run: Run) -> None:
    """Store the listed offers once (a second call finds ``snapshot_taken_at`` set and stores nothing)."""
    listed = run.connector.list_offers()
    with run.deps.engine.begin() as conn:
        claimed = conn.execute(
            sa.update(cutovers)
            .where(cutovers.c.id == run.c.id, cutovers.c.snapshot_taken_at.is_(None))
            .values(snapshot_taken_at=run.now)
        ).rowcount
        if claimed != 1:
            return
        seen: set[str] = set()
        rows = []
        for offer in listed:
            if offer.sku in seen:
                continue
            seen.add(offer.sku)
            rows.append(
                {
                    "cutover_id": run.c.id,
                    "sku": offer.sku,
                    "price": offer.price,
                    "currency": offer.currency,
                    "quantity": offer.quantity,
                    "product_id": offer.product_id,
                    "raw": jsonable(dict(offer.raw)),
                }
            )
        if rows:
            conn.execute(sa.insert(cutover_offers), rows)
        run.save(conn)


def update_of(offer: ListedOffer, quantity: int) -> OfferUpdate | None:
    """The update setting a listed offer's quantity (its listed price and product id kept), or None when
    the listing has no price (no marketplace takes an offer update without one)."""
    if offer.price is None or offer.currency is None:
        return None
    attributes = {"asin": offer.product_id} if offer.product_id else {}
    return OfferUpdate(
        sku=offer.sku,
        price=offer.price,
        currency=offer.currency,
        quantity=quantity,
        gtin=offer.product_id,
        attributes=attributes,
    )


def push_offers(run: Run, key: str, updates: dict[str, OfferUpdate]) -> tuple[OfferPush, bool, float | None]:
    state = run.data.setdefault(key, {})
    push = OfferPush(state, updates)
    result = push.step(run.connector, lambda: run.save())
    return push, result.done, result.retry_after


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _step_snapshot(run: Run) -> bool:
    with run.deps.engine.begin() as conn:
        run.begin(conn, 3)
        retrying = run.state(3) == "failed"
        run.save(conn)
    if not _zero_offers(run, 3, retrying=retrying):
        return False
    with run.deps.engine.begin() as conn:
        taken = len(snapshot(conn, run.c.id))
        run.finish(conn, 3, f"{taken} offers stored; every quantity set to 0", offers=taken)
        run.save(conn)
    return True


def _zero_offers(run: Run, n: int, *, retrying: bool) -> bool:
    """Step 3's work, idempotent (step 2 does it first where zero stock is the holiday, and step 3 then
    finds it done): the snapshot taken once, then every quantity set to 0 (:class:`OfferPush` ``zero``).
    True when every offer is at 0; else the step ``n`` waits (imports running) or stops (refusals)."""
    if run.c.snapshot_taken_at is None:
        _take_snapshot(run)
        run.c = reload_cutover(run)
    with run.deps.engine.connect() as conn:
        taken = snapshot(conn, run.c.id)
    updates: dict[str, OfferUpdate] = {}
    unpriced: dict[str, list[str]] = {}
    for offer in taken:
        update = update_of(offer, 0)
        if update is None:
            unpriced[offer.sku] = ["the listing has no price: its quantity cannot be updated"]
        else:
            updates[offer.sku] = update
    if retrying:
        OfferPush(run.data.setdefault("zero", {}), updates).retry()
    push, done, _ = push_offers(run, "zero", updates)
    with run.deps.engine.begin() as conn:
        if not done:
            run.wait(
                conn,
                n,
                f"{len(taken)} offers stored; quantities set to 0: {len(push.ok)} taken, import running",
            )
            _set_status(run, conn, n)
            return False
        conn.execute(
            sa.update(cutover_offers)
            .where(cutover_offers.c.cutover_id == run.c.id, cutover_offers.c.sku.in_(sorted(push.ok)))
            .values(zeroed=True)
        )
        errors = {**unpriced, **push.errors}
        if errors:
            run.problem(
                conn,
                n,
                f"{len(errors)} of {len(taken)} offers could not be set to 0 (run again to retry, "
                "or revert): "
                + "; ".join(f"{sku}: {' / '.join(r)}" for sku, r in sorted(errors.items())[:20]),
                errors=errors,
            )
            _set_status(run, conn, n)
            return False
        run.save(conn)
    return True


def _step_cutoff(run: Run) -> bool:
    spec = get_connector(run.channel.connector)
    cursor_name = spec.cursor("orders")
    with run.deps.engine.begin() as conn:
        run.begin(conn, 4)
        if run.c.orders_cutoff is None:  # whole seconds: marketplaces date orders to the second
            run.save(conn, orders_cutoff=run.now.replace(microsecond=0))
        else:
            run.save(conn)
    run.c = reload_cutover(run)
    cutoff = run.c.orders_cutoff
    assert cutoff is not None
    with run.deps.engine.connect() as conn:
        watermark = order_service.get_cursor(conn, run.channel.id, cursor_name)
    if watermark is None and not run.data.get("watermark"):
        connector = run.connector
        with run.deps.engine.connect() as conn:
            third_party = order_intake.fulfillments_off(conn, run.channel.id)
        cursor: str | None = None
        stored = 0
        for _ in range(_MAX_ORDER_READS):
            changes = connector.fetch_orders(cursor, now=run.now)
            with run.deps.engine.begin() as conn:
                counts = order_intake.store_orders(
                    conn,
                    run.channel,
                    list(changes.orders),
                    now=run.now,
                    third_party=third_party,
                    acceptance_required=connector.capabilities.acceptance_required,
                )
                stored += counts["created"]
                if changes.cursor is not None:
                    order_service.set_cursor(conn, run.channel.id, cursor_name, changes.cursor, now=run.now)
                run.save(conn)
            cursor = changes.cursor
            if not changes.more:
                break
        run.data["watermark"] = (
            f"first orders read made at the cutoff ({stored} order(s) from the cutoff on stored)"
        )
    elif not run.data.get("watermark"):
        run.data["watermark"] = "the channel's orders watermark precedes the cutoff"
    with run.deps.engine.begin() as conn:
        run.finish(
            conn,
            4,
            f"orders created before {cutoff.isoformat()} are never imported; {run.data['watermark']}",
            cutoff=cutoff,
        )
        run.save(conn)
    return True


def _sync_job(conn: Connection, run: Run, attempt: int) -> int:
    queued = enqueue(
        conn,
        JobSpec(
            tenant_id=run.channel.tenant_id,
            kind=SYNC_KIND,
            payload={"cutover_id": run.c.id, "attempt": attempt},
            channel_id=run.channel.id,
            flow=Flow.OFFERS.value,
            idempotency_key=f"cutover.sync:{run.c.id}:{attempt}",
        ),
        now=run.now,
    )
    return queued.job_id


def sync_errors(conn: Connection, channel_id: int) -> dict[str, dict[str, str | None]]:
    """Offers of the channel the marketplace refused or the hub blocked: SKU → status, reason, raw."""
    rows = conn.execute(
        sa.select(
            products.c.sku,
            offer_bindings.c.status,
            offer_bindings.c.last_error,
            offer_bindings.c.last_response,
        )
        .join(products, products.c.id == offer_bindings.c.product_id)
        .where(
            offer_bindings.c.channel_id == channel_id,
            offer_bindings.c.status.in_(
                [offer_service.OfferStatus.ERROR.value, offer_service.OfferStatus.BLOCKED.value]
            ),
        )
        .order_by(products.c.sku)
    ).all()
    return {r.sku: {"status": r.status, "reason": r.last_error, "raw": r.last_response} for r in rows}


def _step_sync(run: Run) -> bool:
    with run.deps.engine.begin() as conn:
        run.begin(conn, 5)
        sync = run.data.setdefault("sync", {"attempt": 0})
        if run.state(5) == "failed":  # called again after a stop: retry
            run.steps["5"]["state"] = "running"
            sync["attempt"] = int(sync.get("attempt", 0)) + 1
            sync.pop("job_id", None)
            sync["errors"] = {}
        listings_off = (
            conn.execute(
                sa.select(channel_flows.c.enabled).where(
                    channel_flows.c.channel_id == run.channel.id, channel_flows.c.flow == Flow.OFFERS.value
                )
            ).scalar()
            is False
        )
        if listings_off:  # the initial sync is a Listings job: a switched-off flow would skip it
            channel_lifecycle.set_flow(
                conn,
                run.channel,
                Flow.OFFERS,
                True,
                actor=run.deps.actor,
                reason="cutover step 5: the initial sync",
                now=run.now,
            )
        pause_flows(conn, run, [Flow.OFFERS], False, reason="cutover step 5")
        if sync.get("job_id") is None:
            sync["job_id"] = _sync_job(conn, run, int(sync["attempt"]))
        job = conn.execute(
            sa.select(jobs.c.state, jobs.c.last_error).where(jobs.c.id == sync["job_id"])
        ).one()
        counts: dict[str, int] = dict(
            conn.execute(  # type: ignore[arg-type]
                sa.select(offer_bindings.c.status, sa.func.count())
                .where(offer_bindings.c.channel_id == run.channel.id)
                .group_by(offer_bindings.c.status)
            ).all()
        )
        total = sum(counts.values())
        sync["progress"] = {"total": total, **{k: int(v) for k, v in counts.items()}}
        if job.state in ("queued", "running") or counts.get(offer_service.OfferStatus.SUBMITTED.value):
            run.wait(conn, 5, f"initial sync (job {sync['job_id']}) {job.state}: {_progress_text(counts)}")
            run.steps["5"]["message"] = (
                f"initial sync (job {sync['job_id']}) {job.state}: {_progress_text(counts)}"
            )
            _set_status(run, conn, 5)
            return False
        if job.state != "succeeded":
            run.problem(
                conn,
                5,
                f"the initial sync job {sync['job_id']} {job.state}: "
                f"{((job.last_error or '').splitlines() or [''])[0]}; "
                "still on holiday — run again to retry, or revert",
            )
            _set_status(run, conn, 5)
            return False
        errors = sync_errors(conn, run.channel.id)
        unsent = counts.get(offer_service.OfferStatus.PENDING.value, 0)
        if unsent and not errors:
            result = conn.execute(sa.select(jobs.c.result).where(jobs.c.id == sync["job_id"])).scalar()
            run.problem(
                conn,
                5,
                f"the initial sync job {sync['job_id']} sent nothing for {unsent} of {total} offers "
                f"({jsonable(result)}); still on holiday — run again to retry, or revert",
            )
            _set_status(run, conn, 5)
            return False
        if errors:
            sync["errors"] = errors
            run.problem(
                conn,
                5,
                f"the marketplace refused {len(errors)} of {total} offers; still on holiday — fix them "
                "and run "
                "again to retry the sync, or revert: "
                + "; ".join(f"{sku}: {e['reason']}" for sku, e in list(errors.items())[:20]),
                errors={sku: e["reason"] for sku, e in errors.items()},
            )
            _set_status(run, conn, 5)
            return False
        run.finish(conn, 5, f"{total} offers published", published=total)
        run.save(conn)
    return True


def _progress_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    published = counts.get(offer_service.OfferStatus.PUBLISHED.value, 0)
    return f"{published}/{total} offers published" + "".join(
        f", {n} {status}" for status, n in sorted(counts.items()) if status != "published" and n
    )


def pause_flows(
    conn: Connection, run: Run, flows: Iterable[Flow], paused: bool, *, reason: str
) -> list[Flow]:
    """Pause (or resume) those of ``flows`` that are not so already, through
    :func:`tradelane.services.channel_lifecycle.pause` — audited (``flow.pause`` / ``flow.resume``) as
    the run's actor with ``reason`` — and return them; nothing recorded when none changes."""
    wanted = [f.value for f in flows]
    other = set(
        conn.execute(
            sa.select(channel_flows.c.flow).where(
                channel_flows.c.channel_id == run.channel.id,
                channel_flows.c.flow.in_(wanted),
                channel_flows.c.paused != paused,
            )
        ).scalars()
    )
    changing = [Flow(f) for f in wanted if f in other]
    if not changing:
        return []
    return channel_lifecycle.pause(
        conn, run.channel, changing, paused, actor=run.deps.actor, now=run.now, reason=reason
    )


def _enable_flows(conn: Connection, run: Run) -> None:
    """Enable and resume the regular flows, audited like any flow change (``flow.enable``,
    ``flow.resume``; reason ``cutover step 6``)."""
    for flow in REGULAR_FLOWS:
        channel_lifecycle.set_flow(
            conn, run.channel, flow, True, actor=run.deps.actor, reason="cutover step 6", now=run.now
        )
    pause_flows(conn, run, REGULAR_FLOWS, False, reason="cutover step 6")


def confirmations(conn: Connection, channel: Channel, cutoff: datetime, since: datetime) -> dict[str, Any]:
    """Step 6's two checks: a marketplace order created at/after ``cutoff`` delivered to the merchant
    system, and an update of one of the channel's marketplace orders recorded since ``since`` and
    confirmed by the marketplace. Local test orders (``orders.is_test``, never sent to the marketplace)
    count for neither."""
    from tradelane.services.order_updates import list_updates

    test_order = conn.execute(
        sa.select(orders.c.marketplace_order_id)
        .where(
            orders.c.channel_id == channel.id,
            orders.c.is_test.is_(False),
            orders.c.marketplace_created_at >= cutoff,
            orders.c.merchant_status == MerchantStatus.DELIVERED.value,
        )
        .order_by(orders.c.id)
        .limit(1)
    ).scalar()
    confirmed: str | None = None
    candidates = conn.execute(
        sa.select(orders.c.id, orders.c.marketplace_order_id)
        .where(orders.c.channel_id == channel.id, orders.c.is_test.is_(False))
        .order_by(orders.c.id)
    ).all()
    for order in candidates:
        for update in list_updates(conn, channel.tenant_id, order.id):
            if update["status"] == "confirmed" and update["created_at"] >= since:
                confirmed = f"{update['kind']} of order {order.marketplace_order_id}"
                break
        if confirmed:
            break
    return {"test_order": test_order, "status_update": confirmed}


def _step_live(run: Run) -> bool:
    with run.deps.engine.begin() as conn:
        run.begin(conn, 6)
        run.save(conn)
    if run.data.get("holiday_set") and not run.data.get("reopened"):
        run.connector.set_holiday(None, None)
        run.data["reopened"] = True
        run.save()
    cutoff = run.c.orders_cutoff
    assert cutoff is not None
    with run.deps.engine.begin() as conn:
        if not run.data.get("flows_enabled"):
            _enable_flows(conn, run)
            run.data["flows_enabled"] = run.now.isoformat()
        since = datetime.fromisoformat(run.data["flows_enabled"])
        found = confirmations(conn, run.channel, cutoff, since)
        run.data["confirmations"] = found
        if not (found["test_order"] and found["status_update"]):
            run.wait(conn, 6, _instructions(run, found))
            run.steps["6"]["message"] = _instructions(run, found)
            _set_status(run, conn, 6)
            return False
        unmanaged = cutover_plan.unmanaged_of_cutover(conn, run.channel.id, run.c.id)
        run.data["unmanaged_listings"] = jsonable(unmanaged)
        warning = cutover_plan.unmanaged_text(unmanaged)
        run.finish(
            conn,
            6,
            f"store open, flows enabled; test order {found['test_order']} delivered to the merchant system; "
            f"{found['status_update']} confirmed by the marketplace" + (f". {warning}" if warning else ""),
            **found,
        )
        run.save(conn)
    return True


def _instructions(run: Run, found: dict[str, Any]) -> str:
    off = "holiday ended" if run.data.get("reopened") else "no holiday to end"
    todo = []
    if not found["test_order"]:
        todo.append(
            f"place a live test order on {run.channel.name} (any listed SKU, quantity 1); it must be "
            "imported and delivered to the merchant system (the orders flow polls it: a worker, or "
            "`tradelane cutover run` while it waits)"
        )
    else:
        todo.append(f"test order {found['test_order']} delivered ✓")
    if not found["status_update"]:
        todo.append(
            "send a dummy status update for an order of this channel from the merchant system (e.g. a "
            "shipment with a tracking number); it must be pushed and then confirmed by the marketplace "
            "on a later poll"
        )
    else:
        todo.append(f"{found['status_update']} confirmed ✓")
    return f"{off}, flows enabled; waiting for: " + "; ".join(todo)


def poll_orders_now(deps: Deps, channel: Channel) -> int | None:
    """While the channel's cutover waits at step 6 (the live test order, the status update), queue its
    orders poll to run now (coalesced with a pending one, :func:`~tradelane.services.channels.run_flow_now`)
    and return the job id; None otherwise. A process running the ready jobs — the CLI's ``run`` — then
    imports the test order, delivers it to the merchant system, pushes the status update and reads its
    confirmation by itself, without a scheduling worker elsewhere."""
    with deps.engine.begin() as conn:
        found = current(conn, channel.id)
        if found is None or found.status != WAITING or found.step != 6:
            return None
        return run_flow_now(conn, channel, Flow.ORDERS, full=False, now=deps.clock()).job_id


# --- revert ---------------------------------------------------------------------------------------


def revert(deps: Deps, channel: Channel, *, reason: str | None = None) -> Cutover:
    """Put the account back as the cutover found it (see :mod:`tradelane.services.cutover_revert`)."""
    from tradelane.services import cutover_revert

    return cutover_revert.revert(deps, channel, reason=reason)
