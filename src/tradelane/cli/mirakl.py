"""`tradelane channel add mirakl`, `tradelane channel check`, `tradelane offers ...`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from tradelane.cli.channels import TenantOpt, channel_app, resolve_channel
from tradelane.cli.common import console, container, fail, print_json
from tradelane.cli.secrets import required_secret, resolve_secret, secret_option, stdin_option
from tradelane.connectors.mirakl.connector import add_channel, check_channel, check_in_use, update_channel
from tradelane.services.channels import credentials_accepted
from tradelane.services.offers import list_offers, republish
from tradelane.services.tenants import get_tenant

#: Environment variables holding the Mirakl API keys (named in the options' help).
API_KEY_ENV = "TRADELANE_MIRAKL_API_KEY"
STAGING_API_KEY_ENV = "TRADELANE_MIRAKL_STAGING_API_KEY"
API_KEY_OPT = secret_option(
    "--api-key",
    API_KEY_ENV,
    "Mirakl shop API key",
    asked="when absent (by `update`: when nothing else is given)",
)
API_KEY_STDIN_OPT = stdin_option("--api-key", "the Mirakl API key")
STAGING_KEY_OPT = secret_option(
    "--staging-api-key",
    STAGING_API_KEY_ENV,
    "API key of the staging/test shop",
    asked="when absent and `add` is given --staging-hostname",
)
STAGING_KEY_STDIN_OPT = stdin_option("--staging-api-key", "the staging API key")

add_app = typer.Typer(help="Connect a marketplace account.", no_args_is_help=True)
offers_app = typer.Typer(help="Offers (catalog products as listed on each channel).", no_args_is_help=True)
channel_app.add_typer(add_app, name="add")


@add_app.command("mirakl")
def add_mirakl(
    tenant: str = typer.Option(..., "--tenant", "-t"),
    name: str = typer.Option(..., "--name"),
    hostname: str = typer.Option(
        ..., "--hostname", help="Shop API host, e.g. shop.mirakl.net (or http://127.0.0.1:8765)"
    ),
    shop_id: str | None = typer.Option(None, "--shop-id"),
    api_key: str | None = API_KEY_OPT,
    api_key_stdin: bool = API_KEY_STDIN_OPT,
    options: str = typer.Option("{}", "--options", help="JSON object of further Mirakl settings."),
    staging_hostname: str | None = typer.Option(None, "--staging-hostname"),
    staging_shop_id: str | None = typer.Option(None, "--staging-shop-id"),
    staging_api_key: str | None = STAGING_KEY_OPT,
    staging_api_key_stdin: bool = STAGING_KEY_STDIN_OPT,
) -> None:
    """Add a Mirakl shop as channel NAME (credentials are stored encrypted)."""
    extra = _options(options)
    key = required_secret(api_key, api_key_stdin, flag="--api-key", what="Mirakl API key")
    staging_api_key = resolve_secret(
        staging_api_key,
        staging_api_key_stdin,
        flag="--staging-api-key",
        what="Mirakl staging API key",
        required=bool(staging_hostname),
    )
    if staging_hostname:
        extra["staging_hostname"] = staging_hostname
        extra["staging_shop_id"] = staging_shop_id
    with container() as app, app.engine.begin() as conn:
        channel = add_channel(
            conn,
            tenant_id=get_tenant(conn, tenant).id,
            name=name,
            hostname=hostname,
            shop_id=shop_id,
            api_key=key,
            keyring=app.keyring,
            now=app.now(),
            options=extra,
            staging_api_key=staging_api_key,
        )
    console.print(
        f"channel [bold]{channel.name}[/] added (mirakl, id {channel.id}); "
        f"run `tradelane channel check {name}`"
    )


def _options(text: str) -> dict[str, Any]:
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--options is not JSON: {exc}")
    if not isinstance(extra, dict):
        fail("--options must be a JSON object")
    return extra


@channel_app.command("update")
def channel_update(
    name: str,
    tenant: str | None = TenantOpt,
    api_key: str | None = API_KEY_OPT,
    api_key_stdin: bool = API_KEY_STDIN_OPT,
    hostname: str | None = typer.Option(None, "--hostname", help="New shop API host."),
    shop_id: str | None = typer.Option(None, "--shop-id", help="New shop id ('' for none)."),
    staging_api_key: str | None = STAGING_KEY_OPT,
    staging_api_key_stdin: bool = STAGING_KEY_STDIN_OPT,
    options: str | None = typer.Option(None, "--options", help="JSON object of Mirakl settings to change."),
) -> None:
    """Fix a Mirakl channel's credentials or settings, then check them like `channel check`.

    Only what is given changes; with no option at all the API key is asked for. When the check passes,
    the flows paused because the marketplace rejected the credentials resume, the jobs that died of it
    run again and the channel's credentials alert is resolved (flows an operator paused stay paused).
    When it fails, the change is kept, the problem is printed and the flows stay as they are (exit 2)."""
    nothing_else = hostname is None and shop_id is None and options is None and staging_api_key is None
    api_key = resolve_secret(
        api_key, api_key_stdin, flag="--api-key", what="Mirakl API key", required=nothing_else
    )
    staging_api_key = resolve_secret(
        staging_api_key,
        staging_api_key_stdin,
        flag="--staging-api-key",
        what="Mirakl staging API key",
        required=False,
    )
    extra = _options(options) if options is not None else None
    with container() as app:
        with app.engine.begin() as conn:
            channel = resolve_channel(conn, name, tenant)
            channel = update_channel(
                conn,
                channel,
                keyring=app.keyring,
                api_key=api_key,
                hostname=hostname,
                shop_id=shop_id,
                staging_api_key=staging_api_key,
                options=extra,
            )
        with app.engine.connect() as conn:
            result = check_in_use(conn, channel, app.keyring)
        if not result.ok:
            problem = result.problem.value if result.problem else "error"
            fail(f"{channel.name}: saved, but the check fails — {problem}: {result.message}", code=2)
        with app.engine.begin() as conn:
            fixed = credentials_accepted(conn, channel, now=app.now())
    console.print(f"[green]OK[/] {channel.name}: saved and checked — {result.message}")
    if fixed.resumed:
        console.print(f"resumed {', '.join(f.value for f in fixed.resumed)} (paused: credentials rejected)")
    if fixed.replayed_jobs:
        console.print(f"re-queued {len(fixed.replayed_jobs)} job(s) that died of the rejected credentials")
    if fixed.alert_resolved:
        console.print("credentials alert resolved")


@channel_app.command("check")
def channel_check(
    name: str,
    tenant: str | None = TenantOpt,
    staging: bool = typer.Option(False, "--staging", help="Check the staging/test account."),
) -> None:
    """Call the marketplace with the channel's credentials and say precisely what is wrong, if anything."""
    with container() as app, app.engine.connect() as conn:
        channel = resolve_channel(conn, name, tenant)
        if channel.connector != "mirakl":
            fail(f"channel {name} uses connector {channel.connector!r}, which has no check")
        result = check_channel(conn, channel, app.keyring, staging=staging)
    if result.ok:
        console.print(f"[green]OK[/] {result.message}")
        return
    problem = result.problem.value if result.problem else "error"
    fail(f"{problem}: {result.message}", code=2)


@offers_app.command("list")
def offers_list(
    tenant: str = typer.Option(..., "--tenant", "-t"),
    channel: str | None = typer.Option(None, "--channel"),
    status: str | None = typer.Option(None, "--status", help="pending|submitted|published|error|blocked"),
    sku: str | None = typer.Option(None, "--sku"),
    limit: int = typer.Option(100, "--limit"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    with container() as app, app.engine.connect() as conn:
        rows = list_offers(
            conn, get_tenant(conn, tenant).id, channel=channel, status=status, sku=sku, limit=limit
        )
    if as_json:
        print_json(rows)
        return
    table = Table("channel", "sku", "price", "qty", "status", "error")
    for r in rows:
        price = f"{r['price']} {r['currency']}" if r["price"] is not None else ""
        table.add_row(
            r["channel"], r["sku"], price, str(r["quantity"]), r["status"], (r["last_error"] or "")[:80]
        )
    console.print(table)


@offers_app.command("republish")
def offers_republish(
    channel: str,
    tenant: str = typer.Option(..., "--tenant", "-t"),
    sku: list[str] = typer.Option(None, "--sku", help="Offer to send again (repeatable)."),
    failed: bool = typer.Option(False, "--failed", help="Every offer in error or blocked."),
) -> None:
    """Send one offer, several, or every failed one again (after fixing the cause)."""
    if not sku and not failed:
        fail("give --sku SKU (repeatable) or --failed")
    with container() as app, app.engine.begin() as conn:
        ch = resolve_channel(conn, channel, tenant)
        count = republish(conn, ch.tenant_id, ch.id, skus=sku or None, failed_only=True, now=app.now())
    console.print(f"{count} offer(s) queued for republishing on {channel}")
