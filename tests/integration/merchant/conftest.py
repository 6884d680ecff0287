"""Fixtures of the merchant-side tests: a container on the test database driven by a fake clock, a
shop (tenant + channel), the HTTP OMS sandbox on 127.0.0.1 registered as the tenant's merchant system."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog
from fastapi.testclient import TestClient
from merchant_support import SECRET, Shop, make_shop, register_oms

from helpers import FakeClock
from tradelane.bootstrap import Container, build
from tradelane.config import Settings
from tradelane.logging import configure_logging
from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.security.crypto import generate_key
from tradelane.web.app import create_app


@pytest.fixture(autouse=True)
def _json_logging() -> Iterator[None]:
    saved = structlog.get_config()
    configure_logging("INFO", json_output=True)
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture
def clock(now: datetime) -> FakeClock:
    return FakeClock(now)


@pytest.fixture
def container(db_url: str, clock: FakeClock) -> Iterator[Container]:
    app_container = build(Settings(database_url=db_url, secret_keys=generate_key()), configure_logs=False)
    app_container.clock = clock
    yield app_container
    app_container.close()


@pytest.fixture
def shop(container: Container, now: datetime) -> Shop:
    return make_shop(container, "acme", "shop-fr", now)


@pytest.fixture
def oms(clock: FakeClock) -> Iterator[OmsSandboxServer]:
    with OmsSandboxServer(OmsSandboxState(SECRET, clock=clock)) as server:
        yield server


@pytest.fixture
def merchant(container: Container, shop: Shop, oms: OmsSandboxServer) -> MerchantSystem:
    return register_oms(container, shop, oms.orders_url)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as test_client:
        yield test_client
