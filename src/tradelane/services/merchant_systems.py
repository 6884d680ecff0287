"""Adding merchant systems: each kind's settings validated, then stored through the repository
(:mod:`tradelane.persistence.merchant_systems`) with its credentials encrypted.

* :func:`add_http_system` — a generic HTTP/webhook OMS (:mod:`tradelane.merchant.http_oms`): orders are
  POSTed to ``url`` signed with ``secret`` (at least 16 characters); optional ``timeout_seconds`` in
  (0, 120]; ``cancellations=False`` declares that the OMS has no cancellations module (none is sent);
* :func:`add_shopify_system` — a Shopify shop (:mod:`tradelane.merchant.shopify`): Admin API access token
  and webhook secret, settings as :class:`~tradelane.merchant.shopify.settings.ShopifySettings`.

(A Files drop folder is added by :func:`tradelane.services.files_scan.add_files_system`, which also
queues its first scan.) Every function raises :class:`~tradelane.domain.errors.ValidationError` for
invalid input and :class:`~tradelane.domain.errors.ConflictError` when the tenant already has a system of
that name; it writes in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Connection

from tradelane.domain.errors import ValidationError
from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.http_oms import HTTP_KIND
from tradelane.merchant.shopify.settings import (
    DEFAULT_API_VERSION,
    MIN_SECRET_LENGTH,
    SHOPIFY_KIND,
    InventoryBehaviour,
    ShopifySettings,
    check_api_url,
    check_shop_domain,
)
from tradelane.persistence.merchant_systems import add_merchant_system
from tradelane.security.crypto import KeyRing


def check_url(url: str) -> str:
    """An absolute http(s) URL, or :class:`ValidationError`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError(f"url must be an absolute http(s) URL, got {url!r}")
    return url.strip()


def add_http_system(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    url: str,
    secret: str,
    keyring: KeyRing,
    now: datetime,
    timeout_seconds: float | None = None,
    cancellations: bool = True,
) -> MerchantSystem:
    """A generic HTTP/webhook OMS: orders are POSTed to ``url`` signed with ``secret``; cancellations
    too unless ``cancellations`` is False."""
    if len(secret) < 16:
        raise ValidationError("the signing secret must be at least 16 characters")
    settings: dict[str, Any] = {"url": check_url(url)}
    if timeout_seconds is not None:
        if not 0 < timeout_seconds <= 120:
            raise ValidationError("timeout must be between 0 and 120 seconds")
        settings["timeout_seconds"] = timeout_seconds
    if not cancellations:
        settings["cancellations"] = False
    return add_merchant_system(
        conn,
        tenant_id=tenant_id,
        name=name,
        kind=HTTP_KIND,
        settings=settings,
        credentials={"secret": secret},
        keyring=keyring,
        now=now,
    )


def add_shopify_system(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    shop_domain: str,
    access_token: str,
    webhook_secret: str,
    keyring: KeyRing,
    now: datetime,
    api_url: str | None = None,
    api_version: str = DEFAULT_API_VERSION,
    currency: str | None = None,
    inventory_behaviour: str = InventoryBehaviour.DECREMENT_IGNORING_POLICY,
) -> MerchantSystem:
    """Create a Shopify merchant system (:class:`ConflictError` if the tenant already has that name)."""
    if not access_token.strip() or any(c.isspace() for c in access_token.strip()):
        raise ValidationError("the access token must be a non-empty string without spaces")
    if len(webhook_secret) < MIN_SECRET_LENGTH:
        raise ValidationError(f"the webhook secret must be at least {MIN_SECRET_LENGTH} characters")
    domain = check_shop_domain(shop_domain)
    settings = ShopifySettings(
        shop_domain=domain,
        api_url=check_api_url(api_url or f"https://{domain}"),
        api_version=api_version,
        currency=currency.strip().upper() if currency else None,
        inventory_behaviour=inventory_behaviour,
    )
    return add_merchant_system(
        conn,
        tenant_id=tenant_id,
        name=name,
        kind=SHOPIFY_KIND,
        settings=settings.as_settings(),
        credentials={"access_token": access_token.strip(), "webhook_secret": webhook_secret},
        keyring=keyring,
        now=now,
    )
