"""Request and response bodies of :mod:`tradelane.web.api.orders` (published in the OpenAPI).

Money is an exact decimal serialised as a string; free text refuses control characters and is bounded
to what its column holds, so bad input answers 422 before reaching the services.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tradelane.domain.labels import MAX_PDF_BYTES, LabelFormat
from tradelane.domain.order_updates import ReturnStatus, UpdateLine
from tradelane.domain.orders import OrderState
from tradelane.services.order_updates import DEFAULT_LABEL_TYPE
from tradelane.web.api.common import PRINTABLE

Text100 = Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
Text200 = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]
#: The external id under which a retried update is recognised (the OMS's own id of it).
ExternalId = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=PRINTABLE,
        description="Your id of this update: a retry with the same id records nothing new. "
        "Without it, identical content is recognised instead.",
    ),
]
MerchantSystem = Annotated[
    str | None,
    Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=PRINTABLE,
        description="Name of the merchant system sending the update (its publishing rules apply).",
    ),
]


# --- responses -----------------------------------------------------------------------------------


class OrderLineOut(BaseModel):
    line_id: str
    sku: str
    offer_sku: str
    title: str | None
    quantity: int
    unit_price: Decimal = Field(description="Exact decimal, serialised as a string.")
    currency: str
    type: str = Field(description="`textual` for marketplace lines.")
    state: str = Field(description="The line's state as the marketplace names it (e.g. CANCELED).")
    refusal_reason: str | None


class HandoverOut(BaseModel):
    """The hand-over to the merchant system (OMS, Shopify, files) as a person should read it."""

    label: str = Field(
        description="e.g. `sent to OMS oms-main`, `waiting to be sent to OMS`, or on a cancelled order "
        "`order cancelled · had been sent to OMS oms-main` (never a fulfilment state)."
    )
    tone: str = Field(description="ok | wait | bad | mute")
    systems: list[str] = Field(description="Merchant systems the order was created in.")
    sent_at: datetime | None = Field(description="When it was first created in one of them.")


class OrderOut(BaseModel):
    id: int
    channel: str
    marketplace_order_id: str
    state: OrderState = Field(
        description="Where the order stands on its marketplace, in marketplace-neutral terms "
        "(awaiting_acceptance, to_ship, shipped, cancelled...)."
    )
    marketplace_state: str = Field(
        description="The same state as the marketplace names it (e.g. Mirakl SHIPPING, Amazon UNSHIPPED)."
    )
    merchant_status: str = Field(
        description="Hand-over to the merchant system, not a fulfilment state: not_ready | pending | "
        "delivered (= created in the merchant system, *not* delivered to the customer) | quarantined | "
        "released | third_party_managed. See `handover` for a readable label."
    )
    handover: HandoverOut
    currency: str
    acceptance_deadline: datetime | None
    accepted_at: datetime | None
    third_party_managed: bool
    is_test: bool = Field(
        default=False,
        description="A local test order (`orders create-test`): delivered to the merchant system, never "
        "sent to a marketplace; its updates read `verified` (built, not sent).",
    )
    attributes: dict[str, Any]
    customer_message: str | None
    shipping_address: dict[str, Any] | None
    billing_address: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLineOut]


class HistoryOut(BaseModel):
    at: datetime
    state: str = Field(
        description="A neutral order state the order entered (lower case: to_ship, shipped...) or an "
        "event (upper case: ACCEPTANCE_SENT, DELIVERED...)."
    )
    note: str | None


class VersionOut(BaseModel):
    received_at: datetime
    marketplace_state: str = Field(description="The marketplace's own state in this version.")
    payload: dict[str, Any] = Field(description="The raw marketplace payload of this version.")


class UpdateOut(BaseModel):
    id: int
    kind: str
    external_id: str
    status: str = Field(
        description="queued | sent (our push succeeded) | confirmed (a later poll shows the marketplace "
        "in the state the update leads to) | failed | not_supported | skipped | verified (a test order's: "
        "checked and built, never sent)"
    )
    detail: str | None
    job_id: int | None
    payload: dict[str, Any]
    created_at: datetime


class DocumentOut(BaseModel):
    id: int
    kind: str
    filename: str
    content_type: str
    source_format: str
    sha256: str
    size: int
    status: str
    created_at: datetime


class ReturnOut(BaseModel):
    marketplace_return_id: str
    state: str
    rma: str | None
    lines: list[dict[str, Any]]
    updated_at: datetime


class CancellationOut(BaseModel):
    source: Literal["marketplace"]
    whole_order: bool
    at: datetime | None
    lines: list[str] = Field(description="Line ids the marketplace cancelled.")


class OrderDetailOut(OrderOut):
    history: list[HistoryOut]
    versions: list[VersionOut] | None = None
    updates: list[UpdateOut]
    documents: list[DocumentOut]
    returns: list[ReturnOut]
    cancellation: CancellationOut | None


class UpdateResultOut(BaseModel):
    id: int
    order_id: int
    kind: str
    external_id: str
    status: str = Field(
        description="queued | sent (our push succeeded) | confirmed (a later poll shows the marketplace "
        "in the state the update leads to) | failed | not_supported | skipped | verified (a test order's: "
        "checked and built, never sent)"
    )
    detail: str | None
    job_id: int | None
    created: bool = Field(description="False when this repeats an update already recorded.")
    payload: dict[str, Any]


class LabelResultOut(UpdateResultOut):
    document: DocumentOut


class LabelDocumentOut(DocumentOut):
    content_base64: str


# --- requests ------------------------------------------------------------------------------------


class LineIn(BaseModel):
    """An order line: ``sku`` (your SKU, the catalog SKU or the offer SKU) or the marketplace
    ``line_id``."""

    model_config = ConfigDict(extra="forbid")

    sku: Text200 | None = None
    line_id: Text100 | None = None
    quantity: int = Field(ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _named(self) -> LineIn:
        if self.sku is None and self.line_id is None:
            raise ValueError("a line needs a sku or a line_id")
        return self

    def to_update(self) -> UpdateLine:
        return UpdateLine(self.quantity, self.sku, self.line_id)


class RefundLineIn(LineIn):
    amount: Decimal | None = Field(
        default=None,
        gt=0,
        max_digits=20,
        allow_inf_nan=False,
        description="Amount refunded for these units; default unit price × quantity.",
    )

    def to_update(self) -> UpdateLine:
        return UpdateLine(self.quantity, self.sku, self.line_id, self.amount)


class ShipmentIn(BaseModel):
    """A shipment of the whole order (no ``lines``) or of some lines (partial; several = split)."""

    model_config = ConfigDict(extra="forbid")

    carrier: Text100 | None = None
    tracking_number: Text200 | None = None
    tracking_url: Annotated[str, Field(min_length=1, max_length=1000, pattern=PRINTABLE)] | None = None
    lines: list[LineIn] | None = Field(default=None, min_length=1, max_length=500)
    external_id: ExternalId = None
    merchant_system: MerchantSystem = None


class CancellationIn(BaseModel):
    """A cancellation of the whole order, or of ``lines`` where the marketplace supports it."""

    model_config = ConfigDict(extra="forbid")

    lines: list[LineIn] | None = Field(default=None, min_length=1, max_length=500)
    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=PRINTABLE)] | None = None
    external_id: ExternalId = None
    merchant_system: MerchantSystem = None


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason_code: Text100 = Field(description="The marketplace's refund reason code.")
    lines: list[RefundLineIn] = Field(min_length=1, max_length=500)
    external_id: ExternalId = None
    merchant_system: MerchantSystem = None


class ReturnIn(BaseModel):
    """Returned lines received (or refunded) by the merchant."""

    model_config = ConfigDict(extra="forbid")

    lines: list[LineIn] = Field(min_length=1, max_length=500)
    status: ReturnStatus = ReturnStatus.RECEIVED
    return_id: Text100 | None = Field(default=None, description="The marketplace's return id, if known.")
    external_id: ExternalId = None
    merchant_system: MerchantSystem = None


class LabelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: LabelFormat = LabelFormat.PDF
    type_code: Text100 = Field(
        default=DEFAULT_LABEL_TYPE, description="Marketplace document type (Mirakl: DO01 codes)."
    )
    external_id: ExternalId = None
    merchant_system: MerchantSystem = None


class LabelIn(LabelOptions):
    content_base64: str = Field(
        min_length=1,
        max_length=(MAX_PDF_BYTES // 3 + 1) * 4 + 1024,
        description="The label, base64: a PDF, or UTF-8 HTML rendered to PDF without network access.",
    )
