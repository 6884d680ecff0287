"""Order Health, the merchant-side order document, and (included from :mod:`.merchant_webhook`) the
signed merchant webhook.

* ``GET /api/v1/order-health`` — quarantined orders grouped by reason (counts, ages, each order);
* ``POST /api/v1/order-health/retry`` — retry by refs, by reason, or all (exactly one of them);
* ``POST /api/v1/order-health/{ref}/release`` — release one order to the operator;
* ``GET /api/v1/orders/{ref}/oms-document`` — the ``OmsOrder`` a merchant system receives (this route
  also publishes the document's schema in the OpenAPI components);
* ``POST /api/v1/merchant/{name}/webhook`` — see :mod:`tradelane.web.api.merchant_webhook`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from tradelane.merchant.schema import OmsOrder
from tradelane.persistence.db import read_only, transaction
from tradelane.services import order_health as health
from tradelane.services.order_delivery import oms_document_for_order
from tradelane.web.api import merchant_webhook
from tradelane.web.api.common import API_PREFIX, PRINTABLE
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=API_PREFIX)

OrderRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=PRINTABLE,
        description="tradelane's order id, `CHANNEL:MARKETPLACE_ORDER_ID` or the bare marketplace order id.",
    ),
]
ReasonCode = Literal[
    "unknown_sku",
    "missing_field",
    "oms_rejected",
    "oms_unavailable",
    "no_merchant_system",
    "merchant_system_error",
]


class QuarantinedOrderOut(BaseModel):
    order_id: int
    ref: str = Field(description="`CHANNEL:MARKETPLACE_ORDER_ID`.")
    channel: str
    marketplace_order_id: str
    reason_code: ReasonCode
    reason: str = Field(description="Human-readable, precise reason.")
    detail: dict[str, Any] = Field(
        description="`{skus, lines, missing_fields}` for validation failures; "
        "`{merchant_system, status, response, error}` for OMS answers."
    )
    since: datetime = Field(description="When the order was first quarantined.")
    last_attempt_at: datetime
    attempts: int
    age_seconds: int


class HealthGroupOut(BaseModel):
    reason_code: ReasonCode
    count: int
    oldest_since: datetime
    oldest_age_seconds: int
    orders: list[QuarantinedOrderOut] = Field(description="Oldest first, at most 200 per reason.")


class OrderHealthOut(BaseModel):
    total: int = Field(description="Quarantined orders, all reasons.")
    groups: list[HealthGroupOut] = Field(description="One per reason, largest first.")


class RetryIn(BaseModel):
    """Exactly one of ``refs``, ``reason`` or ``all``."""

    refs: list[Annotated[str, Field(min_length=1, max_length=300, pattern=PRINTABLE)]] | None = Field(
        default=None, min_length=1, max_length=500
    )
    reason: ReasonCode | None = None
    all: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> RetryIn:
        if sum([self.refs is not None, self.reason is not None, self.all]) != 1:
            raise ValueError("give exactly one of refs, reason or all=true")
        return self


class RetryOut(BaseModel):
    queued: list[int] = Field(description="Ids of the orders whose delivery was queued.")
    count: int


class ReleaseOut(BaseModel):
    order_id: int
    merchant_status: Literal["released"]


def _group(group: health.HealthGroup) -> HealthGroupOut:
    return HealthGroupOut.model_validate(
        {
            "reason_code": group.reason_code,
            "count": group.count,
            "oldest_since": group.oldest_since,
            "oldest_age_seconds": group.oldest_age_seconds,
            "orders": [{n: getattr(o, n) for n in o.__slots__} for o in group.orders],
        }
    )


@router.get(
    "/order-health",
    response_model=OrderHealthOut,
    tags=["order-health"],
    summary="Quarantined orders grouped by reason, with counts and ages",
)
def order_health(tenant: TenantDep, container: ContainerDep) -> OrderHealthOut:
    with read_only(container.engine) as conn:
        groups = health.health_report(conn, tenant.id, now=container.now())
    return OrderHealthOut(total=sum(g.count for g in groups), groups=[_group(g) for g in groups])


@router.post(
    "/order-health/retry",
    response_model=RetryOut,
    tags=["order-health"],
    summary="Retry delivery of orders: by refs, by reason, or all quarantined",
    description="Refs may name quarantined or pending orders; edit-and-retry = add a SKU mapping "
    "(which already re-tries the orders it unblocks), then retry.",
    responses=problem_responses(404, 409),
)
def retry(body: RetryIn, tenant: TenantDep, container: ContainerDep) -> RetryOut:
    with transaction(container.engine) as conn:
        now = container.now()
        if body.refs is not None:
            queued = health.retry_orders(conn, tenant_id=tenant.id, refs=body.refs, now=now)
        else:
            queued = health.retry_quarantined(conn, tenant_id=tenant.id, reason_code=body.reason, now=now)
    return RetryOut(queued=queued, count=len(queued))


@router.post(
    "/order-health/{ref}/release",
    response_model=ReleaseOut,
    tags=["order-health"],
    summary="Release a quarantined order: the operator handles it outside tradelane",
    responses=problem_responses(404, 409),
)
def release(ref: OrderRef, tenant: TenantDep, container: ContainerDep) -> ReleaseOut:
    with transaction(container.engine) as conn:
        order_id = health.release_order(conn, tenant_id=tenant.id, ref=ref, now=container.now())
    return ReleaseOut(order_id=order_id, merchant_status="released")


@router.get(
    "/orders/{ref}/oms-document",
    response_model=OmsOrder,
    tags=["orders"],
    summary="The order document merchant systems receive for this order",
    description="Exactly the JSON POSTed to an HTTP OMS, with headers `X-Tradelane-Signature: "
    't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` and `Idempotency-Key: order-<id>`. '
    "SKUs that do not resolve yet are listed in the `X-Unknown-Skus` response header.",
    responses=problem_responses(404, 409),
)
def oms_order_document(ref: OrderRef, tenant: TenantDep, container: ContainerDep) -> JSONResponse:
    with read_only(container.engine) as conn:
        order_id = health.resolve_ref(conn, tenant.id, ref)
        document, unknown = oms_document_for_order(conn, tenant_id=tenant.id, order_id=order_id)
    headers = {"X-Unknown-Skus": ",".join(unknown)} if unknown else None
    return JSONResponse(document.model_dump(mode="json"), headers=headers)


router.include_router(merchant_webhook.router)
