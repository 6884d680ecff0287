"""The ``tradelane`` command line (Typer + Rich)."""

from __future__ import annotations

import importlib

import typer


def build_app() -> typer.Typer:
    """The whole CLI. Each registered connector's ``cli`` module (see
    :class:`~tradelane.connectors.registry.ConnectorSpec`) is imported here and attaches its commands
    (``channel add <name>``, ``sandbox <name>``...); the CLI itself names no connector."""
    import tradelane.cli.files  # (attaches `merchant add files`, `merchant files scan`)
    import tradelane.cli.lifecycle  # (attaches `channel activate|promote|flow|history|frequency`)
    import tradelane.cli.reconcile  # (attaches `channel reconcile`, `channel id-match`)
    import tradelane.cli.selection  # (attaches `channel select|preview`)
    import tradelane.cli.shopify  # (attaches `merchant add shopify`)
    import tradelane.cli.test_orders  # noqa: F401  (attaches `orders create-test|test-report`, `sandbox order`)
    from tradelane.cli import admin, catalog, channels, jobs, merchant, offers, orders, rules, runtime
    from tradelane.cli.cutover import cutover_app
    from tradelane.cli.notify import notify_app
    from tradelane.cli.sandbox import sandbox_app
    from tradelane.connectors.registry import CONNECTORS

    for spec in CONNECTORS.values():
        if spec.cli is not None:
            importlib.import_module(spec.cli)

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
    app.add_typer(notify_app, name="notify")
    app.add_typer(cutover_app, name="cutover")
    merchant.register(app)
    runtime.register(app)
    return app


def main() -> None:
    build_app()()
