"""The sandbox's HTTP API: the REST Admin API subset tradelane uses, plus control endpoints.

Admin API (``/admin/api/<YYYY-MM>/...``), every call gated like Shopify's:

* ``X-Shopify-Access-Token`` must be the shop's token — else 401 ``{"errors": "[API] Invalid API key or
  access token (unrecognized login or wrong password)"}``;
* each call takes one slot of a leaky bucket (40, leaking 2/s): a call that finds it full answers 429 with
  ``Retry-After`` and ``{"errors": "Exceeded 2 calls per second for api client. ..."}``; every answer
  carries ``X-Shopify-Shop-Api-Call-Limit: <used>/40``;
* injected faults (``POST /_sandbox/faults``) answer instead of the next calls (5xx, or 429 with
  ``Retry-After``); :meth:`~.state.ShopifySandboxState.slow_down` delays answers after doing the work.

Routes: ``GET shop.json``, ``GET products.json`` (``ids``, ``fields``, ``limit`` ≤ 250, cursor pagination
with ``page_info`` and ``Link`` headers), ``GET products/{id}.json``, ``GET orders.json`` (``status``
open/closed/cancelled/any, ``attribution_app_id``, ``created_at_min``, ``ids``, ``fields``, ``limit``,
``page_info``), ``GET orders/{id}.json``, ``POST orders.json`` (see :mod:`.orders`),
``GET inventory_items/{id}.json``, ``GET inventory_levels.json`` (``inventory_item_ids`` and/or
``location_ids``, ``limit``, ``page_info``), ``GET locations.json``.

Control (``/_sandbox``, no token): ``POST faults`` ``{count, status, retry_after}``; ``POST products``
``{title, vendor?, variants: [{sku, price, quantity, title?, inventory_policy?}], emit?}``;
``POST variants/{sku}`` ``{price?, available?}`` (sends ``products/update`` and
``inventory_levels/update``); ``POST webhooks`` ``{url, topics?}``; ``POST orders/{id}/fulfill``
``{tracking_company?, tracking_number?, tracking_url?, lines?: {sku: quantity}}``;
``POST orders/{id}/cancel`` ``{reason?}``; ``GET calls``; ``GET deliveries``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from tradelane.merchant.shopify.sandbox.state import OrderRefused, ShopifySandboxState

ADMIN_PREFIX = "/admin/api/"
_VERSION = re.compile(r"^/admin/api/(\d{4}-\d{2}|unstable)/")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLED = (
    "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
)
DEFAULT_LIMIT = 50
MAX_LIMIT = 250


def _state(request: Request) -> ShopifySandboxState:
    state: ShopifySandboxState = request.app.state.sandbox
    return state


def _error(status: int, errors: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status, headers=dict(headers or {}))


async def _gate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    path = request.url.path
    if not path.startswith(ADMIN_PREFIX):
        return await call_next(request)
    state = _state(request)
    if not _VERSION.match(path):
        response: Response = _error(404, "Not Found")
    elif not state.authenticate(request.headers.get("x-shopify-access-token")):
        response = _error(401, INVALID_TOKEN)
    else:
        wait = state.take_call()
        limit = {"X-Shopify-Shop-Api-Call-Limit": state.call_limit_header()}
        fault = state.take_fault() if wait is None else None
        if wait is not None:
            response = _error(429, THROTTLED, {**limit, "Retry-After": f"{max(wait, 0.1):.1f}"})
        elif fault is not None and fault.status == 429:
            retry = fault.retry_after if fault.retry_after is not None else 2.0
            response = _error(429, THROTTLED, {**limit, "Retry-After": f"{retry:.1f}"})
        elif fault is not None:
            response = _error(fault.status, "Internal Server Error", limit)
        else:
            response = await call_next(request)
            response.headers.update(limit)
    state.record_call(request.method, path, response.status_code)
    delay = state.take_slowdown(request.method) if response.status_code < 300 else None
    if delay:
        await asyncio.sleep(delay)
    return response


# --- listing helpers -----------------------------------------------------------------------------


def _limit(params: Mapping[str, str]) -> int | JSONResponse:
    raw = params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        return _error(400, {"limit": [f"must be between 1 and {MAX_LIMIT}"]})
    return int(raw)


def _encode_cursor(offset: int, filters: dict[str, str]) -> str:
    raw = json.dumps({"o": offset, "f": filters}, sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[int, dict[str, str]] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["o"]), {str(k): str(v) for k, v in data["f"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _page(
    request: Request,
    key: str,
    select: Callable[[dict[str, str]], list[dict[str, Any]] | JSONResponse],
) -> JSONResponse:
    """One page of ``select(filters)``, with ``fields`` applied and a cursor ``Link`` header."""
    params = dict(request.query_params)
    limit = _limit(params)
    if isinstance(limit, JSONResponse):
        return limit
    fields = params.pop("fields", None)
    params.pop("limit", None)
    offset = 0
    token = params.pop("page_info", None)
    if token is not None:
        if params:
            return _error(400, {"page_info": ["cannot be combined with filters other than limit and fields"]})
        cursor = _decode_cursor(token)
        if cursor is None:
            return _error(400, {"page_info": ["Invalid value."]})
        offset, params = cursor
    selected = select(params)
    if isinstance(selected, JSONResponse):
        return selected
    items = selected[offset : offset + limit]
    if fields:
        wanted = {f.strip() for f in fields.split(",") if f.strip()}
        items = [{k: v for k, v in item.items() if k in wanted} for item in items]
    links = []
    base = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    extra = f"&fields={fields}" if fields else ""
    if offset + limit < len(selected):
        links.append(
            f'<{base}?limit={limit}{extra}&page_info={_encode_cursor(offset + limit, params)}>; rel="next"'
        )
    if offset > 0:
        links.append(
            f"<{base}?limit={limit}{extra}&page_info={_encode_cursor(max(0, offset - limit), params)}>; "
            'rel="previous"'
        )
    headers = {"Link": ", ".join(links)} if links else {}
    return JSONResponse({key: items}, headers=headers)


def _ids(value: str | None) -> set[int] | None:
    if value is None:
        return None
    return {int(v) for v in value.split(",") if v.strip().isdigit()}


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


# --- Admin API -------------------------------------------------------------------------------------

admin = APIRouter(prefix="/admin/api/{version}")


@admin.get("/shop.json")
def get_shop(request: Request) -> dict[str, Any]:
    state = _state(request)
    return {
        "shop": {
            "id": 1,
            "name": "tradelane sandbox",
            "domain": state.shop_domain,
            "myshopify_domain": state.shop_domain,
            "currency": state.currency,
        }
    }


@admin.get("/products.json")
def list_products(request: Request) -> JSONResponse:
    state = _state(request)

    def select(filters: dict[str, str]) -> list[dict[str, Any]]:
        ids = _ids(filters.get("ids"))
        with state.lock:
            return [
                state.catalog.product_json(p)
                for p in sorted(state.catalog.products.values(), key=lambda p: p.id)
                if ids is None or p.id in ids
            ]

    return _page(request, "products", select)


@admin.get("/products/{product_id}.json")
def get_product(request: Request, product_id: int) -> JSONResponse:
    state = _state(request)
    with state.lock:
        product = state.catalog.products.get(product_id)
        if product is None:
            return _error(404, "Not Found")
        return JSONResponse({"product": state.catalog.product_json(product)})


def _order_matches(order: dict[str, Any], filters: dict[str, str], app_id: int) -> bool:
    status = filters.get("status", "open")
    cancelled = order["cancelled_at"] is not None
    closed = order["closed_at"] is not None
    if status == "open" and (cancelled or closed):
        return False
    if status == "cancelled" and not cancelled:
        return False
    if status == "closed" and not closed:
        return False
    attribution = filters.get("attribution_app_id")
    if attribution is not None:
        wanted = app_id if attribution == "current" else int(attribution) if attribution.isdigit() else -1
        if order["app_id"] != wanted:
            return False
    created_min = filters.get("created_at_min")
    if created_min is not None:
        bound = _parse_time(created_min)
        if bound is None or datetime.fromisoformat(order["created_at"]) < bound:
            return False
    ids = _ids(filters.get("ids"))
    return ids is None or order["id"] in ids


@admin.get("/orders.json")
def list_orders(request: Request) -> JSONResponse:
    state = _state(request)

    def select(filters: dict[str, str]) -> list[dict[str, Any]] | JSONResponse:
        if filters.get("status", "open") not in {"open", "closed", "cancelled", "any"}:
            return _error(400, {"status": ["is not included in the list"]})
        created_min = filters.get("created_at_min")
        if created_min is not None and _parse_time(created_min) is None:
            return _error(400, {"created_at_min": ["is not a valid date"]})
        with state.lock:
            chosen = [o for o in state.orders.values() if _order_matches(o, filters, state.app_id)]
            return json.loads(json.dumps(sorted(chosen, key=lambda o: -o["id"])))  # newest first

    return _page(request, "orders", select)


@admin.get("/orders/{order_id}.json")
def get_order(request: Request, order_id: int) -> JSONResponse:
    state = _state(request)
    try:
        return JSONResponse({"order": state.order(order_id)})
    except KeyError:
        return _error(404, "Not Found")


@admin.post("/orders.json")
async def create_order(request: Request) -> JSONResponse:
    state = _state(request)
    try:
        body = json.loads(await request.body())
    except ValueError:
        return _error(400, {"order": "Required parameter missing or invalid"})
    try:
        order = state.create_order(body)
    except OrderRefused as exc:
        return JSONResponse(exc.errors, status_code=exc.status)
    return JSONResponse({"order": order}, status_code=201)


@admin.get("/inventory_items/{item_id}.json")
def get_inventory_item(request: Request, item_id: int) -> JSONResponse:
    state = _state(request)
    with state.lock:
        variant = state.catalog.variant_of_item(item_id)
        if variant is None:
            return _error(404, "Not Found")
        return JSONResponse({"inventory_item": state.catalog.inventory_item_json(variant)})


@admin.get("/inventory_levels.json")
def list_inventory_levels(request: Request) -> JSONResponse:
    """Paged like Shopify's (``limit`` default 50, at most 250; ``page_info`` cursor in ``Link``)."""
    state = _state(request)

    def select(filters: dict[str, str]) -> list[dict[str, Any]] | JSONResponse:
        items = _ids(filters.get("inventory_item_ids"))
        locations = _ids(filters.get("location_ids"))
        if items is None and locations is None:
            return _error(422, "inventory_item_ids, location_ids, or both are required")
        with state.lock:
            return [
                level.as_json()
                for (item, location), level in sorted(state.catalog.levels.items())
                if (items is None or item in items) and (locations is None or location in locations)
            ]

    return _page(request, "inventory_levels", select)


@admin.get("/locations.json")
def list_locations(request: Request) -> JSONResponse:
    state = _state(request)
    with state.lock:
        return JSONResponse(
            {"locations": [{"id": i, "name": n, "active": True} for i, n in state.catalog.locations.items()]}
        )


# --- control ---------------------------------------------------------------------------------------

control = APIRouter(prefix="/_sandbox")


class FaultsIn(BaseModel):
    count: int = Field(ge=1, le=1000)
    status: int = Field(default=500, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0, le=3600)


class VariantIn(BaseModel):
    sku: str = Field(min_length=1, max_length=255)
    price: str = Field(default="0", pattern=r"^\d+(\.\d+)?$")
    quantity: int = 0
    title: str | None = None
    inventory_policy: str = Field(default="deny", pattern=r"^(deny|continue)$")


class ProductIn(BaseModel):
    title: str = Field(min_length=1)
    vendor: str = "Sandbox Vendor"
    variants: list[VariantIn] = Field(min_length=1)
    emit: bool = False


class VariantUpdateIn(BaseModel):
    price: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?$")
    available: int | None = None


class SubscriptionIn(BaseModel):
    url: str = Field(min_length=1)
    topics: list[str] | None = None


class FulfillIn(BaseModel):
    tracking_company: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    lines: dict[str, int] | None = None


class CancelIn(BaseModel):
    reason: str = "customer"


@control.post("/faults", status_code=204)
def post_faults(request: Request, body: FaultsIn) -> Response:
    _state(request).inject_faults(body.count, body.status, body.retry_after)
    return Response(status_code=204)


@control.post("/products", status_code=201)
def post_product(request: Request, body: ProductIn) -> dict[str, Any]:
    variants = [v.model_dump() for v in body.variants]
    return {"product": _state(request).add_product(body.title, variants, vendor=body.vendor, emit=body.emit)}


@control.post("/variants/{sku}")
def post_variant(request: Request, sku: str, body: VariantUpdateIn) -> JSONResponse:
    try:
        product, level = _state(request).update_variant(sku, price=body.price, available=body.available)
    except KeyError as exc:
        return _error(404, str(exc))
    return JSONResponse({"product": product, "inventory_level": level})


@control.post("/webhooks", status_code=204)
def post_subscription(request: Request, body: SubscriptionIn) -> Response:
    _state(request).subscribe(body.url, body.topics)
    return Response(status_code=204)


@control.post("/orders/{order_id}/fulfill")
def post_fulfill(request: Request, order_id: int, body: FulfillIn) -> JSONResponse:
    try:
        fulfillment = _state(request).fulfill(
            order_id,
            tracking_company=body.tracking_company,
            tracking_number=body.tracking_number,
            tracking_url=body.tracking_url,
            lines=body.lines,
        )
    except KeyError:
        return _error(404, "Not Found")
    except OrderRefused as exc:
        return JSONResponse(exc.errors, status_code=exc.status)
    return JSONResponse({"fulfillment": fulfillment})


@control.post("/orders/{order_id}/cancel")
def post_cancel(request: Request, order_id: int, body: CancelIn) -> JSONResponse:
    try:
        return JSONResponse({"order": _state(request).cancel(order_id, reason=body.reason)})
    except KeyError:
        return _error(404, "Not Found")


@control.get("/calls")
def get_calls(request: Request) -> list[dict[str, Any]]:
    state = _state(request)
    with state.lock:
        return [{"method": c.method, "path": c.path, "status": c.status} for c in state.calls]


@control.get("/deliveries")
def get_deliveries(request: Request) -> list[dict[str, Any]]:
    state = _state(request)
    with state.lock:
        return [
            {"topic": d.topic, "url": d.url, "webhook_id": d.webhook_id, "status": d.status}
            for d in state.deliveries
        ]


def create_app(state: ShopifySandboxState) -> FastAPI:
    """A FastAPI app serving ``state`` (nothing is shared between apps)."""
    app = FastAPI(title="Shopify Admin API sandbox (tradelane)", docs_url=None, redoc_url=None)
    app.state.sandbox = state
    app.middleware("http")(_gate)
    app.include_router(admin)
    app.include_router(control)
    return app
