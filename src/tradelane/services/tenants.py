"""Tenants (merchant clients) and their API tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.persistence.tables import api_tokens, tenants
from tradelane.security.tokens import hash_token, new_token


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str


def _check_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 100:
        raise ValidationError("tenant name must be 1-100 characters")
    return cleaned


def create_tenant(conn: Connection, name: str, *, now: datetime) -> tuple[Tenant, str]:
    """Create a tenant and its first API token. The token is returned once; only its hash is kept."""
    name = _check_name(name)
    try:
        with conn.begin_nested():
            tenant_id = conn.execute(
                sa.insert(tenants).values(name=name, created_at=now).returning(tenants.c.id)
            ).scalar_one()
    except sa.exc.IntegrityError:
        raise ConflictError(f"tenant {name!r} already exists") from None
    token = issue_token(conn, tenant_id, now=now)
    return Tenant(tenant_id, name), token


def issue_token(conn: Connection, tenant_id: int, *, now: datetime, label: str = "default") -> str:
    token = new_token()
    conn.execute(
        sa.insert(api_tokens).values(
            tenant_id=tenant_id, token_hash=hash_token(token), label=label, created_at=now
        )
    )
    return token


def tenant_for_token(conn: Connection, token: str) -> Tenant | None:
    """The tenant a bearer token belongs to, or None (unknown or revoked). Lookup is by digest."""
    row = conn.execute(_BY_TOKEN_HASH, {"token_hash": hash_token(token)}).first()
    return Tenant(row.id, row.name) if row else None


# Built once: every authenticated request runs it (a statement built per call costs SQLAlchemy a result
# metadata adaptation each time, even with its compiled form cached).
_BY_TOKEN_HASH = (
    sa.select(tenants.c.id, tenants.c.name)
    .join(api_tokens, api_tokens.c.tenant_id == tenants.c.id)
    .where(api_tokens.c.token_hash == sa.bindparam("token_hash"), api_tokens.c.revoked_at.is_(None))
)


def get_tenant(conn: Connection, name: str) -> Tenant:
    row = conn.execute(sa.select(tenants.c.id, tenants.c.name).where(tenants.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no tenant named {name!r}")
    return Tenant(row.id, row.name)


def list_tenants(conn: Connection) -> list[Tenant]:
    rows = conn.execute(sa.select(tenants.c.id, tenants.c.name).order_by(tenants.c.name))
    return [Tenant(r.id, r.name) for r in rows]
