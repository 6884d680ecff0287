"""Login with Amazon (LWA): the refresh-token grant that gives SP-API access tokens.

``POST token_endpoint`` (form-encoded ``grant_type=refresh_token``, ``refresh_token``, ``client_id``,
``client_secret``) → ``{"access_token", "token_type", "expires_in"}``. The token is cached until
:data:`REFRESH_MARGIN_SECONDS` before it expires; concurrent callers share one refresh (a lock). With a
:class:`TokenCache` the cached token outlives the :class:`LwaAuth` (a connector is built per job): every
job of a channel reuses it within its lifetime, so a channel fetches about one token an hour. The cache is
in-process memory only, keyed by channel id and a fingerprint (SHA-256) of the credentials: a rotated
credential is a new key, and no secret is ever a key or written anywhere.

Errors (OAuth 2 ``{"error", "error_description"}``):

==================================  ==========================================================
``invalid_client`` (401 or 400)     :class:`AmazonAuthError` BAD_CLIENT — client id or secret
``invalid_grant`` (400)             :class:`AmazonAuthError` BAD_REFRESH_TOKEN — token wrong/revoked
``unauthorized_client`` (400)       :class:`AmazonAuthError` BAD_CLIENT (the app may not use it)
other 4xx                           :class:`AmazonRejected` with LWA's description
429, 408, 5xx, timeouts, no answer  retryable (:class:`AmazonRetryable` / :class:`AmazonUnreachable`)
2xx without a usable token          :class:`AmazonBadResponse` (retryable)
==================================  ==========================================================

A token answer's ``expires_in`` that is missing, not a positive finite number, is read as
:data:`DEFAULT_EXPIRES_IN`; above :data:`MAX_EXPIRES_IN` it is cut to that.

Secrets (client secret, refresh token, access token) never appear in exchanges or errors.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx

from tradelane.connectors.amazon.errors import (
    AmazonAuthError,
    AmazonBadResponse,
    AmazonRejected,
    AmazonRetryable,
    AmazonUnreachable,
    AuthProblem,
)
from tradelane.http_edge import (
    ExchangeHook,
    StatusClass,
    capture,
    excerpt,
    no_response,
    parse_retry_after,
    report,
    response_text,
    status_class,
)

#: A cached access token is renewed this long before Amazon says it expires.
REFRESH_MARGIN_SECONDS = 60.0
#: Used when the answer carries no usable ``expires_in`` (LWA's tokens last an hour).
DEFAULT_EXPIRES_IN = 3600.0
#: A longer ``expires_in`` is cut to this (a token is fetched again after a day at the latest).
MAX_EXPIRES_IN = 86_400.0

OP = "lwaToken"
#: Channels (credential fingerprints) a :class:`TokenCache` keeps by default; the least recently used
#: slot goes first beyond it.
CACHE_SLOTS = 1024


@dataclass(eq=False, slots=True)
class TokenSlot:
    """The cached access token of one (channel, credentials): the token, when it expires, and the lock
    its users refresh it under."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: str | None = None
    expires_at: datetime | None = None


def credential_fingerprint(token_url: str, client_id: str, client_secret: str, refresh_token: str) -> str:
    """SHA-256 of the LWA endpoint and credentials (stripped): equal for the same credentials, different
    once any of them is rotated; the secrets cannot be read back from it."""
    digest = hashlib.sha256()
    for part in (token_url, client_id.strip(), client_secret.strip(), refresh_token.strip()):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


class TokenCache:
    """Access-token slots by (channel id, credential fingerprint), shared by the connectors of a process;
    thread-safe. Memory only: nothing is persisted. At most ``size`` slots (least recently used dropped:
    that channel's next job fetches a token again)."""

    def __init__(self, size: int = CACHE_SLOTS) -> None:
        if size < 1:
            raise ValueError("a token cache holds at least one slot")
        self._size = size
        self._lock = threading.Lock()
        self._slots: OrderedDict[tuple[int, str], TokenSlot] = OrderedDict()

    def slot(self, channel_id: int, fingerprint: str) -> TokenSlot:
        """The slot of ``channel_id`` with these credentials (created empty the first time)."""
        key = (channel_id, fingerprint)
        with self._lock:
            found = self._slots.get(key)
            if found is None:
                found = self._slots[key] = TokenSlot()
                while len(self._slots) > self._size:
                    self._slots.popitem(last=False)
            else:
                self._slots.move_to_end(key)
            return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def clear(self) -> None:
        """Forget every token (the next call of each channel fetches one)."""
        with self._lock:
            self._slots.clear()


class LwaAuth:
    """Access tokens of one (client, refresh token) pair, cached in ``slot`` (a :class:`TokenCache`'s,
    shared with later connectors of the channel; by default a slot of its own); thread-safe."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        http: httpx.Client,
        clock: Callable[[], datetime],
        on_exchange: ExchangeHook | None = None,
        slot: TokenSlot | None = None,
    ) -> None:
        for value, what in (
            (client_id, "client id"),
            (client_secret, "client secret"),
            (refresh_token, "refresh token"),
        ):
            if not value or not value.strip():
                raise ValueError(f"the LWA {what} is empty")
        self._url = token_url
        self._client_id = client_id.strip()
        self._client_secret = client_secret.strip()
        self._refresh_token = refresh_token.strip()
        self._http = http
        self._clock = clock
        self._on_exchange = on_exchange
        self._slot = slot if slot is not None else TokenSlot()
        #: Tokens this instance fetched from LWA.
        self.refreshes = 0

    def access_token(self) -> str:
        """A valid access token: the cached one unless it expires within the margin, else a new one."""
        slot = self._slot
        with slot.lock:
            now = self._clock()
            if (
                slot.token is not None
                and slot.expires_at is not None
                and now < slot.expires_at - timedelta(seconds=REFRESH_MARGIN_SECONDS)
            ):
                return slot.token
            token, expires_in = self._request(now)
            slot.token = token
            slot.expires_at = now + timedelta(seconds=expires_in)
            self.refreshes += 1
            return token

    def invalidate(self, token: str | None = None) -> None:
        """Forget the cached token (when SP-API rejected it); with ``token``, only if it is that one
        (another thread may have refreshed it meanwhile)."""
        slot = self._slot
        with slot.lock:
            if token is None or token == slot.token:
                slot.token = None
                slot.expires_at = None

    def _request(self, now: datetime) -> tuple[str, float]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        host = urlsplit(self._url).netloc
        secrets = (self._client_secret, self._refresh_token)
        request = self._http.build_request(
            "POST", self._url, data=form, headers={"Accept": "application/json"}
        )
        started = time.perf_counter()
        try:
            response = self._http.send(request)
        except httpx.RequestError as exc:
            failure = no_response(exc, method="POST", url=self._url)
            report(
                self._on_exchange,
                capture(OP, request, duration_ms=_ms(started), error=failure, secrets=secrets),
            )
            raise AmazonUnreachable(
                f"Login with Amazon {failure.describe('token request')}", op=OP, raw=failure.raw
            ) from exc
        text = response_text(response)
        exchange = capture(
            OP, request, response, duration_ms=_ms(started), secrets=secrets, response_body=text
        )
        report(self._on_exchange, exchange)
        shown = exchange.response_body or ""
        raw = f"POST {self._url} -> HTTP {response.status_code}\n{excerpt(shown, 2_000)}"
        status = response.status_code
        kind = status_class(status)
        if kind is StatusClass.OK:
            return _token_from(text, raw)
        if kind is StatusClass.RETRYABLE:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
            raise AmazonRetryable(
                f"Login with Amazon answered HTTP {status}; try again later",
                retry_after=retry_after,
                raw=raw,
                status=status,
                op=OP,
            )
        error, description = _oauth_error(text)
        said = f": {description}" if description else ""
        if error == "invalid_client" or (status == 401 and error is None):
            raise AmazonAuthError(
                f"Login with Amazon rejected the client id or client secret (invalid_client){said}",
                AuthProblem.BAD_CLIENT,
                raw=raw,
                host=host,
            )
        if error == "unauthorized_client":
            raise AmazonAuthError(
                f"Login with Amazon: this client may not use the refresh-token grant "
                f"(unauthorized_client){said}",
                AuthProblem.BAD_CLIENT,
                raw=raw,
                host=host,
            )
        if error == "invalid_grant":
            raise AmazonAuthError(
                "Login with Amazon rejected the refresh token (invalid_grant: wrong, revoked or issued "
                f"to another app){said}",
                AuthProblem.BAD_REFRESH_TOKEN,
                raw=raw,
                host=host,
            )
        raise AmazonRejected(
            f"Login with Amazon refused the token request (HTTP {status}, {error or 'no error code'}){said}",
            raw=raw,
            status=status,
            op=OP,
            codes=(error,) if error else (),
        )


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _token_from(text: str, raw: str) -> tuple[str, float]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be a token answer
        raise AmazonBadResponse(
            "Login with Amazon answered a body that is not JSON (garbage or truncated)", raw=raw, op=OP
        ) from None
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise AmazonBadResponse("Login with Amazon answered without an access_token", raw=raw, op=OP)
    expires = data.get("expires_in")
    if isinstance(expires, bool) or not isinstance(expires, int | float) or not expires > 0:
        return token, DEFAULT_EXPIRES_IN  # ``not > 0`` also catches NaN
    return token, min(float(expires), MAX_EXPIRES_IN)


def _oauth_error(text: str) -> tuple[str | None, str | None]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    error = data.get("error")
    description = data.get("error_description")
    return (
        error if isinstance(error, str) else None,
        description if isinstance(description, str) else None,
    )
