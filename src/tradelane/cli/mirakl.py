"""`tradelane channel add mirakl`, `tradelane channel check`, `tradelane offers ...`."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from tradelane.cli.channels import TenantOpt, channel_app, resolve_channel
from tradelane.cli.common import console, container, fail, print_json
from tradelane.connectors.mirakl.connector import add_channel, check_channel
from tradelane.services.offers import list_offers, republish
from tradelane.services.tenants import get_tenant

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
    api_key: str = typer.Option(..., "--api-key", envvar="TRADELANE_MIRAKL_API_KEY"),
    options: str = typer.Option("{}", "--options", help="JSON object of further Mirakl settings."),
    staging_hostname: str | None = typer.Option(None, "--staging-hostname"),
    staging_shop_id: str | None = typer.Option(None, "--staging-shop-id"),
    staging_api_key: str | None = typer.Option(None, "--staging-api-key"),
) -> None:
    """Add a Mirakl shop as channel NAME (credentials are stored encrypted)."""
    try:
        extra = json.loads(options)
    except json.JSONDecodeError as exc:
        fail(f"--options is not JSON: {exc}")
    if not isinstance(extra, dict):
        fail("--options must be a JSON object")
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
            api_key=api_key,
            keyring=app.keyring,
            now=app.now(),
            options=extra,
            staging_api_key=staging_api_key,
        )
    console.print(
        f"channel [bold]{channel.name}[/] added (mirakl, id {channel.id}); "
        f"run `tradelane channel check {name}`"
    )


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
