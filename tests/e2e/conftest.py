"""Fixtures of the dashboard browser tests (see :mod:`dashboard_e2e`): the real app served by uvicorn
on 127.0.0.1 (background thread), a Mirakl channel on the Mirakl sandbox and an HTTP OMS on the OMS
sandbox (both real HTTP on 127.0.0.1), the worker run in-process between browser steps, and Debian's
headless Chromium driven by Playwright.

Every clock (app, worker, both sandboxes) is one :class:`~helpers.FakeClock` moved by ``world.advance``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog
from dashboard_e2e import CHROMIUM, CHROMIUM_ARGS, OMS_SECRET, VIEWPORT, AppServer, Stack

from mirakl_world import build_world
from tradelane.bootstrap import Container
from tradelane.config import Settings
from tradelane.logging import configure_logging
from tradelane.merchant.sandbox.server import OmsSandboxServer
from tradelane.merchant.sandbox.state import OmsSandboxState
from tradelane.services import order_delivery
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.order_health import DELIVER_KIND
from tradelane.services.tenants import issue_token
from tradelane.web.app import create_app


@pytest.fixture
def quiet_logging() -> Iterator[None]:
    saved = structlog.get_config()
    configure_logging("WARNING", json_output=True)
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture
def stack(engine: Any, db_url: str, now: datetime, quiet_logging: None) -> Iterator[Stack]:
    for world in build_world(engine, now, sandbox_limits={}):
        if DELIVER_KIND not in world.registry.kinds():
            order_delivery.register(world.registry)
        oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
        with OmsSandboxServer(oms_state) as oms:
            with engine.begin() as conn:
                token = issue_token(conn, world.tenant_id, now=now, label="dashboard-e2e")
                add_http_system(
                    conn,
                    tenant_id=world.tenant_id,
                    name="oms",
                    url=oms.orders_url,
                    secret=OMS_SECRET,
                    keyring=world.keyring,
                    now=now,
                )
            container = Container(
                settings=Settings(database_url=db_url),
                engine=engine,
                keyring=world.keyring,
                registry=world.registry,
                clock=world.clock,
                extras={"keyring": world.keyring},
            )
            with AppServer(create_app(container)) as server:
                yield Stack(world, oms_state, server.url, token)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole run; every test gets its own context (see ``tab``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def tab(chromium: Any, stack: Stack) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the stack's dashboard, 1280x800."""
    context = chromium.new_context(viewport=VIEWPORT, base_url=stack.url)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # data-confirm questions
    try:
        yield tab
    finally:
        context.close()
