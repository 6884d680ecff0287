"""Records held by the Mirakl sandbox: shops, catalog, offers, imports, orders and their satellites.

Plain mutable dataclasses: the sandbox state owns them and mutates them under its lock. Money is
``Decimal`` in the order's (or shop's) currency; every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum


class OrderState(StrEnum):
    """Order states of the seller view (the ``order_state_codes`` enum of OR11)."""

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


class LineState(StrEnum):
    """Order line states (OR11 ``order_line_state``): the order states plus two line-only ones."""

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
    INCIDENT_OPEN = "INCIDENT_OPEN"
    REFUNDED = "REFUNDED"


class ImportMode(StrEnum):
    NORMAL = "NORMAL"
    REPLACE = "REPLACE"
    #: Deprecated by Mirakl but still accepted (spec: "Deprecated values: PARTIAL_UPDATE").
    PARTIAL_UPDATE = "PARTIAL_UPDATE"


class ImportStatus(StrEnum):
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


class RefundState(StrEnum):
    WAITING_REFUND = "WAITING_REFUND"
    REFUNDED = "REFUNDED"


class ShipmentStatus(StrEnum):
    SHIPPING = "SHIPPING"
    SHIPPED = "SHIPPED"


class ReturnState(StrEnum):
    WAITING_ACCEPTANCE = "WAITING_ACCEPTANCE"
    IN_PROGRESS = "IN_PROGRESS"
    REFUSED = "REFUSED"
    RECEIVED = "RECEIVED"
    NO_RECEPTION = "NO_RECEPTION"
    CLOSED = "CLOSED"
    CANCELED = "CANCELED"


@dataclass
class Shop:
    """A seller account. ``api_key`` is the raw value expected in the ``Authorization`` header."""

    shop_id: int
    name: str
    api_key: str = field(repr=False)
    currency: str = "EUR"
    #: ST01 (split / partial shipments) is only available when the operator enabled multi-shipment.
    multi_shipment: bool = False
    #: OR21 may accept some lines and refuse others (``ORDER_PARTIAL_ACCEPTANCE_DISABLED`` otherwise).
    partial_acceptance: bool = True
    leadtime_to_ship: int = 2
    commission_rate: Decimal = Decimal("0.10")
    email: str = "seller@example.test"
    country_iso3: str = "FRA"
    #: A02 closing period ("holiday"): closed from ``closed_from``, reopened at ``closed_to``; each may
    #: be None (A02 accepts null). Shown by A01 and A02; it changes nothing else in the sandbox.
    closed_from: datetime | None = None
    closed_to: datetime | None = None
    #: When A02 last changed the account (A01 ``last_updated_date``); None: never since creation.
    last_updated: datetime | None = None


@dataclass(frozen=True)
class Carrier:
    """A registered carrier (SH21). ``tracking_url`` may hold the ``{trackingId}`` placeholder."""

    code: str
    label: str
    tracking_url: str | None = None
    standard_code: str | None = None

    @property
    def needs_tracking_number(self) -> bool:
        return self.tracking_url is not None and "{trackingId}" in self.tracking_url


@dataclass(frozen=True)
class Product:
    """A catalog product offers attach to. ``references`` maps a reference type (EAN...) to a value."""

    sku: str
    title: str
    category_code: str
    category_label: str
    references: tuple[tuple[str, str], ...]
    brand: str = ""


@dataclass
class Offer:
    offer_id: int
    shop_id: int
    shop_sku: str
    product: Product
    product_id: str
    product_id_type: str
    price: Decimal
    quantity: int
    state_code: str
    logistic_class: str
    leadtime_to_ship: int
    description: str = ""
    internal_description: str = ""
    min_quantity_alert: int | None = None
    date_created: datetime | None = None
    last_updated: datetime | None = None
    #: Offer custom fields (the operator's codes only, see ``SandboxConfig.offer_fields``): code -> value.
    additional_fields: dict[str, str] = field(default_factory=dict)


@dataclass
class ImportRow:
    """One data line of an offer import: its raw values (by column) and, once processed, its error."""

    line_number: int
    values: dict[str, str]
    error: str | None = None


@dataclass
class OfferImport:
    """An OF01 file import or an OF24 JSON import, tracked by OF02 / OF03."""

    import_id: int
    shop_id: int
    mode: ImportMode
    created: datetime
    columns: list[str]
    rows: list[ImportRow]
    #: Parsed offers of an OF24 call (``None`` for file imports, whose rows are parsed on completion).
    json_offers: list[dict[str, object]] | None = None
    status: ImportStatus = ImportStatus.WAITING
    polls: int = 0
    #: Set when the file itself could not be read (missing column...): the import ends FAILED.
    failure_reason: str | None = None
    completed_at: datetime | None = None
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def lines_in_error(self) -> int:
        return sum(1 for row in self.rows if row.error is not None)


@dataclass(frozen=True)
class AdditionalField:
    """An order / order line custom field (Mirakl ``*_additional_fields``), e.g. a personalisation."""

    code: str
    value: str
    type: str = "STRING"


@dataclass(frozen=True)
class Address:
    firstname: str
    lastname: str
    street_1: str
    city: str
    zip_code: str
    country: str
    #: ISO 3166-1 alpha-3, as Mirakl reports it (``FRA``, ``GBR``...).
    country_iso_code: str
    street_2: str | None = None
    phone: str | None = None
    company: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class Customer:
    customer_id: str
    firstname: str
    lastname: str
    civility: str | None = None
    locale: str | None = None


@dataclass
class Refund:
    refund_id: str
    order_refund_id: str
    amount: Decimal
    shipping_amount: Decimal
    quantity: int
    reason_code: str
    created: datetime
    state: RefundState = RefundState.WAITING_REFUND
    settle_at: datetime | None = None


@dataclass
class Cancelation:
    cancelation_id: str
    amount: Decimal
    shipping_amount: Decimal
    quantity: int
    reason_code: str | None
    created: datetime


@dataclass
class OrderLine:
    line_id: str
    index: int
    offer_id: int
    offer_sku: str
    product: Product
    offer_state_code: str
    quantity: int
    unit_price: Decimal
    shipping_price: Decimal
    state: LineState
    created: datetime
    last_updated: datetime
    commission_rate: Decimal
    additional_fields: list[AdditionalField] = field(default_factory=list)
    shipped_quantity: int = 0
    shipped_date: datetime | None = None
    received_date: datetime | None = None
    debited_date: datetime | None = None
    state_reason_code: str | None = None
    state_reason_label: str | None = None
    refunds: list[Refund] = field(default_factory=list)
    cancelations: list[Cancelation] = field(default_factory=list)

    @property
    def price(self) -> Decimal:
        return self.unit_price * self.quantity

    @property
    def refunded_amount(self) -> Decimal:
        return sum((r.amount for r in self.refunds), Decimal(0))

    @property
    def refunded_shipping(self) -> Decimal:
        return sum((r.shipping_amount for r in self.refunds), Decimal(0))


@dataclass
class Tracking:
    carrier_code: str | None
    carrier_name: str | None
    carrier_url: str | None
    tracking_number: str | None


@dataclass
class Order:
    order_id: str
    commercial_id: str
    shop_id: int
    currency: str
    created: datetime
    last_updated: datetime
    state: OrderState
    customer: Customer
    shipping_address: Address
    billing_address: Address
    lines: list[OrderLine]
    acceptance_deadline: datetime
    staging_delay: timedelta
    payment_delay: timedelta
    leadtime_to_ship: int
    payment_refused: bool = False
    state_reason_code: str | None = None
    state_reason_label: str | None = None
    acceptance_decision_date: datetime | None = None
    accepted_at: datetime | None = None
    customer_debited_date: datetime | None = None
    shipping_deadline: datetime | None = None
    shipped_date: datetime | None = None
    tracking: Tracking | None = None
    customer_message: str | None = None
    additional_fields: list[AdditionalField] = field(default_factory=list)
    shipping_type_code: str = "STD"
    shipping_type_label: str = "Standard"
    shipping_zone_code: str = "DOM"
    shipping_zone_label: str = "Domestic"
    customer_reference: str | None = None


@dataclass
class ShipmentLine:
    order_line_id: str
    offer_sku: str
    quantity: int
    package_reference: str | None = None


@dataclass
class Shipment:
    shipment_id: str
    order_id: str
    shop_id: int
    lines: list[ShipmentLine]
    status: ShipmentStatus
    created: datetime
    last_updated: datetime
    tracking: Tracking | None = None
    shipped_date: datetime | None = None
    invoice_reference: str | None = None


@dataclass
class Message:
    """A message on an order (M01). ``from_type`` is CUSTOMER, OPERATOR or SHOP."""

    message_id: int
    shop_id: int
    order_id: str
    commercial_id: str
    subject: str
    body: str
    from_type: str
    from_id: str
    from_name: str
    to_customer_id: str
    to_customer_name: str
    created: datetime


@dataclass
class ReturnLine:
    order_line_id: str
    quantity: int
    reason_code: str


@dataclass
class ReturnRequest:
    return_id: str
    shop_id: int
    order_id: str
    commercial_id: str
    customer_id: str
    lines: list[ReturnLine]
    state: ReturnState
    created: datetime
    last_updated: datetime
    method_code: str
    return_address: Address
    rma: str | None = None
    reason_code: str | None = None


@dataclass
class OrderDocument:
    document_id: int
    shop_id: int
    order_id: str
    file_name: str
    type_code: str
    content: bytes
    uploaded: datetime
