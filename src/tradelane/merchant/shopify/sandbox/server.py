"""The Shopify sandbox over real HTTP, in a background thread (tests, demos)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from tradelane.merchant.shopify.sandbox.app import create_app
from tradelane.merchant.shopify.sandbox.state import ShopifySandboxState

STARTUP_TIMEOUT = 10.0


def serve(
    state: ShopifySandboxState, host: str = "127.0.0.1", port: int = 8767, log_level: str = "info"
) -> None:
    """Run the sandbox until interrupted."""
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)


class ShopifySandboxServer:
    """The sandbox on ``host`` and a free port (``port=0``)::

    with ShopifySandboxServer(state) as shop:
        tradelane merchant add shopify --shop-domain {state.shop_domain} --api-url {shop.url} ...
    """

    def __init__(self, state: ShopifySandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        config = uvicorn.Config(
            create_app(state), host=host, port=port, log_level="warning", log_config=None, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="shopify-sandbox", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The Admin API base URL (the merchant system's ``api_url``)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ShopifySandboxServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Shopify sandbox server did not start")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT)

    def __enter__(self) -> ShopifySandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
