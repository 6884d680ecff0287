"""Serving the sandbox over real HTTP with uvicorn: blocking (:func:`serve`) or in a background
thread (:class:`SandboxServer`, for tests that need real sockets, timeouts included)."""

from __future__ import annotations

import uvicorn

from tradelane.background_server import BackgroundServer
from tradelane.connectors.mirakl.sandbox.app import create_app
from tradelane.connectors.mirakl.sandbox.state import SandboxState

#: How long :class:`SandboxServer` waits for uvicorn to bind before giving up.


def serve(
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int = 0,
    *,
    state: SandboxState | None = None,
    log_level: str = "info",
) -> None:
    """Run the sandbox until interrupted. Without ``state``, a fresh world for ``seed`` whose clock
    follows wall time (tests and demos can still jump ahead through ``/_sandbox/clock``)."""
    world = state if state is not None else SandboxState(seed, follow_wall_time=True)
    uvicorn.run(create_app(world), host=host, port=port, log_level=log_level)


class SandboxServer(BackgroundServer):
    """The sandbox on ``host`` and a free port, in a daemon thread::

    with SandboxServer(state) as server:
        httpx.get(f"{server.url}/api/account", headers={"Authorization": key})
    """

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(create_app(state), name="mirakl-sandbox", host=host, port=port)
        self.state = state
