"""``/_sandbox`` control endpoints: the programmatic controls of :class:`SandboxState` over HTTP.

Not part of the Mirakl API: no authentication, no rate limits, never logged in the request log.
Bodies are JSON; amounts may be JSON numbers or strings; durations are seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from fastapi import APIRouter, Request
from starlette.responses import Response

from tradelane.connectors.mirakl.sandbox.api_orders import order_json
from tradelane.connectors.mirakl.sandbox.config import OrderLineSpec
from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError, bad_request, not_found
from tradelane.connectors.mirakl.sandbox.jsonout import MiraklJSONResponse
from tradelane.connectors.mirakl.sandbox.models import Product
from tradelane.connectors.mirakl.sandbox.payloads import (
    as_list,
    as_object,
    get_bool,
    get_decimal,
    get_int,
    get_str,
    parse_json_body,
)
from tradelane.connectors.mirakl.sandbox.state import SandboxState
from tradelane.connectors.mirakl.sandbox.views import iso

router = APIRouter(prefix="/_sandbox")


def _state(request: Request) -> SandboxState:
    return request.app.state.sandbox


async def _body(request: Request) -> Mapping[str, object]:
    raw = await request.body()
    return as_object(parse_json_body(raw), "body") if raw.strip() else {}


def _seconds(body: Mapping[str, object], key: str) -> timedelta | None:
    value = get_decimal(body, key, "body")
    return None if value is None else timedelta(seconds=float(value))


def _when(body: Mapping[str, object], key: str) -> datetime | None:
    raw = get_str(body, key, "body")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(f"body.{key} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise bad_request(f"body.{key} must carry a time zone")
    return value


@router.get("/clock")
async def clock(request: Request) -> Response:
    state = _state(request)
    return MiraklJSONResponse({"now": iso(state.now()), "follow_wall_time": state.clock.follow_wall_time})


@router.post("/clock/advance")
async def clock_advance(request: Request) -> Response:
    state, body = _state(request), await _body(request)
    seconds = get_decimal(body, "seconds", "body", required=True) or Decimal(0)
    try:
        now = state.advance(float(seconds))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"now": iso(now)})


@router.post("/clock/set")
async def clock_set(request: Request) -> Response:
    state, body = _state(request), await _body(request)
    when = _when(body, "now")
    if when is None:
        raise bad_request("body.now is required")
    try:
        now = state.set_now(when)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"now": iso(now)})


@router.post("/orders")
async def create_order(request: Request) -> Response:
    """Order factory: ``{"shop_id", "lines": [{"offer_sku", "quantity", "unit_price", ...}], ...}``."""
    state, body = _state(request), await _body(request)
    shop_id = get_int(body, "shop_id", "body") or next(iter(state.shops))
    lines = []
    for index, raw in enumerate(as_list(body.get("lines"), "body.lines")):
        where = f"lines[{index}]"
        item = as_object(raw, where)
        fields = item.get("additional_fields") or {}
        if not isinstance(fields, dict):
            raise bad_request(f"{where}.additional_fields must be an object")
        lines.append(
            OrderLineSpec(
                offer_sku=get_str(item, "offer_sku", where, required=True) or "",
                quantity=get_int(item, "quantity", where) or 1,
                unit_price=get_decimal(item, "unit_price", where),
                shipping_price=get_decimal(item, "shipping_price", where) or Decimal(0),
                additional_fields={str(k): str(v) for k, v in fields.items()},
            )
        )
    order_fields = body.get("additional_fields") or {}
    if not isinstance(order_fields, dict):
        raise bad_request("body.additional_fields must be an object")
    deadline = _when(body, "acceptance_deadline")
    delay = _seconds(body, "acceptance_delay_seconds")
    if deadline is None and delay is not None:
        deadline = state.now() + delay
    try:
        order_id = state.create_order(
            shop_id,
            lines,
            currency=get_str(body, "currency", "body"),
            customer_message=get_str(body, "customer_message", "body"),
            additional_fields={str(k): str(v) for k, v in order_fields.items()},
            acceptance_deadline=deadline,
            payment_delay=_seconds(body, "payment_delay_seconds"),
            payment_refused=bool(get_bool(body, "payment_refused", "body")),
            customer_reference=get_str(body, "customer_reference", "body"),
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"order_id": order_id}, status_code=201)


@router.get("/orders/{order_id}")
async def get_order(request: Request, order_id: str) -> Response:
    """The order as OR11 shows it, plus what only the sandbox knows (deadline, payment delay)."""
    state = _state(request)
    with state.locked():
        order = state.orders.get(order_id)
        if order is None:
            raise not_found(f"order {order_id} not found")
        body = {
            "order": order_json(state, order),
            "shop_id": order.shop_id,
            "acceptance_deadline": iso(order.acceptance_deadline),
            "payment_delay_seconds": int(order.payment_delay.total_seconds()),
        }
    return MiraklJSONResponse(body)


@router.post("/orders/{order_id}/transition")
async def transition(request: Request, order_id: str) -> Response:
    state, body = _state(request), await _body(request)
    target = get_str(body, "state", "body", required=True) or ""
    try:
        order = state.transition_order(order_id, target)
    except KeyError:
        raise not_found(f"order {order_id} not found") from None
    except ValueError as exc:
        raise SandboxApiError(409, str(exc)) from None
    return MiraklJSONResponse({"order_id": order.order_id, "order_state": order.state.value})


@router.post("/orders/{order_id}/messages")
async def add_message(request: Request, order_id: str) -> Response:
    state, body = _state(request), await _body(request)
    try:
        message_id = state.add_message(
            order_id,
            get_str(body, "body", "body", required=True) or "",
            subject=get_str(body, "subject", "body") or "Question",
            from_type=get_str(body, "from_type", "body") or "CUSTOMER",
        )
    except KeyError:
        raise not_found(f"order {order_id} not found") from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"message_id": message_id}, status_code=201)


@router.post("/orders/{order_id}/returns")
async def add_return(request: Request, order_id: str) -> Response:
    state, body = _state(request), await _body(request)
    lines = []
    for index, raw in enumerate(as_list(body.get("lines"), "body.lines")):
        where = f"lines[{index}]"
        item = as_object(raw, where)
        lines.append(
            (
                get_str(item, "order_line_id", where, required=True) or "",
                get_int(item, "quantity", where) or 1,
                get_str(item, "reason_code", where) or "RETURN_CHANGED_MIND",
            )
        )
    try:
        return_id = state.create_return(order_id, lines)
    except KeyError:
        raise not_found(f"order {order_id} not found") from None
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"return_id": return_id}, status_code=201)


@router.post("/products")
async def add_product(request: Request) -> Response:
    """``{"sku", "title", "category_code", "category_label", "references": {"EAN": "..."}}``."""
    state, body = _state(request), await _body(request)
    refs = body.get("references") or {}
    if not isinstance(refs, dict):
        raise bad_request("body.references must be an object")
    product = Product(
        sku=get_str(body, "sku", "body", required=True) or "",
        title=get_str(body, "title", "body") or "Sandbox product",
        category_code=get_str(body, "category_code", "body") or "HOME",
        category_label=get_str(body, "category_label", "body") or "Home & Living",
        references=tuple((str(k), str(v)) for k, v in refs.items()),
        brand=get_str(body, "brand", "body") or "",
    )
    try:
        state.add_product(product)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"sku": product.sku}, status_code=201)


@router.get("/products")
async def list_products(request: Request) -> Response:
    state = _state(request)
    with state.locked():
        products = [
            {"sku": p.sku, "title": p.title, "references": dict(p.references)} for p in state.catalog.values()
        ]
    return MiraklJSONResponse({"products": products})


@router.get("/shops")
async def list_shops(request: Request) -> Response:
    """Shops with their API keys (sandbox keys only open this local sandbox)."""
    state = _state(request)
    shops = [
        {
            "shop_id": s.shop_id,
            "name": s.name,
            "api_key": s.api_key,
            "currency": s.currency,
            "multi_shipment": s.multi_shipment,
        }
        for s in state.shops.values()
    ]
    return MiraklJSONResponse({"shops": shops})


@router.put("/shops/{shop_id}/multi-shipment")
async def multi_shipment(request: Request, shop_id: int) -> Response:
    state, body = _state(request), await _body(request)
    enabled = get_bool(body, "enabled", "body", required=True)
    try:
        state.set_multi_shipment(shop_id, bool(enabled))
    except ValueError as exc:
        raise not_found(str(exc)) from None
    return Response(status_code=204)


@router.post("/faults")
async def inject(request: Request) -> Response:
    """``{"op_id": "OR11", "fault": "server_error", "count": 1, "status", "retry_after", "delay"}``."""
    state, body = _state(request), await _body(request)
    delay = get_decimal(body, "delay", "body")
    try:
        fault = state.inject(
            get_str(body, "op_id", "body", required=True) or "",
            get_str(body, "fault", "body", required=True) or "",
            count=get_int(body, "count", "body") or 1,
            status=get_int(body, "status", "body"),
            retry_after=get_int(body, "retry_after", "body"),
            delay=None if delay is None else float(delay),
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"fault": fault.kind.value}, status_code=201)


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    _state(request).clear_faults()
    return Response(status_code=204)


@router.put("/routes/{op_id}")
async def set_route(request: Request, op_id: str) -> Response:
    """``{"mode": "off" | "status" | "garbage" | "truncated", "status": 503}``: a lasting behaviour of
    the operation (``off``: 404 like an operator without the module) until ``DELETE``."""
    state, body = _state(request), await _body(request)
    try:
        override = state.set_route(
            op_id, get_str(body, "mode", "body", required=True) or "", status=get_int(body, "status", "body")
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return MiraklJSONResponse({"op_id": op_id, "mode": override.mode.value, "status": override.status})


@router.delete("/routes/{op_id}")
async def clear_route(request: Request, op_id: str) -> Response:
    _state(request).clear_route(op_id)
    return Response(status_code=204)


@router.delete("/routes")
async def clear_routes(request: Request) -> Response:
    _state(request).clear_route()
    return Response(status_code=204)


@router.put("/rate-limits/{op_id}")
async def set_rate_limit(request: Request, op_id: str) -> Response:
    state, body = _state(request), await _body(request)
    calls = get_int(body, "calls", "body", required=True) or 0
    per = get_decimal(body, "per_seconds", "body", required=True) or Decimal(0)
    try:
        state.set_rate_limit(op_id, calls, float(per))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return Response(status_code=204)


@router.delete("/rate-limits/{op_id}")
async def remove_rate_limit(request: Request, op_id: str) -> Response:
    _state(request).remove_rate_limit(op_id)
    return Response(status_code=204)


@router.delete("/rate-limits")
async def clear_rate_limits(request: Request) -> Response:
    _state(request).clear_rate_limits()
    return Response(status_code=204)


@router.get("/requests")
async def requests_log(request: Request) -> Response:
    records = [
        {
            "method": r.method,
            "path": r.path,
            "query": r.query,
            "op_id": r.op_id,
            "at": r.at.isoformat(),
            "status": r.status,
            "shop_id": r.shop_id,
            "fault": r.fault.value if r.fault else None,
        }
        for r in _state(request).requests
    ]
    return MiraklJSONResponse({"requests": records})


@router.delete("/requests")
async def clear_requests(request: Request) -> Response:
    _state(request).clear_requests()
    return Response(status_code=204)
