"""Mirakl-specific error classes (pure; :mod:`.client` re-exports them).

Every failure the Mirakl client raises is one of these, so callers can branch on the *kind* of problem
while the sync engine only needs the two domain bases:

* :class:`MiraklRetryableError` (a :class:`~tradelane.domain.errors.RetryableError`): the remote may
  answer correctly later — unreachable host, 429, 5xx, an HTML/truncated body on a 2xx;
* :class:`MiraklPermanentError` (a :class:`~tradelane.domain.errors.PermanentError`): retrying the same
  request cannot help — rejected key, forbidden shop, Mirakl refused the request, or a response whose
  structure breaks the contract.

``raw`` always holds ``"METHOD URL -> STATUS"`` plus an excerpt of the response body (bounded size), never
the API key.
"""

from __future__ import annotations

from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError


class MiraklRetryableError(RetryableError):
    """Base of Mirakl failures worth retrying. ``status`` is the HTTP status (None: no response)."""


class MiraklPermanentError(PermanentError):
    """Base of Mirakl failures that retrying cannot fix.

    ``mirakl_message`` is the ``message`` Mirakl put in its error body (if any); ``error_codes`` the
    ``code`` values of its ``errors`` list (e.g. ``ORDER_INVALID_STATE``), when present.
    """

    def __init__(
        self,
        reason: str,
        *,
        raw: str | None = None,
        status: int | None = None,
        op: str | None = None,
        mirakl_message: str | None = None,
        error_codes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason, raw=raw)
        self.status = status
        self.op = op
        self.mirakl_message = mirakl_message
        self.error_codes = error_codes


class MiraklUnreachable(MiraklRetryableError):
    """No HTTP response: connection refused, timeout, TLS or protocol failure."""


class MiraklHostNotFound(MiraklUnreachable):
    """The hostname does not resolve (DNS). Retryable (DNS hiccups happen) but usually a typo."""


class MiraklRateLimited(MiraklRetryableError):
    """HTTP 429; ``retry_after`` carries Mirakl's ``Retry-After`` in seconds when it sent one."""


class MiraklServerError(MiraklRetryableError):
    """HTTP 5xx (or 408): Mirakl or a proxy in front of it failed."""


class MiraklBadResponse(MiraklRetryableError):
    """A success status whose body is not what the API sends: an HTML page (typically a proxy or
    maintenance page), an empty, truncated or otherwise invalid JSON document, or inconsistent paging."""


class MiraklAuthError(MiraklPermanentError, AuthenticationError):
    """HTTP 401: the API key was rejected."""


class MiraklForbidden(MiraklPermanentError):
    """HTTP 403: the key is valid but may not do this (a role or an operator module missing).

    On an optional operation (labels, returns, messages...) it fails that call only: it must never
    pause the channel's orders."""


class MiraklShopAccessDenied(MiraklForbidden, AuthenticationError):
    """HTTP 403 on one of :data:`SHOP_ACCESS_OPERATIONS`: the key no longer reaches the shop at all.
    Like a 401 it is an :class:`AuthenticationError`: the channel's credentials need fixing."""


#: Operations every channel needs; a 403 on one of them means the key lost access to the shop.
SHOP_ACCESS_OPERATIONS = frozenset({"A01", "OR11", "OF01", "OF24"})


class MiraklRequestRejected(MiraklPermanentError):
    """Mirakl refused the request (400, 409, 422, other 4xx, or an unexpected redirect)."""


class MiraklNotFound(MiraklRequestRejected):
    """HTTP 404: unknown resource (order, import...) — or, with an HTML body, a host that is not Mirakl."""


class MiraklSchemaError(MiraklPermanentError):
    """The response parsed but breaks the contract: a required field is missing, has the wrong type or an
    unknown enum value. ``field_path`` locates it, e.g. ``orders[3].order_lines[0].order_line_state``."""

    def __init__(
        self, field_path: str, problem: str, *, raw: str | None = None, op: str | None = None
    ) -> None:
        where = f"{op} response" if op else "Mirakl payload"
        super().__init__(f"unexpected {where}: {field_path}: {problem}", raw=raw, op=op)
        self.field_path = field_path
        self.problem = problem
