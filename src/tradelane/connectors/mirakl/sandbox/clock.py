"""The sandbox clock: every time-based transition is evaluated lazily against it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tradelane.timeutil import utcnow

#: Where a frozen sandbox clock starts when nothing else is said (a Monday, 09:00 UTC).
DEFAULT_START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


class SandboxClock:
    """A controllable UTC clock.

    Frozen (the default): time only moves through :meth:`advance` / :meth:`set_now`. Following wall
    time (``follow_wall_time=True``, what the real-HTTP server uses): ``now`` is the wall clock plus
    an offset that :meth:`advance` / :meth:`set_now` adjust, so tests can still jump ahead.
    """

    def __init__(
        self,
        start: datetime | None = None,
        *,
        follow_wall_time: bool = False,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self._wall = wall
        self.follow_wall_time = follow_wall_time
        begin = _aware(start) if start is not None else (wall() if follow_wall_time else DEFAULT_START)
        self._offset = begin - wall() if follow_wall_time else timedelta(0)
        self._frozen = begin

    def now(self) -> datetime:
        if self.follow_wall_time:
            return self._wall() + self._offset
        return self._frozen

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward (never backwards) and return the new ``now``."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        return self._shift(timedelta(seconds=seconds))

    def set_now(self, when: datetime) -> datetime:
        """Jump to ``when`` (timezone-aware; earlier than ``now`` is refused)."""
        target = _aware(when)
        current = self.now()
        if target < current:
            raise ValueError(f"cannot move the sandbox clock back from {current} to {target}")
        return self._shift(target - current)

    def _shift(self, step: timedelta) -> datetime:
        self._offset += step
        self._frozen += step
        return self.now()


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("sandbox datetimes must be timezone-aware")
    return when.astimezone(UTC)
