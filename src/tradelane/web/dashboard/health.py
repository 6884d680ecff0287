"""Order Health: quarantined orders grouped by reason with counts and ages; retry one, retry the
selected / a whole reason / all, release one (``services.order_health``, as ``/api/v1/order-health``
and ``tradelane orders health|retry|release``); fix an unknown SKU by mapping it or adding it to the
catalog (``services.sku_fixes``), which re-tries the orders it unblocks.

A refused form is not a redirect: the page is rendered again (4xx) with every error of the form next
to its fields and the form filled with what was typed (ticked orders stay ticked)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.sku_mappings import list_sku_mappings
from tradelane.services import order_health as health
from tradelane.services.channels import list_channels
from tradelane.services.sku_fixes import FormErrors, add_catalog_product, map_sku
from tradelane.web.dashboard.rendering import PREFIX, redirect, render
from tradelane.web.dashboard.session import ActionDep, DashboardSession, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/order-health", include_in_schema=False)
PAGE = f"{PREFIX}/order-health"
_FAILURES = (NotFoundError, ConflictError, ValidationError)
#: SKU mappings listed on the page (the CLI and API list all of them).
MAPPINGS_SHOWN = 100


@dataclass(frozen=True, slots=True)
class FormState:
    """A refused form as typed: ``kind`` is ``mapping``, ``product`` or ``retry``; ``sku`` the unknown
    SKU whose form it is; ``errors`` field name → reason (``form`` for errors of the form as a whole)."""

    kind: str
    sku: str = ""
    values: dict[str, str] = field(default_factory=dict)
    checked: frozenset[str] = frozenset()
    errors: dict[str, str] = field(default_factory=dict)


def _status(exc: Exception) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return 422


def _errors(exc: Exception) -> dict[str, str]:
    return dict(exc.errors) if isinstance(exc, FormErrors) else {"form": str(exc)}


def _page(
    request: Request, session: DashboardSession, *, form: FormState | None = None, status_code: int = 200
) -> Response:
    container = container_of(request)
    with read_only(container.engine) as conn:
        groups = health.health_report(conn, session.tenant.id, now=container.now())
        channel_names = [c.name for c in list_channels(conn, session.tenant.id)]
        mappings = list_sku_mappings(conn, session.tenant.id, limit=MAPPINGS_SHOWN + 1)
    return render(
        request,
        "dashboard/health.html",
        {
            "page": "health",
            "groups": groups,
            "total": sum(g.count for g in groups),
            "channels": channel_names,
            "reasons": [r.value for r in health.QuarantineReason],
            "mappings": mappings[:MAPPINGS_SHOWN],
            "more_mappings": len(mappings) > MAPPINGS_SHOWN,
            "form": form,
        },
        session=session,
        status_code=status_code,
    )


@router.get("")
def health_page(request: Request, session: SessionDep) -> Response:
    return _page(request, session)


def _queued_message(queued: list[int]) -> str:
    return f"Delivery queued for {len(queued)} order(s)." if queued else "No order to retry."


def _refused(
    request: Request, session: DashboardSession, form: FormState, exc: Exception | None = None
) -> Response:
    status = 422 if exc is None else _status(exc)
    return _page(request, session, form=form, status_code=status)


@router.post("/retry")
def retry_many(
    request: Request,
    session: ActionDep,
    mode: Annotated[str, Form()] = "selected",
    order: Annotated[list[str] | None, Form()] = None,
    reason: Annotated[str, Form()] = "",
) -> Response:
    container = container_of(request)
    ticked = frozenset(r for r in (order or []) if r.isascii() and r.isdigit())
    state = FormState("retry", values={"mode": mode, "reason": reason}, checked=ticked)
    try:
        with transaction(container.engine) as conn:
            now = container.now()
            if mode == "selected":
                if not ticked:
                    return _refused(request, session, _with(state, form="Select at least one order."))
                queued = health.retry_orders(conn, tenant_id=session.tenant.id, refs=sorted(ticked), now=now)
            elif mode == "reason":
                queued = health.retry_quarantined(
                    conn, tenant_id=session.tenant.id, reason_code=reason, now=now
                )
            elif mode == "all":
                queued = health.retry_quarantined(
                    conn, tenant_id=session.tenant.id, reason_code=None, now=now
                )
            else:
                return _refused(request, session, _with(state, form="Unknown retry mode."))
    except _FAILURES as exc:
        return _refused(request, session, _with(state, **_errors(exc)), exc)
    return redirect(request, PAGE, _queued_message(queued))


def _with(state: FormState, **errors: str) -> FormState:
    return FormState(state.kind, state.sku, state.values, state.checked, {**state.errors, **errors})


@router.post("/{order_id:int}/retry")
def retry_one(request: Request, session: ActionDep, order_id: int) -> Response:
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            queued = health.retry_orders(
                conn, tenant_id=session.tenant.id, refs=[str(order_id)], now=container.now()
            )
    except _FAILURES as exc:
        return _refused(request, session, FormState("retry", errors=_errors(exc)), exc)
    return redirect(request, PAGE, _queued_message(queued))


@router.post("/{order_id:int}/release")
def release_one(request: Request, session: ActionDep, order_id: int) -> Response:
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            health.release_order(conn, tenant_id=session.tenant.id, ref=str(order_id), now=container.now())
    except _FAILURES as exc:
        return _refused(request, session, FormState("release", errors=_errors(exc)), exc)
    return redirect(request, PAGE, f"Order {order_id} released: handle it outside tradelane.")


@router.post("/sku-mapping")
def add_mapping(
    request: Request,
    session: ActionDep,
    marketplace_sku: Annotated[str, Form()] = "",
    merchant_sku: Annotated[str, Form()] = "",
    channel: Annotated[str, Form()] = "",
    merchant_only: Annotated[str, Form()] = "",
) -> Response:
    """Map an unknown SKU. ``merchant_only`` is the form's confirmation checkbox: without it the
    merchant SKU must be in the catalog."""
    container = container_of(request)
    only = merchant_only == "yes"
    state = FormState(
        "mapping",
        sku=marketplace_sku,
        values={"merchant_sku": merchant_sku, "channel": channel},
        checked=frozenset({"merchant_only"} if only else ()),
    )
    try:
        with transaction(container.engine) as conn:
            fix = map_sku(
                conn,
                tenant_id=session.tenant.id,
                channel=channel or None,
                marketplace_sku=marketplace_sku,
                merchant_sku=merchant_sku,
                merchant_only=only,
                now=container.now(),
            )
    except _FAILURES as exc:
        return _refused(request, session, _with(state, **_errors(exc)), exc)
    scope = channel or "every channel"
    kind = " (known only to the merchant system)" if only else ""
    return redirect(
        request,
        PAGE,
        f"{fix.sku} now maps to {merchant_sku.strip()}{kind} on {scope}; "
        f"{fix.orders_retried} order(s) retried.",
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
    publish: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Add the unknown SKU to the catalog; it is published only on the ticked channels (``publish``)."""
    container = container_of(request)
    row = {
        "sku": sku,
        "title": title,
        "price": price,
        "currency": currency,
        "quantity": quantity,
        "gtin": gtin,
    }
    channels = list(dict.fromkeys(publish or []))
    state = FormState("product", sku=sku, values=row, checked=frozenset(channels))
    try:
        fix = add_catalog_product(
            container.engine,
            tenant_id=session.tenant.id,
            row=row,
            publish_to=channels,
            now=container.now(),
        )
    except _FAILURES as exc:
        return _refused(request, session, _with(state, **_errors(exc)), exc)
    where = (
        f"published to {', '.join(fix.published_to)}" if fix.published_to else "not published on any channel"
    )
    return redirect(
        request,
        PAGE,
        f"{fix.sku} added to the catalog ({where}); {fix.orders_retried} order(s) retried.",
    )
