"""`tradelane demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from tradelane.cli.common import console, print_json


def demo(
    minutes: float | None = typer.Option(None, "--minutes", help="Stop by itself after N minutes."),
    port: int = typer.Option(8000, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    data_dir: Path = typer.Option(
        Path("var/demo"), "--data-dir", help="Where the demo's SQLite store lives."
    ),
    seed: int = typer.Option(7, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON on stdout."),
) -> None:
    """Run the hub with marketplace and OMS sandboxes, a sample catalog and simulated traffic."""
    from tradelane.demo.runner import Demo, DemoOptions

    summary = Demo(
        DemoOptions(data_dir=data_dir, host=host, port=port, minutes=minutes, seed=seed), console
    ).run()
    if as_json:
        print_json(summary)
