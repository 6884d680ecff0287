from __future__ import annotations

from collections.abc import Iterator

import pytest

from mirakl_world import World, build_world


@pytest.fixture
def world(engine, now) -> Iterator[World]:
    """A Mirakl channel on a sandbox without rate limits (budgets are tested on their own)."""
    yield from build_world(engine, now, sandbox_limits={})
