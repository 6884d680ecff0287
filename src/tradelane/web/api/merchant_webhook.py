"""``POST /api/v1/merchant/{name}/webhook``: updates (shipment, cancellation, return) pushed by a
merchant system, authenticated by its signature — no bearer token.

Contracts:

* The ``X-Tradelane-Signature`` header (:mod:`tradelane.merchant.signing`) is verified against the
  secret of every enabled HTTP merchant system called ``name`` (names are unique per tenant only);
  the one whose secret verifies it identifies the tenant. Digests are compared in constant time;
  timestamps more than 300 s away are refused.
* A missing, malformed, stale, forged or *replayed* request answers 401 (problem JSON) and stores
  nothing: the only trace is a ``security.webhook_rejected`` log line (reason, merchant, remote
  address — never the secret or the body).
* Replays are refused without check-then-insert: the raw event is stored in ``inbound_events`` with
  ``external_id`` = the verified ``v1`` digest, unique per (tenant, source); a second insert of the same
  signature conflicts, and that is the replay.
* A valid request is committed raw first (source ``merchant:<name>``), then handed to
  :mod:`tradelane.services.order_updates` in a second transaction; the event ends ``processed`` or
  ``failed`` (with the error), and the answer is 202 or the problem (404 unknown order, 422 bad update).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import Connection

from tradelane.domain.errors import TradelaneError, ValidationError
from tradelane.logging import get_logger
from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.signing import SIGNATURE_HEADER, BadSignature, SignatureError, verify
from tradelane.merchant.systems import HTTP_KIND, merchant_credentials, systems_named
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.tables import inbound_events
from tradelane.security.crypto import CredentialError
from tradelane.services import order_updates
from tradelane.services.inbound import EXTERNAL_ID_HEADERS, store_inbound_event
from tradelane.services.order_updates import ReturnStatus, UpdateLine, UpdateResult
from tradelane.web.auth import ContainerDep
from tradelane.web.problems import ApiProblem, problem_responses

router = APIRouter(tags=["merchant"])
security_log = get_logger("tradelane.security")

MerchantName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The merchant system's name.",
    ),
]


class UpdateLineIn(BaseModel):
    sku: str | None = Field(
        default=None, min_length=1, max_length=200, description="Merchant, catalog or offer SKU."
    )
    line_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="Marketplace line id."
    )
    quantity: int = Field(ge=1)


class MerchantUpdateIn(BaseModel):
    """The signed webhook body. ``id`` is the merchant system's id for this update: retries with the
    same id are applied once (without one, the update's content identifies it)."""

    type: Literal["shipment", "cancellation", "return"]
    order: str = Field(min_length=1, max_length=300, description="Order REF: id or `CHANNEL:MARKETPLACE_ID`.")
    id: str | None = Field(default=None, min_length=1, max_length=200)
    carrier: str | None = Field(default=None, max_length=100, description="Shipment: carrier code or name.")
    tracking_number: str | None = Field(default=None, max_length=200, description="Shipment.")
    tracking_url: str | None = Field(default=None, max_length=1000, description="Shipment.")
    lines: list[UpdateLineIn] | None = Field(default=None, description="Omitted: the whole order.")
    reason: str | None = Field(default=None, max_length=500, description="Cancellation.")
    status: ReturnStatus = Field(default=ReturnStatus.RECEIVED, description="Return: received or refunded.")
    return_id: str | None = Field(default=None, max_length=100, description="Return: the marketplace's id.")


class MerchantWebhookAck(BaseModel):
    event_id: int
    update: dict[str, Any]


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject(request: Request, name: str, reason: str) -> ApiProblem:
    security_log.warning(
        "security.webhook_rejected",
        reason=reason,
        merchant=name,
        remote_addr=request.client.host if request.client else None,
        path=request.url.path,
    )
    return ApiProblem(
        401,
        "the request signature is missing, invalid, expired or already used",
        slug="invalid-signature",
    )


def _authenticate(
    conn: Connection, container: Any, name: str, header: str | None, body: bytes, now: datetime
) -> tuple[MerchantSystem, str]:
    """The merchant system whose secret verifies the request, and the verified digest."""
    systems = systems_named(conn, name, kind=HTTP_KIND)
    if not systems:
        raise _Rejected("unknown_merchant")
    failure: SignatureError | None = None
    for system in systems:
        try:
            secret = str(merchant_credentials(conn, system, container.keyring).get("secret") or "")
        except CredentialError:
            continue
        try:
            return system, verify(secret, header, body, now)
        except BadSignature as exc:
            failure = exc  # maybe another tenant's system of that name
        except SignatureError as exc:  # malformed or stale: the same for every candidate
            raise _Rejected(exc.reason) from None
    raise _Rejected(failure.reason if failure else "no_usable_secret")


def _stored_headers(request: Request, digest: str) -> list[tuple[str, str]]:
    """The request's headers with the verified digest as the delivery id (the sender's own delivery-id
    headers are kept under ``x-sender-*`` names)."""
    headers = []
    for key, value in request.headers.items():
        lower = key.lower()
        headers.append((f"x-sender-{lower[2:]}" if lower in EXTERNAL_ID_HEADERS else lower, value))
    headers.append((EXTERNAL_ID_HEADERS[0], digest))
    return headers


def _apply(
    conn: Connection, tenant_id: int, system: MerchantSystem, update: MerchantUpdateIn, now: datetime
) -> UpdateResult:
    lines = [UpdateLine(ln.quantity, ln.sku, ln.line_id) for ln in update.lines or []] or None
    if update.type == "shipment":
        return order_updates.record_shipment(
            conn,
            tenant_id=tenant_id,
            order_ref=update.order,
            carrier=update.carrier,
            tracking_number=update.tracking_number,
            tracking_url=update.tracking_url,
            lines=lines,
            external_id=update.id,
            merchant_system_id=system.id,
            now=now,
        )
    if update.type == "cancellation":
        return order_updates.record_cancellation(
            conn,
            tenant_id=tenant_id,
            order_ref=update.order,
            lines=lines,
            reason=update.reason,
            external_id=update.id,
            merchant_system_id=system.id,
            now=now,
        )
    if not lines:
        raise ValidationError("a return needs at least one line")
    return order_updates.record_return(
        conn,
        tenant_id=tenant_id,
        order_ref=update.order,
        lines=lines,
        status=update.status,
        marketplace_return_id=update.return_id,
        external_id=update.id,
        merchant_system_id=system.id,
        now=now,
    )


def _finish_event(conn: Connection, event_id: int, status: str, error: str | None, now: datetime) -> None:
    conn.execute(
        sa.update(inbound_events)
        .where(inbound_events.c.id == event_id)
        .values(status=status, error=error, processed_at=now)
    )


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` inlined (an OpenAPI operation cannot hold ``$defs``)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    result: dict[str, Any] = resolve(schema)
    return result


_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_schema(MerchantUpdateIn)}},
    },
    "parameters": [
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": True,
            "description": 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>"> with the merchant '
            "system's secret; at most 300 s old; each signature is accepted once.",
            "schema": {"type": "string"},
        }
    ],
}


@router.post(
    "/merchant/{name}/webhook",
    status_code=202,
    response_model=MerchantWebhookAck,
    summary="Receive an update (shipment, cancellation, return) signed by a merchant system",
    responses=problem_responses(401, 404, 409, 422),
    openapi_extra=_OPENAPI,
)
def receive_merchant_webhook(
    name: MerchantName,
    request: Request,
    container: ContainerDep,
    body: Annotated[bytes, Depends(_raw_body)],
) -> JSONResponse:
    now = container.now()
    header = request.headers.get(SIGNATURE_HEADER)
    try:
        with read_only(container.engine) as conn:
            system, digest = _authenticate(conn, container, name, header, body, now)
    except _Rejected as exc:
        raise _reject(request, name, exc.reason) from None
    with transaction(container.engine) as conn:
        event_id, created = store_inbound_event(
            conn,
            tenant_id=system.tenant_id,
            source=f"merchant:{name}",
            channel_id=None,
            headers=_stored_headers(request, digest),
            body=body,
            content_type=request.headers.get("content-type"),
            now=now,
        )
    if not created:
        raise _reject(request, name, "replayed")
    try:
        update = MerchantUpdateIn.model_validate_json(body)
    except PydanticValidationError as exc:
        error = f"invalid update: {exc.error_count()} error(s): " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        with transaction(container.engine) as conn:
            _finish_event(conn, event_id, "failed", error, now)
        raise ValidationError(error) from None
    try:
        with transaction(container.engine) as conn:
            result = _apply(conn, system.tenant_id, system, update, now)
            _finish_event(conn, event_id, "processed", None, now)
    except TradelaneError as exc:
        with transaction(container.engine) as conn:
            _finish_event(conn, event_id, "failed", str(exc), now)
        raise
    ack = MerchantWebhookAck(event_id=event_id, update=result.as_dict())
    return JSONResponse(ack.model_dump(mode="json"), status_code=202)
