"""`tradelane channel ...`: list, check, pause/resume flows, trigger a flow now, remove; `channel add`
holds one command per connector (each in its package's ``cli`` module, e.g. connectors/mirakl/cli.py)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Connection

from tradelane.bootstrap import Container
from tradelane.cli.common import console, container, fail, print_json
from tradelane.connectors.registry import ChannelCheck, check_channel
from tradelane.domain.channels import Flow, LifecycleState, parse_flow
from tradelane.persistence.tables import channels, jobs, tenants
from tradelane.services import audit, channel_lifecycle
from tradelane.services.channels import (
    AUTH_PAUSE,
    Channel,
    check_removal,
    credentials_accepted,
    credentials_alert,
    flow_statuses,
    get_channel,
    list_channels,
    manual_job_kind,
    removal_preview,
    remove_channel,
    run_flow_now,
)
from tradelane.services.offers import OFFER_SYNC_PROGRESS, OFFERS_FULL, OfferSyncProgress
from tradelane.services.tenants import get_tenant

channel_app = typer.Typer(help="Marketplace channels.", no_args_is_help=True)
add_app = typer.Typer(help="Connect a marketplace account.", no_args_is_help=True)
channel_app.add_typer(add_app, name="add")

TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant name (needed when NAME is not unique).")


def resolve_channel(conn: Connection, name: str, tenant: str | None) -> Channel:
    """A channel by name; the tenant may be omitted when only one tenant has a channel of that name."""
    if tenant is not None:
        return get_channel(conn, get_tenant(conn, tenant).id, name)
    rows = conn.execute(
        sa.select(channels.c.tenant_id, tenants.c.name)
        .join(tenants, tenants.c.id == channels.c.tenant_id)
        .where(channels.c.name == name, channels.c.removed_at.is_(None))
    ).all()
    if not rows:
        fail(f"no channel named {name!r}")
    if len(rows) > 1:
        owners = ", ".join(sorted(r.name for r in rows))
        fail(f"several tenants have a channel named {name!r} ({owners}): pass --tenant")
    return get_channel(conn, rows[0].tenant_id, name)


def _flows(values: list[str] | None) -> list[Flow] | None:
    if not values:
        return None
    try:
        return [parse_flow(v) for v in values]
    except ValueError as exc:
        fail(str(exc))


@channel_app.command("list")
def channel_list(
    tenant: str = typer.Option(..., "--tenant", "-t"), as_json: bool = typer.Option(False, "--json")
) -> None:
    with container() as app, app.engine.connect() as conn:
        tenant_id = get_tenant(conn, tenant).id
        result: list[dict[str, Any]] = []
        for ch in list_channels(conn, tenant_id):
            flows = flow_statuses(conn, ch.id)
            result.append(
                {
                    "id": ch.id,
                    "name": ch.name,
                    "connector": ch.connector,
                    "lifecycle_state": ch.lifecycle_state,
                    "alert": credentials_alert(conn, ch),
                    "flows": {
                        f.flow.value: {
                            "enabled": f.enabled,
                            "paused": f.paused,
                            "pause_reason": f.pause_reason,
                            "frequency_seconds": f.frequency_seconds,
                            "last_success_at": f.last_success_at,
                            "last_error": f.last_error,
                        }
                        for f in flows
                    },
                }
            )
    if as_json:
        print_json(result)
        return
    table = Table("channel", "connector", "state", "flows", "alert")
    for item in result:
        flows_text = ", ".join(
            f"{name}{_paused_text(f)}{'' if f['enabled'] else ' (off)'}" for name, f in item["flows"].items()
        )
        table.add_row(
            item["name"], item["connector"], item["lifecycle_state"], flows_text, item["alert"] or ""
        )
    console.print(table)


def _paused_text(flow: dict[str, Any]) -> str:
    if not flow["paused"]:
        return ""
    return " (paused: credentials rejected)" if flow["pause_reason"] == AUTH_PAUSE else " (paused)"


def _pause(name: str, tenant: str | None, flow: list[str] | None, paused: bool) -> None:
    with container() as app, app.engine.begin() as conn:
        channel = resolve_channel(conn, name, tenant)
        changed = channel_lifecycle.pause(
            conn, channel, _flows(flow), paused, actor=audit.cli_actor(), now=app.now()
        )
    verb = "paused" if paused else "resumed"
    console.print(f"{channel.name}: {verb} {', '.join(f.value for f in changed)}")


@channel_app.command("pause")
def channel_pause(
    name: str,
    tenant: str | None = TenantOpt,
    flow: list[str] = typer.Option(
        None, "--flow", "-f", help="Flow to pause (repeatable); all when omitted."
    ),
) -> None:
    """Stop workers from taking this channel's jobs of the given flows (queued work is kept)."""
    _pause(name, tenant, flow, True)


@channel_app.command("resume")
def channel_resume(
    name: str,
    tenant: str | None = TenantOpt,
    flow: list[str] = typer.Option(
        None, "--flow", "-f", help="Flow to resume (repeatable); all when omitted."
    ),
) -> None:
    _pause(name, tenant, flow, False)


@channel_app.command("state")
def channel_state(
    name: str,
    state: str | None = typer.Argument(None, help="setup | testing | live | disabled (none: show it)"),
    tenant: str | None = TenantOpt,
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded; needed once live)."),
) -> None:
    """Show the channel's lifecycle and communication frequency, or move it (audited): testing checks
    the credentials first (as `channel activate`), live is `channel promote`."""
    from tradelane.cli.lifecycle import lifecycle_lines

    target = None
    if state is not None:
        try:
            target = LifecycleState(state)
        except ValueError:
            fail(f"unknown state {state!r} (setup, testing, live, disabled)")
    with container() as app:
        with app.engine.connect() as conn:
            channel = resolve_channel(conn, name, tenant)
            checked = check_channel(conn, channel, app.keyring) if target is LifecycleState.TESTING else None
        if target is not None:
            with app.engine.begin() as conn:
                actor = audit.cli_actor()
                channel_lifecycle.set_state(
                    conn, channel, target, actor=actor, now=app.now(), reason=reason, checked=checked
                )
        for line in lifecycle_lines(app, channel):
            console.print(line, highlight=False)


@channel_app.command("sync")
def channel_sync(
    name: str,
    tenant: str | None = TenantOpt,
    flow: str = typer.Option(..., "--flow", "-f", help="offers | orders | reconciler | fulfillments"),
    full: bool = typer.Option(False, "--full", help="Full sync instead of a delta (offers)."),
    wait: bool = typer.Option(
        False,
        "--wait",
        help=(
            "Run the job here, now (like `tradelane worker --burst`): a bar of offers for --full, the "
            "job's state with a spinner for the other flows."
        ),
    ),
) -> None:
    """Run FLOW of channel NAME now: enqueue it (or bring its pending job forward, also out of a retry
    backoff — but never ahead of a marketplace's Retry-After); a worker, or --wait, then does the work.

    With --full, the full sync supersedes pending deltas: no offer is sent twice."""
    try:
        selected = parse_flow(flow)
    except ValueError as exc:
        fail(str(exc))
    kind = manual_job_kind(selected, full=full)
    with container() as app:
        with app.engine.begin() as conn:
            channel = resolve_channel(conn, name, tenant)
            if kind not in app.registry.kinds():
                fail(f"connector {channel.connector!r} has no {kind} job")
            run = run_flow_now(conn, channel, selected, full=full, now=app.now())
        console.print(f"{channel.name}: {run.message()}")
        if wait:
            _run_here(app, run.job_id, kind)


def _run_here(app: Container, job_id: int, kind: str, timeout_seconds: float = 600.0) -> None:
    """Run ready jobs in this process until job ``job_id`` (of ``kind``) is finished. A full offer sync
    shows a bar of offers (built, then sent); any other job a spinner with the job's state (queued,
    running, waiting for a retry until when, attempts), since it has no count of offers to show."""
    from tradelane.sync.worker import Worker, WorkerConfig

    s = app.settings
    config = WorkerConfig(
        batch_size=s.worker_batch_size,
        lease_seconds=s.worker_lease_seconds,
        backoff_base=s.job_backoff_base_seconds,
        backoff_cap=s.job_backoff_cap_seconds,
        schedule=False,
    )
    counted = kind == OFFERS_FULL
    columns = (
        (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} offers"))
        if counted
        else (SpinnerColumn(), TextColumn("{task.description}"))
    )
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("waiting for the job", total=None)

        def report(step: OfferSyncProgress) -> None:
            label = "building offers" if step.stage == "building" else "sent to the marketplace"
            progress.update(task, description=label, completed=step.done, total=step.total)

        worker = Worker(
            app.engine,
            app.registry,
            app.now,
            config,
            services={**app.extras, OFFER_SYNC_PROGRESS: report},
        )
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            with app.engine.connect() as conn:
                row = conn.execute(
                    sa.select(jobs.c.state, jobs.c.last_error, jobs.c.attempts, jobs.c.run_at).where(
                        jobs.c.id == job_id
                    )
                ).one()
            state, error = row.state, row.last_error
            if not counted:
                progress.update(task, description=_job_state(kind, job_id, row, app.now()))
            if state not in ("queued", "running"):
                break
            if worker.run_once() == 0:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        else:
            fail(f"job {job_id} is still {state} after {timeout_seconds:g}s; a worker will finish it")
    if state == "succeeded":
        console.print(f"job {job_id} succeeded")
    else:
        fail(f"job {job_id} {state}: {(error or '').splitlines()[0] if error else ''}", code=2)


def _job_state(kind: str, job_id: int, row: Any, now: datetime) -> str:
    """One line of a job's state for the spinner: "orders.poll job 7: running (attempt 1)", or waiting
    for its retry until when."""
    line = f"{kind} job {job_id}: {row.state}"
    if row.attempts:
        line += f" (attempt {row.attempts})"
    if row.state == "queued" and row.run_at > now:
        line += f", next try at {row.run_at:%H:%M:%S} UTC"
        if row.last_error:
            line += f" — {row.last_error.splitlines()[0]}"
    return line


@channel_app.command("check")
def channel_check(
    name: str,
    tenant: str | None = TenantOpt,
    staging: bool = typer.Option(False, "--staging", help="Check the staging/test account."),
) -> None:
    """Call the marketplace with the channel's credentials and say precisely what is wrong, if anything
    (the channel's connector tells the causes apart as far as its API allows)."""
    with container() as app, app.engine.connect() as conn:
        channel = resolve_channel(conn, name, tenant)
        result = check_channel(conn, channel, app.keyring, staging=staging)
    if result.ok:
        console.print(f"[green]OK[/] {result.message}")
        return
    fail(f"{result.problem or 'error'}: {result.message}", code=2)


def report_check(app: Container, channel: Channel, result: ChannelCheck) -> None:
    """After a change to ``channel``: print the check ``result``; when it passes, resume what the
    rejected credentials paused (see :func:`credentials_accepted`), else exit 2."""
    if not result.ok:
        fail(
            f"{channel.name}: saved, but the check fails — {result.problem or 'error'}: {result.message}",
            code=2,
        )
    with app.engine.begin() as conn:
        fixed = credentials_accepted(conn, channel, actor=audit.cli_actor(), now=app.now())
    console.print(f"[green]OK[/] {channel.name}: saved and checked — {result.message}")
    if fixed.resumed:
        console.print(f"resumed {', '.join(f.value for f in fixed.resumed)} (paused: credentials rejected)")
    if fixed.replayed_jobs:
        console.print(f"re-queued {len(fixed.replayed_jobs)} job(s) that died of the rejected credentials")
    if fixed.alert_resolved:
        console.print("credentials alert resolved")


@channel_app.command("remove")
def channel_remove(
    name: str,
    tenant: str | None = TenantOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    reason: str | None = typer.Option(
        None, "--reason", help="Why (recorded in the channel's history; needed for a live channel)."
    ),
) -> None:
    """Remove channel NAME (a live one needs --reason). Its orders (and their history, messages, returns)
    are kept, read-only, for audit, and their delivery to the merchant system goes on; its offer
    bindings are deleted and its flows' pending jobs cancelled; its credentials are erased. Its listings
    on the marketplace are NOT deleted: end them on the marketplace if wanted."""
    with container() as app:
        with app.engine.connect() as conn:
            channel = resolve_channel(conn, name, tenant)
            check_removal(conn, channel, reason)  # a live channel needs --reason: ask before confirming
            preview = removal_preview(conn, channel)
        console.print(
            f"Removing channel {channel.name}:\n"
            f"  - its {preview['orders']} order(s) and their history are kept, read-only, for audit "
            "(deliveries to the merchant system go on);\n"
            f"  - its {preview['offer_bindings']} offer binding(s) are deleted and its flows' "
            f"{preview['pending_jobs']} pending job(s) cancelled; its credentials are erased;\n"
            "  - its listings on the marketplace are NOT deleted (end them on the marketplace if wanted)."
        )
        if not yes and not typer.confirm(f"Remove channel {channel.name}?", default=False, err=True):
            fail("not confirmed: nothing changed")
        with app.engine.begin() as conn:
            done = remove_channel(
                conn,
                resolve_channel(conn, name, tenant),
                actor=audit.cli_actor(),
                now=app.now(),
                reason=reason,
            )
    console.print(
        f"{done.channel}: removed ({done.orders_kept} order(s) kept as {done.archived_as!r}, "
        f"{done.offer_bindings_deleted} offer binding(s) deleted, {done.jobs_cancelled} job(s) cancelled)"
    )
