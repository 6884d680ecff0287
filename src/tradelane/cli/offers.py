"""`tradelane offers ...`: the catalog's offers as listed on each channel (any connector)."""

from __future__ import annotations

import typer
from rich.table import Table

from tradelane.cli.channels import resolve_channel
from tradelane.cli.common import console, container, cut_errors_note, error_cell, fail, print_json
from tradelane.domain.errors import ValidationError
from tradelane.services.offers import OfferStatus, list_offers, republish
from tradelane.services.orders import enum_value
from tradelane.services.tenants import get_tenant

offers_app = typer.Typer(help="Offers (catalog products as listed on each channel).", no_args_is_help=True)


#: How offers no longer selected on their channel (services/selection.py) are shown instead of their status.
_SELECTION_STATUS = {
    "left": "not selected — left on the marketplace",
    "delisting": "not selected — delisting",
}


@offers_app.command("list")
def offers_list(
    tenant: str = typer.Option(..., "--tenant", "-t"),
    channel: str | None = typer.Option(None, "--channel"),
    status: str | None = typer.Option(
        None, "--status", help="Only offers in this status: " + ", ".join(s.value for s in OfferStatus)
    ),
    sku: str | None = typer.Option(None, "--sku"),
    limit: int = typer.Option(100, "--limit"),
    full: bool = typer.Option(
        False, "--full", help="Show each marketplace error whole (the table cuts them at 80 characters)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Every field, errors whole."),
) -> None:
    """List offers with their last marketplace error: cut to its first line and 80 characters (marked
    "…", counted under the table) unless --full or --json. An unknown --status is a usage error
    (exit 2) listing the valid ones."""
    try:
        wanted = enum_value(OfferStatus, status, "offer status")
    except ValidationError as exc:
        fail(f"--status: {exc}", code=2)
    with container() as app, app.engine.connect() as conn:
        rows = list_offers(
            conn, get_tenant(conn, tenant).id, channel=channel, status=wanted, sku=sku, limit=limit
        )
    if as_json:
        print_json(rows)
        return
    table = Table("channel", "sku", "price", "qty", "status")
    table.add_column("error", overflow="fold")
    cut = 0
    for r in rows:
        price = f"{r['price']} {r['currency']}" if r["price"] is not None else ""
        status = _SELECTION_STATUS.get(r["selection_state"], r["status"])
        error, was_cut = error_cell(r["last_error"], full=full)
        cut += was_cut
        table.add_row(r["channel"], r["sku"], price, str(r["quantity"]), status, error)
    console.print(table)
    if note := cut_errors_note(cut):
        console.print(note, highlight=False, soft_wrap=True)


@offers_app.command("republish")
def offers_republish(
    channel: str,
    tenant: str = typer.Option(..., "--tenant", "-t"),
    sku: list[str] = typer.Option(None, "--sku", help="Offer to send again (repeatable)."),
    failed: bool = typer.Option(False, "--failed", help="Every offer in error or blocked."),
) -> None:
    """Send one offer, several, or every failed one again (after fixing the cause)."""
    if not sku and not failed:
        fail("give --sku SKU (repeatable) or --failed")
    with container() as app, app.engine.begin() as conn:
        ch = resolve_channel(conn, channel, tenant)
        count = republish(conn, ch.tenant_id, ch.id, skus=sku or None, failed_only=True, now=app.now())
    console.print(f"{count} offer(s) queued for republishing on {channel}")
