"""Records rendered as the JSON bodies of the seller-API responses (shapes from the OpenAPI spec).

Optional fields without a value are omitted rather than sent as ``null``: the spec's schemas do not
allow ``null``. The one exception is what the spec itself documents as "Null before shipping": the
customer's ``billing_address`` / ``shipping_address`` are ``null`` until the order reaches SHIPPING.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradelane.connectors.mirakl.sandbox.models import (
    AdditionalField,
    Address,
    Cancelation,
    Carrier,
    ImportStatus,
    LineState,
    Message,
    Offer,
    OfferImport,
    Order,
    OrderDocument,
    OrderLine,
    OrderState,
    Refund,
    ReturnRequest,
    Shipment,
    Shop,
)
from tradelane.connectors.mirakl.sandbox.money import quantize
from tradelane.connectors.mirakl.sandbox.orders import can_cancel, can_refund, fully_refunded

JsonObject = dict[str, object]

#: The schema requires ``max_order_quantity`` on every offer; the sandbox sets no per-order limit.
NO_ORDER_QUANTITY_LIMIT = 9999
FULFILLMENT_CENTER = {"center": {"code": "DEFAULT"}}
PAYMENT_TYPE = "CREDIT_CARD"
#: Sandbox orders are debited when accepted (then SHIPPING after the payment delay).
PAYMENT_WORKFLOW = "PAY_ON_ACCEPTANCE"


def iso(when: datetime) -> str:
    """Mirakl's date-time format: UTC, second precision, ``Z`` suffix."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _put(target: JsonObject, key: str, value: object) -> None:
    if value is not None:
        target[key] = iso(value) if isinstance(value, datetime) else value


def _fields(fields: Iterable[AdditionalField]) -> list[JsonObject]:
    return [{"code": f.code, "type": f.type, "value": f.value} for f in fields]


def address_view(address: Address, *, shipping: bool) -> JsonObject:
    out: JsonObject = {
        "city": address.city,
        "country": address.country,
        "country_iso_code": address.country_iso_code,
        "firstname": address.firstname,
        "lastname": address.lastname,
        "street_1": address.street_1,
        "zip_code": address.zip_code,
    }
    for key in ("street_2", "phone", "company", "state"):
        _put(out, key, getattr(address, key))
    if shipping:
        out["additional_info"] = ""
    return out


def addresses_revealed(order: Order) -> bool:
    """Addresses are disclosed once the customer has been debited, i.e. from SHIPPING on."""
    return order.customer_debited_date is not None


def order_view(
    order: Order, *, has_customer_message: bool, has_invoice: bool, tax_mode: str = "TAX_INCLUDED"
) -> JsonObject:
    """OR11's order. Sandbox orders carry no taxes, so both tax modes show the same amounts."""
    money = order.currency
    lines = [line_view(line, money) for line in order.lines]
    priced = [line for line in order.lines if line.state is not LineState.REFUSED]
    price = quantize(sum((line.price for line in priced), Decimal(0)), money)
    shipping = quantize(sum((line.shipping_price for line in priced), Decimal(0)), money)
    commission = sum((_commission(line) for line in priced), Decimal(0))
    revealed = addresses_revealed(order)
    customer: JsonObject = {
        "customer_id": order.customer.customer_id,
        "firstname": order.customer.firstname,
        "lastname": order.customer.lastname,
        "billing_address": address_view(order.billing_address, shipping=False) if revealed else None,
        "shipping_address": address_view(order.shipping_address, shipping=True) if revealed else None,
    }
    _put(customer, "civility", order.customer.civility)
    _put(customer, "locale", order.customer.locale)
    out: JsonObject = {
        "can_cancel": can_cancel(order),
        "can_shop_ship": order.state is OrderState.SHIPPING,
        "commercial_id": order.commercial_id,
        "created_date": iso(order.created),
        "currency_iso_code": order.currency,
        "customer": customer,
        "fulfillment": FULFILLMENT_CENTER,
        "fully_refunded": fully_refunded(order),
        "has_customer_message": has_customer_message,
        "has_incident": False,
        "has_invoice": has_invoice,
        "last_updated_date": iso(order.last_updated),
        "leadtime_to_ship": order.leadtime_to_ship,
        "order_additional_fields": _fields(order.additional_fields),
        "order_id": order.order_id,
        "order_lines": lines,
        "order_state": order.state.value,
        "order_tax_mode": tax_mode,
        "paymentType": PAYMENT_TYPE,
        "payment_type": PAYMENT_TYPE,
        "payment_workflow": PAYMENT_WORKFLOW,
        "price": price,
        "shipping_price": shipping,
        "shipping_type_code": order.shipping_type_code,
        "shipping_type_label": order.shipping_type_label,
        "shipping_zone_code": order.shipping_zone_code,
        "shipping_zone_label": order.shipping_zone_label,
        "total_commission": quantize(commission, money),
        "total_price": quantize(price + shipping, money),
    }
    _put(out, "acceptance_decision_date", order.acceptance_decision_date)
    _put(out, "customer_debited_date", order.customer_debited_date)
    _put(out, "order_state_reason_code", order.state_reason_code)
    _put(out, "order_state_reason_label", order.state_reason_label)
    _put(out, "shipping_deadline", order.shipping_deadline)
    if order.customer_reference:
        out["references"] = {"order_reference_for_customer": order.customer_reference}
    if order.tracking is not None:
        _put(out, "shipping_carrier_code", order.tracking.carrier_code)
        _put(out, "shipping_company", order.tracking.carrier_name)
        _put(out, "shipping_tracking", order.tracking.tracking_number)
        _put(out, "shipping_tracking_url", order.tracking.carrier_url)
    return out


def _commission(line: OrderLine) -> Decimal:
    return line.price * line.commission_rate


def line_view(line: OrderLine, currency: str) -> JsonObject:
    commission = quantize(_commission(line), currency)
    out: JsonObject = {
        "can_refund": can_refund(line),
        "cancelations": [_cancelation_view(c, line, currency) for c in line.cancelations],
        "category_code": line.product.category_code,
        "category_label": line.product.category_label,
        "commission_fee": commission,
        "commission_rate_vat": Decimal(0),
        "commission_taxes": [],
        "commission_vat": quantize(Decimal(0), currency),
        "created_date": iso(line.created),
        "description": line.product.title,
        "last_updated_date": iso(line.last_updated),
        "offer_id": line.offer_id,
        "offer_sku": line.offer_sku,
        "offer_state_code": line.offer_state_code,
        "order_line_additional_fields": _fields(line.additional_fields),
        "order_line_id": line.line_id,
        "order_line_index": line.index,
        "order_line_state": line.state.value,
        "price": quantize(line.price, currency),
        "price_unit": quantize(line.unit_price, currency),
        "product_medias": [],
        "product_sku": line.product.sku,
        "product_title": line.product.title,
        "quantity": line.quantity,
        "refunds": [_refund_view(r, line, currency) for r in line.refunds],
        "shipping_price": quantize(line.shipping_price, currency),
        "total_commission": commission,
        "total_price": quantize(line.price + line.shipping_price, currency),
    }
    _put(out, "debited_date", line.debited_date)
    _put(out, "shipped_date", line.shipped_date)
    _put(out, "received_date", line.received_date)
    _put(out, "order_line_state_reason_code", line.state_reason_code)
    _put(out, "order_line_state_reason_label", line.state_reason_label)
    return out


def _refund_view(refund: Refund, line: OrderLine, currency: str) -> JsonObject:
    commission = quantize(refund.amount * line.commission_rate, currency)
    return {
        "amount": quantize(refund.amount, currency),
        "commission_amount": commission,
        "commission_tax_amount": quantize(Decimal(0), currency),
        "commission_taxes": [],
        "commission_total_amount": commission,
        "created_date": iso(refund.created),
        "id": refund.refund_id,
        "order_refund_id": refund.order_refund_id,
        "quantity": refund.quantity,
        "reason_code": refund.reason_code,
        "refund_state": refund.state.value,
        "shipping_amount": quantize(refund.shipping_amount, currency),
        "state": refund.state.value,
    }


def refund_created_view(refund: Refund, line: OrderLine, currency: str) -> JsonObject:
    """One entry of the OR28 response."""
    return {
        "amount": quantize(refund.amount, currency),
        "currency_iso_code": currency,
        "order_line_id": line.line_id,
        "order_refund_id": refund.order_refund_id,
        "quantity": refund.quantity,
        "reason_code": refund.reason_code,
        "refund_id": refund.refund_id,
        "shipping_amount": quantize(refund.shipping_amount, currency),
    }


def _cancelation_view(cancelation: Cancelation, line: OrderLine, currency: str) -> JsonObject:
    commission = quantize(cancelation.amount * line.commission_rate, currency)
    out: JsonObject = {
        "amount": quantize(cancelation.amount, currency),
        "commission_amount": commission,
        "commission_taxes": [],
        "commission_total_amount": commission,
        "created_date": iso(cancelation.created),
        "id": cancelation.cancelation_id,
        "quantity": cancelation.quantity,
        "shipping_amount": quantize(cancelation.shipping_amount, currency),
    }
    _put(out, "reason_code", cancelation.reason_code)
    return out


def offer_view(offer: Offer, shop: Shop, logistic_label: str, now: datetime) -> JsonObject:
    price = quantize(offer.price, shop.currency)
    pricing: JsonObject = {
        "price": price,
        "unit_origin_price": price,
        "volume_prices": [
            {
                "price": price,
                "quantity_threshold": 1,
                "unit_discount_price": price,
                "unit_origin_price": price,
            }
        ],
    }
    zero = quantize(Decimal(0), shop.currency)
    out: JsonObject = {
        "active": offer.quantity > 0,
        "all_prices": [pricing],
        "allow_quote_requests": False,
        "applicable_pricing": pricing,
        "category_code": offer.product.category_code,
        "category_label": offer.product.category_label,
        "channels": [],
        "currency_iso_code": shop.currency,
        "description": offer.description,
        "fulfillment": FULFILLMENT_CENTER,
        "internal_description": offer.internal_description,
        "leadtime_to_ship": offer.leadtime_to_ship,
        "logistic_class": {"code": offer.logistic_class, "label": logistic_label},
        "max_order_quantity": NO_ORDER_QUANTITY_LIMIT,
        "min_order_quantity": 1,
        "min_quantity_alert": offer.min_quantity_alert or 0,
        "min_shipping_price": zero,
        "min_shipping_price_additional": zero,
        "min_shipping_type": "STD",
        "min_shipping_zone": "DOM",
        "offer_additional_fields": [
            {"code": code, "type": "STRING", "value": value}
            for code, value in sorted(offer.additional_fields.items())
        ],
        "offer_id": offer.offer_id,
        "package_quantity": 1,
        "price": price,
        "product_references": [
            {"reference": value, "reference_type": kind} for kind, value in offer.product.references
        ],
        "product_sku": offer.product.sku,
        "product_title": offer.product.title,
        "quantity": offer.quantity,
        "shipping_deadline": iso(now + timedelta(days=offer.leadtime_to_ship)),
        "shop_sku": offer.shop_sku,
        "state_code": offer.state_code,
        "total_price": price,
    }
    if offer.quantity <= 0:
        out["inactivity_reasons"] = ["ZERO_QUANTITY"]
    if offer.product.brand:
        out["product_brand"] = offer.product.brand
    return out


def import_view(imp: OfferImport) -> JsonObject:
    done = imp.status in (ImportStatus.COMPLETE, ImportStatus.FAILED)
    read = len(imp.rows) if imp.status is ImportStatus.COMPLETE else 0
    errors = imp.lines_in_error if imp.status is ImportStatus.COMPLETE else 0
    if imp.status is ImportStatus.FAILED:
        reason = imp.failure_reason or "The import failed"
    else:
        reason = "" if done else "The import is being processed"
    return {
        "date_created": iso(imp.created),
        "has_error_report": errors > 0,
        "import_id": imp.import_id,
        "lines_in_error": errors,
        "lines_in_pending": 0 if done else len(imp.rows),
        "lines_in_success": read - errors,
        "lines_read": read,
        "mode": imp.mode.value,
        "offer_deleted": imp.deleted,
        "offer_inserted": imp.inserted,
        "offer_updated": imp.updated,
        "reason_status": reason,
        "status": imp.status.value,
        "type": "MIRAKL",
    }


def account_view(shop: Shop, *, created: datetime, offers_count: int, orders_count: int) -> JsonObject:
    zero = quantize(Decimal(0), shop.currency)
    address = _registration_address(shop)
    body: JsonObject = {
        "billing_info": {"owner": shop.name},
        "channels": [],
        "contact_informations": {
            "city": "Paris",
            "country": shop.country_iso3,
            "email": shop.email,
            "lastname": shop.name,
            "street1": "1 rue du Bac",
        },
        "currency_iso_code": shop.currency,
        "date_created": iso(created),
        "default_billing_information": {
            "default_language": "en",
            "id": f"billing-{shop.shop_id}",
            "registration_address": address,
        },
        "domains": ["PRODUCT"],
        "evaluations_count": 0,
        "free_shipping": False,
        "is_professional": True,
        "last_updated_date": iso(shop.last_updated or created),
        "offers_count": offers_count,
        "orders_count": orders_count,
        "payment_details": {"paid_balance": zero, "payable_balance": zero, "pending_balance": zero},
        "payment_method_mandatory": False,
        "premium": False,
        "pro_details": {"corporate_name": shop.name},
        "shipping": {"lead_time_to_ship": shop.leadtime_to_ship},
        "shipping_types": ["STD"],
        "shipping_zones": ["DOM"],
        "shop_additional_fields": [],
        "shop_id": shop.shop_id,
        "shop_name": shop.name,
        "shop_state": "OPEN",
    }
    _put(body, "closed_from", shop.closed_from)
    _put(body, "closed_to", shop.closed_to)
    return body


def account_update_view(shop: Shop, errors: list[JsonObject]) -> JsonObject:
    """A02's answer: the refused fields (``code``, ``field``, ``message``) and the shop as it now is."""
    updated: JsonObject = {
        "channels": [],
        "default_billing_information": {
            "default_language": "en",
            "id": f"billing-{shop.shop_id}",
            "registration_address": _registration_address(shop),
        },
        "email": shop.email,
        "is_professional": True,
        "payment_method_mandatory": False,
        "pro_details": {"corporate_name": shop.name},
        "shipping": {"lead_time_to_ship": shop.leadtime_to_ship},
        "shop_additional_fields": [],
        "shop_name": shop.name,
    }
    _put(updated, "closed_from", shop.closed_from)
    _put(updated, "closed_to", shop.closed_to)
    return {"errors": errors, "updated": updated}


def _registration_address(shop: Shop) -> JsonObject:
    return {
        "city": "Paris",
        "country_iso_code": shop.country_iso3,
        "street_1": "1 rue du Bac",
        "zip_code": "75007",
    }


def carrier_view(carrier: Carrier) -> JsonObject:
    out: JsonObject = {"code": carrier.code, "label": carrier.label}
    _put(out, "standard_code", carrier.standard_code)
    _put(out, "tracking_url", carrier.tracking_url)
    return out


def shipment_view(shipment: Shipment) -> JsonObject:
    out: JsonObject = {
        "created_date": iso(shipment.created),
        "id": shipment.shipment_id,
        "last_updated_date": iso(shipment.last_updated),
        "order_id": shipment.order_id,
        "shipment_lines": [
            _without_none(
                {
                    "offer_sku": sl.offer_sku,
                    "order_line_id": sl.order_line_id,
                    "package_reference": sl.package_reference,
                    "quantity": sl.quantity,
                }
            )
            for sl in shipment.lines
        ],
        "status": shipment.status.value,
        "status_customer_debit": "DEBIT_OK",
    }
    _put(out, "shipped_date", shipment.shipped_date)
    _put(out, "invoice_reference", shipment.invoice_reference)
    if shipment.tracking is not None:
        out["tracking"] = _without_none(
            {
                "carrier_code": shipment.tracking.carrier_code,
                "carrier_name": shipment.tracking.carrier_name,
                "tracking_number": shipment.tracking.tracking_number,
                "tracking_url": shipment.tracking.carrier_url,
            }
        )
    return out


def message_view(message: Message, shop: Shop) -> JsonObject:
    return {
        "body": message.body,
        "commercial_id": message.commercial_id,
        "date_created": iso(message.created),
        "from_id": message.from_id,
        "from_name": message.from_name,
        "from_type": message.from_type,
        "id": message.message_id,
        "order_id": message.order_id,
        "subject": message.subject,
        "to_customer_archived": False,
        "to_customer_id": message.to_customer_id,
        "to_customer_name": message.to_customer_name,
        "to_operator": False,
        "to_operator_archived": False,
        "to_shop_archived": False,
        "to_shop_id": shop.shop_id,
        "to_shop_name": shop.name,
    }


def return_view(ret: ReturnRequest) -> JsonObject:
    address = ret.return_address
    out: JsonObject = {
        "date_created": iso(ret.created),
        "id": ret.return_id,
        "last_updated": iso(ret.last_updated),
        "method_code": ret.method_code,
        "order_commercial_id": ret.commercial_id,
        "order_id": ret.order_id,
        "return_address": _without_none(
            {
                "city": address.city,
                "country_iso_code": address.country_iso_code,
                "state": address.state,
                "street1": address.street_1,
                "street2": address.street_2,
                "zip_code": address.zip_code,
            }
        ),
        "return_lines": [
            {"order_line_id": rl.order_line_id, "quantity": rl.quantity, "reason_code": rl.reason_code}
            for rl in ret.lines
        ],
        "state": ret.state.value,
    }
    _put(out, "rma", ret.rma)
    _put(out, "reason_code", ret.reason_code)
    return out


def document_view(document: OrderDocument) -> JsonObject:
    return {
        "date_uploaded": iso(document.uploaded),
        "file_name": document.file_name,
        "file_size": len(document.content),
        "id": document.document_id,
        "order_id": document.order_id,
        "type": document.type_code,
    }


def _without_none(values: JsonObject) -> JsonObject:
    return {k: v for k, v in values.items() if v is not None}
