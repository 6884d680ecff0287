"""Support of the dashboard browser tests: the app server thread, the test stack and the browser settings."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI

from mirakl_world import World
from tradelane.background_server import BackgroundServer
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
#: The README's screenshots are refreshed only on request (TRADELANE_UPDATE_SCREENSHOTS=1), so a test
#: run never dirties the checkout; otherwise they go to a scratch folder.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("TRADELANE_UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "tradelane-screenshots"
)
OMS_SECRET = "e2e-oms-signing-secret-0123456789"


def AppServer(app: FastAPI) -> BackgroundServer:
    """``app`` served by uvicorn on 127.0.0.1 and a free port, in a daemon thread."""
    return BackgroundServer(app, name="dashboard-e2e")


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
