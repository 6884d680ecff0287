"""Merchant side on the command line.

* ``tradelane merchant add http --tenant T --name NAME --url URL --secret SECRET`` / ``merchant list``;
* ``tradelane sku-map add --tenant T [--channel NAME] [--merchant-only [--yes]] MARKETPLACE_SKU
  MERCHANT_SKU`` / ``sku-map list``: MERCHANT_SKU must be a catalog SKU of the tenant, unless
  ``--merchant-only`` (confirmed at a prompt, or with ``--yes``) marks it as known only to the merchant
  system;
* Order Health commands for the shared ``orders`` group, attached by :func:`register_orders_commands`:
  ``orders health [--json]``, ``orders retry REF... | --reason CODE | --all``, ``orders release REF``.

Edit-and-retry: fix the cause (``sku-map add`` for an unknown SKU — it re-tries the orders it unblocks
by itself — or the catalog), then ``orders retry REF``.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from tradelane.cli import orders as orders_cli
from tradelane.cli.common import console, container, fail, print_json
from tradelane.cli.secrets import required_secret, secret_option, stdin_option
from tradelane.merchant.capabilities import capabilities_of, describe_capabilities
from tradelane.persistence.merchant_systems import describe, list_merchant_systems
from tradelane.persistence.sku_mappings import list_sku_mappings, put_sku_mapping
from tradelane.services import order_health as health
from tradelane.services.channels import get_channel
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.tenants import get_tenant

merchant_app = typer.Typer(help="Merchant systems (OMS, commerce platforms).", no_args_is_help=True)
#: ``merchant add <kind>``: other adapters (e.g. Shopify) attach their own ``add`` command here.
merchant_add_app = typer.Typer(help="Add a merchant system.", no_args_is_help=True)
merchant_app.add_typer(merchant_add_app, name="add")
sku_map_app = typer.Typer(help="SKU mappings: marketplace SKU -> merchant SKU.", no_args_is_help=True)

TenantOpt = typer.Option(..., "--tenant", "-t", help="Tenant name.")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")


def register(app: typer.Typer) -> None:
    """Attach ``merchant`` and ``sku-map`` to the root app."""
    app.add_typer(merchant_app, name="merchant")
    app.add_typer(sku_map_app, name="sku-map")


def register_orders_commands(orders_app: typer.Typer) -> None:
    """Attach ``health``, ``retry`` and ``release`` to the shared ``orders`` group."""
    orders_app.command("health")(orders_health)
    orders_app.command("retry")(orders_retry)
    orders_app.command("release")(orders_release)


# --- merchant systems ---------------------------------------------------------------------------


@merchant_add_app.command("http")
def add_http(
    tenant: str = TenantOpt,
    name: str = typer.Option(..., "--name", help="Unique per tenant; used in the webhook URL."),
    url: str = typer.Option(..., "--url", help="Where orders are POSTed."),
    secret: str | None = secret_option(
        "--secret", "TRADELANE_MERCHANT_SECRET", "HMAC signing secret shared with the OMS"
    ),
    secret_stdin: bool = stdin_option("--secret", "the signing secret"),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds per request (default 10)."),
    no_cancellations: bool = typer.Option(
        False, "--no-cancellations", help="The OMS has no cancellations module: send it no notices."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """A generic HTTP/webhook OMS: orders are POSTed to it as signed JSON
    (the document: GET /api/v1/orders/{ref}/oms-document)."""
    secret = required_secret(secret, secret_stdin, flag="--secret", what="signing secret")
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        system = add_http_system(
            conn,
            tenant_id=tenant_id,
            name=name,
            url=url,
            secret=secret,
            keyring=app.keyring,
            now=app.now(),
            timeout_seconds=timeout,
            cancellations=not no_cancellations,
        )
    if as_json:
        print_json(describe(system))
    else:
        console.print(f"merchant system {system.name!r} (http) added: orders go to {system.settings['url']}")
        console.print(f"its signed webhook: POST /api/v1/merchant/{system.name}/webhook")


@merchant_app.command("list")
def merchant_list(tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Merchant systems of the tenant and what each does (credentials are never shown)."""
    with container() as app, app.engine.connect() as conn:
        found = list_merchant_systems(conn, get_tenant(conn, tenant).id)
    systems = [{**describe(s), "capabilities": capabilities_of(s).names()} for s in found]
    if as_json:
        print_json(systems)
        return
    table = Table("id", "name", "kind", "enabled", "does", "url")
    for system, s in zip(found, systems, strict=True):
        does = describe_capabilities(capabilities_of(system))
        url = str(s["settings"].get("url", ""))
        table.add_row(str(s["id"]), s["name"], s["kind"], str(s["enabled"]), does, url)
    console.print(table)


# --- SKU mappings -------------------------------------------------------------------------------


@sku_map_app.command("add")
def sku_map_add(
    marketplace_sku: str = typer.Argument(..., help="The SKU marketplace orders carry."),
    merchant_sku: str = typer.Argument(..., help="The merchant system's SKU."),
    tenant: str = TenantOpt,
    channel: str | None = typer.Option(None, "--channel", "-c", help="Only for this channel (default: all)."),
    merchant_only: bool = typer.Option(
        False,
        "--merchant-only",
        help="MERCHANT_SKU is not in the catalog: it exists only in the merchant system (asks to confirm).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm --merchant-only without asking."),
    as_json: bool = JsonOpt,
) -> None:
    """Map a marketplace SKU (replacing an existing mapping); orders quarantined for it retry.

    MERCHANT_SKU must be a catalog SKU of the tenant, unless --merchant-only is given and confirmed."""
    if merchant_only and not yes:
        confirmed = typer.confirm(
            f"Map {marketplace_sku.strip()} to {merchant_sku.strip()!r}, a SKU that is not in the catalog "
            "and exists only in the merchant system? Orders will be sent with it as it is",
            default=False,
            err=True,
        )
        if not confirmed:
            fail("not confirmed: nothing changed")
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        channel_id = get_channel(conn, tenant_id, channel).id if channel else None
        now = app.now()
        mapping = put_sku_mapping(
            conn,
            tenant_id=tenant_id,
            channel_id=channel_id,
            marketplace_sku=marketplace_sku,
            merchant_sku=merchant_sku,
            merchant_only=merchant_only,
            now=now,
        )
        retried = health.retry_quarantined_for_skus(
            conn, tenant_id=tenant_id, skus=[mapping.marketplace_sku], now=now
        )
    result = {
        "marketplace_sku": mapping.marketplace_sku,
        "merchant_sku": mapping.merchant_sku,
        "channel": channel,
        "merchant_only": mapping.merchant_only,
        "orders_retried": retried,
    }
    if as_json:
        print_json(result)
    else:
        scope = f"channel {channel}" if channel else "every channel"
        only = ", merchant-only" if mapping.merchant_only else ""
        console.print(
            f"{mapping.marketplace_sku} -> {mapping.merchant_sku} ({scope}{only}); {retried} order(s) retried"
        )


@sku_map_app.command("list")
def sku_map_list(tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    with container() as app, app.engine.connect() as conn:
        rows = list_sku_mappings(conn, get_tenant(conn, tenant).id)
    if as_json:
        print_json(rows)
        return
    table = Table("marketplace sku", "merchant sku", "channel", "merchant sku is")
    for r in rows:
        if r["merchant_only"]:
            status = "merchant-only"
        elif r["in_catalog"]:
            status = "in the catalog"
        else:
            status = "not in the catalog: ignored (map it again, or --merchant-only)"
        table.add_row(r["marketplace_sku"], r["merchant_sku"], r["channel"] or "(all)", status)
    console.print(table)


# --- Order Health -------------------------------------------------------------------------------


def _age(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600:02d}h"


def orders_health(tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Quarantined orders grouped by reason, with counts and ages."""
    with container() as app, app.engine.connect() as conn:
        groups = health.health_report(conn, get_tenant(conn, tenant).id, now=app.now())
    if as_json:
        payload: dict[str, Any] = {
            "total": sum(g.count for g in groups),
            "groups": [
                {
                    "reason_code": g.reason_code,
                    "count": g.count,
                    "oldest_since": g.oldest_since,
                    "oldest_age_seconds": g.oldest_age_seconds,
                    "orders": [{n: getattr(o, n) for n in o.__slots__} for o in g.orders],
                }
                for g in groups
            ],
        }
        print_json(payload)
        return
    if not groups:
        console.print("no quarantined orders")
        return
    for g in groups:
        console.print(f"[bold]{g.reason_code}[/]: {g.count} order(s), oldest {_age(g.oldest_age_seconds)}")
        table = Table("ref", "since", "age", "attempts", "reason")
        for o in g.orders:
            table.add_row(o.ref, o.since.isoformat(), _age(o.age_seconds), str(o.attempts), o.reason)
        console.print(table)


def orders_retry(
    refs: list[str] = typer.Argument(None, help="Order REFs (id or CHANNEL:MARKETPLACE_ORDER_ID)."),
    tenant: str = TenantOpt,
    reason: str | None = typer.Option(
        None, "--reason", help="Retry every order quarantined for this reason."
    ),
    all_: bool = typer.Option(False, "--all", help="Retry every quarantined order."),
    as_json: bool = JsonOpt,
) -> None:
    """Retry delivery to the merchant system: given orders, one reason, or all quarantined."""
    if sum([bool(refs), reason is not None, all_]) != 1:
        fail("give REF..., --reason CODE or --all (exactly one)")
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        if refs:
            queued = health.retry_orders(conn, tenant_id=tenant_id, refs=refs, now=app.now())
        else:
            queued = health.retry_quarantined(conn, tenant_id=tenant_id, reason_code=reason, now=app.now())
    if as_json:
        print_json({"queued": queued, "count": len(queued)})
    else:
        console.print(f"{len(queued)} order(s) queued for delivery")


def orders_release(
    ref: str = typer.Argument(..., help="Order REF."), tenant: str = TenantOpt, as_json: bool = JsonOpt
) -> None:
    """Release a quarantined order: you handle it outside tradelane (its history is kept)."""
    with container() as app, app.engine.begin() as conn:
        order_id = health.release_order(conn, tenant_id=get_tenant(conn, tenant).id, ref=ref, now=app.now())
    if as_json:
        print_json({"order_id": order_id, "merchant_status": "released"})
    else:
        console.print(f"order {ref} released")


# `orders health|retry|release` live in the shared `orders` group (registered once, on import).
register_orders_commands(orders_cli.orders_app)
