"""`tradelane channel activate|testing|promote|flow|history|frequency`: a channel's lifecycle Setup ->
Testing (its period changed by `testing`) -> Live, its flow switches and its audit trail
(services/channel_lifecycle.py), and its communication frequency (services/communication.py). Every
change is audited with actor ``cli:<os user>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tradelane.bootstrap import Container
from tradelane.cli.channels import TenantOpt, channel_app, resolve_channel
from tradelane.cli.common import console, container, fail, print_json
from tradelane.connectors.registry import check_channel
from tradelane.domain.channels import parse_flow
from tradelane.services import audit
from tradelane.services import channel_lifecycle as lifecycle_service
from tradelane.services.channels import Channel
from tradelane.services.communication import communication_frequency

ReasonOpt = typer.Option(None, "--reason", help="Why (recorded in the channel's history; needed once live).")


def lifecycle_lines(app: Container, channel: Channel) -> list[str]:
    """The channel's lifecycle, go-live alert and communication frequency, as printed lines."""
    with app.engine.connect() as conn:
        view = lifecycle_service.lifecycle(conn, channel)
        alert = lifecycle_service.go_live_alert(conn, channel)
        frequency = communication_frequency(
            conn, channel, worker_poll_seconds=app.settings.worker_poll_seconds
        )
    lines = [f"{channel.name}: {view.state.value}"]
    if view.testing_ends_at is not None and view.state.value == "testing":
        lines.append(
            f"testing period: {view.testing_days} days, ends {view.testing_ends_at:%Y-%m-%d %H:%M} UTC"
        )
    if view.live_at is not None:
        lines.append(f"live since {view.live_at:%Y-%m-%d %H:%M} UTC")
    if alert is not None:
        lines.append(f"{alert[0]}: {alert[1]}")
    lines.append(f"{frequency.skus} SKU(s) selected: " + "; ".join(frequency.sentences()))
    return lines


@channel_app.command("activate")
def channel_activate(
    name: str,
    tenant: str | None = TenantOpt,
    testing_days: int | None = typer.Option(
        None, "--testing-days", min=1, help="Length of the testing period (default 30 days)."
    ),
    reason: str | None = ReasonOpt,
) -> None:
    """ "Save and activate": check the credentials, then move the channel from setup to testing."""
    with container() as app:
        with app.engine.connect() as conn:
            channel = resolve_channel(conn, name, tenant)
            checked = check_channel(conn, channel, app.keyring)
        with app.engine.begin() as conn:
            view = lifecycle_service.activate(
                conn,
                channel,
                checked=checked,
                actor=audit.cli_actor(),
                now=app.now(),
                testing_days=testing_days,
                reason=reason,
            )
    ends = f"{view.testing_ends_at:%Y-%m-%d %H:%M} UTC" if view.testing_ends_at else "?"
    console.print(
        f"[green]OK[/] {channel.name}: testing for {view.testing_days} days, until {ends} — {checked.message}"
    )


@channel_app.command("testing")
def channel_testing(
    name: str,
    days: int = typer.Option(..., "--days", min=1, help="The new length of the testing period, in days."),
    tenant: str | None = TenantOpt,
    reason: str | None = typer.Option(None, "--reason", help="Why (required; recorded in the history)."),
) -> None:
    """Change the testing period of a channel in testing (audited, with a reason). Its end is counted
    from the start of the period; if it is then already over, the engine promotes the channel at its
    next check (go-live blockers apply)."""
    with container() as app, app.engine.begin() as conn:
        channel = resolve_channel(conn, name, tenant)
        now = app.now()
        view = lifecycle_service.set_testing_period(
            conn, channel, days, actor=audit.cli_actor(), now=now, reason=reason
        )
    ends = view.testing_ends_at
    line = (
        f"[green]OK[/] {channel.name}: testing for {view.testing_days} days, until {ends:%Y-%m-%d %H:%M} UTC"
    )
    if ends is not None and ends <= now:
        line += " — already over: the engine promotes it at its next check (unless go-live is blocked)"
    console.print(line)


@channel_app.command("promote")
def channel_promote(
    name: str,
    tenant: str | None = TenantOpt,
    override_reason: str | None = typer.Option(
        None, "--override-reason", help="Go live despite the go-live blockers (recorded as an override)."
    ),
    reason: str | None = ReasonOpt,
) -> None:
    """Move the channel from testing to live (refused while go-live blockers exist, unless overridden)."""
    with container() as app, app.engine.begin() as conn:
        channel = resolve_channel(conn, name, tenant)
        lifecycle_service.promote(
            conn,
            channel,
            actor=audit.cli_actor(),
            now=app.now(),
            reason=reason,
            override_reason=override_reason,
        )
    console.print(f"[green]OK[/] {channel.name}: live")


@channel_app.command("flow")
def channel_flow(
    name: str,
    flow: str = typer.Argument(..., help="offers (Listings) | orders | fulfillments | reconciler"),
    switch: str = typer.Argument(..., help="on | off"),
    tenant: str | None = TenantOpt,
    reason: str | None = ReasonOpt,
) -> None:
    """Switch one flow of the channel on or off (audited). The reconciler is switched on through its
    dry run; Fulfillments off makes new orders Third Party Managed."""
    if switch not in {"on", "off"}:
        fail(f"expected on or off, not {switch!r}")
    try:
        target = parse_flow(flow)
    except ValueError as exc:
        fail(str(exc))
    with container() as app, app.engine.begin() as conn:
        channel = resolve_channel(conn, name, tenant)
        change = lifecycle_service.set_flow(
            conn, channel, target, switch == "on", actor=audit.cli_actor(), reason=reason, now=app.now()
        )
    state = "unchanged, already" if not change.changed else "now"
    console.print(f"{channel.name}: {target.value} {state} {switch}")


@channel_app.command("history")
def channel_history(
    name: str,
    tenant: str | None = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    csv_file: Path | None = typer.Option(None, "--csv", help="Write the history as CSV to this file."),
) -> None:
    """The channel's audit trail: who changed its lifecycle and flows, when and why (oldest first)."""
    with container() as app, app.engine.connect() as conn:
        channel = resolve_channel(conn, name, tenant)
        events = audit.history(conn, channel.id, limit=None)
    if csv_file is not None:
        csv_file.write_text(audit.to_csv(events), encoding="utf-8")
        console.print(f"{len(events)} event(s) written to {csv_file}")
        return
    if as_json:
        print_json([e.as_json() for e in events])
        return
    table = Table("at (UTC)", "actor", "action", "reason", "details")
    for e in events:
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.reason or "", _details(e.details))
    console.print(table)


def _details(details: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(details.items()))


@channel_app.command("frequency")
def channel_frequency(
    name: str, tenant: str | None = TenantOpt, as_json: bool = typer.Option(False, "--json")
) -> None:
    """How long a full sync takes, how soon a stock change and an order cross over (recomputed now), and
    what each figure is made of: every part with its basis (measured, budget, declared, configured,
    nominal); --json gives the same breakdown."""
    with container() as app, app.engine.connect() as conn:
        channel = resolve_channel(conn, name, tenant)
        frequency = communication_frequency(
            conn, channel, worker_poll_seconds=app.settings.worker_poll_seconds
        )
    if as_json:
        print_json({"channel": channel.name, **frequency.as_json()})
        return
    console.print(f"{channel.name}: {frequency.skus} SKU(s) selected", highlight=False)
    for line in frequency.breakdown():
        console.print(f"  {line}", highlight=False, markup=False)
