"""The Shopify sandbox over real HTTP, in a background thread (tests, demos)."""

from __future__ import annotations

import uvicorn

from tradelane.background_server import BackgroundServer
from tradelane.merchant.shopify.sandbox.app import create_app
from tradelane.merchant.shopify.sandbox.state import ShopifySandboxState


def serve(
    state: ShopifySandboxState, host: str = "127.0.0.1", port: int = 8767, log_level: str = "info"
) -> None:
    """Run the sandbox until interrupted."""
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)


class ShopifySandboxServer(BackgroundServer):
    """The sandbox on ``host`` and a free port (``port=0``)::

    with ShopifySandboxServer(state) as shop:
        tradelane merchant add shopify --shop-domain {state.shop_domain} --api-url {shop.url} ...
    """

    def __init__(self, state: ShopifySandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(create_app(state), name="shopify-sandbox", host=host, port=port)
        self.state = state
