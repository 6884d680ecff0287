"""Support of the dashboard browser tests: the app server thread, the test stack and the browser settings."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from mirakl_world import World
from tradelane.merchant.sandbox.state import OmsSandboxState
from tradelane.persistence.tables import orders
from tradelane.services.order_health import enqueue_delivery

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
OMS_SECRET = "e2e-oms-signing-secret-0123456789"
STARTUP_TIMEOUT = 10.0


class AppServer:
    """``app`` served by uvicorn on 127.0.0.1 and a free port, in a daemon thread."""

    def __init__(self, app: FastAPI) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dashboard-e2e", daemon=True)
        self.url = ""

    def __enter__(self) -> AppServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT)


@dataclass
class Stack:
    world: World
    oms: OmsSandboxState
    url: str
    token: str

    def run(self, step: float = 0.0) -> None:
        """Let the worker do every ready job (moving time by ``step`` while jobs wait)."""
        self.world.run(max_rounds=60, step=step)

    def deliver_pending(self) -> int:
        """Queue the hand-over of every order the marketplace released (``pending``) and run it."""
        now = self.world.clock()
        with self.world.engine.begin() as conn:
            pending = conn.execute(
                sa.select(orders.c.id, orders.c.channel_id).where(
                    orders.c.tenant_id == self.world.tenant_id, orders.c.merchant_status == "pending"
                )
            ).all()
            for row in pending:
                enqueue_delivery(
                    conn, tenant_id=self.world.tenant_id, order_id=row.id, channel_id=row.channel_id, now=now
                )
        self.run()
        return len(pending)

    def import_orders(self) -> None:
        """One marketplace round: poll (accept), let the sandbox take payment, poll again, hand over."""
        self.world.enqueue("orders.poll")
        self.run()
        self.world.advance(120)
        self.world.enqueue("orders.poll")
        self.run()
        self.deliver_pending()
