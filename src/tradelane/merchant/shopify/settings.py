"""Shopify merchant systems: their settings and credentials, validated (pure; adding one is
:func:`tradelane.services.merchant_systems.add_shopify_system`).

A Shopify merchant system is a ``merchant_systems`` row of kind ``shopify``:

* ``settings`` (plain JSON): ``shop_domain`` (the ``*.myshopify.com`` domain Shopify names in
  ``X-Shopify-Shop-Domain``), ``api_url`` (the Admin API base URL, ``https://<shop_domain>`` unless
  overridden, e.g. for the sandbox), ``api_version`` (``YYYY-MM``), ``currency`` (the shop currency, used
  for catalog prices received by webhook; optional), ``inventory_behaviour`` (how created orders claim
  Shopify stock) and the bounds of the two catalog/order scans the adapter makes;
* ``credentials`` (encrypted): ``access_token`` (Admin API, ``X-Shopify-Access-Token``) and
  ``webhook_secret`` (the key of the ``X-Shopify-Hmac-SHA256`` webhook signatures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tradelane.domain.currencies import ISO_4217
from tradelane.domain.errors import ValidationError

SHOPIFY_KIND = "shopify"
#: A REST Admin API version Shopify still serves; override per system with ``api_version``.
DEFAULT_API_VERSION = "2025-10"
DEFAULT_TIMEOUT_SECONDS = 10.0
#: Pages of 250 orders scanned for an order tradelane already created (see the adapter).
DEFAULT_LOOKUP_MAX_PAGES = 40
#: Pages of 250 products scanned to resolve line SKUs to variants.
DEFAULT_CATALOG_MAX_PAGES = 40
MIN_SECRET_LENGTH = 16


class InventoryBehaviour:
    """Shopify's ``inventory_behaviour`` of a created order."""

    BYPASS = "bypass"  # Shopify stock is left alone
    DECREMENT_IGNORING_POLICY = "decrement_ignoring_policy"  # claim stock, even below zero (default)
    DECREMENT_OBEYING_POLICY = "decrement_obeying_policy"  # claim stock; refuse when a variant is out

    ALL = frozenset({BYPASS, DECREMENT_IGNORING_POLICY, DECREMENT_OBEYING_POLICY})


_API_VERSION = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)


def check_shop_domain(value: str) -> str:
    """A lower-cased host name such as ``my-shop.myshopify.com`` (no scheme, no path)."""
    domain = value.strip().lower()
    if not _DOMAIN.match(domain):
        raise ValidationError(f"shop domain must be a host name like my-shop.myshopify.com, got {value!r}")
    return domain


def check_api_url(value: str) -> str:
    """An absolute http(s) base URL without query or fragment; a trailing slash is dropped."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise ValidationError(f"api url must be an absolute http(s) URL, got {value!r}")
    return url


@dataclass(frozen=True, slots=True)
class ShopifySettings:
    shop_domain: str
    api_url: str
    api_version: str = DEFAULT_API_VERSION
    currency: str | None = None
    inventory_behaviour: str = InventoryBehaviour.DECREMENT_IGNORING_POLICY
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    lookup_max_pages: int = DEFAULT_LOOKUP_MAX_PAGES
    catalog_max_pages: int = DEFAULT_CATALOG_MAX_PAGES

    def __post_init__(self) -> None:
        if not _API_VERSION.match(self.api_version):
            raise ValidationError(f"api version must look like 2025-10, got {self.api_version!r}")
        if self.currency is not None and self.currency not in ISO_4217:
            raise ValidationError(f"unknown currency {self.currency!r} (not ISO 4217)")
        if self.inventory_behaviour not in InventoryBehaviour.ALL:
            raise ValidationError(
                f"inventory behaviour must be one of {', '.join(sorted(InventoryBehaviour.ALL))}"
            )
        if not 0 < self.timeout_seconds <= 120:
            raise ValidationError("timeout must be between 0 and 120 seconds")
        for name in ("lookup_max_pages", "catalog_max_pages"):
            if not 1 <= getattr(self, name) <= 1000:
                raise ValidationError(f"{name} must be between 1 and 1000")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ShopifySettings:
        """Parse a stored ``settings`` object (:class:`ValidationError` names what is wrong)."""
        raw_domain = settings.get("shop_domain")
        if not isinstance(raw_domain, str):
            raise ValidationError("the Shopify system has no shop_domain")
        domain = check_shop_domain(raw_domain)
        try:
            return cls(
                shop_domain=domain,
                api_url=check_api_url(str(settings.get("api_url") or f"https://{domain}")),
                api_version=str(settings.get("api_version") or DEFAULT_API_VERSION),
                currency=settings.get("currency") or None,
                inventory_behaviour=str(
                    settings.get("inventory_behaviour") or InventoryBehaviour.DECREMENT_IGNORING_POLICY
                ),
                timeout_seconds=float(settings.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS),
                lookup_max_pages=int(settings.get("lookup_max_pages") or DEFAULT_LOOKUP_MAX_PAGES),
                catalog_max_pages=int(settings.get("catalog_max_pages") or DEFAULT_CATALOG_MAX_PAGES),
            )
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"invalid Shopify settings: {exc}") from None

    def as_settings(self) -> dict[str, Any]:
        return {
            "shop_domain": self.shop_domain,
            "api_url": self.api_url,
            "api_version": self.api_version,
            "currency": self.currency,
            "inventory_behaviour": self.inventory_behaviour,
            "timeout_seconds": self.timeout_seconds,
            "lookup_max_pages": self.lookup_max_pages,
            "catalog_max_pages": self.catalog_max_pages,
        }


@dataclass(frozen=True, slots=True)
class ShopifyCredentials:
    access_token: str
    webhook_secret: str

    def __repr__(self) -> str:
        return "ShopifyCredentials(<redacted>)"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any]) -> ShopifyCredentials:
        token = credentials.get("access_token")
        secret = credentials.get("webhook_secret")
        if not isinstance(token, str) or not token:
            raise ValidationError("the Shopify system has no access token")
        if not isinstance(secret, str) or not secret:
            raise ValidationError("the Shopify system has no webhook secret")
        return cls(token, secret)
