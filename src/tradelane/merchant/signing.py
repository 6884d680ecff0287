"""The ``X-Tradelane-Signature`` scheme, used both for orders tradelane POSTs to an HTTP OMS and for
webhooks an OMS sends back.

Header: ``X-Tradelane-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``.

Contracts:

* :func:`sign` signs the *raw* body bytes exactly as sent; :func:`verify` checks them exactly as received.
* :func:`verify` raises a :class:`SignatureError` subclass (never returns False): malformed header, a
  timestamp outside the replay window (``tolerance`` seconds either way), or a digest that does not
  match (compared in constant time). It returns the matching ``v1`` digest, which identifies the
  request: a receiver remembers it to refuse a replay inside the window.
* A header carries exactly one ``t`` and one ``v1``; anything else is malformed (so a replay cannot be
  disguised by adding extra signatures).
* Pure: no I/O, the clock is passed in; secrets never appear in messages.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

SIGNATURE_HEADER = "X-Tradelane-Signature"
DEFAULT_TOLERANCE_SECONDS = 300
_HEX = frozenset("0123456789abcdef")


class SignatureError(Exception):
    """The signature does not authenticate the request. ``reason`` is a short machine code."""

    reason = "invalid"


class MalformedSignature(SignatureError):
    reason = "malformed_signature"


class StaleSignature(SignatureError):
    reason = "outside_replay_window"


class BadSignature(SignatureError):
    reason = "bad_signature"


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: datetime) -> str:
    """The header value signing ``body`` at ``now`` (a timezone-aware instant)."""
    if not secret:
        raise ValueError("a signing secret is required")
    timestamp = str(int(now.timestamp()))
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def parse_signature(header: str) -> tuple[str, str]:
    """``(t, v1)`` of a header value; raises :class:`MalformedSignature`."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key in fields:
            raise MalformedSignature("signature header must be t=<unix seconds>,v1=<hex>")
        fields[key] = value.strip()
    if set(fields) != {"t", "v1"}:
        raise MalformedSignature("signature header must carry exactly t and v1")
    timestamp, digest = fields["t"], fields["v1"]
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise MalformedSignature("t must be unix seconds")
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise MalformedSignature("v1 must be 64 lower-case hex characters")
    return timestamp, digest


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    now: datetime,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check ``header`` against ``body`` at ``now``; returns the verified ``v1`` digest.

    Raises :class:`MalformedSignature`, :class:`StaleSignature` or :class:`BadSignature`."""
    if not header:
        raise MalformedSignature(f"missing {SIGNATURE_HEADER} header")
    timestamp, digest = parse_signature(header)
    if abs(now.timestamp() - int(timestamp)) > tolerance:
        raise StaleSignature(f"signature timestamp is more than {tolerance}s away from now")
    if not secret or not hmac.compare_digest(_digest(secret, timestamp, body), digest):
        raise BadSignature("signature does not match the body")
    return digest
