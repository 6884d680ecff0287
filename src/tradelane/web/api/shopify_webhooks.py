"""``POST /api/v1/shopify/{tenant}/{merchant_name}/webhooks``: Shopify's webhooks for one merchant system.

Shopify sends no bearer token, so the URL names the tenant and its Shopify merchant system (names are
unique per tenant), and the request is authenticated by its signature alone. Subscribe every topic of the
shop to this URL (``products/create``, ``products/update``, ``inventory_levels/update``,
``fulfillments/create``, ``orders/fulfilled``, ``orders/cancelled``).

Contracts:

* ``X-Shopify-Hmac-SHA256`` is verified in constant time with the system's webhook secret
  (:mod:`tradelane.merchant.shopify.webhook_protocol`); ``X-Shopify-Shop-Domain``, when present, must be the
  system's shop, and the body must be the kind of resource ``X-Shopify-Topic`` announces (the topic is not
  signed). An unknown tenant or system, a disabled system, a missing, malformed or forged signature,
  another shop, a body under the wrong topic, or a *replayed* delivery answers 401 (problem JSON) and
  stores nothing: the only trace is a ``security.webhook_rejected`` log line (reason, tenant, merchant,
  topic, webhook id, remote address — never the secret or the body).
* Replays are refused without check-then-insert: the raw event is stored in ``inbound_events`` (source
  ``shopify:<merchant_name>``, see :func:`event_source`; external id = ``X-Shopify-Webhook-Id``) by an
  insert that ignores conflicts; a delivery whose id is already stored is a duplicate and enqueues
  nothing. A duplicate of an event that is finished (``processed``, ``ignored`` or ``failed``) is a
  *replay* (401 as above); a duplicate of an event still waiting for its job is answered 200 again
  (Shopify retries a delivery whose answer it did not get), with the same event and job.
* Known limit: Shopify signs neither the webhook id nor the topic. A captured body re-sent under a *new*
  webhook id is accepted, with the original's effects: shipments and cancellations are keyed by
  Shopify's ids (recorded once), stock is re-read live, and a replayed product can only restore the price
  and stock Shopify sent earlier, until its next update.
* A verified delivery is answered as soon as it is durable, never after doing the work: in one
  transaction the raw event is stored and one ``shopify.apply_event`` job enqueued to apply it
  (:func:`tradelane.services.shopify_webhooks.accept_event`); then 200 with ``status`` ``accepted``, the
  event and the job ids. The job applies the event later; the event ends ``processed`` or ``ignored``
  (not tradelane's order...), or ``failed`` with the error and a dead-lettered job that can be replayed
  (:func:`tradelane.services.shopify_webhooks.handle_apply`). A topic tradelane does not handle is stored
  ``ignored`` at once, without a job, and answered 200 with ``status`` ``ignored``.
* The tenant's system is read by one statement, and decrypted webhook secrets are cached in-process keyed
  by their ciphertext: changing a system's credentials takes effect on the next request, and no request
  pays for a Fernet decrypt twice.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from tradelane.bootstrap import Container
from tradelane.domain.errors import ValidationError
from tradelane.logging import get_logger
from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.shopify.settings import SHOPIFY_KIND, ShopifyCredentials, ShopifySettings
from tradelane.merchant.shopify.webhook_protocol import (
    HMAC_HEADER,
    SHOP_DOMAIN_HEADER,
    TOPIC_HEADER,
    WEBHOOK_ID_HEADER,
    BadSignature,
    payload_fits_topic,
    verify_hmac,
)
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.tables import merchant_systems, tenants
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.inbound import MAX_SOURCE_LENGTH
from tradelane.services.shopify_webhooks import Intake, accept_event
from tradelane.web.api.common import API_PREFIX, PRINTABLE
from tradelane.web.auth import ContainerDep
from tradelane.web.problems import ApiProblem, problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/shopify", tags=["shopify"])
security_log = get_logger("tradelane.security")

TenantName = Annotated[
    str, Path(min_length=1, max_length=100, pattern=PRINTABLE, description="The tenant's name.")
]
MerchantName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The name of the tenant's Shopify merchant system.",
    ),
]


class ShopifyWebhookAck(BaseModel):
    event_id: int = Field(description="The stored event (inbound_events).")
    job_id: int | None = Field(description="The job that applies the event (none for an ignored topic).")
    topic: str
    status: Literal["accepted", "ignored"] = Field(
        description="accepted: stored, applied later by the job; ignored: a topic tradelane does not handle."
    )
    detail: str


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject(request: Request, tenant: str, name: str, reason: str) -> ApiProblem:
    security_log.warning(
        "security.webhook_rejected",
        reason=reason,
        source="shopify",
        tenant=tenant,
        merchant=name,
        topic=request.headers.get(TOPIC_HEADER),
        webhook_id=request.headers.get(WEBHOOK_ID_HEADER),
        remote_addr=request.client.host if request.client else None,
        path=request.url.path,
    )
    return ApiProblem(
        401, "the webhook signature is missing, invalid or already used", slug="invalid-signature"
    )


_SYSTEM = (
    sa.select(merchant_systems)
    .join(tenants, tenants.c.id == merchant_systems.c.tenant_id)
    .where(tenants.c.name == sa.bindparam("tenant"), merchant_systems.c.name == sa.bindparam("name"))
)


@functools.lru_cache(maxsize=1024)
def _webhook_secret(keyring: KeyRing, token: bytes) -> str:
    """The webhook secret sealed in ``token`` (the credentials ciphertext). Cached by ciphertext: new
    credentials are a new token, so a rotated secret is never served from the cache. Raises
    :class:`CredentialError` (undecryptable) or :class:`ValidationError` (no secret), never cached."""
    return ShopifyCredentials.from_credentials(keyring.decrypt(token)).webhook_secret


def _system(
    conn: Connection, container: Container, tenant: str, name: str
) -> tuple[MerchantSystem, ShopifySettings, str]:
    """The enabled Shopify system, its settings and its webhook secret (one statement, the decrypted
    secret cached by ciphertext); :class:`_Rejected` otherwise."""
    row = conn.execute(_SYSTEM, {"tenant": tenant, "name": name}).first()
    if row is None or row.kind != SHOPIFY_KIND:
        raise _Rejected("unknown_merchant")
    if not row.enabled:
        raise _Rejected("merchant_disabled")
    system = MerchantSystem(row.id, row.tenant_id, row.name, row.kind, dict(row.settings), bool(row.enabled))
    try:
        settings = ShopifySettings.from_settings(system.settings)
        if row.credentials is None:
            raise ValidationError("the Shopify system has no credentials")
        secret = _webhook_secret(container.keyring, bytes(row.credentials))
    except (ValidationError, CredentialError):
        raise _Rejected("no_usable_secret") from None
    return system, settings, secret


def event_source(system: MerchantSystem) -> str:
    """``shopify:<name>`` (``shopify:#<id>`` for a name too long for the column)."""
    source = f"shopify:{system.name}"
    return source if len(source) <= MAX_SOURCE_LENGTH else f"shopify:#{system.id}"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


async def _raw_body(request: Request) -> bytes:
    return await request.body()


_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "parameters": [
        {
            "name": HMAC_HEADER,
            "in": "header",
            "required": True,
            "description": "Base64 HMAC-SHA256 of the raw body, keyed with the system's webhook secret.",
            "schema": {"type": "string"},
        },
        {
            "name": TOPIC_HEADER,
            "in": "header",
            "required": True,
            "description": "e.g. `fulfillments/create`; unhandled topics are acknowledged and ignored.",
            "schema": {"type": "string"},
        },
        {
            "name": WEBHOOK_ID_HEADER,
            "in": "header",
            "required": True,
            "description": "Delivery id; each is accepted once (a replay answers 401).",
            "schema": {"type": "string", "maxLength": 300},
        },
        {
            "name": SHOP_DOMAIN_HEADER,
            "in": "header",
            "required": False,
            "description": "When present, must be the system's shop domain.",
            "schema": {"type": "string"},
        },
    ],
}


@router.post(
    "/{tenant}/{merchant_name}/webhooks",
    response_model=ShopifyWebhookAck,
    summary="Receive a webhook signed by a tenant's Shopify shop",
    responses=problem_responses(401, 413, 422),
    openapi_extra=_OPENAPI,
)
def receive_shopify_webhook(
    tenant: TenantName,
    merchant_name: MerchantName,
    request: Request,
    container: ContainerDep,
    body: Annotated[bytes, Depends(_raw_body)],
) -> JSONResponse:
    now = container.now()
    try:
        with read_only(container.engine) as conn:
            system, settings, secret = _system(conn, container, tenant, merchant_name)
        verify_hmac(secret, body, request.headers.get(HMAC_HEADER))
        shop = request.headers.get(SHOP_DOMAIN_HEADER)
        if shop is not None and shop.strip().lower() != settings.shop_domain:
            raise _Rejected("shop_mismatch")
        topic = request.headers.get(TOPIC_HEADER) or ""
        payload = _json(body)
        if not payload_fits_topic(topic, payload):
            raise _Rejected("topic_mismatch")
    except (_Rejected, BadSignature) as exc:
        raise _reject(request, tenant, merchant_name, exc.reason) from None
    with transaction(container.engine) as conn:
        accepted = accept_event(
            conn,
            system=system,
            source=event_source(system),
            topic=topic,
            headers=request.headers.items(),
            body=body,
            content_type=request.headers.get("content-type"),
            now=now,
        )
    if accepted.intake is Intake.REPLAYED:
        raise _reject(request, tenant, merchant_name, "replayed")
    if accepted.intake is Intake.IGNORED:
        ack = ShopifyWebhookAck(
            event_id=accepted.event_id,
            job_id=None,
            topic=topic,
            status="ignored",
            detail=f"topic {topic!r} is not handled",
        )
    else:
        detail = "queued" if accepted.intake is Intake.QUEUED else "already received"
        ack = ShopifyWebhookAck(
            event_id=accepted.event_id, job_id=accepted.job_id, topic=topic, status="accepted", detail=detail
        )
    return JSONResponse(ack.model_dump(), status_code=200)
