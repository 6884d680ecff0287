"""Fixtures of the dashboard page tests: a container on the test database (fixed clock), the app, two
seeded tenants ("acme" and "globex"), and one HTTPS test client per tenant (own cookie jar)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from webtest_support import Shop, seed_shop

from tradelane.bootstrap import Container, build
from tradelane.config import Settings
from tradelane.logging import configure_logging
from tradelane.security.crypto import generate_key
from tradelane.web.app import create_app

BASE_URL = "https://testserver"  # the session cookie is Secure


@pytest.fixture(autouse=True)
def _quiet_logging() -> Iterator[None]:
    saved = structlog.get_config()
    configure_logging("WARNING", json_output=True)
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture
def container(db_url: str, now: datetime) -> Iterator[Container]:
    app_container = build(Settings(database_url=db_url, secret_keys=generate_key()), configure_logs=False)
    app_container.clock = lambda: now
    yield app_container
    app_container.close()


@pytest.fixture
def app(container: Container) -> FastAPI:
    return create_app(container)


@dataclass
class Shops:
    acme: Shop
    globex: Shop


@pytest.fixture
def shops(container: Container, now: datetime) -> Shops:
    return Shops(seed_shop(container, "acme", "ACME", now), seed_shop(container, "globex", "GLOBEX", now))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


@pytest.fixture
def other_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client
