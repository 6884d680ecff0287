"""`tradelane orders create-test|test-report`: test orders (see :mod:`tradelane.services.test_orders`),
and `tradelane sandbox order`: place an order on a running Mirakl or Amazon sandbox (its
``/_sandbox/orders`` control), e.g. for a channel in Testing on the sandbox account.

Attached to the ``orders`` and ``sandbox`` command groups on import (see :func:`tradelane.cli.build_app`).
"""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.console import Console

from tradelane.cli.common import container, fail, print_json
from tradelane.cli.orders import JsonOpt, TenantOpt, orders_app
from tradelane.cli.sandbox import sandbox_app
from tradelane.persistence.db import read_only
from tradelane.services import audit, test_orders
from tradelane.services.channels import get_channel
from tradelane.services.tenants import get_tenant


def _line(spec: str, quantity: int) -> test_orders.LineSpec:
    if not spec.strip():
        fail("--sku must not be empty", code=2)
    return test_orders.LineSpec(spec.strip(), quantity)


@orders_app.command("create-test")
def create_test(
    channel: str = typer.Argument(..., help="The channel the test order is for."),
    tenant: str = TenantOpt,
    sku: list[str] = typer.Option(
        None,
        "--sku",
        help="A catalog SKU offered on the channel (repeatable; default: the first with stock).",
    ),
    quantity: list[int] = typer.Option(
        None, "--quantity", min=1, help="Quantity of the --sku at the same position (default 1)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create a local TEST order on CHANNEL: delivered to the merchant system marked as a test (`"test":
    true`), never sent to the marketplace. Ship or cancel it from the merchant system, then run
    `tradelane orders test-report REF` to see what would have been sent."""
    skus = sku or []
    quantities = quantity or []
    if len(quantities) > len(skus):
        fail("--quantity given without its --sku", code=2)
    lines = [_line(s, quantities[i] if i < len(quantities) else 1) for i, s in enumerate(skus)]
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        target = get_channel(conn, tenant_id, channel)
        order = test_orders.create_test_order(
            conn, target, lines=lines, actor=audit.cli_actor(), now=app.now()
        )
    if as_json:
        print_json(order)
        return
    ref = f"{order['channel']}:{order['marketplace_order_id']}"
    typer.echo(f"TEST order {order['id']} ({ref}) created: never sent to {order['channel']}")
    for line in order["lines"]:
        typer.echo(f"  {line['quantity']} × {line['sku']} at {line['unit_price']} {line['currency']}")
    typer.echo(
        "a worker delivers it to the merchant system (marked test); ship or cancel it there, then run "
        f"`tradelane orders test-report {ref} --tenant {tenant}`"
    )


@orders_app.command("test-report")
def test_report(
    ref: str = typer.Argument(..., help="The test order: id, CHANNEL:TEST-... or TEST-..."),
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The end-to-end check of a test order: delivered to the merchant system (when, its reference),
    updates received, carrier converted from → to, what would have been sent, OK or the precise problems.
    Exit code 1 when it is not OK."""
    with container() as app, read_only(app.engine) as conn:
        report = test_orders.report(conn, get_tenant(conn, tenant).id, ref)
    if as_json:
        print_json(report)
    else:
        _print_report(report)
    if not report["ok"]:
        raise typer.Exit(1)


def _print_report(report: dict[str, Any]) -> None:
    out = Console(highlight=False, markup=False, soft_wrap=True)
    out.print(f"test order {report['id']}  {report['order']}  (TEST: never sent to {report['channel']})")
    if not report["delivered"]:
        out.print("merchant system: not delivered")
    for d in report["delivered"]:
        at = f" at {d['at']:%Y-%m-%d %H:%M:%S}" if d["at"] else ""
        ref = f", its reference {d['reference']}" if d["reference"] else ""
        out.print(f"merchant system {d['merchant_system']}: {d['status']}{at}{ref}")
    for u in report["updates"]:
        out.print(
            f"{u['kind']} {u['external_id']} received {u['received_at']:%Y-%m-%d %H:%M:%S}: {u['status']}"
        )
        if u["carrier"]:
            c = u["carrier"]
            out.print(f"  carrier converted: {c['from']} → {c['to']} (as {c['as']})")
        for request in u["would_send"]:
            out.print(f"  would send {request['operation']} {request['method']} {request['path']}")
            if request["body"] is not None:
                out.print(f"    {request['body']}")
        if u["status"] != "verified (test order, not sent)" and u["detail"]:
            out.print(f"  {u['detail']}")
    if report["ok"]:
        out.print("OK")
    for problem in report["problems"]:
        out.print(f"PROBLEM: {problem}")


@sandbox_app.command("order")
def sandbox_order(
    url: str = typer.Option(..., "--url", help="The running sandbox, e.g. http://127.0.0.1:8765."),
    sku: list[str] = typer.Option(..., "--sku", help="Offer SKU of a line (repeatable)."),
    quantity: list[int] = typer.Option(None, "--quantity", min=1, help="Quantity per --sku (default 1)."),
    kind: str = typer.Option("mirakl", "--kind", help="mirakl or amazon."),
    shop_id: int | None = typer.Option(None, "--shop-id", help="Mirakl: the shop (default: the first)."),
    seller_id: str | None = typer.Option(
        None, "--seller-id", help="Amazon: the seller (default: the first)."
    ),
    paid: bool = typer.Option(True, "--paid/--unpaid", help="Amazon: paid at once (Unshipped) or Pending."),
) -> None:
    """Place an order on a running Mirakl or Amazon sandbox (its /_sandbox/orders control), as a
    customer would: for a channel in Testing on the sandbox's account, the next orders poll imports it."""
    quantities = quantity or []
    lines = [{"quantity": quantities[i] if i < len(quantities) else 1} for i in range(len(sku))]
    if kind == "mirakl":
        body: dict[str, Any] = {"lines": [{"offer_sku": s, **q} for s, q in zip(sku, lines, strict=True)]}
        if shop_id is not None:
            body["shop_id"] = shop_id
    elif kind == "amazon":
        body = {"lines": [{"sku": s, **q} for s, q in zip(sku, lines, strict=True)], "paid": paid}
        if seller_id:
            body["seller_id"] = seller_id
    else:
        fail(f"--kind must be mirakl or amazon, not {kind!r}", code=2)
    try:
        answer = httpx.post(f"{url.rstrip('/')}/_sandbox/orders", json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        fail(f"sandbox at {url} unreachable: {exc}")
    if answer.status_code >= 400:
        fail(f"sandbox refused the order ({answer.status_code}): {answer.text}")
    data = answer.json()
    order_id = data.get("order_id") or data.get("orderId")
    typer.echo(f"order {order_id} placed on the {kind} sandbox")
