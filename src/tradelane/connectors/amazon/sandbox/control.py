"""``/_sandbox`` control endpoints: the programmatic controls of the state over HTTP.

Not part of SP-API: no authentication, no rate limits, not logged. JSON bodies; amounts may be JSON
numbers or strings; durations are seconds. Errors answer ``{"error": "..."}`` with 400 or 404.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tradelane.connectors.amazon.sandbox import listings as li
from tradelane.connectors.amazon.sandbox.api import feed_json
from tradelane.connectors.amazon.sandbox.orders import INCLUDED_DATA, iso, order_json
from tradelane.connectors.amazon.sandbox.ratelimits import plans
from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState

_ALL_ORDER_DATA = frozenset(INCLUDED_DATA)
_ALL_LISTING_DATA = ("summaries", "attributes", "issues", "offers", "fulfillmentAvailability", "productTypes")


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[AmazonSandboxState, Request, dict[str, Any]], Awaitable[Any]]


def _endpoint(handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ControlError("the body must be a JSON object")
            result = await handler(request.app.state.sandbox, request, body)
        except (ValueError, TypeError) as exc:  # json errors, wrongly typed fields, state refusals
            return JSONResponse({"error": str(exc)}, status_code=400)
        except KeyError as exc:
            return JSONResponse({"error": str(exc.args[0]) if exc.args else "not found"}, status_code=404)
        except ControlError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return JSONResponse(result, status_code=status)

    return endpoint


def _decimal(raw: Any, name: str) -> Decimal:
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise ControlError(f"{name} must be a number") from None


async def accounts(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    base = str(request.base_url).rstrip("/")
    app = state.application
    return {
        "region": state.region,
        "endpoint": base,
        "token_endpoint": f"{base}/auth/o2/token",
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "sellers": [
            {
                "seller_id": a.seller_id,
                "name": a.name,
                "region": a.region,
                "marketplace_ids": list(a.marketplace_ids),
                "refresh_token": a.refresh_token,
            }
            for a in state.accounts.values()
        ],
        "catalog": [asdict(c) for c in state.catalog.values()],
    }


async def create_order(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    lines_raw = body.get("lines")
    if not isinstance(lines_raw, list) or not lines_raw:
        raise ControlError("lines: a non-empty array of {sku, quantity[, unit_price]}")
    lines, prices = [], {}
    for line in lines_raw:
        if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
            raise ControlError("each line needs a sku")
        lines.append((line["sku"], int(line.get("quantity", 1))))
        if line.get("unit_price") is not None:
            prices[line["sku"]] = _decimal(line["unit_price"], "unit_price")
    order = state.create_order(
        str(body.get("seller_id") or next(iter(state.accounts))),
        lines,
        marketplace_id=body.get("marketplace_id"),
        paid=bool(body.get("paid", False)),
        prices=prices or None,
        buyer_name=str(body.get("buyer_name") or "Jane Doe"),
    )
    return order_json(order, _ALL_ORDER_DATA) | {"status": order.status.value, "sellerId": order.seller_id}


async def get_order(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    order = state.order(request.path_params["order_id"])
    return order_json(order, _ALL_ORDER_DATA) | {"status": order.status.value, "sellerId": order.seller_id}


async def list_orders(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    with state.lock:
        return [
            order_json(o, _ALL_ORDER_DATA) | {"status": o.status.value, "sellerId": o.seller_id}
            for o in state.orders.values()
        ]


async def pay(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    order = state.pay(request.path_params["order_id"])
    return {"orderId": order.order_id, "status": order.status.value}


async def cancel(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    order = state.cancel(request.path_params["order_id"], str(body.get("reason") or "BuyerCanceled"))
    return {"orderId": order.order_id, "status": order.status.value}


async def shipments(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    with state.lock:
        return [
            {"orderId": o.order_id, "status": o.status.value} | order_json(o, frozenset({"PACKAGES"}))
            for o in state.orders.values()
            if o.packages
        ]


async def list_listings(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    with state.lock:
        out = []
        for (seller_id, _), listing in sorted(state.listings.items()):
            mps = state.accounts[seller_id].marketplace_ids
            out.append(
                {"sellerId": seller_id} | li.item_json(listing, mps, _ALL_LISTING_DATA, state.catalog, iso)
            )
        return out


async def add_listing(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    for name in ("seller_id", "sku", "asin", "price", "quantity"):
        if body.get(name) is None:
            raise ControlError(f"{name} is required")
    listing = state.add_offer(
        str(body["seller_id"]),
        str(body["sku"]),
        str(body["asin"]),
        _decimal(body["price"], "price"),
        int(body["quantity"]),
        marketplace_id=body.get("marketplace_id"),
    )
    mps = state.accounts[listing.seller_id].marketplace_ids
    return li.item_json(listing, mps, _ALL_LISTING_DATA, state.catalog, iso)


async def list_feeds(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    state.settle_feeds()
    with state.lock:
        return [feed_json(f) | {"sellerId": f.seller_id, "report": f.report} for f in state.feeds.values()]


async def add_fault(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    fault = state.faults.inject(
        str(body.get("operation") or "*"),
        str(body.get("kind")),
        count=int(body.get("count", 1)),
        status=body.get("status"),
        delay=body.get("delay"),
        retry_after=body.get("retry_after"),
    )
    return {"kind": fault.kind.value, "pending": state.faults.pending()}


async def clear_faults(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    state.faults.clear()
    return {"pending": {}}


async def set_route(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    override = state.set_route(request.path_params["op_id"], str(body.get("mode")), body.get("status"))
    return {"operation": request.path_params["op_id"], "mode": override.mode.value, "status": override.status}


async def clear_route(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    state.clear_route(request.path_params["op_id"])
    return {"operation": request.path_params["op_id"], "mode": None}


async def clock(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    return {"now": iso(state.now())}


async def advance(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    return {"now": iso(state.advance(float(_decimal(body.get("seconds", 0), "seconds"))))}


async def expire_tokens(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    return {"expired": state.expire_tokens()}


async def rate_limits(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    mode = str(body.get("mode") or "published")
    with state.lock:
        state.buckets.plans = plans(mode)
        state.buckets.reset()
    return {"mode": mode, "plans": {op: p.header() for op, p in state.buckets.plans.items()}}


async def settings(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    allowed = {"token_ttl", "feed_queue_seconds", "feed_processing_seconds", "upload_ttl", "visibility_lag"}
    unknown = set(body) - allowed
    if unknown:
        raise ControlError(f"unknown settings {sorted(unknown)} (allowed: {sorted(allowed)})")
    with state.lock:
        state.with_settings(**{k: float(_decimal(v, k)) for k, v in body.items()})
        return asdict(state.settings)


async def requests(state: AmazonSandboxState, request: Request, body: dict[str, Any]) -> Any:
    with state.lock:
        return [
            {
                "method": r.method,
                "path": r.path,
                "query": r.query,
                "operation": r.op_id,
                "at": iso(r.at),
                "status": r.status,
                "sellerId": r.seller_id,
                "fault": r.fault,
            }
            for r in state.requests
        ]


def routes() -> list[Route]:
    return [
        Route("/accounts", _endpoint(accounts), methods=["GET"]),
        Route("/orders", _endpoint(create_order, 201), methods=["POST"]),
        Route("/orders", _endpoint(list_orders), methods=["GET"]),
        Route("/orders/{order_id}", _endpoint(get_order), methods=["GET"]),
        Route("/orders/{order_id}/pay", _endpoint(pay), methods=["POST"]),
        Route("/orders/{order_id}/cancel", _endpoint(cancel), methods=["POST"]),
        Route("/shipments", _endpoint(shipments), methods=["GET"]),
        Route("/listings", _endpoint(list_listings), methods=["GET"]),
        Route("/listings", _endpoint(add_listing, 201), methods=["POST"]),
        Route("/feeds", _endpoint(list_feeds), methods=["GET"]),
        Route("/faults", _endpoint(add_fault), methods=["POST"]),
        Route("/faults", _endpoint(clear_faults), methods=["DELETE"]),
        Route("/routes/{op_id}", _endpoint(set_route), methods=["PUT"]),
        Route("/routes/{op_id}", _endpoint(clear_route), methods=["DELETE"]),
        Route("/clock", _endpoint(clock), methods=["GET"]),
        Route("/clock/advance", _endpoint(advance), methods=["POST"]),
        Route("/tokens/expire", _endpoint(expire_tokens), methods=["POST"]),
        Route("/rate-limits", _endpoint(rate_limits), methods=["PUT"]),
        Route("/settings", _endpoint(settings), methods=["PUT"]),
        Route("/requests", _endpoint(requests), methods=["GET"]),
    ]
