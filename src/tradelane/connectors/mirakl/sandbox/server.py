"""Serving the sandbox over real HTTP with uvicorn: blocking (:func:`serve`) or in a background
thread (:class:`SandboxServer`, for tests that need real sockets, timeouts included)."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import uvicorn

from tradelane.connectors.mirakl.sandbox.app import create_app
from tradelane.connectors.mirakl.sandbox.state import SandboxState

#: How long :class:`SandboxServer` waits for uvicorn to bind before giving up.
STARTUP_TIMEOUT = 10.0


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


class SandboxServer:
    """The sandbox on ``host`` and a free port, in a daemon thread::

    with SandboxServer(state) as server:
        httpx.get(f"{server.url}/api/account", headers={"Authorization": key})
    """

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        # log_config=None: leave the process's logging configuration alone (tests share it).
        config = uvicorn.Config(
            create_app(state), host=host, port=port, log_level="warning", log_config=None, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="mirakl-sandbox", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Mirakl sandbox server did not start")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
