"""A Shopify shop for tests and demos: the REST Admin API subset tradelane uses (token auth, the
call-limit bucket and 429s, products/variants/inventory, orders with Shopify's validation errors), fault
injection, and signed webhooks sent to tradelane.

* :class:`~.state.ShopifySandboxState` — the shop (thread-safe), controllable from Python;
* :func:`~.app.create_app` — the FastAPI app serving a state;
* :class:`~.server.ShopifySandboxServer` — the app on a real socket in a background thread.
"""

from tradelane.merchant.shopify.sandbox.app import create_app
from tradelane.merchant.shopify.sandbox.server import ShopifySandboxServer, serve
from tradelane.merchant.shopify.sandbox.state import (
    OrderRefused,
    ShopifySandboxState,
    WebhookDelivery,
    sign_webhook,
)

__all__ = [
    "OrderRefused",
    "ShopifySandboxServer",
    "ShopifySandboxState",
    "WebhookDelivery",
    "create_app",
    "serve",
    "sign_webhook",
]
