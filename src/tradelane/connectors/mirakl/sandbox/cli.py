"""``mirakl`` command of the sandbox Typer app (mounted by the main CLI as ``tradelane sandbox``)."""

from __future__ import annotations

import typer

from tradelane.connectors.mirakl.sandbox.server import serve
from tradelane.connectors.mirakl.sandbox.state import SandboxState

sandbox_app = typer.Typer(help="Local marketplace sandboxes for development and demos.", no_args_is_help=True)


@sandbox_app.callback()
def sandbox() -> None:
    """Local marketplace sandboxes for development and demos."""


@sandbox_app.command("mirakl")
def mirakl(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8765, help="TCP port."),
    seed: int = typer.Option(0, help="Seed of generated ids, keys and catalog (same seed, same world)."),
    products: int = typer.Option(20, help="Number of generated catalog products."),
    rate_limits: bool = typer.Option(
        True, "--rate-limits/--no-rate-limits", help="Apply Mirakl's published per-operation budgets."
    ),
    frozen_clock: bool = typer.Option(
        False, "--frozen-clock", help="Freeze the clock (move it with /_sandbox/clock) instead of wall time."
    ),
) -> None:
    """Serve a Mirakl seller-API sandbox; prints each shop's id and (sandbox-only) API key."""
    state = SandboxState(
        seed,
        products=products,
        rate_limits=None if rate_limits else {},
        follow_wall_time=not frozen_clock,
    )
    for shop in state.shops.values():
        typer.echo(f"shop {shop.shop_id} ({shop.name}, {shop.currency}): Authorization: {shop.api_key}")
    typer.echo(f"seller API at http://{host}:{port}/api, controls at http://{host}:{port}/_sandbox")
    serve(host, port, seed, state=state)
