"""Job kinds -> handlers. Wiring happens in :mod:`tradelane.bootstrap`, nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradelane.sync.context import JobContext

#: A handler does the job's work. It returns an optional JSON-able result, raises
#: ``RetryableError``/``PermanentError`` to classify failures, or anything else for a crash (retried).
Handler = Callable[["JobContext"], dict[str, Any] | None]


@dataclass
class JobRegistry:
    handlers: dict[str, Handler] = field(default_factory=dict)

    def register(self, kind: str, handler: Handler) -> None:
        if kind in self.handlers:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self.handlers[kind] = handler

    def get(self, kind: str) -> Handler | None:
        return self.handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self.handlers)
