"""The sandbox OMS over real HTTP: blocking (:func:`serve`) or in a background thread
(:class:`OmsSandboxServer`, for tests and the demo)."""

from __future__ import annotations

import uvicorn

from tradelane.background_server import BackgroundServer
from tradelane.merchant.sandbox.app import create_app
from tradelane.merchant.sandbox.state import OmsSandboxState


def serve(state: OmsSandboxState, host: str = "127.0.0.1", port: int = 8766, log_level: str = "info") -> None:
    """Run the sandbox until interrupted."""
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)


class OmsSandboxServer(BackgroundServer):
    """The sandbox on ``host`` and a free port (``port=0``), in a daemon thread::

    with OmsSandboxServer(state) as oms:
        tradelane merchant add http --url {oms.orders_url} ...
    """

    def __init__(self, state: OmsSandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(create_app(state), name="oms-sandbox", host=host, port=port)
        self.state = state

    @property
    def orders_url(self) -> str:
        """The URL to configure as the merchant system's ``url``."""
        return f"{self.url}/orders"
