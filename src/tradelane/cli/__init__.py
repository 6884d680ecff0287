"""The ``tradelane`` command line (Typer + Rich)."""

from __future__ import annotations

import typer


def build_app() -> typer.Typer:
    import tradelane.cli.amazon  # (attaches `channel add amazon`)
    import tradelane.cli.files  # (attaches `merchant add files`, `merchant files scan`)
    import tradelane.cli.mirakl  # (attaches `channel add mirakl`, `channel update`)
    import tradelane.cli.shopify  # noqa: F401  (attaches `merchant add shopify`)
    from tradelane.cli import admin, catalog, channels, jobs, merchant, offers, orders, rules, runtime
    from tradelane.connectors.amazon.sandbox import cli as _amazon  # noqa: F401  (attaches `sandbox amazon`)
    from tradelane.connectors.mirakl.sandbox.cli import sandbox_app

    app = typer.Typer(
        name="tradelane",
        help="Self-hosted marketplace integration hub.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
    )
    app.add_typer(admin.db_app, name="db")
    app.add_typer(admin.tenant_app, name="tenant")
    app.add_typer(admin.keys_app, name="keys")
    app.add_typer(catalog.catalog_app, name="catalog")
    app.add_typer(channels.channel_app, name="channel")
    app.add_typer(offers.offers_app, name="offers")
    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(jobs.jobs_app, name="jobs")
    app.add_typer(rules.rules_app, name="rules")
    app.add_typer(orders.orders_app, name="orders")
    merchant.register(app)
    runtime.register(app)
    return app


def main() -> None:
    build_app()()
