"""Fixtures for the Mirakl sandbox contract tests: a seeded state (no rate limits unless a test sets
some) and an in-process client. Helpers live in ``mirakl_sandbox_helpers``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SEED, SHOP_ID

from tradelane.connectors.mirakl.sandbox import SandboxConfig, SandboxState, create_app


@pytest.fixture
def state() -> SandboxState:
    return SandboxState(SEED, rate_limits={}, config=SandboxConfig())


@pytest.fixture
def client(state: SandboxState) -> Iterator[TestClient]:
    with TestClient(create_app(state)) as test_client:
        yield test_client


@pytest.fixture
def auth(state: SandboxState) -> dict[str, str]:
    return {"Authorization": state.shops[SHOP_ID].api_key}
