"""Job kinds that belong to the engine itself."""

from __future__ import annotations

from typing import Any

from tradelane.sync.context import JobContext
from tradelane.sync.registry import JobRegistry

NOOP = "system.noop"


def noop(ctx: JobContext) -> dict[str, Any] | None:
    """A ping through the whole pipeline (enqueue -> claim -> run -> complete); echoes its payload."""
    return {"echo": ctx.job.payload}


def register(registry: JobRegistry) -> None:
    registry.register(NOOP, noop)
