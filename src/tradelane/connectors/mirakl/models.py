"""Typed inputs and results of :class:`~.client.MiraklClient` operations, with their pure parsers.

Results keep the parsed JSON they came from in ``raw`` (numbers as ``Decimal``). Parsers raise
:class:`~.errors.MiraklSchemaError` with the field path when the response breaks the spec's schema in a
field tradelane reads; fields tradelane does not read are not checked (Mirakl adds fields over time).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from tradelane.connectors.mirakl._payload import (
    as_object,
    child,
    opt_datetime,
    opt_decimal,
    opt_int,
    opt_list,
    opt_str,
    req_bool,
    req_datetime,
    req_decimal,
    req_int,
    req_list,
    req_str,
)
from tradelane.connectors.mirakl.errors import MiraklSchemaError
from tradelane.connectors.mirakl.mapping import order_from_mirakl
from tradelane.domain.orders import MarketplaceOrder

# ------------------------------------------------------------------------------------------------ A01


@dataclass(frozen=True, slots=True)
class Account:
    """A01: the shop the key (and ``shop_id``) resolves to. ``shop_id`` as text, like the configuration."""

    shop_id: str
    shop_name: str
    shop_state: str | None
    currency: str | None
    channels: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def parse_account(body: Mapping[str, Any]) -> Account:
    return Account(
        shop_id=str(req_int(body, "shop_id", "")),
        shop_name=req_str(body, "shop_name", "", allow_empty=True),
        shop_state=opt_str(body, "shop_state", ""),
        currency=opt_str(body, "currency_iso_code", ""),
        channels=tuple(_strings(body, "channels", "")),
        raw=body,
    )


# ---------------------------------------------------------------------------------------- OF01 / OF02


class OfferImportState(StrEnum):
    """OF02 ``status``."""

    WAITING_SYNCHRONIZATION_PRODUCT = "WAITING_SYNCHRONIZATION_PRODUCT"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class OfferImportStatus:
    """OF02: progress and counters of one offer import (OF01 file or OF24 JSON)."""

    import_id: int
    status: OfferImportState
    reason_status: str | None
    mode: str | None
    has_error_report: bool
    lines_read: int
    lines_in_success: int
    lines_in_error: int
    lines_in_pending: int
    offer_inserted: int
    offer_updated: int
    offer_deleted: int
    date_created: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once Mirakl will not change this import any more (COMPLETE or FAILED)."""
        return self.status in (OfferImportState.COMPLETE, OfferImportState.FAILED)


def parse_import_id(body: Mapping[str, Any]) -> int:
    return req_int(body, "import_id", "")


def parse_offer_import_status(body: Mapping[str, Any]) -> OfferImportStatus:
    status_text = req_str(body, "status", "")
    try:
        status = OfferImportState(status_text)
    except ValueError:
        raise MiraklSchemaError("status", f"unknown import status {status_text!r}") from None
    return OfferImportStatus(
        import_id=req_int(body, "import_id", ""),
        status=status,
        reason_status=opt_str(body, "reason_status", ""),
        mode=opt_str(body, "mode", ""),
        has_error_report=req_bool(body, "has_error_report", ""),
        lines_read=opt_int(body, "lines_read", "") or 0,
        lines_in_success=opt_int(body, "lines_in_success", "") or 0,
        lines_in_error=opt_int(body, "lines_in_error", "") or 0,
        lines_in_pending=opt_int(body, "lines_in_pending", "") or 0,
        offer_inserted=opt_int(body, "offer_inserted", "") or 0,
        offer_updated=opt_int(body, "offer_updated", "") or 0,
        offer_deleted=opt_int(body, "offer_deleted", "") or 0,
        date_created=opt_datetime(body, "date_created", ""),
        raw=body,
    )


def parse_error_report(text: str) -> tuple[dict[str, str], ...]:
    """OF03 CSV (``;``-separated, quoted, header first) → one dict per row, keyed by header name.

    Raises :class:`MiraklSchemaError` when the header has no ``error-message`` column, or when the file
    is not CSV the reader can split (e.g. a bare carriage return inside an unquoted field).
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";", quotechar='"')
    try:
        header = next(reader, None)
        if header is None:
            return ()
        columns = [name.strip() for name in header]
        if "error-message" not in columns:
            raise MiraklSchemaError("error_report.header", f"no 'error-message' column in {columns[:12]}")
        rows: list[dict[str, str]] = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            rows.append({name: values[i] if i < len(values) else "" for i, name in enumerate(columns)})
    except csv.Error as exc:
        raise MiraklSchemaError(f"error_report.line[{reader.line_num}]", f"unreadable CSV: {exc}") from None
    return tuple(rows)


# ------------------------------------------------------------------------------------------------ OF21


@dataclass(frozen=True, slots=True)
class Offer:
    """One OF21 offer, reduced to what reconciliation needs."""

    offer_id: int
    shop_sku: str
    product_sku: str
    product_references: tuple[tuple[str, str], ...]  # (reference_type, reference)
    quantity: int
    price: Decimal | None
    currency: str
    state_code: str
    active: bool
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class OffersPage:
    offers: tuple[Offer, ...]
    total_count: int


def parse_offers_page(body: Mapping[str, Any]) -> OffersPage:
    offers = []
    for i, item in enumerate(req_list(body, "offers", "")):
        path = child("offers", i)
        offer = as_object(item, path)
        references = []
        for j, ref in enumerate(opt_list(offer, "product_references", path)):
            ref_path = child(child(path, "product_references"), j)
            ref_obj = as_object(ref, ref_path)
            references.append(
                (req_str(ref_obj, "reference_type", ref_path), req_str(ref_obj, "reference", ref_path))
            )
        price = opt_decimal(offer, "price", path)
        if price is None and isinstance(offer.get("applicable_pricing"), Mapping):
            price = opt_decimal(offer["applicable_pricing"], "price", child(path, "applicable_pricing"))
        offers.append(
            Offer(
                offer_id=req_int(offer, "offer_id", path),
                shop_sku=req_str(offer, "shop_sku", path),
                product_sku=req_str(offer, "product_sku", path),
                product_references=tuple(references),
                quantity=req_int(offer, "quantity", path),
                price=price,
                currency=req_str(offer, "currency_iso_code", path),
                state_code=req_str(offer, "state_code", path),
                active=req_bool(offer, "active", path),
                raw=offer,
            )
        )
    return OffersPage(offers=tuple(offers), total_count=req_int(body, "total_count", ""))


# ------------------------------------------------------------------------------------------------ OR11


@dataclass(frozen=True, slots=True)
class OrdersPage:
    """One OR11 page: mapped orders (each keeps its payload in ``raw``) and Mirakl's ``total_count``."""

    orders: tuple[MarketplaceOrder, ...]
    total_count: int


def parse_orders_page(body: Mapping[str, Any]) -> OrdersPage:
    orders = tuple(
        order_from_mirakl(as_object(item, child("orders", i)), path=child("orders", i))
        for i, item in enumerate(req_list(body, "orders", ""))
    )
    return OrdersPage(orders=orders, total_count=req_int(body, "total_count", ""))


# ------------------------------------------------------------------------------------------------ OR28


@dataclass(frozen=True, slots=True)
class TaxAmount:
    code: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """One OR28 refund on an order line. Amounts exact; ``currency`` needed only if the shop is not in
    the platform's default currency. ``taxes``/``shipping_taxes`` are required when the order has taxes."""

    order_line_id: str
    amount: Decimal
    reason_code: str
    shipping_amount: Decimal = Decimal(0)
    quantity: int | None = None
    currency: str | None = None
    taxes: tuple[TaxAmount, ...] = ()
    shipping_taxes: tuple[TaxAmount, ...] = ()

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "order_line_id": self.order_line_id,
            "amount": self.amount,
            "reason_code": self.reason_code,
            "shipping_amount": self.shipping_amount,
        }
        if self.quantity is not None:
            body["quantity"] = self.quantity
        if self.currency is not None:
            body["currency_iso_code"] = self.currency
        if self.taxes:
            body["taxes"] = [{"code": t.code, "amount": t.amount} for t in self.taxes]
        if self.shipping_taxes:
            body["shipping_taxes"] = [{"code": t.code, "amount": t.amount} for t in self.shipping_taxes]
        return body


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund Mirakl created (OR28 response)."""

    refund_id: str
    order_refund_id: str
    order_line_id: str
    amount: Decimal
    shipping_amount: Decimal
    quantity: int
    reason_code: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def parse_refunds(body: Mapping[str, Any]) -> tuple[Refund, ...]:
    result = []
    for i, item in enumerate(req_list(body, "refunds", "")):
        path = child("refunds", i)
        refund = as_object(item, path)
        result.append(
            Refund(
                refund_id=req_str(refund, "refund_id", path),
                order_refund_id=req_str(refund, "order_refund_id", path),
                order_line_id=req_str(refund, "order_line_id", path),
                amount=req_decimal(refund, "amount", path),
                shipping_amount=req_decimal(refund, "shipping_amount", path),
                quantity=req_int(refund, "quantity", path),
                reason_code=req_str(refund, "reason_code", path),
                raw=refund,
            )
        )
    return tuple(result)


# ------------------------------------------------------------------------------------------------ SH21


@dataclass(frozen=True, slots=True)
class Carrier:
    code: str
    label: str
    standard_code: str | None = None
    tracking_url: str | None = None


def parse_carriers(body: Mapping[str, Any]) -> tuple[Carrier, ...]:
    result = []
    for i, item in enumerate(req_list(body, "carriers", "")):
        path = child("carriers", i)
        carrier = as_object(item, path)
        result.append(
            Carrier(
                code=req_str(carrier, "code", path),
                label=req_str(carrier, "label", path, allow_empty=True),
                standard_code=opt_str(carrier, "standard_code", path),
                tracking_url=opt_str(carrier, "tracking_url", path),
            )
        )
    return tuple(result)


# ------------------------------------------------------------------------------------------------ ST01


@dataclass(frozen=True, slots=True)
class ShipmentLine:
    order_line_id: str
    quantity: int
    package_reference: str | None = None


@dataclass(frozen=True, slots=True)
class ShipmentRequest:
    """One ST01 shipment: some quantity of some lines of one order, optionally with tracking.
    A registered carrier needs ``carrier_code``; an unregistered one ``carrier_name`` (+ ``tracking_url``)."""

    order_id: str
    lines: tuple[ShipmentLine, ...]
    carrier_code: str | None = None
    carrier_name: str | None = None
    carrier_standard_code: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipped: bool = True
    invoice_reference: str | None = None
    warehouse_code: str | None = None

    def as_json(self) -> dict[str, Any]:
        if not self.lines:
            raise ValueError(f"shipment for order {self.order_id} has no lines")
        lines = []
        for line in self.lines:
            if line.quantity <= 0:
                raise ValueError(f"shipment line {line.order_line_id}: quantity must be > 0")
            item: dict[str, Any] = {"order_line_id": line.order_line_id, "quantity": line.quantity}
            if line.package_reference:
                item["package_reference"] = line.package_reference
            lines.append(item)
        body: dict[str, Any] = {"order_id": self.order_id, "shipment_lines": lines, "shipped": self.shipped}
        tracking = {
            key: value
            for key, value in (
                ("carrier_code", self.carrier_code),
                ("carrier_name", self.carrier_name),
                ("carrier_standard_code", self.carrier_standard_code),
                ("tracking_number", self.tracking_number),
                ("tracking_url", self.tracking_url),
            )
            if value
        }
        if tracking:
            body["tracking"] = tracking
        if self.invoice_reference:
            body["invoice_reference"] = self.invoice_reference
        if self.warehouse_code:
            body["shipping_from"] = {"warehouse": {"code": self.warehouse_code}}
        return body


@dataclass(frozen=True, slots=True)
class CreatedShipment:
    shipment_id: str
    order_id: str
    status: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ShipmentFailure:
    order_id: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ShipmentsResult:
    """ST01 is partially successful: check ``errors`` (one per rejected shipment)."""

    created: tuple[CreatedShipment, ...]
    errors: tuple[ShipmentFailure, ...]


def parse_shipments_result(body: Mapping[str, Any]) -> ShipmentsResult:
    created = []
    for i, item in enumerate(req_list(body, "shipment_success", "")):
        path = child("shipment_success", i)
        shipment = as_object(item, path)
        created.append(
            CreatedShipment(
                shipment_id=req_str(shipment, "id", path),
                order_id=req_str(shipment, "order_id", path),
                status=req_str(shipment, "status", path),
                raw=shipment,
            )
        )
    errors = []
    for i, item in enumerate(req_list(body, "shipment_errors", "")):
        path = child("shipment_errors", i)
        failure = as_object(item, path)
        errors.append(
            ShipmentFailure(
                order_id=opt_str(failure, "order_id", path),
                message=opt_str(failure, "message", path) or "shipment rejected without a message",
            )
        )
    return ShipmentsResult(created=tuple(created), errors=tuple(errors))


# ------------------------------------------------------------------------------------------------ RT11


@dataclass(frozen=True, slots=True)
class ReturnLine:
    order_line_id: str
    quantity: int
    reason_code: str | None


@dataclass(frozen=True, slots=True)
class Return:
    return_id: str
    order_id: str
    order_commercial_id: str
    state: str
    created_at: datetime
    updated_at: datetime
    rma: str | None
    lines: tuple[ReturnLine, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)


#: RT11 ``state`` values.
RETURN_STATES = frozenset(
    {"WAITING_ACCEPTANCE", "IN_PROGRESS", "REFUSED", "RECEIVED", "NO_RECEPTION", "CLOSED", "CANCELED"}
)


@dataclass(frozen=True, slots=True)
class ReturnsPage:
    """RT11 uses seek pagination: pass ``next_page_token`` back until it is ``None``."""

    returns: tuple[Return, ...]
    next_page_token: str | None


def parse_returns_page(body: Mapping[str, Any]) -> ReturnsPage:
    result = []
    for i, item in enumerate(req_list(body, "data", "")):
        path = child("data", i)
        ret = as_object(item, path)
        state = req_str(ret, "state", path)
        if state not in RETURN_STATES:
            raise MiraklSchemaError(child(path, "state"), f"unknown return state {state!r}")
        lines = []
        for j, line_item in enumerate(req_list(ret, "return_lines", path)):
            line_path = child(child(path, "return_lines"), j)
            line = as_object(line_item, line_path)
            lines.append(
                ReturnLine(
                    order_line_id=req_str(line, "order_line_id", line_path),
                    quantity=req_int(line, "quantity", line_path),
                    reason_code=opt_str(line, "reason_code", line_path),
                )
            )
        result.append(
            Return(
                return_id=req_str(ret, "id", path),
                order_id=req_str(ret, "order_id", path),
                order_commercial_id=req_str(ret, "order_commercial_id", path),
                state=state,
                created_at=req_datetime(ret, "date_created", path),
                updated_at=req_datetime(ret, "last_updated", path),
                rma=opt_str(ret, "rma", path),
                lines=tuple(lines),
                raw=ret,
            )
        )
    return ReturnsPage(returns=tuple(result), next_page_token=opt_str(body, "next_page_token", "") or None)


# ------------------------------------------------------------------------------------------------- M01


@dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    order_id: str | None
    commercial_id: str | None
    subject: str
    body: str
    from_type: str
    from_name: str
    created_at: datetime
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class MessagesPage:
    messages: tuple[Message, ...]
    total_count: int


def parse_messages_page(body: Mapping[str, Any]) -> MessagesPage:
    result = []
    for i, item in enumerate(req_list(body, "messages", "")):
        path = child("messages", i)
        msg = as_object(item, path)
        result.append(
            Message(
                message_id=req_int(msg, "id", path),
                order_id=opt_str(msg, "order_id", path),
                commercial_id=opt_str(msg, "commercial_id", path),
                subject=req_str(msg, "subject", path, allow_empty=True),
                body=req_str(msg, "body", path, allow_empty=True),
                from_type=req_str(msg, "from_type", path),
                from_name=req_str(msg, "from_name", path, allow_empty=True),
                created_at=req_datetime(msg, "date_created", path),
                raw=msg,
            )
        )
    return MessagesPage(messages=tuple(result), total_count=req_int(body, "total_count", ""))


# ------------------------------------------------------------------------------------- OR72/73/74


@dataclass(frozen=True, slots=True)
class OrderDocument:
    document_id: int
    order_id: str
    file_name: str
    type_code: str
    file_size: int | None
    uploaded_at: datetime | None


def parse_order_documents(body: Mapping[str, Any]) -> tuple[OrderDocument, ...]:
    result = []
    for i, item in enumerate(req_list(body, "order_documents", "")):
        path = child("order_documents", i)
        doc = as_object(item, path)
        result.append(
            OrderDocument(
                document_id=req_int(doc, "id", path),
                order_id=req_str(doc, "order_id", path),
                file_name=req_str(doc, "file_name", path),
                type_code=req_str(doc, "type", path),
                file_size=opt_int(doc, "file_size", path),
                uploaded_at=opt_datetime(doc, "date_uploaded", path),
            )
        )
    return tuple(result)


@dataclass(frozen=True, slots=True)
class DocumentUpload:
    """One OR74 file: US-ASCII ``file_name`` (distinct within a call), Mirakl document ``type_code``
    (e.g. ``CUSTOMER_INVOICE``, ``SYSTEM_DELIVERY_BILL``) and the bytes."""

    file_name: str
    type_code: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class DocumentUploadError:
    file_name: str | None
    type_code: str | None
    errors: tuple[str, ...]


def parse_document_upload_errors(body: Mapping[str, Any]) -> tuple[DocumentUploadError, ...]:
    """OR74 lists only the documents in error; an empty tuple means every file was attached."""
    result = []
    for i, item in enumerate(req_list(body, "order_documents", "")):
        path = child("order_documents", i)
        doc = as_object(item, path)
        messages = []
        for j, err in enumerate(req_list(doc, "errors", path)):
            err_path = child(child(path, "errors"), j)
            err_obj = as_object(err, err_path)
            code = opt_str(err_obj, "code", err_path)
            text = opt_str(err_obj, "message", err_path) or "rejected"
            messages.append(f"{code}: {text}" if code else text)
        given = doc.get("input")
        given_obj = as_object(given, child(path, "input")) if given is not None else {}
        result.append(
            DocumentUploadError(
                file_name=opt_str(given_obj, "file_name", child(path, "input")),
                type_code=opt_str(given_obj, "type_code", child(path, "input")),
                errors=tuple(messages),
            )
        )
    return tuple(result)


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """OR73: one document, or a ZIP archive when several were asked for."""

    content: bytes
    content_type: str | None
    file_name: str | None


def _strings(obj: Mapping[str, Any], key: str, path: str) -> list[str]:
    values = opt_list(obj, key, path)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise MiraklSchemaError(child(child(path, key), i), "expected a string")
    return values
