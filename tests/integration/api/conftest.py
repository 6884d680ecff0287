"""Fixtures of the API tests: a container on the test database (fixed clock), the app, a client and
the two-tenant ``world`` of :mod:`apitest_support`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog
from apitest_support import World, seed_tenant
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tradelane.bootstrap import Container, build
from tradelane.config import Settings
from tradelane.logging import configure_logging
from tradelane.security.crypto import generate_key
from tradelane.web.app import create_app


@pytest.fixture(autouse=True)
def _production_logging() -> Iterator[None]:
    """Log through the production pipeline (JSON lines on stderr) rather than structlog's dev default,
    whose rich tracebacks are slow; the previous configuration is restored afterwards."""
    saved = structlog.get_config()
    configure_logging("INFO", json_output=True)
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


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def world(container: Container, now: datetime) -> World:
    acme = seed_tenant(container, "acme", now, {"A-1": "19.90", "A-2": "5", "A/3": "0.000001"})
    globex = seed_tenant(container, "globex", now, {"G-1": "7.25"})
    return World(acme, globex)
