"""`tradelane catalog ...`: catalog imports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from tradelane.cli.common import console, container, print_json
from tradelane.persistence.db import read_only
from tradelane.services.catalog_followups import release_resolved_orders
from tradelane.services.catalog_import import (
    CatalogFormat,
    ImportSummary,
    ProgressCallback,
    import_catalog,
)
from tradelane.services.tenants import get_tenant

catalog_app = typer.Typer(help="Catalog (products).", no_args_is_help=True)


_IMPORT_HELP = (
    "Import products from FILE (CSV or JSON Lines): a diff (created / updated / unchanged / rejected), "
    "never a delete.\n\n"
    "Columns (CSV header, or JSON keys): sku (required), parent_sku, title, description, brand, gtin, "
    "price, currency, quantity, labels (a;b;c, or a JSON list) and attr:<name>. Each row fully describes "
    "its product: a missing or empty column stores an empty value.\n\n"
    "Rejected lines are listed with their line number. Exit code 0 whenever the import ran (even with "
    "rejected lines), 1 when the file or the tenant is refused (nothing is changed then)."
)


@catalog_app.command("import", help=_IMPORT_HELP)
def catalog_import(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="CSV or JSON Lines file."
    ),
    tenant: str = typer.Option(..., "--tenant", help="Tenant name."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
    fmt: CatalogFormat | None = typer.Option(
        None, "--format", case_sensitive=False, help="File format (default: from the extension)."
    ),
) -> None:
    """Run :func:`~tradelane.services.catalog_import.import_catalog` for a tenant named on the command line;
    a progress bar on stderr when it is a terminal and ``--json`` is not given."""
    with container() as app:
        with read_only(app.engine) as conn:
            tenant_id = get_tenant(conn, tenant).id
        show_progress = not as_json and console.is_terminal
        with _progress_bar() if show_progress else nullcontext() as progress:
            summary = import_catalog(
                app.engine, tenant_id=tenant_id, path=file, fmt=fmt, now=app.now(), progress=progress
            )
        with app.engine.begin() as conn:  # SKUs that just appeared release the orders waiting for them
            released = release_resolved_orders(conn, tenant_id=tenant_id, now=app.now())
        if released and not as_json:
            console.print(f"{released} quarantined order(s) can now be delivered and were queued again")
    if as_json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary)


@contextmanager
def _progress_bar() -> Iterator[ProgressCallback]:
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("import", total=None, rows=0)

        def update(rows_done: int, bytes_done: int, total_bytes: int) -> None:
            bar.update(task, completed=bytes_done, total=total_bytes, rows=rows_done)

        yield update


def _print_summary(summary: ImportSummary) -> None:
    typer.echo(
        f"created {summary.created}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"rejected {summary.rejected}"
    )
    for error in summary.errors:
        sku = f" (sku {error.sku!r})" if error.sku is not None else ""
        typer.echo(f"line {error.line}{sku}: {error.error}")
    if summary.errors_truncated:
        more = summary.rejected - len(summary.errors)
        typer.echo(f"... and {more} more rejected lines (only the first {len(summary.errors)} are listed)")
