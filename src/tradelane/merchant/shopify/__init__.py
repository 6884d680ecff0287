"""Shopify as the merchant's commerce platform (REST Admin API; see :mod:`.client` for why REST).

* :mod:`.settings` — a Shopify merchant system's settings and credentials, validated;
* :mod:`.client` — the Admin API over httpx, call-limit aware, errors classified at the shared edge;
* :mod:`.mapping` — pure mappings (order document → Shopify order, fulfillments, product variants);
* :mod:`.adapter` — :class:`ShopifyAdapter`, the ``shopify`` kind's adapter (idempotent order creation,
  stock reads);
* :mod:`.webhook_protocol` — webhook headers, topics and signature verification;
* :mod:`.sandbox` — a Shopify shop for tests and demos.

What tradelane does with Shopify's webhooks and inventory reads are services
(:mod:`tradelane.services.shopify_webhooks`, :mod:`tradelane.services.shopify_catalog`); adding a shop is
:func:`tradelane.services.merchant_systems.add_shopify_system`.
"""

from tradelane.merchant.shopify.adapter import ShopifyAdapter, shopify_adapter
from tradelane.merchant.shopify.settings import SHOPIFY_KIND, ShopifySettings

__all__ = ["SHOPIFY_KIND", "ShopifyAdapter", "ShopifySettings", "shopify_adapter"]
