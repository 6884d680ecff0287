"""The Amazon connector's errors: the hub's classification (retryable / permanent / authentication)
refined with what Amazon said (HTTP status, SP-API error codes and messages, LWA error)."""

from __future__ import annotations

from enum import StrEnum

from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError


class AmazonRetryable(RetryableError):
    """Try again later: throttled, server error, timeout, unreachable, garbage or truncated body."""


class AmazonThrottled(AmazonRetryable):
    """HTTP 429 ``QuotaExceeded``: ``retry_after`` from ``Retry-After`` or the operation's refill time."""


class AmazonUnreachable(AmazonRetryable):
    """No HTTP answer: DNS, refused connection, timeout, TLS or protocol error."""


class AmazonBadResponse(AmazonRetryable):
    """A 2xx whose body is not the JSON expected (HTML, empty, garbage, truncated)."""


class AmazonRejected(PermanentError):
    """Amazon refused the request (4xx other than throttling/authentication), with its messages."""

    def __init__(
        self,
        reason: str,
        *,
        raw: str | None = None,
        status: int | None = None,
        op: str | None = None,
        codes: tuple[str, ...] = (),
        messages: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason, raw=raw)
        self.status = status
        self.op = op
        self.codes = codes
        self.messages = messages


class AmazonNotFound(AmazonRejected):
    """HTTP 404 (an unknown order, feed, document or listing)."""


class AmazonSchemaError(PermanentError):
    """A body that is JSON but breaks the operation's model; ``path`` locates the problem."""

    def __init__(self, path: str, problem: str, *, raw: str | None = None, op: str | None = None) -> None:
        where = f" on {op}" if op else ""
        super().__init__(f"Amazon answer breaks the model{where} at {path}: {problem}", raw=raw)
        self.path = path
        self.problem = problem
        self.op = op


class AuthProblem(StrEnum):
    """Which credential was rejected."""

    BAD_CLIENT = "bad_client"  # LWA invalid_client: client id or secret wrong
    BAD_REFRESH_TOKEN = "bad_refresh_token"  # LWA invalid_grant: refresh token revoked/wrong/other app
    ACCESS_DENIED = "access_denied"  # SP-API 401/403 Unauthorized with a fresh access token


class AmazonAuthError(AuthenticationError):
    """The credentials were rejected; ``problem`` says which."""

    def __init__(
        self, reason: str, problem: AuthProblem, *, raw: str | None = None, host: str | None = None
    ) -> None:
        super().__init__(reason, raw=raw, host=host)
        self.problem = problem
