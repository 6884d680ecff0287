"""Error classification shared by connectors, merchant adapters and the sync engine.

Connectors classify every failure at the edge:

* :class:`RetryableError` — try again later; ``retry_after`` (seconds), when the remote said so
  (e.g. HTTP 429 ``Retry-After``), is honoured exactly by the engine;
* :class:`PermanentError` — retrying cannot help; the job goes straight to the dead-letter list
  with ``reason`` (human readable) and the raw request/response kept for inspection;
* :class:`AuthenticationError` — a :class:`PermanentError` meaning the credentials were rejected.
"""

from __future__ import annotations

import math

#: The longest wait a remote's ``Retry-After`` may impose. A larger value (a bogus header such as
#: ``1E310``, or a date years ahead) is capped here: honoured as-is it would block the operation for
#: good (a rate bucket held at minus infinity) or overflow the job's next run time.
MAX_RETRY_AFTER_SECONDS = 86_400.0


def bounded_retry_after(seconds: float) -> float | None:
    """``seconds`` as a wait tradelane honours: ``None`` for NaN, else clamped to
    ``[0, MAX_RETRY_AFTER_SECONDS]`` (infinity included)."""
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class TradelaneError(Exception):
    """Base class of every error tradelane raises on purpose."""


class RetryableError(TradelaneError):
    """``status`` is the remote's HTTP status (None: no response, or not an HTTP failure) and ``op`` the
    remote operation that failed, when the edge knows them."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        raw: str | None = None,
        status: int | None = None,
        op: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.raw = raw
        self.status = status
        self.op = op


class PermanentError(TradelaneError):
    def __init__(self, reason: str, *, raw: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


class AuthenticationError(PermanentError):
    """The remote rejected our credentials (HTTP 401, or 403 on the account): no job of the channel can
    succeed until an operator fixes them. ``host`` names the remote when the edge knows it.

    The engine dead-letters the job that met it, raises an alert on the channel and pauses its flows
    (see :func:`tradelane.services.channels.credentials_rejected`)."""

    def __init__(self, reason: str, *, raw: str | None = None, host: str | None = None) -> None:
        super().__init__(reason, raw=raw)
        self.host = host


class NotFoundError(TradelaneError):
    """A referenced entity (tenant, channel, job, order...) does not exist for this tenant."""


class ConflictError(TradelaneError):
    """The request conflicts with the current state (duplicate name, wrong state...)."""


class ValidationError(TradelaneError):
    """Input is malformed; the message says precisely what and where."""
