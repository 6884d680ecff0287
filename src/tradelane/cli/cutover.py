"""`tradelane cutover plan|run|status|revert|log CHANNEL --tenant T`: the reversible cutover of a live
marketplace account (see :mod:`tradelane.services.cutover`).

``run`` takes the cutover as far as it goes: it calls the service's ``advance`` in this process and,
while a step waits (outstanding orders, imports, the initial sync, the live test order), shows the step
and its live count and calls it again — running ready jobs here (like ``tradelane worker --burst``, with
the initial sync's progress bar; at step 6 it also queues the channel's orders poll, so the live test
order is imported, delivered and its status update confirmed by this command alone) — for at most
``--wait-minutes``; ``--no-wait`` returns at once. Every ``run`` resumes where the last one stopped.
One run works on a cutover at a time: while another (a second ``run``, the engine's ``cutover.advance``
job) is at work, ``run`` and ``revert`` say so and exit 3 (try again); a ``run`` already waiting just
looks again later. Exit codes: 0 done or waiting (resumable), 2 stopped (a step needs someone: errors
listed) or refused (no confirmation of step 1), 3 busy (another run is working on it).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradelane.bootstrap import Container
from tradelane.cli.channels import TenantOpt, resolve_channel
from tradelane.cli.common import console, container, fail, print_json
from tradelane.domain.errors import TradelaneError
from tradelane.services import audit, cutover
from tradelane.services.channels import Channel
from tradelane.services.offers import OFFER_SYNC_PROGRESS, OfferSyncProgress

cutover_app = typer.Typer(
    help="Take over a live marketplace account from another integrator.", no_args_is_help=True
)

#: Exit code of ``run`` / ``revert`` when another run is working on the cutover.
BUSY = 3
STATE_STYLE = {"done": "green", "waiting": "yellow", "running": "cyan", "failed": "red", "pending": "dim"}


def _deps(app: Container) -> cutover.Deps:
    return cutover.Deps(engine=app.engine, clock=app.now, keyring=app.keyring, actor=audit.cli_actor())


def _channel(app: Container, name: str, tenant: str | None) -> Channel:
    with app.engine.connect() as conn:
        return resolve_channel(conn, name, tenant)


def show(found: cutover.Cutover) -> None:
    """The six steps with their state and message, then the cutover's status."""
    table = Table(title=f"cutover {found.id} — {found.status}")
    table.add_column("#")
    table.add_column("step")
    table.add_column("state")
    table.add_column("message", overflow="fold")
    for n, name in cutover.STEPS.items():
        entry = found.steps.get(str(n), {})
        state = str(entry.get("state", "pending"))
        style = STATE_STYLE.get(state, "")
        marker = "→ " if n == found.step and found.status not in (cutover.DONE, cutover.REVERTED) else ""
        table.add_row(f"{marker}{n}", name, f"[{style}]{state}[/]", str(entry.get("message", "")))
    console.print(table)
    errors = found.data.get("sync", {}).get("errors") or {}
    if errors and found.status == cutover.STOPPED:
        err = Table(title="initial sync: refused offers")
        err.add_column("sku")
        err.add_column("reason", overflow="fold")
        err.add_column("raw", overflow="fold")
        for sku, e in errors.items():
            err.add_row(sku, str(e.get("reason") or ""), str(e.get("raw") or "")[:300])
        console.print(err)
    if found.revert_report:
        console.print(f"revert: {found.revert_report.get('message', '')}", soft_wrap=True)


@cutover_app.command("plan")
def cutover_plan(
    name: str, tenant: str | None = TenantOpt, as_json: bool = typer.Option(False, "--json")
) -> None:
    """Dry run against the account: offers listed now, outstanding orders, selected SKUs, the holiday
    mode and what each step will do. Nothing is written, remotely or here."""
    with container() as app:
        channel = _channel(app, name, tenant)
        try:
            planned = cutover.plan(_deps(app), channel)
        except TradelaneError as exc:
            fail(f"{channel.name}: {exc}", code=2)
    if as_json:
        print_json(planned)
        return
    outstanding = planned["outstanding_orders"]
    console.print(
        f"{channel.name} ({planned['connector']}): {planned['offers_listed']} offers listed now, "
        f"{outstanding['total']} outstanding orders, {planned['selected_skus']} selected SKUs to sync "
        f"({planned['new_offers_on_sync']} not listed now), holiday mode {planned['holiday_mode']}",
        soft_wrap=True,
    )
    table = Table(title="what each step will do")
    table.add_column("#")
    table.add_column("step")
    table.add_column("does", overflow="fold")
    for step in planned["steps"]:
        table.add_row(str(step["step"]), step["name"], step["does"])
    console.print(table)
    console.print(f"revert: {planned['revert']}", soft_wrap=True)
    if planned.get("refused"):
        console.print(f"[bold red]run would be refused:[/] {planned['refused']}", soft_wrap=True)


def _parse_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--date {value!r}: not an ISO 8601 date-time (e.g. 2026-12-07T06:00:00+01:00)", code=2)
    if parsed.tzinfo is None:
        fail("--date needs a timezone (e.g. 2026-12-07T06:00:00+01:00 or ...Z)", code=2)
    return parsed


@cutover_app.command("run")
def cutover_run(
    name: str,
    tenant: str | None = TenantOpt,
    previous_integrator_disabled: bool = typer.Option(
        False,
        "--previous-integrator-disabled",
        help="Confirm (step 1) that the previous integrator disables their connection.",
    ),
    date: str | None = typer.Option(None, "--date", help="When to start (ISO 8601 with zone; default now)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Return as soon as a step waits."),
    wait_minutes: float = typer.Option(30.0, "--wait-minutes", min=0.0, help="Longest wait in this run."),
    poll_seconds: float = typer.Option(15.0, "--poll-seconds", min=0.5, help="Between two looks."),
    holiday_days: int = typer.Option(cutover.DEFAULT_HOLIDAY_DAYS, "--holiday-days", min=1),
    as_json: bool = typer.Option(False, "--json", help="Print the cutover's status as JSON at the end."),
) -> None:
    """Start or resume the channel's cutover and take it as far as it goes (see `cutover plan`)."""
    scheduled = _parse_date(date)
    with container() as app:
        channel = _channel(app, name, tenant)
        found = _advance(app, channel, previous_integrator_disabled, scheduled, holiday_days)
        if found.status == cutover.WAITING and not no_wait and found.step > 1:
            found = _wait(app, channel, found, wait_minutes * 60, poll_seconds, holiday_days)
    if as_json:
        print_json(found.as_json())
    else:
        show(found)
    _exit_for(found)


def _advance(
    app: Container, channel: Channel, confirmed: bool, scheduled: datetime | None, holiday_days: int
) -> cutover.Cutover:
    try:
        return cutover.advance(
            _deps(app),
            channel,
            previous_integrator_disabled=confirmed,
            scheduled_at=scheduled,
            holiday_days=holiday_days,
        )
    except cutover.CutoverBusy as exc:
        fail(f"{channel.name}: {exc}", code=BUSY)
    except TradelaneError as exc:
        fail(f"{channel.name}: {exc}", code=2)


def _wait(
    app: Container,
    channel: Channel,
    found: cutover.Cutover,
    seconds: float,
    poll: float,
    holiday_days: int,
) -> cutover.Cutover:
    """Call ``advance`` again until the cutover stops waiting or ``seconds`` pass, running ready jobs
    here between looks (the initial sync's offers appear on the bar)."""
    from tradelane.sync.worker import Worker, WorkerConfig

    s = app.settings
    config = WorkerConfig(
        batch_size=s.worker_batch_size,
        lease_seconds=s.worker_lease_seconds,
        backoff_base=s.job_backoff_base_seconds,
        backoff_cap=s.job_backoff_cap_seconds,
        schedule=False,
    )
    deadline = time.monotonic() + seconds
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"step {found.step}: {found.message}", total=None)

        def report(step: OfferSyncProgress) -> None:
            label = "initial sync: building offers" if step.stage == "building" else "initial sync: sent"
            progress.update(task, description=label, completed=step.done, total=step.total)

        worker = Worker(
            app.engine, app.registry, app.now, config, services={**app.extras, OFFER_SYNC_PROGRESS: report}
        )
        while found.status == cutover.WAITING and time.monotonic() < deadline:
            cutover.poll_orders_now(_deps(app), channel)  # step 6 only: the live test order
            ran = worker.run_once()
            if not ran:
                time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            try:
                found = cutover.advance(_deps(app), channel, holiday_days=holiday_days)
            except cutover.CutoverBusy as busy:  # the engine's job is looking: look again later
                progress.update(task, description=f"step {found.step}: {busy}"[:200])
                continue
            except TradelaneError as exc:
                fail(f"{channel.name}: {exc}", code=2)
            outstanding = found.data.get("outstanding") if found.step == 2 else None
            total = outstanding["total"] if outstanding else None
            progress.update(task, description=f"step {found.step} ({found.status}): {found.message}"[:200])
            if total is not None:
                progress.update(task, completed=total, total=None)
    return found


def _exit_for(found: cutover.Cutover) -> None:
    if found.status == cutover.STOPPED:
        fail(f"cutover stopped at step {found.step} ({cutover.STEPS[found.step]}): {found.message}", code=2)
    if found.status == cutover.WAITING and found.step == 1 and found.confirmed_at is None:
        fail("refused to go past step 1 without --previous-integrator-disabled", code=2)
    if found.status == cutover.WAITING:
        console.print(
            f"waiting at step {found.step}: {found.message} — `cutover run` again resumes", soft_wrap=True
        )
    elif found.status == cutover.DONE:
        console.print("cutover done", style="green")


@cutover_app.command("status")
def cutover_status(
    name: str,
    tenant: str | None = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    csv_file: Path | None = typer.Option(None, "--csv", help="Write the cutover's audit log as CSV."),
) -> None:
    """The current step and its state (``--json``: every step), nothing sent."""
    with container() as app, app.engine.connect() as conn:
        channel = resolve_channel(conn, name, tenant)
        found = cutover.current(conn, channel.id)
        if found is None:
            fail(f"channel {channel.name} has no cutover (`tradelane cutover plan {channel.name}` first)")
        if csv_file is not None:
            csv_file.write_text(audit.to_csv(cutover.log(conn, channel.id)), encoding="utf-8")
    if as_json:
        print_json(found.as_json())
    else:
        show(found)
    if csv_file is not None:
        console.print(f"audit log written to {csv_file}")


@cutover_app.command("revert")
def cutover_revert(
    name: str,
    tenant: str | None = TenantOpt,
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the audit log)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Return while the restore's imports run."),
    wait_minutes: float = typer.Option(30.0, "--wait-minutes", min=0.0),
    poll_seconds: float = typer.Option(15.0, "--poll-seconds", min=0.5),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Restore the snapshot (prices and quantities), end the holiday, drop the cutoff, put the flows
    back; says exactly what could not be restored. Resumable: run it again while it is reverting."""
    with container() as app:
        channel = _channel(app, name, tenant)
        deadline = time.monotonic() + wait_minutes * 60
        while True:
            try:
                found = cutover.revert(_deps(app), channel, reason=reason)
            except cutover.CutoverBusy as exc:
                fail(f"{channel.name}: {exc}", code=BUSY)
            except TradelaneError as exc:
                fail(f"{channel.name}: {exc}", code=2)
            if found.status == cutover.REVERTED or no_wait or time.monotonic() >= deadline:
                break
            console.print(f"reverting: {found.message}", soft_wrap=True)
            time.sleep(poll_seconds)
    if as_json:
        print_json(found.as_json())
        return
    report = found.revert_report or {}
    if found.status != cutover.REVERTED:
        console.print(f"still reverting: {report.get('message', '')} — `cutover revert` again resumes")
        return
    console.print(
        f"reverted: {report.get('restored', 0)} of {report.get('snapshot', 0)} offers restored", style="green"
    )
    for line in report.get("not_restored", []):
        console.print(f"  not restored: {line}", soft_wrap=True)


@cutover_app.command("log")
def cutover_log(
    name: str,
    tenant: str | None = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    csv_file: Path | None = typer.Option(None, "--csv", help="Write it as CSV to this file."),
) -> None:
    """The cutover's audit log: every step's start, wait, finish and problem (who, when, why)."""
    with container() as app, app.engine.connect() as conn:
        channel = resolve_channel(conn, name, tenant)
        events = cutover.log(conn, channel.id)
    if csv_file is not None:
        csv_file.write_text(audit.to_csv(events), encoding="utf-8")
        console.print(f"{len(events)} events written to {csv_file}")
        return
    if as_json:
        print_json([e.as_json() for e in events])
        return
    table = Table(title=f"{channel.name}: cutover log")
    for column in ("at", "actor", "action", "phase", "reason"):
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(e.at.isoformat(), e.actor, e.action, str(e.details.get("phase", "")), e.reason or "")
    console.print(table)
