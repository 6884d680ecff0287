"""Fixtures for the Amazon sandbox contract tests: a seeded state (generous rate limits unless a test
switches to the published plans, feeds that finish after 1 + 1 s of sandbox clock) and an in-process
client. Helpers live in ``amazon_sandbox_helpers``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from amazon_sandbox_helpers import SEED, token
from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import AmazonSandboxState, SandboxSettings, create_app


@pytest.fixture
def state() -> AmazonSandboxState:
    settings = SandboxSettings(feed_queue_seconds=1, feed_processing_seconds=1)
    return AmazonSandboxState(SEED, rate_limits="generous", settings=settings)


@pytest.fixture
def client(state: AmazonSandboxState) -> Iterator[TestClient]:
    with TestClient(create_app(state)) as test_client:
        yield test_client


@pytest.fixture
def auth(client: TestClient, state: AmazonSandboxState) -> dict[str, str]:
    return token(client, state)
