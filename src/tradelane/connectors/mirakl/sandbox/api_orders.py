"""Order routes: OR11 (list), OR21 (accept), OR23 (tracking), OR24 (ship), OR28 (refund), OR29
(cancel) and ST01 (shipments)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request
from starlette.responses import Response

from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError, bad_request, not_found
from tradelane.connectors.mirakl.sandbox.jsonout import MiraklJSONResponse
from tradelane.connectors.mirakl.sandbox.models import (
    Order,
    OrderLine,
    OrderState,
    Refund,
    Shipment,
    ShipmentStatus,
    Shop,
)
from tradelane.connectors.mirakl.sandbox.orders import (
    RefundInput,
    ShipmentLineInput,
    TrackingInput,
    accept,
    add_refund,
    cancel,
    check_refund,
    mark_shipment_shipped,
    plan_shipment,
    resolve_tracking,
    ship,
    update_tracking,
)
from tradelane.connectors.mirakl.sandbox.payloads import (
    as_list,
    as_object,
    get_bool,
    get_decimal,
    get_int,
    get_str,
    page_window,
    parse_json_body,
    query_bool,
    query_datetime,
    query_list,
    sort_direction,
)
from tradelane.connectors.mirakl.sandbox.routing import context, page_offset
from tradelane.connectors.mirakl.sandbox.state import SandboxState
from tradelane.connectors.mirakl.sandbox.views import (
    PAYMENT_WORKFLOW,
    order_view,
    refund_created_view,
    shipment_view,
)

router = APIRouter()

_STATE_CODES = frozenset(s.value for s in OrderState)
_TAX_MODES = frozenset({"TAX_INCLUDED", "TAX_EXCLUDED"})
_WORKFLOWS = frozenset(
    {
        "PAY_ON_ACCEPTANCE",
        "PAY_ON_DELIVERY",
        "PAY_ON_DUE_DATE",
        "PAY_ON_SHIPMENT",
        "NO_CUSTOMER_PAYMENT_CONFIRMATION",
    }
)
MAX_SHIPMENTS = 1000


def _order_for(state: SandboxState, shop: Shop, order_id: str, *, code: str | None = None) -> Order:
    order = state.orders.get(order_id)
    if order is None or order.shop_id != shop.shop_id:
        raise not_found(f"The order {order_id} does not exist", code=code)
    return order


def order_json(state: SandboxState, order: Order, tax_mode: str = "TAX_INCLUDED") -> dict[str, object]:
    has_message = any(m.order_id == order.order_id and m.from_type == "CUSTOMER" for m in state.messages)
    has_invoice = any(
        d.order_id == order.order_id and d.type_code == "CUSTOMER_INVOICE" for d in state.documents.values()
    )
    return order_view(order, has_customer_message=has_message, has_invoice=has_invoice, tax_mode=tax_mode)


@router.get("/api/orders")
async def or11_list(request: Request) -> Response:
    state, shop = context(request)
    params = request.query_params
    order_ids = query_list(params, "order_ids")
    codes = query_list(params, "order_state_codes")
    for code in codes or []:
        if code not in _STATE_CODES:
            raise bad_request(f"The order state code '{code}' is invalid")
    start_date, end_date = query_datetime(params, "start_date"), query_datetime(params, "end_date")
    start_update = query_datetime(params, "start_update_date")
    end_update = query_datetime(params, "end_update_date")
    debited = query_bool(params, "customer_debited")
    incident = query_bool(params, "has_incident")
    channels = query_list(params, "channel_codes")
    tax_mode = params.get("order_tax_mode") or "TAX_INCLUDED"
    if tax_mode not in _TAX_MODES:
        raise bad_request(f"The order_tax_mode '{tax_mode}' is invalid")
    workflow = params.get("payment_workflow") or None
    if workflow is not None and workflow not in _WORKFLOWS:
        raise bad_request(f"The payment_workflow '{workflow}' is invalid")
    offset, size = page_window(params)
    sort = params.get("sort")
    if sort not in (None, "", "dateCreated"):
        raise bad_request(f"The sort field '{sort}' is invalid (expected dateCreated)")
    descending = sort_direction(params, default="asc")
    with state.locked():
        orders = [o for o in state.orders.values() if o.shop_id == shop.shop_id]
        if order_ids is not None:
            orders = [o for o in orders if o.order_id in order_ids]
        if codes is not None:
            orders = [o for o in orders if o.state.value in codes]
        if start_date is not None:
            orders = [o for o in orders if o.created >= start_date]
        if end_date is not None:
            orders = [o for o in orders if o.created <= end_date]
        if start_update is not None:
            since = start_update - state.config.update_date_slack
            orders = [o for o in orders if o.last_updated >= since]
        if end_update is not None:
            orders = [o for o in orders if o.last_updated <= end_update]
        if debited is not None:
            orders = [o for o in orders if (o.customer_debited_date is not None) == debited]
        if incident is True or (
            channels is not None and params.get("only_null_channel", "").lower() != "true"
        ):
            orders = []  # sandbox orders have no incidents and no channel
        if workflow is not None and workflow != PAYMENT_WORKFLOW:
            orders = []
        orders.sort(key=lambda o: (o.created, o.order_id), reverse=descending)
        offset = page_offset(request, state, shop, "OR11", offset)
        page = orders[offset : offset + size] if size is not None else orders[offset:]
        body = {"orders": [order_json(state, o, tax_mode) for o in page], "total_count": len(orders)}
    return MiraklJSONResponse(body)


@router.put("/api/orders/refund")
async def or28_refund(request: Request) -> Response:
    state, shop = context(request)
    body = as_object(parse_json_body(await request.body()), "body")
    tax_mode = get_str(body, "order_tax_mode", "body")
    if tax_mode is not None and tax_mode not in ("TAX_INCLUDED", "TAX_EXCLUDED"):
        raise bad_request(f"The order_tax_mode '{tax_mode}' is invalid")
    items = as_list(body.get("refunds"), "refunds")
    if not items:
        raise bad_request("refunds must not be empty")
    requests: list[RefundInput] = []
    for index, raw in enumerate(items):
        where = f"refunds[{index}]"
        item = as_object(raw, where)
        requests.append(
            RefundInput(
                order_line_id=get_str(item, "order_line_id", where, required=True) or "",
                amount=get_decimal(item, "amount", where, required=True) or Decimal(0),
                shipping_amount=get_decimal(item, "shipping_amount", where, required=True) or Decimal(0),
                quantity=get_int(item, "quantity", where) or 0,
                reason_code=get_str(item, "reason_code", where, required=True) or "",
                currency=get_str(item, "currency_iso_code", where),
            )
        )
    with state.locked():
        reasons = dict(state.config.reasons.get("REFUND", ()))
        lines: dict[str, tuple[Order, OrderLine]] = {
            line.line_id: (order, line)
            for order in state.orders.values()
            if order.shop_id == shop.shop_id
            for line in order.lines
        }
        pending: dict[str, tuple[Decimal, Decimal]] = {}
        for req in requests:
            if req.order_line_id not in lines:
                raise not_found(f"The order line {req.order_line_id} does not exist")
            order, line = lines[req.order_line_id]
            before = pending.get(line.line_id, (Decimal(0), Decimal(0)))
            check_refund(
                order,
                line,
                req,
                already_requested=before,
                refund_reasons=reasons,
                platform_currency=state.config.platform_currency,
            )
            pending[line.line_id] = (before[0] + req.amount, before[1] + req.shipping_amount)
        now = state.now()
        groups: dict[str, str] = {}
        created = []
        for req in requests:
            order, line = lines[req.order_line_id]
            group = groups.setdefault(order.order_id, str(state.next_number("order_refund", 8001)))
            refund = Refund(
                refund_id=str(state.next_number("refund", 9001)),
                order_refund_id=group,
                amount=req.amount,
                shipping_amount=req.shipping_amount,
                quantity=req.quantity,
                reason_code=req.reason_code,
                created=now,
                settle_at=now + state.config.refund_delay,
            )
            add_refund(order, line, refund, now)
            created.append(refund_created_view(refund, line, order.currency))
    return MiraklJSONResponse({"order_tax_mode": tax_mode or "TAX_INCLUDED", "refunds": created})


@router.put("/api/orders/{order_id}/accept")
async def or21_accept(request: Request, order_id: str) -> Response:
    state, shop = context(request)
    body = parse_json_body(await request.body())
    if not isinstance(body, dict) or not isinstance(body.get("order_lines"), list):
        raise bad_request("order_lines must be a JSON array", code="VALIDATION_ERROR")
    with state.locked():
        order = _order_for(state, shop, order_id, code="ORDER_NOT_FOUND")
        released = accept(order, body["order_lines"], shop, state.now())
        state.release_stock(shop.shop_id, released)
    return Response(status_code=204)


@router.put("/api/orders/{order_id}/tracking")
async def or23_tracking(request: Request, order_id: str) -> Response:
    state, shop = context(request)
    body = as_object(parse_json_body(await request.body()), "body")
    data = TrackingInput(
        carrier_code=get_str(body, "carrier_code", "body") or None,
        carrier_name=get_str(body, "carrier_name", "body") or None,
        carrier_url=get_str(body, "carrier_url", "body") or None,
        tracking_number=get_str(body, "tracking_number", "body") or None,
    )
    with state.locked():
        order = _order_for(state, shop, order_id)
        tracking = resolve_tracking(data, {c.code: c for c in state.config.carriers})
        update_tracking(order, tracking, state.now())
    return Response(status_code=204)


@router.put("/api/orders/{order_id}/ship")
async def or24_ship(request: Request, order_id: str) -> Response:
    state, shop = context(request)
    with state.locked():
        order = _order_for(state, shop, order_id)
        shipments = [s for s in state.shipments.values() if s.order_id == order.order_id]
        ship(order, shipments, state.now())
    return Response(status_code=204)


@router.put("/api/orders/{order_id}/cancel")
async def or29_cancel(request: Request, order_id: str) -> Response:
    state, shop = context(request)
    with state.locked():
        order = _order_for(state, shop, order_id)
        released = cancel(order, state.now(), lambda: str(state.next_number("cancelation", 6001)))
        state.release_stock(shop.shop_id, released)
    return Response(status_code=204)


@router.post("/api/shipments")
async def st01_create(request: Request) -> Response:
    state, shop = context(request)
    if not shop.multi_shipment:
        raise bad_request("Multi-shipment is not enabled for this shop: use OR23 / OR24")
    body = as_object(parse_json_body(await request.body()), "body")
    items = as_list(body.get("shipments"), "shipments")
    if not items or len(items) > MAX_SHIPMENTS:
        raise bad_request(f"shipments must hold between 1 and {MAX_SHIPMENTS} shipments")
    parsed = [_shipment_input(index, raw) for index, raw in enumerate(items)]
    errors: list[dict[str, object]] = []
    successes: list[dict[str, object]] = []
    with state.locked():
        carriers = {c.code: c for c in state.config.carriers}
        for order_id, lines, tracking_input, shipped, invoice in parsed:
            order = state.orders.get(order_id)
            if order is None or order.shop_id != shop.shop_id:
                errors.append({"order_id": order_id, "message": f"The order {order_id} does not exist"})
                continue
            existing = [s for s in state.shipments.values() if s.order_id == order_id]
            planned = plan_shipment(order, lines, existing)
            if isinstance(planned, str):
                errors.append({"order_id": order_id, "message": planned})
                continue
            tracking = None
            if tracking_input is not None:
                try:
                    tracking = resolve_tracking(tracking_input, carriers)
                except SandboxApiError as exc:
                    errors.append({"order_id": order_id, "message": exc.message})
                    continue
            now = state.now()
            shipment = Shipment(
                shipment_id=state.new_uuid(),
                order_id=order_id,
                shop_id=shop.shop_id,
                lines=planned,
                status=ShipmentStatus.SHIPPING,
                created=now,
                last_updated=now,
                tracking=tracking,
                invoice_reference=invoice,
            )
            state.shipments[shipment.shipment_id] = shipment
            order.last_updated = now
            if shipped:
                mark_shipment_shipped(order, shipment, now)
            successes.append(shipment_view(shipment))
    return MiraklJSONResponse({"shipment_errors": errors, "shipment_success": successes}, status_code=201)


def _shipment_input(
    index: int, raw: object
) -> tuple[str, list[ShipmentLineInput], TrackingInput | None, bool, str | None]:
    where = f"shipments[{index}]"
    item = as_object(raw, where)
    order_id = get_str(item, "order_id", where, required=True) or ""
    raw_lines = as_list(item.get("shipment_lines"), f"{where}.shipment_lines")
    if not raw_lines:
        raise bad_request(f"{where}.shipment_lines must not be empty")
    lines = []
    for line_index, raw_line in enumerate(raw_lines):
        line_where = f"{where}.shipment_lines[{line_index}]"
        line = as_object(raw_line, line_where)
        quantity = get_int(line, "quantity", line_where, required=True) or 0
        if quantity < 1:
            raise bad_request(f"{line_where}.quantity must be at least 1")
        line_id = get_str(line, "order_line_id", line_where)
        offer_sku = get_str(line, "offer_sku", line_where)
        if not line_id and not offer_sku:
            raise bad_request(f"{line_where} needs an order_line_id")
        lines.append(
            ShipmentLineInput(line_id, offer_sku, quantity, get_str(line, "package_reference", line_where))
        )
    tracking = None
    if item.get("tracking") is not None:
        t = as_object(item["tracking"], f"{where}.tracking")
        tw = f"{where}.tracking"
        tracking = TrackingInput(
            carrier_code=get_str(t, "carrier_code", tw) or None,
            carrier_name=get_str(t, "carrier_name", tw) or None,
            carrier_url=get_str(t, "tracking_url", tw) or None,
            tracking_number=get_str(t, "tracking_number", tw) or None,
        )
    invoice = get_str(item, "invoice_reference", where)
    if invoice is not None and (
        len(invoice) > 255 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in invoice)
    ):
        raise bad_request(f"{where}.invoice_reference must match [0-9a-zA-Z_-]* (at most 255 characters)")
    return order_id, lines, tracking, bool(get_bool(item, "shipped", where)), invoice
