"""The ``tradelane sandbox`` command group: local marketplace sandboxes. Each connector that has a
sandbox attaches its own ``sandbox <name>`` command from its ``cli`` module (see
:attr:`~tradelane.connectors.registry.ConnectorSpec.cli`)."""

from __future__ import annotations

import typer

sandbox_app = typer.Typer(help="Local marketplace sandboxes for development and demos.", no_args_is_help=True)


@sandbox_app.callback()
def sandbox() -> None:
    """Local marketplace sandboxes for development and demos."""
