"""The order document tradelane hands to merchant systems (published in the API's OpenAPI as
``OmsOrder``), built purely from the order read model of :func:`tradelane.services.orders.get_order`.

Contracts:

* Money is an exact decimal *string* (``"19.90"``), never a float; every amount carries its currency.
* ``lines`` are the order's deliverable lines (every line except those the marketplace refused or
  cancelled), all of them: an order is handed over whole or not at all.
* ``lines[].sku`` is the merchant's SKU (after SKU mapping); ``lines[].marketplace_sku`` the SKU the
  marketplace order carried.
* ``attributes`` are the order's attributes after the channel's attribute rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from tradelane.domain.errors import ValidationError
from tradelane.domain.orders import LineType

DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
#: "2": ``state`` carries the hub's marketplace-neutral state (``to_ship``...) and ``marketplace_state``
#: the marketplace's own name for it (version "1" sent Mirakl's names in ``state``).
SCHEMA_VERSION = "2"

#: Line states (marketplace side) whose lines are not handed to the merchant system.
UNDELIVERABLE_LINE_STATES = frozenset({"REFUSED", "CANCELED", "CANCELLED"})

#: Fields an order must carry before any merchant system sees it (dotted paths into :class:`OmsOrder`;
#: ``shipping_address.name`` is satisfied by a first name, a last name or a company).
DEFAULT_REQUIRED_FIELDS: tuple[str, ...] = (
    "shipping_address.name",
    "shipping_address.street1",
    "shipping_address.city",
    "shipping_address.zip_code",
    "shipping_address.country",
    "currency",
    "lines",
)


class OmsAddress(BaseModel):
    """A postal address; any field may be null when the marketplace did not provide it."""

    model_config = ConfigDict(extra="forbid")

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    street1: str | None = None
    street2: str | None = None
    zip_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = Field(default=None, description="Country code or name as the marketplace gave it.")
    phone: str | None = None
    email: str | None = None


class OmsOrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line_id: str = Field(description="The marketplace's order line id.")
    sku: str = Field(description="The merchant's SKU (after SKU mapping).")
    marketplace_sku: str = Field(description="The SKU the marketplace order line carried.")
    offer_sku: str = Field(description="The seller's offer SKU on the marketplace.")
    title: str | None = None
    quantity: int = Field(ge=1)
    unit_price: str = Field(pattern=DECIMAL_PATTERN, description='Exact decimal, e.g. "19.90".')
    line_total: str = Field(pattern=DECIMAL_PATTERN, description="unit_price × quantity, exact.")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217 code.")
    type: LineType = Field(description="`textual`: described by sku/title, not bound to a product id.")


class OmsOrder(BaseModel):
    """One marketplace order, as POSTed to a merchant system (``Idempotency-Key: order-<id>``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = Field(default=SCHEMA_VERSION, description="Version of this document's shape.")
    id: int = Field(description="tradelane's order id.")
    ref: str = Field(description="`CHANNEL:MARKETPLACE_ORDER_ID`, accepted wherever an order REF is.")
    channel: str = Field(description="Name of the marketplace channel the order came from.")
    marketplace_order_id: str
    state: str = Field(
        description="Where the order stands on its marketplace, in the hub's marketplace-neutral terms "
        "(to_ship, partially_shipped...; see tradelane.domain.orders.OrderState)."
    )
    marketplace_state: str | None = Field(
        default=None, description="The marketplace's own name for the state (SHIPPING, UNSHIPPED...)."
    )
    currency: str = Field(min_length=3, max_length=3)
    total_price: str = Field(pattern=DECIMAL_PATTERN, description="Sum of the lines' totals, exact.")
    attributes: dict[str, str] = Field(description="Order attributes after the channel's attribute rules.")
    customer_message: str | None = None
    shipping_address: OmsAddress | None = None
    billing_address: OmsAddress | None = None
    lines: list[OmsOrderLine]
    created_at: datetime = Field(description="When the order was created on the marketplace (UTC).")
    test: bool = Field(
        default=False,
        description="A test order (`tradelane orders create-test`): it exists on no marketplace and nothing "
        "about it is ever sent to one; process it as far as you like, then cancel or discard it.",
    )


class InvalidOrderDocument(ValidationError):
    """The order cannot be expressed as an :class:`OmsOrder`; ``fields`` are ``path: problem`` texts."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__("invalid field(s): " + "; ".join(fields))
        self.fields = fields


def _decimal(value: Any) -> str:
    """Exact, without exponent or trailing zeros (the store keeps amounts that way): 9.0 -> "9"."""
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    amount = amount.quantize(Decimal(1)) if amount == amount.to_integral() else amount.normalize()
    return format(amount, "f")


def _address(value: Mapping[str, Any] | None) -> OmsAddress | None:
    if not value:
        return None
    known = OmsAddress.model_fields
    return OmsAddress(**{k: (None if v is None else str(v)) for k, v in value.items() if k in known})


def deliverable_lines(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lines handed over: all but those refused or cancelled on the marketplace."""
    return [
        line
        for line in order["lines"]
        if str(line.get("state") or "").upper() not in UNDELIVERABLE_LINE_STATES
    ]


def build_oms_order(
    order: Mapping[str, Any],
    attributes: Mapping[str, str],
    *,
    sku_map: Mapping[str, str] | None = None,
) -> OmsOrder:
    """The document for ``order`` (a :func:`~tradelane.services.orders.get_order` dict).

    ``sku_map`` maps a line's marketplace SKU to the merchant's SKU; unmapped SKUs pass unchanged
    (validation of SKUs happens before, see :mod:`tradelane.services.order_delivery`). Raises
    :class:`InvalidOrderDocument` when a value does not fit the document (e.g. a zero quantity)."""
    try:
        return _build(order, attributes, sku_map or {})
    except PydanticValidationError as exc:
        fields = [f"{'.'.join(str(p) for p in e['loc']) or 'order'}: {e['msg']}" for e in exc.errors()]
        raise InvalidOrderDocument(fields) from None
    except (KeyError, TypeError, ArithmeticError, ValueError) as exc:
        raise InvalidOrderDocument([f"{type(exc).__name__}: {exc}"]) from None


def _build(order: Mapping[str, Any], attributes: Mapping[str, str], mapping: Mapping[str, str]) -> OmsOrder:
    lines: list[dict[str, Any]] = []
    total = Decimal(0)
    for line in deliverable_lines(order):
        raw_price = line["unit_price"]
        unit_price = raw_price if isinstance(raw_price, Decimal) else Decimal(str(raw_price))
        line_total = unit_price * int(line["quantity"])
        total += line_total
        lines.append(
            {
                "line_id": str(line["line_id"]),
                "sku": mapping.get(line["sku"], line["sku"]),
                "marketplace_sku": line["sku"],
                "offer_sku": line["offer_sku"],
                "title": line.get("title"),
                "quantity": int(line["quantity"]),
                "unit_price": _decimal(unit_price),
                "line_total": _decimal(line_total),
                "currency": line["currency"],
                "type": line.get("type") or LineType.TEXTUAL.value,
            }
        )
    # Validated as one document, so a problem's path names the line (``lines.1.quantity``).
    return OmsOrder.model_validate(
        {
            "id": int(order["id"]),
            "ref": f"{order['channel']}:{order['marketplace_order_id']}",
            "channel": order["channel"],
            "marketplace_order_id": order["marketplace_order_id"],
            "state": str(order["state"]),
            "marketplace_state": order.get("marketplace_state"),
            "currency": order["currency"],
            "total_price": _decimal(total),
            "attributes": {str(k): str(v) for k, v in attributes.items()},
            "customer_message": order.get("customer_message"),
            "shipping_address": _address(order.get("shipping_address")),
            "billing_address": _address(order.get("billing_address")),
            "lines": lines,
            "created_at": order["created_at"],
            "test": bool(order.get("is_test", False)),
        }
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def missing_fields(document: OmsOrder, required: Iterable[str] = DEFAULT_REQUIRED_FIELDS) -> list[str]:
    """The required dotted paths that are absent or blank in ``document`` (sorted, no duplicates).

    A missing parent (e.g. no shipping address at all) is reported once, as the parent's path."""
    missing: set[str] = set()
    for path in required:
        head, _, rest = path.partition(".")
        value = getattr(document, head, None)
        if not rest:
            if _blank(value):
                missing.add(path)
            continue
        if value is None:
            missing.add(head)
            continue
        if rest == "name":
            names = (
                getattr(value, "first_name", None),
                getattr(value, "last_name", None),
                getattr(value, "company", None),
            )
            if all(_blank(n) for n in names):
                missing.add(path)
        elif _blank(getattr(value, rest, None)):
            missing.add(path)
    return sorted(missing)
