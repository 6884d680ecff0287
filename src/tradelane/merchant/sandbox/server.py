"""The sandbox OMS over real HTTP: blocking (:func:`serve`) or in a background thread
(:class:`OmsSandboxServer`, for tests and the demo)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from tradelane.merchant.sandbox.app import create_app
from tradelane.merchant.sandbox.state import OmsSandboxState

STARTUP_TIMEOUT = 10.0


def serve(state: OmsSandboxState, host: str = "127.0.0.1", port: int = 8766, log_level: str = "info") -> None:
    """Run the sandbox until interrupted."""
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)


class OmsSandboxServer:
    """The sandbox on ``host`` and a free port (``port=0``), in a daemon thread::

    with OmsSandboxServer(state) as oms:
        tradelane merchant add http --url {oms.orders_url} ...
    """

    def __init__(self, state: OmsSandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        config = uvicorn.Config(create_app(state), host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="oms-sandbox", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def orders_url(self) -> str:
        """The URL to configure as the merchant system's ``url``."""
        return f"{self.url}/orders"

    def start(self) -> OmsSandboxServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OMS sandbox server did not start")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT)

    def __enter__(self) -> OmsSandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
