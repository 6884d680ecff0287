"""Test orders (see :mod:`tradelane.services.test_orders`).

* ``POST /api/v1/channels/{name}/test-orders`` — create a local test order on the channel (lines
  ``[{sku, quantity}]``; none: one unit of the first product offered with stock); it is delivered to the
  merchant system marked ``"test": true`` and never sent to the marketplace;
* ``GET /api/v1/orders/{ref}/test-report`` — the end-to-end check of a test order: delivered to the
  merchant system (when, its reference), updates received, carrier converted from → to, the requests
  that would have been sent, and OK or the precise problems.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from tradelane.persistence.db import read_only, transaction
from tradelane.services import test_orders
from tradelane.services.channels import get_channel
from tradelane.web.api.common import API_PREFIX, PRINTABLE, ChannelName
from tradelane.web.api.order_models import OrderOut
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=API_PREFIX, tags=["test orders"])

OrderRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=PRINTABLE,
        description="tradelane's order id, `CHANNEL:MARKETPLACE_ORDER_ID` or the bare marketplace order id.",
    ),
]


class TestLineIn(BaseModel):
    sku: str = Field(min_length=1, max_length=200, description="A catalog SKU offered on the channel.")
    quantity: int = Field(default=1, ge=1, le=10_000)


class TestOrderIn(BaseModel):
    lines: list[TestLineIn] = Field(
        default_factory=list,
        max_length=100,
        description="The order's lines; empty: one unit of the first product (by SKU) offered with stock.",
    )


class DeliveryOut(BaseModel):
    merchant_system: str
    status: str = Field(description="pending | delivered | quarantined | released")
    at: datetime | None = Field(description="When the merchant system accepted the order.")
    reference: str | None = Field(description="The merchant system's own id for the order.")
    attempts: int


class CarrierOut(BaseModel):
    from_: str | None = Field(alias="from", description="The carrier as the merchant system named it.")
    to: str | None = Field(description="What the marketplace would receive.")
    as_: str = Field(
        alias="as",
        description="`carrier code` (one the marketplace lists), `carrier name` (a free name) or, where the "
        "marketplace lists no codes, `given: ...` (the connector converts it: see the request).",
    )


class TestUpdateOut(BaseModel):
    kind: str
    external_id: str
    received_at: datetime
    status: str = Field(description="`verified (test order, not sent)`, or failed / queued / skipped...")
    detail: str | None
    carrier: CarrierOut | None
    would_send: list[dict[str, Any]] = Field(
        description="The requests the connector would have made: operation, method, path, body."
    )
    problems: list[str]


class TestReportOut(BaseModel):
    order: str = Field(description="`CHANNEL:MARKETPLACE_ORDER_ID`.")
    id: int
    channel: str
    created_at: datetime
    merchant_status: str
    delivered: list[DeliveryOut]
    updates: list[TestUpdateOut]
    ok: bool = Field(description="Delivered, at least one update received, every update verified cleanly.")
    problems: list[str]


@router.post(
    "/channels/{name}/test-orders",
    status_code=201,
    summary="Create a test order (delivered to the merchant system, never sent to the marketplace)",
    responses=problem_responses(404),
)
def create_test_order(
    name: ChannelName, tenant: TenantDep, container: ContainerDep, body: TestOrderIn | None = None
) -> OrderOut:
    lines = [test_orders.LineSpec(line.sku, line.quantity) for line in (body.lines if body else [])]
    with transaction(container.engine) as conn:
        channel = get_channel(conn, tenant.id, name)
        order = test_orders.create_test_order(
            conn, channel, lines=lines, actor=f"api:{tenant.name}", now=container.now()
        )
    return OrderOut.model_validate(order)


@router.get(
    "/orders/{ref}/test-report",
    summary="The end-to-end check of a test order",
    responses=problem_responses(404, 409),
)
def test_report(ref: OrderRef, tenant: TenantDep, container: ContainerDep) -> TestReportOut:
    with read_only(container.engine) as conn:
        report = test_orders.report(conn, tenant.id, ref)
    return TestReportOut.model_validate(report)
