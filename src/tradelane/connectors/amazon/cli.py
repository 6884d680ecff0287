"""Amazon's commands: `tradelane channel add amazon` (connect an Amazon SP-API seller account,
merchant-fulfilled) and `tradelane sandbox amazon`. Attached to the CLI's groups when imported (named by
the connector's ``SPEC.cli``)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import typer

from tradelane.cli.channels import add_app
from tradelane.cli.common import console, container, fail
from tradelane.cli.sandbox import sandbox_app
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


@sandbox_app.command("amazon")
def sandbox_amazon(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8766, help="TCP port."),
    seed: int = typer.Option(0, help="Seed of credentials, ids and catalog (same seed, same world)."),
    products: int = typer.Option(20, help="Number of ASINs in the sandbox catalog."),
    offers: int = typer.Option(5, help="Demo offers listed up front for the EU seller (0: none)."),
    region: str = typer.Option("eu", help="SP-API region this server plays: na, eu or fe."),
    rate_limits: str = typer.Option("published", help="published (Amazon's usage plans) or generous."),
    feed_seconds: float = typer.Option(5.0, help="Seconds a feed takes from IN_QUEUE to DONE."),
    token_ttl: float = typer.Option(3600.0, help="Lifetime of LWA access tokens, in seconds."),
) -> None:
    """Serve an Amazon SP-API sandbox (LWA, Orders, Listings Items, Feeds) and print how to use it."""
    from tradelane.connectors.amazon.sandbox.server import serve
    from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState, SandboxSettings

    settings = SandboxSettings(
        token_ttl=token_ttl, feed_queue_seconds=feed_seconds / 2, feed_processing_seconds=feed_seconds / 2
    )
    try:
        state = AmazonSandboxState(
            seed,
            rate_limits=rate_limits,
            region=region,
            products=products,
            settings=settings,
            follow_wall_time=True,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    seller = (
        next(a for a in state.accounts.values() if a.region == region)
        if any(a.region == region for a in state.accounts.values())
        else None
    )
    if seller is not None:
        for i, asin in enumerate(list(state.catalog)[: max(0, offers)], start=1):
            state.add_offer(seller.seller_id, f"DEMO-{i:03d}", asin, Decimal("9.99") + i, 25)
    base = f"http://{host}:{port}"
    app = state.application
    typer.echo(f"SP-API endpoint  {base}   (region {region}; controls at {base}/_sandbox)")
    typer.echo(f"LWA endpoint     {base}/auth/o2/token")
    typer.echo(f"client id        {app.client_id}")
    typer.echo(f"client secret    {app.client_secret}")
    for account in state.accounts.values():
        typer.echo(
            f"seller {account.seller_id} ({account.name}, region {account.region}, marketplaces "
            f"{','.join(account.marketplace_ids)}): refresh token {account.refresh_token}"
        )
    if seller is not None:
        typer.echo(
            "example: tradelane channel add amazon --tenant T --name amazon-sandbox "
            f"--seller-id {seller.seller_id} --marketplace-id {seller.marketplace_ids[0]} "
            f"--client-id {app.client_id} --client-secret {app.client_secret} "
            f"--refresh-token '{seller.refresh_token}' --region {region} --endpoint {base} "
            f"--token-endpoint {base}/auth/o2/token"
        )
    serve(state, host, port)
