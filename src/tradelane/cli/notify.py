"""`tradelane notify ...`: where a tenant's notifications go, a test send, and the recent ones.

* ``set`` changes the tenant-wide settings, or one channel's with ``--channel`` (a channel's
  notifications go to both): ``--email`` (repeatable) replaces the recipients, ``--no-email`` removes
  them; ``--webhook URL`` sets the signed webhook, whose secret comes from
  ``TRADELANE_NOTIFY_WEBHOOK_SECRET``, ``--webhook-secret-stdin`` or a hidden prompt (a new webhook needs
  one; changing only the URL keeps the stored secret), ``--no-webhook`` removes it. What is not given
  stays as it was.
* ``show`` prints the settings (never the secret, only whether one is stored) and the SMTP server.
* ``test`` sends a test notification to every destination now and says what happened to each (exit
  code 1 when one failed).
* ``list`` prints recent notifications with each destination's status and last error.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from tradelane.cli.common import console, container, fail, print_json
from tradelane.cli.secrets import resolve_secret, secret_option, stdin_option
from tradelane.persistence.db import read_only
from tradelane.services import audit, notifications
from tradelane.services import notification_settings as destinations
from tradelane.services.channels import get_channel
from tradelane.services.tenants import get_tenant

notify_app = typer.Typer(help="Notifications: email recipients and a signed webhook, per tenant or channel.")

TenantOpt = typer.Option(..., "--tenant", "-t", help="Tenant name.")
ChannelOpt = typer.Option(None, "--channel", "-c", help="One channel's settings (default: tenant-wide).")
JsonOpt = typer.Option(False, "--json", help="Print JSON on stdout.")
SECRET_ENV = "TRADELANE_NOTIFY_WEBHOOK_SECRET"


def _transport(extras: dict[str, Any]) -> notifications.Transport:
    transport = extras.get(notifications.TRANSPORT)
    if not isinstance(transport, notifications.Transport):
        fail("no notification transport wired (bootstrap.build)")
    return transport


@notify_app.command("set")
def set_destinations(
    tenant: str = TenantOpt,
    email: list[str] | None = typer.Option(
        None, "--email", "-e", help="Recipient (repeat for several); replaces the recipients."
    ),
    no_email: bool = typer.Option(False, "--no-email", help="Remove every recipient."),
    webhook: str | None = typer.Option(
        None, "--webhook", help="URL receiving a signed POST per notification."
    ),
    webhook_secret: str | None = secret_option("--webhook-secret", SECRET_ENV, "the webhook signing secret"),
    webhook_secret_stdin: bool = stdin_option("--webhook-secret", "the webhook signing secret"),
    no_webhook: bool = typer.Option(False, "--no-webhook", help="Remove the webhook and its secret."),
    channel: str | None = ChannelOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Set where notifications go (see `tradelane notify --help`)."""
    if email and no_email:
        fail("give --email or --no-email, not both")
    if webhook is not None and no_webhook:
        fail("give --webhook or --no-webhook, not both")
    if not (email or no_email or webhook is not None or no_webhook or webhook_secret or webhook_secret_stdin):
        fail("nothing to change: give --email, --no-email, --webhook, --no-webhook or a new webhook secret")
    with container() as app:
        with read_only(app.engine) as conn:
            tenant_id = get_tenant(conn, tenant).id
            channel_id = get_channel(conn, tenant_id, channel).id if channel else None
            current = next(
                (d for d in destinations.show(conn, tenant_id) if d.channel_id == channel_id), None
            )
        has_secret = current is not None and current.has_webhook_secret
        secret = None
        if not no_webhook:
            secret = resolve_secret(
                webhook_secret,
                webhook_secret_stdin,
                flag="--webhook-secret",
                what="webhook signing secret",
                required=webhook is not None and not has_secret,
            )
        with app.engine.begin() as conn:
            result = destinations.configure(
                conn,
                app.keyring,
                tenant_id=tenant_id,
                channel_id=channel_id,
                emails=[] if no_email else (email or None),
                webhook_url="" if no_webhook else webhook,
                webhook_secret=secret,
                actor=audit.cli_actor(),
                now=app.now(),
            )
    scope = f"channel {channel}" if channel else f"tenant {tenant}"
    if as_json:
        print_json(result.as_json() if result else {"channel": channel, "removed": True})
    elif result is None:
        typer.echo(f"notifications of {scope}: nothing configured any more")
    else:
        typer.echo(f"notifications of {scope}: {_summary(result)}")


def _summary(d: destinations.Destinations) -> str:
    emails = ", ".join(d.emails) if d.emails else "no email"
    hook = f"webhook {d.webhook_url} (signed)" if d.webhook_url else "no webhook"
    return f"{emails}; {hook}"


@notify_app.command("show")
def show(tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Where the tenant's notifications go, and the SMTP server they are mailed through."""
    with container() as app, read_only(app.engine) as conn:
        scopes = destinations.show(conn, get_tenant(conn, tenant).id)
        smtp = _transport(app.extras).smtp.describe()
    if as_json:
        print_json({"smtp": smtp, "destinations": [d.as_json() for d in scopes]})
        return
    typer.echo(f"SMTP: {smtp}")
    if not scopes:
        typer.echo("no destination configured: notifications are not sent (`tradelane notify set`)")
        return
    for d in scopes:
        typer.echo(f"{'channel ' + (d.channel or '?') if d.channel_id else 'tenant-wide'}: {_summary(d)}")


@notify_app.command("test")
def test(tenant: str = TenantOpt, channel: str | None = ChannelOpt, as_json: bool = JsonOpt) -> None:
    """Send a test notification to every destination now and say what happened to each."""
    with container() as app:
        with read_only(app.engine) as conn:
            tenant_id = get_tenant(conn, tenant).id
            channel_id = get_channel(conn, tenant_id, channel).id if channel else None
        note = notifications.send_test(
            app.engine, _transport(app.extras), tenant_id=tenant_id, channel_id=channel_id, now=app.now()
        )
    if as_json:
        print_json(note.as_json())
    else:
        for d in note.deliveries:
            outcome = "sent" if d.status == "sent" else f"FAILED: {d.last_error}"
            typer.echo(f"{d.kind} {d.destination}: {outcome}")
    if note.status != "sent":
        raise typer.Exit(1)


@notify_app.command("list")
def list_recent(
    tenant: str = TenantOpt,
    channel: str | None = typer.Option(None, "--channel", "-c", help="Only this channel's notifications."),
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="How many, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """Recent notifications, newest first, with each destination's status."""
    with container() as app, read_only(app.engine) as conn:
        tenant_id = get_tenant(conn, tenant).id
        channel_id = get_channel(conn, tenant_id, channel).id if channel else None
        notes = notifications.recent(conn, tenant_id, limit=limit, channel_id=channel_id)
    if as_json:
        print_json([n.as_json() for n in notes])
        return
    if not notes:
        typer.echo("no notification yet")
        return
    table = Table("id", "at", "event", "subject", "status", "destinations")
    for n in notes:
        shown = "\n".join(
            f"{d.kind} {d.destination}: {d.status}" + (f" ({d.last_error})" if d.last_error else "")
            for d in n.deliveries
        )
        table.add_row(
            str(n.id), n.created_at.isoformat(timespec="seconds"), n.event, n.subject, n.status, shown
        )
    console.print(table)
