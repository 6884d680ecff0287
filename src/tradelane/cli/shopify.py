"""``tradelane merchant add shopify``: connect a Shopify shop as the tenant's merchant system.

Attached to the ``merchant add`` group of :mod:`tradelane.cli.merchant` when this module is imported
(``build_app`` imports it).
"""

from __future__ import annotations

from urllib.parse import quote

import typer

from tradelane.cli.common import console, container, print_json
from tradelane.cli.merchant import merchant_add_app
from tradelane.cli.secrets import required_secret, secret_option, stdin_option
from tradelane.merchant.shopify.settings import DEFAULT_API_VERSION, InventoryBehaviour
from tradelane.persistence.merchant_systems import describe
from tradelane.services.merchant_systems import add_shopify_system
from tradelane.services.tenants import get_tenant


@merchant_add_app.command("shopify")
def add_shopify(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant name."),
    name: str = typer.Option(..., "--name", help="Unique per tenant; used in the webhook URL."),
    shop_domain: str = typer.Option(
        ..., "--shop-domain", help="The shop's domain, e.g. my-shop.myshopify.com."
    ),
    access_token: str | None = secret_option(
        "--access-token",
        "TRADELANE_SHOPIFY_ACCESS_TOKEN",
        "Admin API access token of the shop's custom app",
    ),
    access_token_stdin: bool = stdin_option("--access-token", "the Admin API access token"),
    webhook_secret: str | None = secret_option(
        "--webhook-secret", "TRADELANE_SHOPIFY_WEBHOOK_SECRET", "The secret Shopify signs webhooks with"
    ),
    webhook_secret_stdin: bool = stdin_option("--webhook-secret", "the webhook secret"),
    api_url: str | None = typer.Option(
        None, "--api-url", help="Admin API base URL (default https://<shop-domain>; e.g. a sandbox)."
    ),
    api_version: str = typer.Option(DEFAULT_API_VERSION, "--api-version", help="REST Admin API version."),
    currency: str | None = typer.Option(
        None, "--currency", help="The shop's currency (ISO 4217), for catalog prices received by webhook."
    ),
    inventory_behaviour: str = typer.Option(
        InventoryBehaviour.DECREMENT_IGNORING_POLICY,
        "--inventory-behaviour",
        help="How created orders claim Shopify stock: " + ", ".join(sorted(InventoryBehaviour.ALL)),
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A Shopify shop: orders are created in it through the Admin API; products, stock, fulfillments
    and cancellations come back through its webhooks."""
    token = required_secret(
        access_token, access_token_stdin, flag="--access-token", what="Admin API access token"
    )
    signing = required_secret(
        webhook_secret, webhook_secret_stdin, flag="--webhook-secret", what="webhook secret"
    )
    with container() as app, app.engine.begin() as conn:
        tenant_row = get_tenant(conn, tenant)
        system = add_shopify_system(
            conn,
            tenant_id=tenant_row.id,
            name=name,
            shop_domain=shop_domain,
            access_token=token,
            webhook_secret=signing,
            keyring=app.keyring,
            now=app.now(),
            api_url=api_url,
            api_version=api_version,
            currency=currency,
            inventory_behaviour=inventory_behaviour,
        )
    webhook_path = f"/api/v1/shopify/{quote(tenant_row.name, safe='')}/{system.name}/webhooks"
    if as_json:
        print_json({**describe(system), "webhook_path": webhook_path})
        return
    console.print(
        f"merchant system {system.name!r} (shopify) added: orders go to {system.settings['shop_domain']}"
    )
    console.print(f"subscribe the shop's webhooks to: POST {webhook_path}")
