"""Order Health: quarantined orders grouped by reason with counts and ages; retry one, retry the
selected / a whole reason / all, release one (``services.order_health``, as ``/api/v1/order-health``
and ``tradelane orders health|retry|release``); fix an unknown SKU by mapping it or adding it to the
catalog (``services.sku_fixes``), which re-tries the orders it unblocks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import order_health as health
from tradelane.services.channels import get_channel, list_channels
from tradelane.services.sku_fixes import add_catalog_product, map_sku
from tradelane.web.dashboard.rendering import PREFIX, redirect, render
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/order-health", include_in_schema=False)
PAGE = f"{PREFIX}/order-health"
_FAILURES = (NotFoundError, ConflictError, ValidationError)


@router.get("")
def health_page(request: Request, session: SessionDep) -> Response:
    container = container_of(request)
    with read_only(container.engine) as conn:
        groups = health.health_report(conn, session.tenant.id, now=container.now())
        channel_names = [c.name for c in list_channels(conn, session.tenant.id)]
    return render(
        request,
        "dashboard/health.html",
        {
            "page": "health",
            "groups": groups,
            "total": sum(g.count for g in groups),
            "channels": channel_names,
            "reasons": [r.value for r in health.QuarantineReason],
        },
        session=session,
    )


def _queued_message(queued: list[int]) -> str:
    return f"Delivery queued for {len(queued)} order(s)." if queued else "No order to retry."


@router.post("/retry")
def retry_many(
    request: Request,
    session: ActionDep,
    mode: Annotated[str, Form()] = "selected",
    order: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
) -> Response:
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            now = container.now()
            if mode == "selected":
                refs = [r for r in (order or []) if r.isdigit()]
                if not refs:
                    return redirect(request, PAGE, "Select at least one order.", level="error")
                queued = health.retry_orders(conn, tenant_id=session.tenant.id, refs=refs, now=now)
            elif mode == "reason":
                queued = health.retry_quarantined(
                    conn, tenant_id=session.tenant.id, reason_code=reason, now=now
                )
            elif mode == "all":
                queued = health.retry_quarantined(
                    conn, tenant_id=session.tenant.id, reason_code=None, now=now
                )
            else:
                return redirect(request, PAGE, "Unknown retry mode.", level="error")
    except _FAILURES as exc:
        return redirect(request, PAGE, str(exc), level="error")
    return redirect(request, PAGE, _queued_message(queued))


@router.post("/{order_id:int}/retry")
def retry_one(request: Request, session: ActionDep, order_id: int) -> Response:
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            queued = health.retry_orders(
                conn, tenant_id=session.tenant.id, refs=[str(order_id)], now=container.now()
            )
    except _FAILURES as exc:
        return redirect(request, PAGE, str(exc), level="error")
    return redirect(request, PAGE, _queued_message(queued))


@router.post("/{order_id:int}/release")
def release_one(request: Request, session: ActionDep, order_id: int) -> Response:
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            health.release_order(conn, tenant_id=session.tenant.id, ref=str(order_id), now=container.now())
    except _FAILURES as exc:
        return redirect(request, PAGE, str(exc), level="error")
    return redirect(request, PAGE, f"Order {order_id} released: handle it outside tradelane.")


@router.post("/sku-mapping")
def add_mapping(
    request: Request,
    session: ActionDep,
    marketplace_sku: Annotated[str, Form()] = "",
    merchant_sku: Annotated[str, Form()] = "",
    channel: Annotated[str, Form()] = "",
) -> Response:
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            channel_id = get_channel(conn, session.tenant.id, channel).id if channel else None
            fix = map_sku(
                conn,
                tenant_id=session.tenant.id,
                channel_id=channel_id,
                marketplace_sku=marketplace_sku,
                merchant_sku=merchant_sku,
                now=container.now(),
            )
    except _FAILURES as exc:
        return redirect(request, PAGE, str(exc), level="error")
    scope = channel or "every channel"
    return redirect(
        request,
        PAGE,
        f"{fix.sku} now maps to {merchant_sku.strip()} on {scope}; {fix.orders_retried} order(s) retried.",
    )


@router.post("/product")
def add_product(
    request: Request,
    session: ActionDep,
    sku: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    price: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = "",
    quantity: Annotated[str, Form()] = "",
    gtin: Annotated[str, Form()] = "",
) -> Response:
    container = container_of(request)
    row = {
        "sku": sku,
        "title": title,
        "price": price,
        "currency": currency,
        "quantity": quantity,
        "gtin": gtin,
    }
    try:
        fix = add_catalog_product(container.engine, tenant_id=session.tenant.id, row=row, now=container.now())
    except _FAILURES as exc:
        return redirect(request, PAGE, str(exc), level="error")
    return redirect(request, PAGE, f"{fix.sku} added to the catalog; {fix.orders_retried} order(s) retried.")
