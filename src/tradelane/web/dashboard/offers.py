"""Offers: search by SKU, filter by status and channel; one offer's marketplace errors with the raw
request/response; republish one offer or every failed one (``services.offers.republish``, as
``tradelane offers republish``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tradelane.domain.errors import NotFoundError
from tradelane.persistence.db import read_only, transaction
from tradelane.services.channels import get_channel, list_channels
from tradelane.services.inspection import get_offer
from tradelane.services.offers import OfferStatus, list_offers, republish
from tradelane.web.dashboard.rendering import PREFIX, clean_filter, page_url, redirect, render, safe_back
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/offers", include_in_schema=False)
PAGE = f"{PREFIX}/offers"
PAGE_SIZE = 50
MAX_FILTER_LENGTH = 200


def _offset(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 10 else 0


@router.get("")
def offers_page(
    request: Request,
    session: SessionDep,
    sku: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    offset: str | None = None,
) -> Response:
    container = container_of(request)
    filters = {
        "sku": clean_filter(sku, MAX_FILTER_LENGTH),
        "status": status if status in {s.value for s in OfferStatus} else None,
        "channel": clean_filter(channel, MAX_FILTER_LENGTH),
    }
    start = _offset(offset)
    with read_only(container.engine) as conn:
        rows = list_offers(conn, session.tenant.id, limit=PAGE_SIZE + 1, offset=start, **filters)
        channel_names = [c.name for c in list_channels(conn, session.tenant.id)]
    more = len(rows) > PAGE_SIZE
    return render(
        request,
        "dashboard/offers.html",
        {
            "page": "offers",
            "offers": rows[:PAGE_SIZE],
            "filters": filters,
            "statuses": [s.value for s in OfferStatus],
            "channels": channel_names,
            "offset": start,
            "prev_url": page_url(PAGE, {**filters, "offset": max(0, start - PAGE_SIZE)}) if start else None,
            "next_url": page_url(PAGE, {**filters, "offset": start + PAGE_SIZE}) if more else None,
            "here": page_url(PAGE, {**filters, "offset": start or None}),
        },
        session=session,
    )


@router.get("/{offer_id:int}")
def offer_page(request: Request, session: SessionDep, offer_id: int) -> Response:
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            offer = get_offer(conn, session.tenant.id, offer_id)
    except NotFoundError as exc:
        return render(
            request,
            "dashboard/error.html",
            {"title": "Not found", "message": str(exc)},
            session=session,
            status_code=404,
        )
    return render(request, "dashboard/offer.html", {"page": "offers", "offer": offer}, session=session)


@router.post("/{offer_id:int}/republish")
def republish_one(
    request: Request, session: ActionDep, offer_id: int, back: Annotated[str, Form()] = ""
) -> Response:
    container = container_of(request)
    target = safe_back(back, f"{PAGE}/{offer_id}")
    try:
        with transaction(container.engine) as conn:
            offer = get_offer(conn, session.tenant.id, offer_id)
            count = republish(
                conn,
                session.tenant.id,
                offer["channel_id"],
                skus=[offer["sku"]],
                now=container.now(),
            )
    except NotFoundError as exc:
        return redirect(request, PAGE, str(exc), level="error")
    return redirect(
        request, target, f"{offer['sku']} on {offer['channel']}: {count} offer queued for republishing."
    )


@router.post("/republish-failed")
def republish_failed(
    request: Request,
    session: ActionDep,
    channel: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "",
) -> Response:
    container = container_of(request)
    target = safe_back(back, PAGE)
    try:
        with transaction(container.engine) as conn:
            if channel:
                selected = [get_channel(conn, session.tenant.id, channel)]
            else:
                selected = list_channels(conn, session.tenant.id)
            count = sum(
                republish(conn, session.tenant.id, ch.id, skus=None, failed_only=True, now=container.now())
                for ch in selected
            )
    except NotFoundError as exc:
        return redirect(request, target, str(exc), level="error")
    scope = channel or "every channel"
    return redirect(request, target, f"{count} failed offer(s) on {scope} queued for republishing.")
