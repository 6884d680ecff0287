"""Inbound webhooks: ``POST /api/v1/webhooks/{source}[/{channel_name}]``.

The bearer token is checked in the same transaction that stores the event: one pooled connection and
one worker-thread hop per request (the token is still refused with the usual 401 before anything is
stored).

The raw body, headers (without credentials) and content type are committed to ``inbound_events``
before the sender gets any 2xx: 202 with the new event's id, or 200 with the original event's id for a
duplicate delivery (same tenant, source and delivery id; see :mod:`tradelane.services.inbound`).
Processing happens later, elsewhere; nothing here interprets the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from tradelane.bootstrap import Container
from tradelane.domain.errors import ValidationError
from tradelane.persistence.db import transaction
from tradelane.security.tokens import hash_token
from tradelane.services.channels import get_channel
from tradelane.services.inbound import MAX_SOURCE_LENGTH, inbound_event_row, store_inbound_event
from tradelane.services.tenants import Tenant
from tradelane.web.api.common import API_PREFIX, ChannelName
from tradelane.web.auth import BearerDep, ContainerDep, bind_tenant, tenant_in
from tradelane.web.problems import problem_responses

if TYPE_CHECKING:
    from tradelane.web.api.pg_intake import PgIntake

router = APIRouter(prefix=f"{API_PREFIX}/webhooks", tags=["webhooks"])

Source = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_SOURCE_LENGTH,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Who sends the events (e.g. `shopify`, `mirakl`).",
    ),
]


class WebhookAck(BaseModel):
    event_id: int
    duplicate: bool


async def raw_body(request: Request) -> bytes:
    """The request body exactly as received (size-limited by the body-limit middleware)."""
    return await request.body()


_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": {}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "parameters": [
        {
            "name": "X-Event-Id",
            "in": "header",
            "required": False,
            "description": "Delivery id used for deduplication (also `X-Shopify-Webhook-Id`, "
            "`X-Webhook-Id`); without one, the body's SHA-256 is used.",
            "schema": {"type": "string", "maxLength": 300},
        }
    ],
}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": WebhookAck, "description": "Duplicate delivery: the original event's id."},
    **problem_responses(404, 413),
}


def _store(
    container: Container,
    credentials: HTTPAuthorizationCredentials | None,
    source: str,
    channel_name: str | None,
    headers: list[tuple[str, str]],
    body: bytes,
) -> tuple[Tenant, int, bool]:
    """Authenticate and store in one transaction: one connection, one thread hop per request."""
    with transaction(container.engine) as conn:
        tenant = tenant_in(conn, credentials)
        channel_id = get_channel(conn, tenant.id, channel_name).id if channel_name is not None else None
        content_type = next((v for k, v in headers if k == "content-type"), None)
        event_id, created = store_inbound_event(
            conn,
            tenant_id=tenant.id,
            source=source,
            channel_id=channel_id,
            headers=headers,
            body=body,
            content_type=content_type,
            now=container.now(),
        )
    return tenant, event_id, created


async def receive(
    container: Container,
    credentials: HTTPAuthorizationCredentials | None,
    source: str,
    channel_name: str | None,
    request: Request,
    body: bytes,
) -> JSONResponse:
    """Authenticate, store, acknowledge (the routes below and :mod:`tradelane.web.api.webhook_lane` call
    it). Raises the 401/404/422 problems; runs in the request's task so that the tenant it binds reaches
    the access log (a worker thread's context changes are lost)."""
    headers = request.headers.items()
    tenant, event_id, created = await run_in_threadpool(
        _store, container, credentials, source, channel_name, headers, body
    )
    bind_tenant(tenant)
    # Only now, with the transaction committed, is the event acknowledged.
    ack = WebhookAck(event_id=event_id, duplicate=not created)
    return JSONResponse(ack.model_dump(), status_code=202 if created else 200)


async def receive_async(
    container: Container,
    intake: PgIntake,
    credentials: HTTPAuthorizationCredentials | None,
    source: str,
    channel_name: str | None,
    request: Request,
    body: bytes,
) -> JSONResponse:
    """:func:`receive` on PostgreSQL without a worker thread, for a new event of an authenticated tenant:
    authentication, channel lookup and insert in one statement (:mod:`tradelane.web.api.pg_intake`).
    Everything else — no or an unknown token, a missing channel, a duplicate delivery, an invalid
    header — is answered by :func:`receive` itself, so the answers are :func:`receive`'s."""
    if credentials is not None:
        headers = request.headers.items()
        try:
            event = inbound_event_row(
                tenant_id=0,  # the statement puts the token's tenant (and the channel) in
                source=source,
                channel_id=None,
                headers=headers,
                body=body,
                content_type=next((v for k, v in headers if k == "content-type"), None),
                now=container.now(),
            )
        except ValidationError:
            event = None
        if event is not None:
            stored = await intake.store_event(
                event, token_hash=hash_token(credentials.credentials), channel_name=channel_name
            )
            if stored is not None and stored.event_id is not None:
                bind_tenant(Tenant(stored.tenant_id, stored.tenant_name))
                ack = WebhookAck(event_id=stored.event_id, duplicate=False)
                return JSONResponse(ack.model_dump(), status_code=202)
    return await receive(container, credentials, source, channel_name, request, body)


@router.post(
    "/{source}",
    status_code=202,
    response_model=WebhookAck,
    summary="Store an inbound event of the tenant",
    responses=_RESPONSES,
    openapi_extra=_OPENAPI,
)
async def receive_webhook(
    source: Source,
    request: Request,
    credentials: BearerDep,
    container: ContainerDep,
    body: Annotated[bytes, Depends(raw_body)],
) -> JSONResponse:
    return await receive(container, credentials, source, None, request, body)


@router.post(
    "/{source}/{channel_name}",
    status_code=202,
    response_model=WebhookAck,
    summary="Store an inbound event for one channel of the tenant",
    responses=_RESPONSES,
    openapi_extra=_OPENAPI,
)
async def receive_channel_webhook(
    source: Source,
    channel_name: ChannelName,
    request: Request,
    credentials: BearerDep,
    container: ContainerDep,
    body: Annotated[bytes, Depends(raw_body)],
) -> JSONResponse:
    return await receive(container, credentials, source, channel_name, request, body)
