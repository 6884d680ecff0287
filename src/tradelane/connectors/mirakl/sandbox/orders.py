"""The order state machine of the seller view, as pure functions over :class:`Order` records.

Time comes in as ``now``; transitions driven by time (staging, acceptance deadline, payment delay,
refund settlement) are applied lazily by :func:`settle`, each at the instant it was due, so
``last_updated_date`` is the time of the transition, not of the call that noticed it.

Operations that free reserved stock (refusal, cancellation) return ``(offer_sku, quantity)`` pairs
for the caller to give back to the offers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError, bad_request
from tradelane.connectors.mirakl.sandbox.models import (
    Cancelation,
    Carrier,
    LineState,
    Order,
    OrderLine,
    OrderState,
    Refund,
    RefundState,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    Shop,
    Tracking,
)

Released = list[tuple[str, int]]

AUTO_CANCEL_REASON = (
    "ACCEPTANCE_DEADLINE_EXCEEDED",
    "The order was not accepted before its acceptance deadline",
)
PAYMENT_REFUSED_REASON = ("PAYMENT_REFUSED", "The customer payment was refused")

#: Line states that follow the order's state (refused / canceled / refunded lines stay put).
_FOLLOWING = frozenset(
    {
        LineState.STAGING,
        LineState.WAITING_ACCEPTANCE,
        LineState.WAITING_DEBIT,
        LineState.WAITING_DEBIT_PAYMENT,
        LineState.SHIPPING,
        LineState.SHIPPED,
        LineState.TO_COLLECT,
        LineState.RECEIVED,
    }
)
_REFUNDABLE = frozenset({LineState.SHIPPED, LineState.TO_COLLECT, LineState.RECEIVED})
#: Transitions the operator / customer side drives after shipment (control API only).
OPERATOR_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.SHIPPED: frozenset({OrderState.TO_COLLECT, OrderState.RECEIVED, OrderState.CLOSED}),
    OrderState.TO_COLLECT: frozenset({OrderState.RECEIVED, OrderState.CLOSED}),
    OrderState.RECEIVED: frozenset({OrderState.CLOSED}),
}


def active_lines(order: Order) -> list[OrderLine]:
    return [line for line in order.lines if line.state in _FOLLOWING]


def move(order: Order, state: OrderState, at: datetime, reason: tuple[str, str] | None = None) -> None:
    """Put the order (and its lines still following it) in ``state`` as of ``at``."""
    order.state = state
    order.last_updated = at
    order.state_reason_code, order.state_reason_label = reason if reason else (None, None)
    line_state = LineState(state.value)
    for line in order.lines:
        if line.state in _FOLLOWING:
            line.state = line_state
            line.last_updated = at
            if reason:
                line.state_reason_code, line.state_reason_label = reason


def settle(order: Order, now: datetime) -> Released:
    """Apply every time-driven transition due at ``now``."""
    released: Released = []
    while True:
        if order.state is OrderState.STAGING and now >= order.created + order.staging_delay:
            move(order, OrderState.WAITING_ACCEPTANCE, order.created + order.staging_delay)
        elif order.state is OrderState.WAITING_ACCEPTANCE and now >= order.acceptance_deadline:
            released += [(line.offer_sku, line.quantity) for line in active_lines(order)]
            _cancel_lines(order, order.acceptance_deadline, reason_code=AUTO_CANCEL_REASON[0], new_id=None)
            move(order, OrderState.CANCELED, order.acceptance_deadline, AUTO_CANCEL_REASON)
        elif order.state is OrderState.WAITING_DEBIT and order.accepted_at is not None:
            due = order.accepted_at + order.payment_delay / 2
            if now < due:
                break
            move(order, OrderState.WAITING_DEBIT_PAYMENT, due)
        elif order.state is OrderState.WAITING_DEBIT_PAYMENT and order.accepted_at is not None:
            due = order.accepted_at + order.payment_delay
            if now < due:
                break
            if order.payment_refused:
                released += [(line.offer_sku, line.quantity) for line in active_lines(order)]
                move(order, OrderState.CANCELED, due, PAYMENT_REFUSED_REASON)
            else:
                move(order, OrderState.SHIPPING, due)
                order.customer_debited_date = due
                order.shipping_deadline = due + timedelta(days=order.leadtime_to_ship)
                for line in active_lines(order):
                    line.debited_date = due
        else:
            break
    for line in order.lines:
        for refund in line.refunds:
            if refund.state is RefundState.WAITING_REFUND and refund.settle_at and now >= refund.settle_at:
                refund.state = RefundState.REFUNDED
                order.last_updated = max(order.last_updated, refund.settle_at)
                line.last_updated = max(line.last_updated, refund.settle_at)
    return released


# --- OR21 ---------------------------------------------------------------------------------------


def accept(order: Order, decisions: Sequence[object], shop: Shop, now: datetime) -> Released:
    """OR21: accept / refuse every line of a WAITING_ACCEPTANCE order, once.

    ``decisions`` is the raw ``order_lines`` array; errors carry the codes the spec documents.
    """
    if order.state is not OrderState.WAITING_ACCEPTANCE:
        raise bad_request(
            f"The order {order.order_id} is in state {order.state.value}, not WAITING_ACCEPTANCE",
            code="ORDER_INVALID_STATE",
        )
    by_id = {line.line_id: line for line in order.lines}
    chosen: dict[str, bool] = {}
    for index, item in enumerate(decisions):
        if item is None:
            raise bad_request("The order lines list contains a null element", code="ORDER_LINE_NULL_ELEMENT")
        if not isinstance(item, dict):
            raise bad_request(f"order_lines[{index}] must be an object", code="VALIDATION_ERROR")
        line_id, accepted = item.get("id"), item.get("accepted")
        if not isinstance(line_id, str) or not line_id:
            raise bad_request(f"order_lines[{index}].id is required", code="VALIDATION_ERROR")
        if not isinstance(accepted, bool):
            raise bad_request(f"order_lines[{index}].accepted must be a boolean", code="VALIDATION_ERROR")
        if line_id in chosen:
            raise bad_request(f"The order line {line_id} is given twice", code="ORDER_LINE_DUPLICATE_ID")
        if line_id not in by_id:
            raise bad_request(
                f"The order line {line_id} does not exist or is not associated with the order",
                code="ORDER_LINE_NOT_FOUND",
            )
        chosen[line_id] = accepted
    missing = [line_id for line_id in by_id if line_id not in chosen]
    if missing:
        raise bad_request(
            f"Some order lines are missing from the acceptance decision: {', '.join(missing)}",
            code="ORDER_LINE_ACCEPTANCE_DECISION_MISSING",
        )
    if not shop.partial_acceptance and len(set(chosen.values())) > 1:
        raise bad_request(
            "Partial acceptance is disabled for this shop", code="ORDER_PARTIAL_ACCEPTANCE_DISABLED"
        )
    released: Released = []
    for line_id, accepted in chosen.items():
        line = by_id[line_id]
        if not accepted:
            line.state = LineState.REFUSED
            line.last_updated = now
            released.append((line.offer_sku, line.quantity))
    order.acceptance_decision_date = now
    if not active_lines(order):
        move(order, OrderState.REFUSED, now)
    else:
        order.accepted_at = now
        move(order, OrderState.WAITING_DEBIT, now)
    return released


# --- OR23 / OR24 --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackingInput:
    carrier_code: str | None
    carrier_name: str | None
    carrier_url: str | None
    tracking_number: str | None


def resolve_tracking(data: TrackingInput, carriers: Mapping[str, Carrier]) -> Tracking:
    """Check tracking data against SH21: a registered ``carrier_code``, or a free ``carrier_name``.

    Raises a 400 naming the problem; returns the tracking with its URL (computed for registered
    carriers, as given for unregistered ones).
    """
    if data.carrier_code:
        carrier = carriers.get(data.carrier_code)
        if carrier is None:
            raise bad_request(f"The carrier with code '{data.carrier_code}' does not exist")
        if carrier.needs_tracking_number and not data.tracking_number:
            raise bad_request(f"A tracking number is mandatory for the carrier '{carrier.code}'")
        url = None
        if carrier.tracking_url:
            url = carrier.tracking_url.replace("{trackingId}", data.tracking_number or "")
        return Tracking(carrier.code, carrier.label, url, data.tracking_number)
    if not data.carrier_name:
        raise bad_request(
            "Either carrier_code (registered carrier) or carrier_name (unregistered) is required"
        )
    return Tracking(None, data.carrier_name, data.carrier_url, data.tracking_number)


def update_tracking(order: Order, tracking: Tracking, now: datetime) -> None:
    """OR23: allowed while the order is SHIPPING (or already SHIPPED, to correct it)."""
    if order.state not in (OrderState.SHIPPING, OrderState.SHIPPED):
        raise bad_request(
            f"The order {order.order_id} is in state {order.state.value}: tracking needs SHIPPING"
        )
    order.tracking = tracking
    order.last_updated = now


def ship(order: Order, shipments: Sequence[Shipment], now: datetime) -> None:
    """OR24: a SHIPPING order becomes SHIPPED (remaining quantities and open shipments included)."""
    if order.state is not OrderState.SHIPPING:
        raise bad_request(f"The order {order.order_id} is in state {order.state.value}, not SHIPPING")
    for line in active_lines(order):
        line.shipped_quantity = line.quantity
        line.shipped_date = now
    for shipment in shipments:
        if shipment.status is ShipmentStatus.SHIPPING:
            shipment.status = ShipmentStatus.SHIPPED
            shipment.shipped_date = now
            shipment.last_updated = now
    order.shipped_date = now
    move(order, OrderState.SHIPPED, now)


# --- OR29 / OR28 --------------------------------------------------------------------------------


def can_cancel(order: Order) -> bool:
    return order.state is OrderState.SHIPPING and not any(line.shipped_quantity for line in order.lines)


def cancel(order: Order, now: datetime, new_id: Callable[[], str]) -> Released:
    """OR29: cancel a whole SHIPPING order that has not shipped anything yet."""
    if not can_cancel(order):
        raise bad_request(f"The order {order.order_id} cannot be canceled in state {order.state.value}")
    released = [(line.offer_sku, line.quantity) for line in active_lines(order)]
    _cancel_lines(order, now, reason_code=None, new_id=new_id)
    move(order, OrderState.CANCELED, now)
    return released


#: The reason code Mirakl gives a cancellation the customer asked for (RE01 ``CANCEL_CUSTOMER_REQUEST``).
CUSTOMER_CANCEL_REASON = "CANCEL_CUSTOMER_REQUEST"
_CUSTOMER_CANCELLABLE = frozenset(
    {
        OrderState.WAITING_ACCEPTANCE,
        OrderState.WAITING_DEBIT,
        OrderState.WAITING_DEBIT_PAYMENT,
        OrderState.SHIPPING,
    }
)


def customer_cancel(
    order: Order, now: datetime, new_id: Callable[[], str], line_ids: Collection[str] | None = None
) -> Released:
    """The customer cancels the whole order (``line_ids`` None) or some of its lines, as the operator
    does on the customer's behalf, before anything shipped (control API only, no seller call).

    Each cancelled line gets a cancelation record (reason ``CANCEL_CUSTOMER_REQUEST``) and the state
    CANCELED; the order becomes CANCELED when no line is left following it, otherwise only its
    ``last_updated`` moves (so OR11's ``start_update_date`` filter finds it). Raises
    :class:`SandboxApiError` (409) when the order cannot be cancelled any more or a line id is not one
    of its active lines."""
    if order.state not in _CUSTOMER_CANCELLABLE or any(line.shipped_quantity for line in order.lines):
        raise SandboxApiError(
            409, f"The order {order.order_id} cannot be canceled by the customer in state {order.state.value}"
        )
    active = active_lines(order)
    if line_ids is None:
        targets = active
    else:
        wanted = set(line_ids)
        unknown = wanted - {line.line_id for line in active}
        if unknown or not wanted:
            raise SandboxApiError(
                409,
                f"No active line {', '.join(sorted(unknown)) or '(none given)'} in order {order.order_id}",
            )
        targets = [line for line in active if line.line_id in wanted]
    for line in targets:
        line.cancelations.append(
            Cancelation(new_id(), line.price, line.shipping_price, line.quantity, CUSTOMER_CANCEL_REASON, now)
        )
        line.state = LineState.CANCELED
        line.last_updated = now
    if active_lines(order):
        order.last_updated = now
    else:
        move(order, OrderState.CANCELED, now)
    return [(line.offer_sku, line.quantity) for line in targets]


def _cancel_lines(
    order: Order, at: datetime, *, reason_code: str | None, new_id: Callable[[], str] | None
) -> None:
    for line in active_lines(order):
        if new_id is not None:
            line.cancelations.append(
                Cancelation(new_id(), line.price, line.shipping_price, line.quantity, reason_code, at)
            )
        line.state = LineState.CANCELED
        line.last_updated = at


def can_refund(line: OrderLine) -> bool:
    """Whether the line's full amount can still be refunded (shipped, nothing refunded yet)."""
    return line.state in _REFUNDABLE and not line.refunds


@dataclass(frozen=True)
class RefundInput:
    order_line_id: str
    amount: Decimal
    shipping_amount: Decimal
    quantity: int
    reason_code: str
    currency: str | None


def check_refund(
    order: Order,
    line: OrderLine,
    request: RefundInput,
    *,
    already_requested: tuple[Decimal, Decimal],
    refund_reasons: Mapping[str, str],
    platform_currency: str,
) -> None:
    """Reject a refund Mirakl would reject (state, amounts, reason, currency); 400 otherwise silent.

    ``already_requested`` holds the (amount, shipping) of earlier refunds on the same line in the
    same call, so a call cannot over-refund a line through several entries.
    """
    where = f"Refund of order line {line.line_id}"
    if line.state not in _REFUNDABLE:
        raise bad_request(f"{where}: the order line is in state {line.state.value} and cannot be refunded")
    if request.reason_code not in refund_reasons:
        raise bad_request(f"{where}: the reason code '{request.reason_code}' is not a refund reason")
    if request.currency is not None and request.currency != order.currency:
        raise bad_request(
            f"{where}: the currency {request.currency} is not the order currency {order.currency}"
        )
    if request.currency is None and order.currency != platform_currency:
        raise bad_request(f"{where}: currency_iso_code is required for an order in {order.currency}")
    if request.amount < 0 or request.shipping_amount < 0:
        raise bad_request(f"{where}: amounts must not be negative")
    if request.amount == 0 and request.shipping_amount == 0:
        raise bad_request(f"{where}: nothing to refund")
    if request.quantity < 0 or request.quantity > line.quantity:
        raise bad_request(f"{where}: the quantity must be between 0 and {line.quantity}")
    remaining = line.price - line.refunded_amount - already_requested[0]
    if request.amount > remaining:
        raise bad_request(f"{where}: the amount {request.amount} exceeds the refundable amount {remaining}")
    remaining_shipping = line.shipping_price - line.refunded_shipping - already_requested[1]
    if request.shipping_amount > remaining_shipping:
        raise bad_request(
            f"{where}: the shipping amount {request.shipping_amount} exceeds {remaining_shipping}"
        )


def add_refund(order: Order, line: OrderLine, refund: Refund, now: datetime) -> None:
    line.refunds.append(refund)
    line.last_updated = now
    if line.refunded_amount >= line.price:
        line.state = LineState.REFUNDED
    order.last_updated = now


def fully_refunded(order: Order) -> bool:
    refunded = [line for line in order.lines if line.refunds]
    live = [line for line in order.lines if line.state not in (LineState.REFUSED, LineState.CANCELED)]
    return bool(refunded) and all(line.refunded_amount >= line.price for line in live)


# --- ST01 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShipmentLineInput:
    order_line_id: str | None
    offer_sku: str | None
    quantity: int
    package_reference: str | None


def plan_shipment(
    order: Order, lines: Sequence[ShipmentLineInput], existing: Sequence[Shipment]
) -> list[ShipmentLine] | str:
    """Check ST01 shipment lines against what is left to ship; an error message when refused."""
    if order.state is not OrderState.SHIPPING:
        return f"The order {order.order_id} is in state {order.state.value}, not SHIPPING"
    assigned: dict[str, int] = {}
    for shipment in existing:
        for sl in shipment.lines:
            assigned[sl.order_line_id] = assigned.get(sl.order_line_id, 0) + sl.quantity
    planned: list[ShipmentLine] = []
    for item in lines:
        line = _find_line(order, item)
        if line is None:
            ref = item.order_line_id or item.offer_sku
            return f"The order line '{ref}' does not belong to the order {order.order_id}"
        if line.state is not LineState.SHIPPING:
            return f"The order line {line.line_id} is in state {line.state.value}, not SHIPPING"
        left = line.quantity - assigned.get(line.line_id, 0)
        if item.quantity > left:
            return (
                f"The quantity {item.quantity} exceeds the {left} item(s) left to ship on line {line.line_id}"
            )
        assigned[line.line_id] = assigned.get(line.line_id, 0) + item.quantity
        planned.append(ShipmentLine(line.line_id, line.offer_sku, item.quantity, item.package_reference))
    return planned


def _find_line(order: Order, item: ShipmentLineInput) -> OrderLine | None:
    for line in order.lines:
        if item.order_line_id is not None and line.line_id == item.order_line_id:
            return line
        if item.order_line_id is None and item.offer_sku is not None and line.offer_sku == item.offer_sku:
            return line
    return None


def mark_shipment_shipped(order: Order, shipment: Shipment, now: datetime) -> None:
    """A shipped shipment ships its quantities; once everything is shipped the order is SHIPPED."""
    shipment.status = ShipmentStatus.SHIPPED
    shipment.shipped_date = now
    shipment.last_updated = now
    by_id = {line.line_id: line for line in order.lines}
    for sl in shipment.lines:
        line = by_id[sl.order_line_id]
        line.shipped_quantity += sl.quantity
        line.shipped_date = now
        line.last_updated = now
    order.last_updated = now
    if all(line.shipped_quantity >= line.quantity for line in active_lines(order)):
        order.shipped_date = now
        move(order, OrderState.SHIPPED, now)


def operator_transition(order: Order, target: OrderState, now: datetime) -> None:
    """Customer / operator side moves after shipment: TO_COLLECT, RECEIVED, CLOSED."""
    allowed = OPERATOR_TRANSITIONS.get(order.state, frozenset())
    if target not in allowed:
        raise SandboxApiError(
            409, f"Order {order.order_id} cannot go from {order.state.value} to {target.value}"
        )
    move(order, target, now)
    if target is OrderState.RECEIVED:
        for line in order.lines:
            if line.state is LineState.RECEIVED:
                line.received_date = now
