"""The Amazon marketplaces the sandbox knows: id, country, currency and SP-API region."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Marketplace:
    marketplace_id: str
    country: str
    name: str
    currency: str
    region: str  # "na" | "eu" | "fe": which SP-API endpoint serves it


MARKETPLACES: dict[str, Marketplace] = {
    m.marketplace_id: m
    for m in (
        Marketplace("ATVPDKIKX0DER", "US", "Amazon.com", "USD", "na"),
        Marketplace("A2EUQ1WTGCTBG2", "CA", "Amazon.ca", "CAD", "na"),
        Marketplace("A1AM78C64UM0Y8", "MX", "Amazon.com.mx", "MXN", "na"),
        Marketplace("A1PA6795UKMFR9", "DE", "Amazon.de", "EUR", "eu"),
        Marketplace("A13V1IB3VIYZZH", "FR", "Amazon.fr", "EUR", "eu"),
        Marketplace("APJ6JRA9NG5V4", "IT", "Amazon.it", "EUR", "eu"),
        Marketplace("A1RKKUPIHCS9HS", "ES", "Amazon.es", "EUR", "eu"),
        Marketplace("A1F83G8C2ARO7P", "GB", "Amazon.co.uk", "GBP", "eu"),
        Marketplace("A1805IZSGTT6HS", "NL", "Amazon.nl", "EUR", "eu"),
        Marketplace("A1VC38T7YXB528", "JP", "Amazon.co.jp", "JPY", "fe"),
        Marketplace("A39IBJ37TRP1C6", "AU", "Amazon.com.au", "AUD", "fe"),
    )
}

REGIONS = ("na", "eu", "fe")
