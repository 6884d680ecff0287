"""``amazon`` command of the sandbox Typer app (``tradelane sandbox amazon``)."""

from __future__ import annotations

from decimal import Decimal

import typer

from tradelane.connectors.amazon.sandbox.server import serve
from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState, SandboxSettings
from tradelane.connectors.mirakl.sandbox.cli import sandbox_app


@sandbox_app.command("amazon")
def amazon(
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
