"""`tradelane orders ...`: list and inspect orders; record merchant-side updates (ship, cancel, refund,
return, label) that go back to the marketplace the order came from.

REF is tradelane's order id, ``CHANNEL:MARKETPLACE_ORDER_ID`` or the bare marketplace order id (an id
found on several channels is refused with the ``CHANNEL:ID`` candidates). Lines are ``SKU:QTY`` (refunds
``SKU:QTY[:AMOUNT]``); the last one or two ``:``-separated fields are the numbers, so a SKU may itself
contain ``:``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Connection

from tradelane.cli.common import container, fail, print_json
from tradelane.domain.errors import ValidationError
from tradelane.domain.labels import MAX_PDF_BYTES, LabelFormat
from tradelane.domain.order_updates import ReturnStatus, UpdateLine, UpdateResult
from tradelane.domain.orders import OrderState
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import channels, orders
from tradelane.services import order_updates as updates
from tradelane.services.labels import ChromiumRenderer, prepare_label
from tradelane.services.orders import enum_value, list_alerts, list_orders
from tradelane.services.rules import merchant_system_id_by_name
from tradelane.services.tenants import get_tenant

orders_app = typer.Typer(help="Orders and merchant-side updates.", no_args_is_help=True)

TenantOpt = typer.Option(..., "--tenant", "-t", help="Tenant name.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout.")
MerchantOpt = typer.Option(None, "--merchant", help="Merchant system the update comes from (for rules).")
IdOpt = typer.Option(None, "--id", help="External id of the update (retries with the same id are no-ops).")


# --- parsing -------------------------------------------------------------------------------------


def _quantity(text: str, spec: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        fail(f"--line {spec!r}: the quantity must be a positive integer")
    return int(text)


def parse_line(spec: str) -> UpdateLine:
    """``SKU:QTY`` → an :class:`UpdateLine`."""
    sku, sep, qty = spec.rpartition(":")
    if not sep or not sku:
        fail(f"--line {spec!r}: expected SKU:QTY")
    return UpdateLine(quantity=_quantity(qty, spec), sku=sku)


def parse_refund_line(spec: str) -> UpdateLine:
    """``SKU:QTY`` or ``SKU:QTY:AMOUNT`` (an amount has a decimal point or follows an integer QTY)."""
    parts = spec.rsplit(":", 2)
    if len(parts) == 3 and parts[0] and parts[1].isascii() and parts[1].isdigit():
        try:
            amount = Decimal(parts[2])
        except InvalidOperation:
            amount = None
        if amount is not None:
            return UpdateLine(quantity=_quantity(parts[1], spec), sku=parts[0], amount=amount)
    return parse_line(spec)


def _merchant(conn: Connection, tenant_id: int, name: str | None) -> int | None:
    return merchant_system_id_by_name(conn, tenant_id, name) if name else None


def _tenant_of(conn: Connection, ref: str, tenant: str | None) -> int:
    """The tenant owning REF: ``--tenant`` when given, else the only tenant with such an order (REF as
    tradelane's id, ``CHANNEL:ID`` or a bare marketplace order id)."""
    if tenant is not None:
        return get_tenant(conn, tenant).id
    ref = ref.strip()
    matches = [orders.c.marketplace_order_id == ref]
    if ":" in ref:
        name, _, marketplace_id = ref.partition(":")
        matches.append(sa.and_(channels.c.name == name, orders.c.marketplace_order_id == marketplace_id))
    if ref.isascii() and ref.isdigit() and int(ref) < 2**63:
        matches.append(orders.c.id == int(ref))
    stmt = (
        sa.select(orders.c.tenant_id)
        .join(channels, channels.c.id == orders.c.channel_id)
        .where(sa.or_(*matches))
    )
    found = sorted(set(conn.execute(stmt).scalars()))
    if not found:
        fail(f"no order {ref!a}")
    if len(found) > 1:
        fail(f"several tenants have an order {ref!a}: pass --tenant")
    return int(found[0])


# --- reading -------------------------------------------------------------------------------------


@orders_app.command("list")
def orders_list(
    tenant: str = TenantOpt,
    channel: str | None = typer.Option(None, "--channel", help="Only orders of this channel."),
    state: str | None = typer.Option(
        None,
        "--state",
        help="Only orders in this (marketplace-neutral) state: " + ", ".join(s.value for s in OrderState),
    ),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = JsonOpt,
) -> None:
    """List orders, newest first (--json: one JSON array; money as decimal strings). States are the
    hub's marketplace-neutral ones (the marketplace's own name is ``marketplace_state`` in --json and in
    ``orders show``). An unknown --state is a usage error (exit 2) listing the valid states."""
    try:
        wanted = enum_value(OrderState, state, "order state")
    except ValidationError as exc:
        fail(f"--state: {exc}", code=2)
    with container() as app, read_only(app.engine) as conn:
        tenant_id = get_tenant(conn, tenant).id
        rows = list_orders(conn, tenant_id, channel=channel, state=wanted, limit=limit, offset=offset)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "channel", "marketplace id", "state", "sent to OMS", "lines", "total")
    for order in rows:
        total = sum((ln["unit_price"] * ln["quantity"] for ln in order["lines"]), Decimal(0))
        table.add_row(
            str(order["id"]),
            order["channel"],
            order["marketplace_order_id"] + (" [TEST]" if order.get("is_test") else ""),
            order["state"],
            _handover_text(order["handover"]),
            str(len(order["lines"])),
            f"{total} {order['currency']}",
        )
    out = _stdout()
    out.print(table)
    out.print(f"{len(rows)} order(s)")


@orders_app.command("show")
def orders_show(
    ref: str,
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Tenant (needed when REF is ambiguous)."),
    payloads: bool = typer.Option(False, "--payloads", help="Include every raw marketplace payload."),
    as_json: bool = JsonOpt,
) -> None:
    """One order: lines, state history, updates sent back, documents, returns, cancellations."""
    with container() as app, read_only(app.engine) as conn:
        tenant_id = _tenant_of(conn, ref, tenant)
        order_id = updates.resolve_ref(conn, tenant_id, ref)
        detail = updates.order_detail(conn, tenant_id, order_id, with_payloads=payloads)
    if as_json:
        print_json(detail)
        return
    _print_detail(detail, payloads)


@orders_app.command("alerts")
def orders_alerts(
    tenant: str = TenantOpt,
    include_resolved: bool = typer.Option(False, "--all", help="Resolved alerts too."),
    as_json: bool = JsonOpt,
) -> None:
    """Alerts, newest first: missed acceptance deadlines, secondary feeds (messages, returns) that fail
    or that the marketplace does not offer — each message names where its raw exchange is kept."""
    with container() as app, read_only(app.engine) as conn:
        tenant_id = get_tenant(conn, tenant).id
        rows = list_alerts(conn, tenant_id, open_only=not include_resolved)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "created", "kind", "severity", "resolved", "message")
    for alert in rows:
        resolved = alert["resolved_at"]
        table.add_row(
            str(alert["id"]),
            f"{alert['created_at']:%Y-%m-%d %H:%M}",
            alert["kind"],
            alert["severity"],
            f"{resolved:%Y-%m-%d %H:%M}" if resolved is not None else "",
            alert["message"],
        )
    out = _stdout()
    out.print(table)
    out.print(f"{len(rows)} alert(s)")


def _handover_text(handover: dict[str, Any]) -> str:
    """The hand-over to the merchant system as people read it: ``sent to OMS oms (2026-11-25 12:00)``."""
    at = handover["sent_at"]
    return handover["label"] + (f" ({at:%Y-%m-%d %H:%M})" if at is not None else "")


def _stdout() -> Console:
    """Human-readable results go to stdout (diagnostics to stderr), without Rich markup in the data."""
    return Console(highlight=False, markup=False, soft_wrap=True)


def _print_detail(order: dict[str, Any], payloads: bool) -> None:
    out = _stdout()
    echo = out.print
    echo(f"order {order['id']}  {order['channel']}:{order['marketplace_order_id']}")
    echo(
        f"state {order['state']} (on the marketplace: {order['marketplace_state']})"
        f"  currency {order['currency']}"
    )
    echo(f"hand-over to the merchant system: {_handover_text(order['handover'])}")
    if order.get("is_test"):
        echo(
            "TEST order: never sent to the marketplace "
            f"(`tradelane orders test-report {order['channel']}:{order['marketplace_order_id']}`)"
        )
    if order["third_party_managed"]:
        echo("third party managed: no update is ever sent to the marketplace")
    cancellation = order["cancellation"]
    if cancellation:
        what = (
            "the whole order" if cancellation["whole_order"] else f"lines {', '.join(cancellation['lines'])}"
        )
        echo(
            f"cancelled on the marketplace: {what}"
            + (f" (seen {cancellation['at']})" if cancellation["at"] else "")
        )
    if order["customer_message"]:
        echo(f"customer message: {order['customer_message']}")
    lines = Table("line", "sku", "offer sku", "qty", "unit price", "state")
    for ln in order["lines"]:
        lines.add_row(
            ln["line_id"],
            ln["sku"],
            ln["offer_sku"],
            str(ln["quantity"]),
            f"{ln['unit_price']} {ln['currency']}",
            ln["state"],
        )
    out.print(lines)
    history = Table("at", "state", "note")
    for h in order["history"]:
        history.add_row(str(h["at"]), h["state"], h["note"] or "")
    out.print(history)
    if order["updates"]:
        table = Table("update", "kind", "external id", "status", "detail")
        for u in order["updates"]:
            table.add_row(str(u["id"]), u["kind"], u["external_id"][:40], u["status"], u["detail"] or "")
        out.print(table)
    for doc in order["documents"]:
        echo(
            f"document {doc['id']}: {doc['filename']} ({doc['size']} bytes, "
            f"from {doc['source_format']}, {doc['status']})"
        )
    for ret in order["returns"]:
        echo(
            f"return {ret['marketplace_return_id']}: {ret['state']}"
            + (f" RMA {ret['rma']}" if ret["rma"] else "")
        )
    if payloads:
        for version in order.get("versions", []):
            echo(f"--- payload {version['marketplace_state']} received {version['received_at']}")
            print_json(version["payload"])


# --- updates -------------------------------------------------------------------------------------


def _report(result: UpdateResult, as_json: bool) -> None:
    if as_json:
        print_json(result.as_dict())
        return
    again = "" if result.created else " (already recorded: nothing new)"
    typer.echo(f"{result.kind.value} {result.id} of order {result.order_id}: {result.status.value}{again}")
    if result.detail:
        typer.echo(result.detail)


@orders_app.command("ship")
def orders_ship(
    ref: str,
    tenant: str = TenantOpt,
    carrier: str | None = typer.Option(None, "--carrier", help="Carrier code or name."),
    tracking: str | None = typer.Option(None, "--tracking", help="Tracking number."),
    tracking_url: str | None = typer.Option(None, "--tracking-url"),
    line: list[str] = typer.Option(None, "--line", help="SKU:QTY for a partial shipment (repeatable)."),
    external_id: str | None = IdOpt,
    merchant: str | None = MerchantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record a shipment (whole order, or the given lines) and send it to the order's marketplace."""
    lines = [parse_line(spec) for spec in line or []]
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        result = updates.record_shipment(
            conn,
            tenant_id=tenant_id,
            order_ref=ref,
            carrier=carrier,
            tracking_number=tracking,
            tracking_url=tracking_url,
            lines=lines or None,
            external_id=external_id,
            merchant_system_id=_merchant(conn, tenant_id, merchant),
            now=app.now(),
        )
    _report(result, as_json)


@orders_app.command("cancel")
def orders_cancel(
    ref: str,
    tenant: str = TenantOpt,
    line: list[str] = typer.Option(None, "--line", help="SKU:QTY to cancel only some lines (repeatable)."),
    reason: str | None = typer.Option(None, "--reason"),
    external_id: str | None = IdOpt,
    merchant: str | None = MerchantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record a merchant-driven cancellation (whole order, or lines where the marketplace allows it)."""
    lines = [parse_line(spec) for spec in line or []]
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        result = updates.record_cancellation(
            conn,
            tenant_id=tenant_id,
            order_ref=ref,
            lines=lines or None,
            reason=reason,
            external_id=external_id,
            merchant_system_id=_merchant(conn, tenant_id, merchant),
            now=app.now(),
        )
    _report(result, as_json)


@orders_app.command("refund")
def orders_refund(
    ref: str,
    tenant: str = TenantOpt,
    reason_code: str = typer.Option(..., "--reason-code", help="The marketplace's refund reason code."),
    line: list[str] = typer.Option(..., "--line", help="SKU:QTY[:AMOUNT] (repeatable)."),
    external_id: str | None = IdOpt,
    merchant: str | None = MerchantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record a refund of lines (amount defaults to unit price × quantity)."""
    lines = [parse_refund_line(spec) for spec in line]
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        result = updates.record_refund(
            conn,
            tenant_id=tenant_id,
            order_ref=ref,
            reason_code=reason_code,
            lines=lines,
            external_id=external_id,
            merchant_system_id=_merchant(conn, tenant_id, merchant),
            now=app.now(),
        )
    _report(result, as_json)


@orders_app.command("return")
def orders_return(
    ref: str,
    tenant: str = TenantOpt,
    line: list[str] = typer.Option(..., "--line", help="SKU:QTY (repeatable)."),
    status: ReturnStatus = typer.Option(ReturnStatus.RECEIVED, "--status", case_sensitive=False),
    return_id: str | None = typer.Option(None, "--return-id", help="The marketplace's return id, if known."),
    external_id: str | None = IdOpt,
    merchant: str | None = MerchantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Record that returned lines were received (or refunded); pushed where the marketplace allows."""
    lines = [parse_line(spec) for spec in line]
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        result = updates.record_return(
            conn,
            tenant_id=tenant_id,
            order_ref=ref,
            lines=lines,
            status=status,
            marketplace_return_id=return_id,
            external_id=external_id,
            merchant_system_id=_merchant(conn, tenant_id, merchant),
            now=app.now(),
        )
    _report(result, as_json)


_SUFFIX_FORMATS = {".pdf": LabelFormat.PDF, ".html": LabelFormat.HTML, ".htm": LabelFormat.HTML}


@orders_app.command("label")
def orders_label(
    ref: str,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="PDF or HTML file."),
    tenant: str = TenantOpt,
    fmt: LabelFormat | None = typer.Option(
        None, "--format", case_sensitive=False, help="Default: extension."
    ),
    type_code: str = typer.Option(
        updates.DEFAULT_LABEL_TYPE, "--type-code", help="Marketplace document type."
    ),
    external_id: str | None = IdOpt,
    merchant: str | None = MerchantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Attach a shipping label (HTML is rendered to PDF offline) and send it to the marketplace."""
    chosen = fmt or _SUFFIX_FORMATS.get(file.suffix.lower())
    if chosen is None:
        fail(f"cannot tell the format of {file.name}: pass --format pdf|html")
    if file.stat().st_size > MAX_PDF_BYTES:
        fail(f"{file.name} is larger than {MAX_PDF_BYTES} bytes")
    with container() as app:
        label = prepare_label(file.read_bytes(), chosen, renderer=ChromiumRenderer())
        with app.engine.begin() as conn:
            tenant_id = get_tenant(conn, tenant).id
            result = updates.attach_label(
                conn,
                tenant_id=tenant_id,
                order_ref=ref,
                label=label,
                type_code=type_code,
                external_id=external_id,
                merchant_system_id=_merchant(conn, tenant_id, merchant),
                now=app.now(),
            )
    _report(result, as_json)
