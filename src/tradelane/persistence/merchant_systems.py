"""The ``merchant_systems`` repository: a tenant's merchant systems, their settings, and their
credentials encrypted with the key ring.

Credentials (e.g. the HTTP OMS signing secret) are stored as a Fernet token in
``merchant_systems.credentials`` and are never returned by listings, logs or the API. Each kind's
validated creation (``add_http_system``, ``add_shopify_system``, ``add_files_system``) is a service on
top of :func:`add_merchant_system` (:mod:`tradelane.services.merchant_systems`,
:mod:`tradelane.services.files_scan`).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.merchant.base import MerchantSystem
from tradelane.persistence.tables import merchant_systems
from tradelane.security.crypto import KeyRing

#: Names appear in URLs (``/api/v1/merchant/{name}/webhook``): keep them URL-safe.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _row(row: Any) -> MerchantSystem:
    return MerchantSystem(row.id, row.tenant_id, row.name, row.kind, dict(row.settings), bool(row.enabled))


def add_merchant_system(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    kind: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    keyring: KeyRing,
    now: datetime,
) -> MerchantSystem:
    """Create a merchant system; :class:`ConflictError` if the tenant already has one of that name."""
    if not NAME_PATTERN.match(name):
        raise ValidationError(
            "merchant system name must be 1-100 of A-Z a-z 0-9 _ . - (starting alphanumeric)"
        )
    try:
        with conn.begin_nested():
            system_id = conn.execute(
                sa.insert(merchant_systems)
                .values(
                    tenant_id=tenant_id,
                    name=name,
                    kind=kind,
                    settings=settings,
                    credentials=keyring.encrypt(credentials) if credentials is not None else None,
                    enabled=True,
                    created_at=now,
                )
                .returning(merchant_systems.c.id)
            ).scalar_one()
    except sa.exc.IntegrityError:
        raise ConflictError(f"merchant system {name!r} already exists") from None
    return MerchantSystem(system_id, tenant_id, name, kind, settings, True)


def get_merchant_system(conn: Connection, tenant_id: int, name: str) -> MerchantSystem:
    row = conn.execute(
        sa.select(merchant_systems).where(
            merchant_systems.c.tenant_id == tenant_id, merchant_systems.c.name == name
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no merchant system named {name!r}")
    return _row(row)


def list_merchant_systems(
    conn: Connection, tenant_id: int, *, enabled_only: bool = False
) -> list[MerchantSystem]:
    stmt = sa.select(merchant_systems).where(merchant_systems.c.tenant_id == tenant_id)
    if enabled_only:
        stmt = stmt.where(merchant_systems.c.enabled.is_(True))
    return [_row(r) for r in conn.execute(stmt.order_by(merchant_systems.c.id))]


def systems_named(conn: Connection, name: str, *, kind: str | None = None) -> list[MerchantSystem]:
    """Enabled systems called ``name`` in *every* tenant (names are unique per tenant only): an
    unauthenticated but signed webhook is matched to its tenant by whose secret verifies it."""
    stmt = sa.select(merchant_systems).where(
        merchant_systems.c.name == name, merchant_systems.c.enabled.is_(True)
    )
    if kind is not None:
        stmt = stmt.where(merchant_systems.c.kind == kind)
    return [_row(r) for r in conn.execute(stmt.order_by(merchant_systems.c.id))]


def set_enabled(conn: Connection, system: MerchantSystem, enabled: bool) -> None:
    conn.execute(
        sa.update(merchant_systems).where(merchant_systems.c.id == system.id).values(enabled=enabled)
    )


def merchant_credentials(conn: Connection, system: MerchantSystem, keyring: KeyRing) -> dict[str, Any]:
    token = conn.execute(
        sa.select(merchant_systems.c.credentials).where(merchant_systems.c.id == system.id)
    ).scalar_one()
    return keyring.decrypt(token) if token is not None else {}


def describe(system: MerchantSystem) -> dict[str, Any]:
    """A listing entry: everything but credentials."""
    return asdict(system)
