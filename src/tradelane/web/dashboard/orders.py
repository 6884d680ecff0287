"""Orders: list with origin channel, marketplace state and hand-over to the merchant system ("sent to
OMS", never shown as a fulfilment state); one order with its state history, raw payload versions,
quarantine, hand-overs to merchant systems, updates pushed back (as confirmed by the marketplace) and
recorded exchanges. The search box takes tradelane's id, ``CHANNEL:ID`` or the bare marketplace id."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tradelane.domain.errors import ConflictError, NotFoundError
from tradelane.domain.handover import HANDOVER_LABELS
from tradelane.domain.orders import MerchantStatus, OrderState
from tradelane.persistence.db import read_only
from tradelane.services.channels import list_channels
from tradelane.services.inspection import order_inspection
from tradelane.services.orders import get_order, list_orders, resolve_order_ref
from tradelane.web.dashboard.rendering import PREFIX, clean_filter, page_url, redirect, render
from tradelane.web.dashboard.session import SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/orders", include_in_schema=False)
PAGE = f"{PREFIX}/orders"
PAGE_SIZE = 50
MAX_FILTER_LENGTH = 300


@router.get("")
def orders_page(
    request: Request,
    session: SessionDep,
    ref: str | None = None,
    state: str | None = None,
    merchant_status: str | None = None,
    channel: str | None = None,
    offset: str | None = None,
) -> Response:
    container = container_of(request)
    wanted = clean_filter(ref, MAX_FILTER_LENGTH)
    if wanted:
        try:
            with read_only(container.engine) as conn:
                order_id = resolve_order_ref(conn, session.tenant.id, wanted)
        except NotFoundError:
            return redirect(request, PAGE, f"No order {wanted!r}.", level="error")
        except ConflictError as exc:  # a bare marketplace id found on several channels
            return redirect(request, PAGE, f"{str(exc)[0].upper()}{str(exc)[1:]}.", level="error")
        return redirect(request, f"{PAGE}/{order_id}")
    filters = {
        "state": state if state in {s.value for s in OrderState} else None,
        "merchant_status": merchant_status if merchant_status in {s.value for s in MerchantStatus} else None,
        "channel": clean_filter(channel, MAX_FILTER_LENGTH),
    }
    start = int(offset) if offset and offset.isdigit() and len(offset) < 10 else 0
    with read_only(container.engine) as conn:
        rows = list_orders(conn, session.tenant.id, limit=PAGE_SIZE + 1, offset=start, **filters)
        channel_names = [c.name for c in list_channels(conn, session.tenant.id)]
    more = len(rows) > PAGE_SIZE
    return render(
        request,
        "dashboard/orders.html",
        {
            "page": "orders",
            "orders": rows[:PAGE_SIZE],
            "filters": filters,
            "states": [s.value for s in OrderState],
            "merchant_statuses": [(s.value, HANDOVER_LABELS[s.value]) for s in MerchantStatus],
            "channels": channel_names,
            "prev_url": page_url(PAGE, {**filters, "offset": max(0, start - PAGE_SIZE)}) if start else None,
            "next_url": page_url(PAGE, {**filters, "offset": start + PAGE_SIZE}) if more else None,
        },
        session=session,
    )


@router.get("/{order_id:int}")
def order_page(request: Request, session: SessionDep, order_id: int) -> Response:
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            order = get_order(conn, session.tenant.id, order_id, with_payloads=True)
            extra = order_inspection(conn, session.tenant.id, order_id)
    except NotFoundError as exc:
        return render(
            request,
            "dashboard/error.html",
            {"title": "Not found", "message": str(exc)},
            session=session,
            status_code=404,
        )
    return render(
        request, "dashboard/order.html", {"page": "orders", "order": order, "extra": extra}, session=session
    )
