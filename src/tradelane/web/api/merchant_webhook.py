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
* A valid request is answered as soon as it is durable, never after doing the work: in one transaction
  the systems are read, the signature verified, the raw event stored (source ``merchant:<name>``) and
  one job enqueued to apply it (:mod:`tradelane.services.merchant_webhooks`); then 202 with the event
  and job ids. The job applies the update later; the event ends ``processed``, or ``failed`` with the
  error (unknown order, bad lines...) and a dead-lettered job that can be replayed. A body that is not
  a valid update is stored ``failed`` and answered 422 at once.
* Decrypted verification secrets are cached in-process keyed by their ciphertext: changing a system's
  credentials takes effect on the next request, and no request pays for a Fernet decrypt twice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from tradelane.bootstrap import Container
from tradelane.domain.errors import ValidationError
from tradelane.logging import get_logger
from tradelane.merchant.http_oms import HTTP_KIND
from tradelane.merchant.signing import SIGNATURE_HEADER, BadSignature, SignatureError, verify
from tradelane.persistence.db import transaction
from tradelane.persistence.tables import merchant_systems
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.inbound import EXTERNAL_ID_HEADERS, inbound_event_row
from tradelane.services.merchant_webhooks import MerchantUpdateIn, accept_update, apply_job_spec, parse_update
from tradelane.web.auth import ContainerDep
from tradelane.web.problems import ApiProblem, problem_responses

if TYPE_CHECKING:
    from tradelane.web.api.pg_intake import PgIntake

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


class MerchantWebhookAck(BaseModel):
    event_id: int = Field(description="The stored event (inbound_events).")
    job_id: int = Field(description="The job that applies the update.")
    status: Literal["accepted"] = "accepted"


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


_CANDIDATES = (
    sa.select(merchant_systems.c.id, merchant_systems.c.tenant_id, merchant_systems.c.credentials)
    .where(
        merchant_systems.c.name == sa.bindparam("name"),
        merchant_systems.c.kind == HTTP_KIND,
        merchant_systems.c.enabled.is_(True),
    )
    .order_by(merchant_systems.c.id)
)


@dataclass(frozen=True, slots=True)
class _Sender:
    system_id: int
    tenant_id: int


@functools.lru_cache(maxsize=1024)
def _verification_secret(keyring: KeyRing, token: bytes) -> str:
    """The signing secret sealed in ``token`` (the credentials ciphertext). Cached by ciphertext: new
    credentials are a new token, so a rotated secret is never served from the cache."""
    return str(keyring.decrypt(token).get("secret") or "")


@dataclass(frozen=True, slots=True)
class Candidate:
    """An enabled HTTP merchant system of the requested name (see :data:`_CANDIDATES`)."""

    system_id: int
    tenant_id: int
    credentials: bytes | None


def candidates(conn: Connection, name: str) -> list[Candidate]:
    """The enabled HTTP merchant systems called ``name`` (one per tenant at most), by id."""
    return [
        Candidate(row.id, row.tenant_id, None if row.credentials is None else bytes(row.credentials))
        for row in conn.execute(_CANDIDATES, {"name": name})
    ]


def verify_sender(
    found: list[Candidate], keyring: KeyRing, header: str | None, body: bytes, now: datetime
) -> tuple[Candidate, str]:
    """The candidate whose secret verifies the request, and the verified digest. Raises
    :class:`_Rejected` with the reason (``unknown_merchant``, ``bad_signature``, ``stale``...)."""
    if not found:
        raise _Rejected("unknown_merchant")
    failure: SignatureError | None = None
    for candidate in found:
        if candidate.credentials is None:
            continue
        try:
            secret = _verification_secret(keyring, candidate.credentials)
        except CredentialError:
            continue
        try:
            return candidate, verify(secret, header, body, now)
        except BadSignature as exc:
            failure = exc  # maybe another tenant's system of that name
        except SignatureError as exc:  # malformed or stale: the same for every candidate
            raise _Rejected(exc.reason) from None
    raise _Rejected(failure.reason if failure else "no_usable_secret")


def _authenticate(
    conn: Connection, keyring: KeyRing, name: str, header: str | None, body: bytes, now: datetime
) -> tuple[_Sender, str]:
    """The enabled merchant system whose secret verifies the request, and the verified digest."""
    candidate, digest = verify_sender(candidates(conn, name), keyring, header, body, now)
    return _Sender(candidate.system_id, candidate.tenant_id), digest


def _stored_headers(request: Request, digest: str) -> list[tuple[str, str]]:
    """The request's headers with the verified digest as the delivery id (the sender's own delivery-id
    headers are kept under ``x-sender-*`` names)."""
    headers = []
    for key, value in request.headers.items():
        lower = key.lower()
        headers.append((f"x-sender-{lower[2:]}" if lower in EXTERNAL_ID_HEADERS else lower, value))
    headers.append((EXTERNAL_ID_HEADERS[0], digest))
    return headers


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
    responses=problem_responses(401, 422),
    openapi_extra=_OPENAPI,
)
def receive_merchant_webhook(
    name: MerchantName,
    request: Request,
    container: ContainerDep,
    body: Annotated[bytes, Depends(_raw_body)],
) -> JSONResponse:
    return receive(container, name, request, body)


def receive(container: Container, name: str, request: Request, body: bytes) -> JSONResponse:
    """Verify, store, enqueue, acknowledge (see the module docstring); the route above and
    :mod:`tradelane.web.api.webhook_lane` call it, in a worker thread. Raises the 401/422 problems."""
    now = container.now()
    header = request.headers.get(SIGNATURE_HEADER)
    try:
        with transaction(container.engine) as conn:
            sender, digest = _authenticate(conn, container.keyring, name, header, body, now)
            accepted = accept_update(
                conn,
                tenant_id=sender.tenant_id,
                merchant_system_id=sender.system_id,
                source=f"merchant:{name}",
                headers=_stored_headers(request, digest),
                body=body,
                content_type=request.headers.get("content-type"),
                now=now,
            )
            if not accepted.created:
                raise _Rejected("replayed")  # stores nothing: the transaction rolls back
    except _Rejected as exc:
        raise _reject(request, name, exc.reason) from None
    if accepted.error is not None:
        raise ValidationError(accepted.error)
    assert accepted.job_id is not None  # a valid new update always has its job
    return JSONResponse(
        {"event_id": accepted.event_id, "job_id": accepted.job_id, "status": "accepted"}, status_code=202
    )


#: Rejections that a newer read of the merchant systems could turn into an acceptance (a system added or
#: enabled, a secret rotated since the cached read); a malformed or stale signature stays one.
_REREAD_REASONS = frozenset({"unknown_merchant", "bad_signature", "no_usable_secret"})


async def receive_async(
    container: Container, intake: PgIntake, name: str, request: Request, body: bytes
) -> JSONResponse:
    """:func:`receive` on PostgreSQL without a worker thread: the same checks, rows and answers, with the
    merchant systems read from ``intake``'s cache and the event and its job stored by one statement
    (:mod:`tradelane.web.api.pg_intake`). A body that is not a valid update (stored ``failed``, 422) and a
    system that changed twice during the request take :func:`receive`'s path."""
    now = container.now()
    header = request.headers.get(SIGNATURE_HEADER)
    try:
        parse_update(body)
    except ValidationError:
        return await run_in_threadpool(receive, container, name, request, body)
    for reread in (False, True):
        found = await intake.candidates(name, refresh=reread)
        try:
            sender, digest = verify_sender(found, container.keyring, header, body, now)
        except _Rejected as exc:
            if reread or exc.reason not in _REREAD_REASONS:
                raise _reject(request, name, exc.reason) from None
            continue
        event = inbound_event_row(
            tenant_id=sender.tenant_id,
            source=f"merchant:{name}",
            channel_id=None,
            headers=_stored_headers(request, digest),
            body=body,
            content_type=request.headers.get("content-type"),
            now=now,
        )
        job = apply_job_spec(sender.tenant_id, 0, sender.system_id)
        stored = await intake.store_merchant_update(event, job, sender, now)
        if stored.stale:
            continue  # disabled or new credentials since the cached read: read the systems again
        if stored.event_id is None:
            raise _reject(request, name, "replayed")
        return JSONResponse(
            {"event_id": stored.event_id, "job_id": stored.job_id, "status": "accepted"}, status_code=202
        )
    return await run_in_threadpool(receive, container, name, request, body)
