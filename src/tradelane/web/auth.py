"""Bearer-token authentication: every ``/api/v1`` request acts for exactly one tenant.

A token is looked up by its SHA-256 digest (:func:`tradelane.services.tenants.tenant_for_token`);
missing, malformed, unknown and revoked tokens all answer 401 with ``WWW-Authenticate: Bearer`` (RFC 6750).
Routes receive the :class:`Tenant` and must scope every query by ``tenant.id``; other tenants' ids answer
404 exactly like ids that do not exist, so existence never leaks.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from tradelane.bootstrap import Container
from tradelane.persistence.db import read_only
from tradelane.services.tenants import Tenant, tenant_for_token
from tradelane.web.problems import ApiProblem

REALM = "tradelane"

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="The API token of one tenant (`tradelane tenant create` prints it once).",
)


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def _unauthorized(detail: str, error: str | None) -> ApiProblem:
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return ApiProblem(401, detail, slug="unauthorized", headers={"WWW-Authenticate": challenge})


def _lookup(engine: Engine, token: str) -> Tenant | None:
    with read_only(engine) as conn:
        return tenant_for_token(conn, token)


async def current_tenant(
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Tenant:
    """The authenticated tenant; also binds ``tenant_id``/``tenant`` into the structlog context.

    Async on purpose: the context binding must happen in the request's task (a sync dependency runs in
    a worker thread whose context changes are lost)."""
    if credentials is None:
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)", None)
    tenant = await run_in_threadpool(_lookup, container.engine, credentials.credentials)
    if tenant is None:
        raise _unauthorized("the bearer token is unknown or revoked", "invalid_token")
    bind_tenant(tenant)
    return tenant


TenantDep = Annotated[Tenant, Depends(current_tenant)]

#: The bearer credentials, unchecked: for routes that look the tenant up with :func:`tenant_in` inside
#: their own transaction (one connection and one thread hop per request instead of two). Documented in
#: OpenAPI as bearer-protected exactly like :data:`TenantDep`.
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def tenant_in(conn: Connection, credentials: HTTPAuthorizationCredentials | None) -> Tenant:
    """The authenticated tenant, looked up on ``conn``; the same 401 problems as :func:`current_tenant`.
    The caller binds ``tenant_id``/``tenant`` into the structlog context in the request's task (see
    :func:`bind_tenant`)."""
    if credentials is None:
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)", None)
    tenant = tenant_for_token(conn, credentials.credentials)
    if tenant is None:
        raise _unauthorized("the bearer token is unknown or revoked", "invalid_token")
    return tenant


def bind_tenant(tenant: Tenant) -> None:
    """Bind the tenant into the structlog context (call it in the request's task, not a worker thread)."""
    structlog.contextvars.bind_contextvars(tenant_id=tenant.id, tenant=tenant.name)
