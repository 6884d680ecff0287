"""Shopify as the merchant's commerce platform (REST Admin API; see :mod:`.client` for why REST).

* :mod:`.settings` — a Shopify merchant system's settings and credentials; :func:`add_shopify_system`;
* :mod:`.client` — the Admin API over httpx, call-limit aware, errors classified at the edge;
* :mod:`.mapping` — pure mappings (order document → Shopify order, fulfillments, product variants);
* :mod:`.adapter` — :class:`ShopifyAdapter`, the ``shopify`` kind's adapter (idempotent order creation);
* :mod:`.webhooks` — signature verification and what each webhook topic does;
* :mod:`.catalog_sync` — catalog price/stock from product and inventory webhooks (``shopify.inventory``
  job);
* :mod:`.sandbox` — a Shopify shop for tests and demos.
"""

from tradelane.merchant.shopify.adapter import ShopifyAdapter, shopify_adapter
from tradelane.merchant.shopify.settings import SHOPIFY_KIND, ShopifySettings, add_shopify_system

__all__ = ["SHOPIFY_KIND", "ShopifyAdapter", "ShopifySettings", "add_shopify_system", "shopify_adapter"]
