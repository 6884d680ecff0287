"""Pure mappings between Mirakl seller-API payloads and tradelane's domain (no I/O, no clock).

* :func:`order_from_mirakl` — one OR11 order → :class:`~tradelane.domain.orders.MarketplaceOrder`, and
  :func:`add_customer_messages` to fold M01 customer messages into it;
* :func:`offer_csv` — products → an OF01 offers import file (``;``-separated CSV);
* :func:`offer_update_json` — products → the ``offers`` array of an OF24 request;
* :func:`error_report_rows_to_offer_errors` — OF03 error-report rows → offer SKU → readable errors.

Contract source: ``shared/specs/mirakl/mirakl-mmp-seller-openapi.json`` (beside the project) (schemas
``OR11_Response_200_Orders``, ``OF24_Request``, the OF01 file description).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from tradelane.connectors.mirakl._payload import (
    as_object,
    child,
    format_decimal,
    opt_datetime,
    opt_decimal,
    opt_list,
    opt_str,
    req_datetime,
    req_decimal,
    req_int,
    req_list,
    req_str,
)
from tradelane.connectors.mirakl.errors import MiraklSchemaError
from tradelane.domain.catalog import Product
from tradelane.domain.currencies import ISO_4217
from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine, OrderState

#: Order attribute holding everything the customer wrote for the order (custom fields / personalisation),
#: gathered at order level even when Mirakl carries it on a line.
ORDER_MESSAGE_ATTRIBUTE = ":MiraklOrderMessage"


class MiraklOrderState(StrEnum):
    """Mirakl's ``order_state`` values (OR11 schema); the hub's neutral state is :data:`ORDER_STATES`'s."""

    STAGING = "STAGING"
    WAITING_ACCEPTANCE = "WAITING_ACCEPTANCE"
    WAITING_DEBIT = "WAITING_DEBIT"
    WAITING_DEBIT_PAYMENT = "WAITING_DEBIT_PAYMENT"
    SHIPPING = "SHIPPING"
    SHIPPED = "SHIPPED"
    TO_COLLECT = "TO_COLLECT"
    RECEIVED = "RECEIVED"
    CLOSED = "CLOSED"
    REFUSED = "REFUSED"
    CANCELED = "CANCELED"


#: Mirakl's order state → the hub's neutral :class:`~tradelane.domain.orders.OrderState`. The ONE
#: table (every :class:`MiraklOrderState` is a key; the raw name is kept as ``raw_state``). TO_COLLECT
#: (waiting in a pick-up point) counts as shipped: the goods left the seller.
ORDER_STATES: Mapping[MiraklOrderState, OrderState] = MappingProxyType(
    {
        MiraklOrderState.STAGING: OrderState.PENDING,
        MiraklOrderState.WAITING_ACCEPTANCE: OrderState.AWAITING_ACCEPTANCE,
        MiraklOrderState.WAITING_DEBIT: OrderState.AWAITING_PAYMENT,
        MiraklOrderState.WAITING_DEBIT_PAYMENT: OrderState.AWAITING_PAYMENT,
        MiraklOrderState.SHIPPING: OrderState.TO_SHIP,
        MiraklOrderState.SHIPPED: OrderState.SHIPPED,
        MiraklOrderState.TO_COLLECT: OrderState.SHIPPED,
        MiraklOrderState.RECEIVED: OrderState.DELIVERED,
        MiraklOrderState.CLOSED: OrderState.CLOSED,
        MiraklOrderState.REFUSED: OrderState.REFUSED,
        MiraklOrderState.CANCELED: OrderState.CANCELLED,
    }
)

#: ``order_line_state`` values of the OR11 schema (order states plus the two line-only ones). Line
#: states are kept as Mirakl names them.
ORDER_LINE_STATES: frozenset[str] = frozenset(
    {state.value for state in MiraklOrderState} | {"INCIDENT_OPEN", "REFUNDED"}
)


def neutral_state(raw: str) -> OrderState:
    """The neutral state of a Mirakl ``order_state`` (``ValueError`` for a name Mirakl does not define)."""
    return ORDER_STATES[MiraklOrderState(raw)]


# --------------------------------------------------------------------------------------------- orders


def order_from_mirakl(payload: Mapping[str, Any], *, path: str = "order") -> MarketplaceOrder:
    """Map one element of OR11 ``orders`` to a :class:`MarketplaceOrder` (``raw`` is ``payload``).

    Raises :class:`~.errors.MiraklSchemaError` (a ``PermanentError``) naming the field path (``path`` is
    the prefix, e.g. ``orders[3]``) when a field tradelane needs is missing or has the wrong type, or an
    order/line state is not one of the schema's values. Addresses are ``None`` while Mirakl withholds
    them (before SHIPPING, or before acceptance depending on the platform). ``Address.country`` is
    Mirakl's ISO 3166-1 *alpha-3* ``country_iso_code`` (falling back to the free-text ``country``).
    Every order/line custom field (``order_additional_fields``, ``order_line_additional_fields``) is
    kept in ``attributes`` and also summarised, one ``code: value`` per line, in
    ``attributes[ORDER_MESSAGE_ATTRIBUTE]`` and ``customer_message``.
    """
    order = as_object(payload, path)
    order_id = req_str(order, "order_id", path)
    state_text = req_str(order, "order_state", path)
    try:
        state = neutral_state(state_text)
    except ValueError:
        raise MiraklSchemaError(child(path, "order_state"), f"unknown order state {state_text!r}") from None
    currency = req_str(order, "currency_iso_code", path)
    if currency not in ISO_4217:
        raise MiraklSchemaError(child(path, "currency_iso_code"), f"unknown currency {currency!r}")
    created_at = req_datetime(order, "created_date", path)
    updated_at = req_datetime(order, "last_updated_date", path)

    lines_path = child(path, "order_lines")
    raw_lines = req_list(order, "order_lines", path)
    if not raw_lines:
        raise MiraklSchemaError(lines_path, "an order has at least one line")
    lines = tuple(_line(item, child(lines_path, i), currency) for i, item in enumerate(raw_lines))

    attributes: dict[str, str] = {}
    message_parts: list[str] = []
    for code, value in _custom_fields(order, "order_additional_fields", path):
        attributes[f"mirakl:order_additional_fields.{code}"] = value
        message_parts.append(f"{code}: {value}")
    for i, item in enumerate(raw_lines):
        line = lines[i]
        for code, value in _custom_fields(item, "order_line_additional_fields", child(lines_path, i)):
            attributes[f"mirakl:line.{line.line_id}.{code}"] = value
            message_parts.append(f"[{line.offer_sku}] {code}: {value}")
    message = "\n".join(message_parts) or None
    if message is not None:
        attributes[ORDER_MESSAGE_ATTRIBUTE] = message

    for key in ("commercial_id", "shipping_type_code", "shipping_zone_code", "customer_notification_email"):
        text = opt_str(order, key, path)
        if text:
            attributes[f"mirakl:{key}"] = text
    for key in ("price", "shipping_price", "total_price"):
        amount = opt_decimal(order, key, path)
        if amount is not None:
            attributes[f"mirakl:{key}"] = format_decimal(amount)
    for key in ("shipping_deadline", "acceptance_decision_date"):
        moment = opt_datetime(order, key, path)
        if moment is not None:
            attributes[f"mirakl:{key}"] = moment.isoformat()
    has_message = order.get("has_customer_message")
    if isinstance(has_message, bool):
        attributes["mirakl:has_customer_message"] = "true" if has_message else "false"

    shipping_address, billing_address = None, None
    customer_value = order.get("customer")
    if customer_value is not None:
        customer_path = child(path, "customer")
        customer = as_object(customer_value, customer_path)
        shipping_path = child(customer_path, "shipping_address")
        shipping_address = _address(customer.get("shipping_address"), shipping_path)
        if shipping_address is not None:
            extra = opt_str(customer["shipping_address"], "additional_info", shipping_path)
            if extra:
                attributes["mirakl:shipping_additional_info"] = extra
        email = opt_str(order, "customer_notification_email", path)
        billing_address = _address(
            customer.get("billing_address"), child(customer_path, "billing_address"), email=email
        )

    return MarketplaceOrder(
        marketplace_order_id=order_id,
        state=state,
        raw_state=state_text,
        currency=currency,
        created_at=created_at,
        updated_at=updated_at,
        lines=lines,
        acceptance_deadline=None,  # OR11 carries no acceptance deadline (only the decision date)
        shipping_address=shipping_address,
        billing_address=billing_address,
        customer_message=message,
        attributes=attributes,
        raw=dict(order),
    )


def add_customer_messages(order: MarketplaceOrder, texts: Iterable[str]) -> MarketplaceOrder:
    """``order`` with customer-written texts (e.g. the bodies of M01 messages whose ``from_type`` is
    CUSTOMER, fetched when ``attributes["mirakl:has_customer_message"] == "true"``) appended to
    ``attributes[ORDER_MESSAGE_ATTRIBUTE]`` and ``customer_message``, one text per line(s); blank
    texts and texts already present as whole lines are skipped, so applying it twice changes nothing."""
    message = order.attributes.get(ORDER_MESSAGE_ATTRIBUTE) or order.customer_message or None
    for text in texts:
        cleaned = text.strip()
        if not cleaned:
            continue
        if message is None:
            message = cleaned
        elif f"\n{cleaned}\n" not in f"\n{message}\n":  # not already there as whole line(s)
            message = f"{message}\n{cleaned}"
    if message == (order.customer_message or None):
        return order
    attributes = dict(order.attributes)
    if message is not None:
        attributes[ORDER_MESSAGE_ATTRIBUTE] = message
    return replace(order, customer_message=message, attributes=attributes)


#: The largest quantity an order line may carry (the hub stores quantities as 32-bit integers).
MAX_LINE_QUANTITY = 2**31 - 1


def _line(value: object, path: str, currency: str) -> MarketplaceOrderLine:
    line = as_object(value, path)
    state = req_str(line, "order_line_state", path)
    if state not in ORDER_LINE_STATES:
        raise MiraklSchemaError(child(path, "order_line_state"), f"unknown order line state {state!r}")
    quantity = req_int(line, "quantity", path)
    if quantity < 0:
        raise MiraklSchemaError(child(path, "quantity"), f"negative quantity {quantity}")
    if quantity > MAX_LINE_QUANTITY:
        raise MiraklSchemaError(child(path, "quantity"), f"quantity {quantity} above {MAX_LINE_QUANTITY}")
    return MarketplaceOrderLine(
        line_id=req_str(line, "order_line_id", path),
        offer_sku=req_str(line, "offer_sku", path),
        quantity=quantity,
        unit_price=req_decimal(line, "price_unit", path),
        currency=currency,
        state=state,
        title=opt_str(line, "product_title", path) or opt_str(line, "description", path),
        product_sku=opt_str(line, "product_shop_sku", path) or opt_str(line, "product_sku", path),
    )


def _address(value: object, path: str, *, email: str | None = None) -> Address | None:
    if value is None:
        return None
    addr = as_object(value, path)
    return Address(
        first_name=opt_str(addr, "firstname", path),
        last_name=opt_str(addr, "lastname", path),
        company=opt_str(addr, "company", path),
        street1=opt_str(addr, "street_1", path),
        street2=opt_str(addr, "street_2", path),
        zip_code=opt_str(addr, "zip_code", path),
        city=opt_str(addr, "city", path),
        state=opt_str(addr, "state", path),
        country=opt_str(addr, "country_iso_code", path) or opt_str(addr, "country", path),
        phone=opt_str(addr, "phone", path),
        email=email,
    )


def _custom_fields(obj: Mapping[str, Any], key: str, path: str) -> list[tuple[str, str]]:
    """``[{code, type, value}]`` → ``[(code, text)]``; list values (MULTIPLE_VALUES_LIST) joined by ``, ``."""
    fields_path = child(path, key)
    result: list[tuple[str, str]] = []
    for i, item in enumerate(opt_list(obj, key, path)):
        item_path = child(fields_path, i)
        entry = as_object(item, item_path)
        code = req_str(entry, "code", item_path)
        value = entry.get("value")
        if value is None:
            continue
        if isinstance(value, list):
            text = ", ".join(
                _scalar_text(v, child(child(item_path, "value"), j)) for j, v in enumerate(value)
            )
        else:
            text = _scalar_text(value, child(item_path, "value"))
        if text:
            result.append((code, text))
    return result


def _scalar_text(value: object, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, float):
        return repr(value)
    raise MiraklSchemaError(path, "expected a text, number or boolean value")


# --------------------------------------------------------------------------------------------- offers


class OfferImportMode(StrEnum):
    """OF01 ``import_mode``. ``PARTIAL_UPDATE`` is deprecated by Mirakl but still accepted."""

    NORMAL = "NORMAL"
    REPLACE = "REPLACE"
    PARTIAL_UPDATE = "PARTIAL_UPDATE"


#: Standard OF01 columns tradelane writes, in order; custom fields follow.
OFFER_CSV_COLUMNS: tuple[str, ...] = (
    "sku",
    "product-id",
    "product-id-type",
    "price",
    "quantity",
    "state",
    "logistic-class",
    "leadtime-to-ship",
    "update-delete",
)


@dataclass(frozen=True, slots=True)
class MiraklOfferSettings:
    """Per-channel rules turning a catalog :class:`Product` into a Mirakl offer.

    * ``sku_template`` — offer SKU from the product SKU; must contain ``{sku}`` exactly once
      (``"ACME-{sku}"`` prefixes). :meth:`product_sku` inverts it.
    * ``gtin_id_type`` — ``product-id-type`` when the product has a GTIN (then ``product-id`` = GTIN).
    * ``fallback_id_type`` — type used without GTIN (``product-id`` = product SKU); ``None`` makes a
      missing GTIN a blocker.
    * ``state_code`` — offer condition code (Mirakl's default "11" is *new*).
    * ``logistic_class`` / ``leadtime_to_ship`` — sent when set (OF24 resets unsent fields).
    * ``currency`` — the shop currency; a product priced in another currency is a blocker.
    * ``custom_fields`` — Mirakl offer custom-field code → product attribute name, or one of the
      product's own fields prefixed with ``:`` (``":parent_sku"`` carries the variant grouping key,
      ``":brand"``, ``":title"``...).
    """

    sku_template: str = "{sku}"
    gtin_id_type: str = "EAN"
    fallback_id_type: str | None = "SHOP_SKU"
    state_code: str = "11"
    logistic_class: str | None = None
    leadtime_to_ship: int | None = None
    currency: str | None = None
    custom_fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        template = self.sku_template
        rest = template.replace("{sku}", "", 1)
        if "{sku}" not in template or "{" in rest or "}" in rest:
            raise ValueError(
                f"sku_template must contain '{{sku}}' exactly once and no other braces: {template!r}"
            )
        if not self.state_code.strip():
            raise ValueError("state_code must not be empty")
        if not self.gtin_id_type.strip():
            raise ValueError("gtin_id_type must not be empty")
        if self.leadtime_to_ship is not None and self.leadtime_to_ship < 0:
            raise ValueError(f"leadtime_to_ship must be >= 0, got {self.leadtime_to_ship}")
        if self.currency is not None and self.currency not in ISO_4217:
            raise ValueError(f"unknown currency {self.currency!r} (not ISO 4217)")
        for code in self.custom_fields:
            if not code.strip() or code in OFFER_CSV_COLUMNS or any(c in code for c in ';"\r\n'):
                raise ValueError(f"invalid custom field code {code!r}")
        object.__setattr__(self, "custom_fields", MappingProxyType(dict(self.custom_fields)))

    def offer_sku(self, product_sku: str) -> str:
        return self.sku_template.replace("{sku}", product_sku)

    def product_sku(self, offer_sku: str) -> str | None:
        """The product SKU an offer SKU was made from, or ``None`` if it does not fit the template."""
        prefix, suffix = self.sku_template.split("{sku}")
        if len(offer_sku) <= len(prefix) + len(suffix):
            return None
        if not (offer_sku.startswith(prefix) and offer_sku.endswith(suffix)):
            return None
        return offer_sku[len(prefix) : len(offer_sku) - len(suffix)]

    def product_reference(self, product: Product) -> tuple[str, str] | None:
        """``(product_id, product_id_type)`` for the offer, or ``None`` when there is none."""
        if product.gtin and product.gtin.strip():
            return product.gtin.strip(), self.gtin_id_type
        if self.fallback_id_type:
            return product.sku, self.fallback_id_type
        return None


#: Product fields an offer custom field may carry (``":parent_sku"``: the variant grouping key).
PRODUCT_FIELDS = frozenset({"parent_sku", "brand", "title", "gtin", "sku"})


def custom_field_value(product: Product, source: str) -> str:
    """The value of a custom field's source: ``:field`` names a product field, anything else an attribute."""
    if source.startswith(":") and source[1:] in PRODUCT_FIELDS:
        value = getattr(product, source[1:])
        return "" if value is None else str(value)
    return product.attributes.get(source, "")


def offer_blockers(product: Product, settings: MiraklOfferSettings) -> list[str]:
    """Why ``product`` cannot become an offer (empty list: it can). Human-readable, one reason per item."""
    return _blockers(product, settings, require_price=True)


def _blockers(product: Product, settings: MiraklOfferSettings, *, require_price: bool) -> list[str]:
    problems: list[str] = []
    if product.price is None:
        if require_price:
            problems.append("no price")
    elif not product.price.is_finite() or product.price < 0:
        problems.append(f"invalid price {product.price}")
    elif require_price and settings.currency is not None and product.currency != settings.currency:
        problems.append(
            f"price currency {product.currency} differs from the shop currency {settings.currency}"
        )
    if product.quantity < 0:
        problems.append(f"negative quantity {product.quantity}")
    if settings.product_reference(product) is None:
        problems.append("no GTIN and no fallback product id type configured")
    if any(c in product.sku for c in "\r\n"):
        problems.append("SKU contains a line break")
    return problems


def offer_csv(
    products: Iterable[Product],
    *,
    mode: OfferImportMode | str,
    settings: MiraklOfferSettings,
    deleted: Iterable[Product] = (),
) -> bytes:
    """An OF01 offers file (UTF-8, ``;``-separated, header first) for ``products``; ``deleted`` products
    become ``update-delete=delete`` rows (not allowed in REPLACE mode, which deletes every offer missing
    from the file). Prices are written exactly (``Decimal``, positional notation).

    Raises ``ValueError`` listing the offending SKUs when a product has blockers (see
    :func:`offer_blockers`; filter with it first) or an offer SKU appears twice.
    """
    import_mode = OfferImportMode(mode)
    updates, deletions = list(products), list(deleted)
    if deletions and import_mode is OfferImportMode.REPLACE:
        raise ValueError("REPLACE mode deletes offers absent from the file; pass no explicit deletions")
    _check_products(updates, settings, require_price=True)
    _check_products(deletions, settings, require_price=False)
    _check_unique([*updates, *deletions], settings)

    custom = list(settings.custom_fields.items())
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow([*OFFER_CSV_COLUMNS, *(code for code, _ in custom)])
    flag = "" if import_mode is OfferImportMode.REPLACE else "update"
    for product, update_delete in [*((p, flag) for p in updates), *((p, "delete") for p in deletions)]:
        reference = settings.product_reference(product)
        product_id, product_id_type = reference if reference is not None else ("", "")
        writer.writerow(
            [
                settings.offer_sku(product.sku),
                product_id,
                product_id_type,
                "" if product.price is None else format_decimal(product.price),
                str(max(product.quantity, 0)),
                settings.state_code,
                settings.logistic_class or "",
                "" if settings.leadtime_to_ship is None else str(settings.leadtime_to_ship),
                update_delete,
                *(custom_field_value(product, attribute) for _, attribute in custom),
            ]
        )
    return buffer.getvalue().encode("utf-8")


def offer_update_json(
    products: Iterable[Product],
    settings: MiraklOfferSettings,
    *,
    update_delete: Literal["update", "delete"] = "update",
) -> list[dict[str, Any]]:
    """The ``offers`` array of an OF24 request (schema ``OF24_Request_Offers``); prices are ``Decimal``
    (the client encodes them exactly). OF24 resets every field not sent, so optional settings
    (logistic class, lead time, custom fields) are always included when configured.

    Raises ``ValueError`` for blocked products or duplicate offer SKUs (the schema requires a price even
    for deletions).
    """
    items = list(products)
    _check_products(items, settings, require_price=True)
    _check_unique(items, settings)
    offers: list[dict[str, Any]] = []
    for product in items:
        reference = settings.product_reference(product)
        assert reference is not None and product.price is not None  # guaranteed by _check_products
        offer: dict[str, Any] = {
            "shop_sku": settings.offer_sku(product.sku),
            "product_id": reference[0],
            "product_id_type": reference[1],
            "price": product.price,
            "quantity": max(product.quantity, 0),
            "state_code": settings.state_code,
            "update_delete": update_delete,
        }
        if settings.logistic_class:
            offer["logistic_class"] = settings.logistic_class
        if settings.leadtime_to_ship is not None:
            offer["leadtime_to_ship"] = settings.leadtime_to_ship
        custom = [
            {"code": code, "value": custom_field_value(product, attribute)}
            for code, attribute in settings.custom_fields.items()
            if custom_field_value(product, attribute)
        ]
        if custom:
            offer["offer_additional_fields"] = custom
        offers.append(offer)
    return offers


def _check_products(
    products: Sequence[Product], settings: MiraklOfferSettings, *, require_price: bool
) -> None:
    problems: list[str] = []
    for product in products:
        reasons = _blockers(product, settings, require_price=require_price)
        if reasons:
            problems.append(f"{product.sku}: {', '.join(reasons)}")
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ValueError(f"{len(problems)} product(s) cannot become Mirakl offers: {shown}{more}")


def _check_unique(products: Sequence[Product], settings: MiraklOfferSettings) -> None:
    seen: set[str] = set()
    for product in products:
        sku = settings.offer_sku(product.sku)
        if sku in seen:
            raise ValueError(f"offer SKU {sku!r} appears more than once")
        seen.add(sku)


# --------------------------------------------------------------------------------------- error report


def error_report_rows_to_offer_errors(rows: Iterable[Mapping[str, str]]) -> dict[str, list[str]]:
    """OF03 rows (CSV columns by header name) → offer SKU → human-readable errors, in file order.

    The message comes from ``error-message``; ``error-line`` (the line in the imported file) is prefixed
    when present. Rows without a ``sku`` are collected under ``""``.
    """
    errors: dict[str, list[str]] = {}
    for row in rows:
        sku = (row.get("sku") or "").strip()
        message = (row.get("error-message") or "").strip() or "rejected by Mirakl without an error message"
        line = (row.get("error-line") or "").strip()
        errors.setdefault(sku, []).append(f"line {line}: {message}" if line else message)
    return errors
