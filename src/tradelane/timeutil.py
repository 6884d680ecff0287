"""Time helpers. Domain code never calls these: it receives ``now``."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
