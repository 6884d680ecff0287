"""Where a tenant's notifications go: email recipients and an optional signed webhook, tenant-wide or
for one channel (``notification_settings``).

Contracts:

* :func:`configure` changes one scope (the tenant, or one channel of it) and leaves what it is not given
  as it was: ``emails=None`` keeps the recipients (``[]`` removes them), ``webhook_url=None`` keeps the
  webhook (``""`` removes it and its secret), ``webhook_secret=None`` keeps the stored secret — a new
  webhook needs one. A scope left with no recipient and no webhook is deleted. Addresses are checked
  (``name@domain``), lower-cased and deduplicated; a webhook URL must be ``http(s)://host/...`` without
  credentials in it.
* The secret is stored Fernet-encrypted with the key ring (``{"secret": ...}``), like channel
  credentials. :class:`Destinations` never carries it: only ``has_webhook_secret``.
* A change of a channel's settings is recorded in the channel's audit trail (``notifications.configure``)
  in the same transaction; a tenant-wide change has no channel trail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import ValidationError
from tradelane.persistence.tables import channels, notification_settings
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services import audit

_ADDRESS = re.compile(r"[^@\s,;<>\"]+@[^@\s,;<>\"]+")
MAX_RECIPIENTS = 20


@dataclass(frozen=True, slots=True)
class Destinations:
    """One scope's settings, as shown to people and APIs (never the secret)."""

    id: int
    channel_id: int | None
    channel: str | None
    emails: list[str]
    webhook_url: str | None
    has_webhook_secret: bool
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "emails": list(self.emails),
            "webhook_url": self.webhook_url,
            "webhook_secret_set": self.has_webhook_secret,
            "updated_at": self.updated_at.isoformat(),
        }


def normalise_emails(emails: Sequence[str]) -> list[str]:
    """``emails`` checked, lower-cased, deduplicated in order; ``ValidationError`` naming a bad one."""
    result: list[str] = []
    for raw in emails:
        address = raw.strip().lower()
        if not _ADDRESS.fullmatch(address) or len(address) > 254:
            raise ValidationError(f"not an email address: {raw!r}")
        if address not in result:
            result.append(address)
    if len(result) > MAX_RECIPIENTS:
        raise ValidationError(f"at most {MAX_RECIPIENTS} recipients per scope, got {len(result)}")
    return result


def check_webhook_url(url: str) -> str:
    """``url`` stripped, or ``ValidationError`` saying what is wrong with it."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise ValidationError(f"webhook URL is not a valid URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"webhook URL must be http(s)://host/..., got {url!r}")
    if parts.username or parts.password:
        raise ValidationError("webhook URL must not carry credentials: use the webhook secret")
    if len(url) > 1000:
        raise ValidationError("webhook URL is longer than 1000 characters")
    return url


def configure(
    conn: Connection,
    keyring: KeyRing,
    *,
    tenant_id: int,
    channel_id: int | None,
    emails: Sequence[str] | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    actor: str,
    now: datetime,
) -> Destinations | None:
    """Change the scope's settings (see the module docstring); returns them, ``None`` once removed."""
    current = _row(conn, tenant_id, channel_id)
    new_emails = normalise_emails(emails) if emails is not None else list(current.emails if current else [])
    url = current.webhook_url if current else None
    secret_token = current.webhook_secret if current else None
    if webhook_url is not None:
        url = check_webhook_url(webhook_url) if webhook_url.strip() else None
        if url is None:
            secret_token = None
    if webhook_secret is not None:
        if not webhook_secret.strip():
            raise ValidationError("the webhook secret is empty")
        if url is None:
            raise ValidationError("a webhook secret needs a webhook URL")
        secret_token = keyring.encrypt({"secret": webhook_secret.strip()})
    if url is not None and secret_token is None:
        raise ValidationError("a webhook needs a secret to sign its requests (--webhook-secret-stdin)")
    values = {"emails": new_emails, "webhook_url": url, "webhook_secret": secret_token, "updated_at": now}
    if not new_emails and url is None:
        if current is not None:
            conn.execute(sa.delete(notification_settings).where(notification_settings.c.id == current.id))
    elif current is None:
        conn.execute(
            sa.insert(notification_settings).values(
                tenant_id=tenant_id, channel_id=channel_id, created_at=now, **values
            )
        )
    else:
        conn.execute(
            sa.update(notification_settings).where(notification_settings.c.id == current.id).values(**values)
        )
    result = _view(conn, tenant_id, channel_id)
    if channel_id is not None:
        audit.record(
            conn,
            tenant_id=tenant_id,
            channel_id=channel_id,
            actor=actor,
            action="notifications.configure",
            now=now,
            details={
                "emails": new_emails,
                "webhook_url": url,
                "webhook_secret_changed": webhook_secret is not None,
            },
        )
    return result


def show(conn: Connection, tenant_id: int) -> list[Destinations]:
    """Every scope of the tenant: the tenant-wide one first, then channels by name."""
    rows = conn.execute(
        sa.select(notification_settings, channels.c.name.label("channel_name"))
        .outerjoin(channels, channels.c.id == notification_settings.c.channel_id)
        .where(notification_settings.c.tenant_id == tenant_id)
        .order_by(notification_settings.c.channel_id.is_not(None), channels.c.name)
    ).all()
    return [_destinations(r) for r in rows]


def webhook_secret(conn: Connection, keyring: KeyRing, settings_id: int | None) -> str | None:
    """The decrypted secret of a settings row (``None``: row or webhook gone). Raises
    :class:`~tradelane.security.crypto.CredentialError` when no configured key decrypts it."""
    if settings_id is None:
        return None
    token = conn.execute(
        sa.select(notification_settings.c.webhook_secret).where(notification_settings.c.id == settings_id)
    ).scalar()
    if token is None:
        return None
    secret = keyring.decrypt(token).get("secret")
    if not isinstance(secret, str) or not secret:
        raise CredentialError("the stored webhook secret is not a string")
    return secret


def _row(conn: Connection, tenant_id: int, channel_id: int | None) -> Any:
    scope = (
        notification_settings.c.channel_id.is_(None)
        if channel_id is None
        else notification_settings.c.channel_id == channel_id
    )
    return conn.execute(
        sa.select(notification_settings).where(notification_settings.c.tenant_id == tenant_id, scope)
    ).first()


def _view(conn: Connection, tenant_id: int, channel_id: int | None) -> Destinations | None:
    return next((d for d in show(conn, tenant_id) if d.channel_id == channel_id), None)


def _destinations(row: Any) -> Destinations:
    return Destinations(
        id=row.id,
        channel_id=row.channel_id,
        channel=row.channel_name,
        emails=list(row.emails or []),
        webhook_url=row.webhook_url,
        has_webhook_secret=row.webhook_secret is not None,
        updated_at=row.updated_at,
    )
