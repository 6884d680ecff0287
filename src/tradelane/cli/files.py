"""``tradelane merchant add files`` and ``tradelane merchant files scan``: a drop-folder merchant system.

Attached to the ``merchant`` group of :mod:`tradelane.cli.merchant` when this module is imported
(``build_app`` imports it). ``merchant files scan`` does not scan in the CLI process: it queues the scan
to run now (coalesced with the pending scheduled one), and the worker (``tradelane worker``, or
``tradelane worker --burst`` once) runs it, so a scan never races the worker's own.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tradelane.cli.common import console, container, fail, print_json
from tradelane.cli.merchant import merchant_add_app, merchant_app
from tradelane.merchant.files.capabilities import FILES_KIND
from tradelane.merchant.files.settings import DEFAULT_EVERY_SECONDS, MIN_EVERY_SECONDS
from tradelane.persistence.merchant_systems import describe, get_merchant_system
from tradelane.services.files_scan import add_files_system, enqueue_scan
from tradelane.services.tenants import get_tenant

files_app = typer.Typer(help="Drop-folder (files) merchant systems.", no_args_is_help=True)
merchant_app.add_typer(files_app, name="files")


@merchant_add_app.command("files")
def add_files(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant name."),
    name: str = typer.Option(..., "--name", help="Unique per tenant."),
    folder: Path = typer.Option(
        ..., "--folder", help="The drop folder (created if missing; gets inbox/, processed/, rejected/)."
    ),
    every: int = typer.Option(
        DEFAULT_EVERY_SECONDS,
        "--every",
        min=MIN_EVERY_SECONDS,
        help=f"Seconds between scans (at least {MIN_EVERY_SECONDS}).",
    ),
    sends: str = typer.Option(
        "catalog,stock", "--sends", help="What the folder sends: catalog, stock, or catalog,stock."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A drop folder for merchants with no API: catalog files and stock files (stock*.csv/.jsonl)
    dropped in its inbox/ are applied by the worker every --every seconds. It never receives orders."""
    with container() as app, app.engine.begin() as conn:
        system = add_files_system(
            conn,
            tenant_id=get_tenant(conn, tenant).id,
            name=name,
            folder=folder,
            every_seconds=every,
            sends=[part for part in sends.split(",") if part.strip()],
            keyring=app.keyring,
            now=app.now(),
        )
    if as_json:
        print_json(describe(system))
        return
    root = system.settings["folder"]
    console.print(f"merchant system {system.name!r} (files) added: drop files in {root}/inbox")
    console.print("write each file under a .tmp name, then rename it (or let it settle 2 seconds)")


@files_app.command("scan")
def scan(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant name."),
    name: str = typer.Option(..., "--name", help="The files merchant system."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Queue a scan of the drop folder now; the worker runs it (tradelane worker --burst runs the
    queue once). Also restarts the schedule of a system whose scans had stopped."""
    with container() as app, app.engine.begin() as conn:
        system = get_merchant_system(conn, get_tenant(conn, tenant).id, name)
        if system.kind != FILES_KIND:
            fail(f"merchant system {name!r} is a {system.kind} system, not a files one")
        if not system.enabled:
            fail(f"merchant system {name!r} is disabled")
        queued = enqueue_scan(conn, system, now=app.now())
    if as_json:
        print_json({"job_id": queued.job_id, "created": queued.created})
    else:
        console.print(f"scan of {name!r} queued (job {queued.job_id}); run the worker to process it")
