"""Serving the Amazon sandbox over real HTTP: blocking (:func:`serve`) or in a background thread
(:class:`AmazonSandboxServer`, for tests that need real sockets, timeouts included)."""

from __future__ import annotations

import uvicorn

from tradelane.background_server import BackgroundServer
from tradelane.connectors.amazon.sandbox.app import create_app
from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState


def serve(
    state: AmazonSandboxState, host: str = "127.0.0.1", port: int = 8766, log_level: str = "info"
) -> None:
    """Run the sandbox for ``state`` until interrupted."""
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)


class AmazonSandboxServer(BackgroundServer):
    """The sandbox on ``host`` and a free port, in a daemon thread::

    with AmazonSandboxServer(state) as server:
        httpx.post(f"{server.url}/auth/o2/token", data={...})
    """

    def __init__(self, state: AmazonSandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(create_app(state), name="amazon-sandbox", host=host, port=port)
        self.state = state
