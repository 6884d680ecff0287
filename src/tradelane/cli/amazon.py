"""`tradelane channel add amazon`: connect an Amazon SP-API seller account (merchant-fulfilled)."""

from __future__ import annotations

import json
from typing import Any

import typer

from tradelane.cli.channels import add_app
from tradelane.cli.common import console, container, fail
from tradelane.cli.secrets import required_secret, secret_option, stdin_option
from tradelane.connectors.amazon.connector import add_channel
from tradelane.services.tenants import get_tenant

#: Environment variables holding the LWA secrets (named in the options' help).
CLIENT_SECRET_ENV = "TRADELANE_AMAZON_CLIENT_SECRET"
REFRESH_TOKEN_ENV = "TRADELANE_AMAZON_REFRESH_TOKEN"


@add_app.command("amazon")
def add_amazon(
    tenant: str = typer.Option(..., "--tenant", "-t"),
    name: str = typer.Option(..., "--name"),
    seller_id: str = typer.Option(..., "--seller-id", help="Merchant token, e.g. A2ABCDEFGHIJKL"),
    marketplace_id: str = typer.Option(
        ..., "--marketplace-id", help="e.g. ATVPDKIKX0DER (US), A1PA6795UKMFR9 (DE)"
    ),
    client_id: str = typer.Option(..., "--client-id", help="LWA client id of the SP-API app"),
    client_secret: str | None = secret_option("--client-secret", CLIENT_SECRET_ENV, "LWA client secret"),
    client_secret_stdin: bool = stdin_option("--client-secret", "the LWA client secret"),
    refresh_token: str | None = secret_option(
        "--refresh-token", REFRESH_TOKEN_ENV, "LWA refresh token the seller authorised"
    ),
    refresh_token_stdin: bool = stdin_option("--refresh-token", "the LWA refresh token"),
    region: str = typer.Option("na", "--region", help="na | eu | fe (SP-API and LWA endpoints)"),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="SP-API base URL instead of the region's (e.g. http://127.0.0.1:8766)"
    ),
    token_endpoint: str | None = typer.Option(
        None, "--token-endpoint", help="LWA token URL instead of the region's (e.g. the sandbox's)"
    ),
    options: str = typer.Option(
        "{}", "--options", help="JSON object of further settings (product_types, carriers...)."
    ),
) -> None:
    """Add an Amazon seller account as channel NAME (LWA credentials are stored encrypted)."""
    try:
        extra: Any = json.loads(options)
    except json.JSONDecodeError as exc:
        fail(f"--options is not JSON: {exc}")
    if not isinstance(extra, dict):
        fail("--options must be a JSON object")
    secret = required_secret(
        client_secret, client_secret_stdin, flag="--client-secret", what="LWA client secret"
    )
    token = required_secret(
        refresh_token, refresh_token_stdin, flag="--refresh-token", what="LWA refresh token"
    )
    with container() as app, app.engine.begin() as conn:
        channel = add_channel(
            conn,
            tenant_id=get_tenant(conn, tenant).id,
            name=name,
            seller_id=seller_id,
            marketplace_id=marketplace_id,
            client_id=client_id,
            client_secret=secret,
            refresh_token=token,
            keyring=app.keyring,
            now=app.now(),
            region=region,
            endpoint=endpoint,
            token_endpoint=token_endpoint,
            options=extra,
        )
    console.print(
        f"channel [bold]{channel.name}[/] added (amazon, id {channel.id}); "
        f"run `tradelane channel check {name}`"
    )
