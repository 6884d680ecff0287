"""Test orders in the dashboard: "Create test order" (a form on the orders page) and a test order's
report (``/dashboard/orders/{id}/test-report``), over :mod:`tradelane.services.test_orders` as the
CLI (``orders create-test``, ``orders test-report``) and the API do."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import test_orders
from tradelane.services.channels import get_channel
from tradelane.web.dashboard.rendering import PREFIX, redirect, render
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/orders", include_in_schema=False)
PAGE = f"{PREFIX}/orders"


@router.post("/test")
def create_test_order(
    request: Request,
    session: ActionDep,
    channel: Annotated[str, Form()] = "",
    sku: Annotated[str, Form()] = "",
    quantity: Annotated[str, Form()] = "1",
) -> Response:
    """Create a test order on ``channel`` (``sku`` empty: the first product offered with stock)."""
    if not quantity.isascii() or not quantity.isdigit() or not 1 <= int(quantity) <= 10_000:
        return redirect(request, PAGE, "Quantity must be a whole number from 1 to 10000.", level="error")
    lines = [test_orders.LineSpec(sku.strip()[:200], int(quantity))] if sku.strip() else []
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            found = get_channel(conn, session.tenant.id, channel)
            order = test_orders.create_test_order(
                conn, found, lines=lines, actor=f"dashboard:{session.tenant.name}", now=container.now()
            )
    except (NotFoundError, ValidationError) as exc:
        return redirect(request, PAGE, str(exc), level="error")
    return redirect(
        request,
        f"{PAGE}/{order['id']}",
        f"Test order {order['marketplace_order_id']} created: it goes to the merchant system, never to "
        f"{order['channel']}.",
    )


@router.get("/{order_id:int}/test-report")
def test_report_page(request: Request, session: SessionDep, order_id: int) -> Response:
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            report = test_orders.report(conn, session.tenant.id, str(order_id))
    except (NotFoundError, ConflictError) as exc:
        return render(
            request,
            "dashboard/error.html",
            {"title": "No test report", "message": str(exc)},
            session=session,
            status_code=404,
        )
    return render(
        request, "dashboard/test_report.html", {"page": "orders", "report": report}, session=session
    )
