"""Sending one notification to one destination: an email through SMTP, or a signed webhook POST.

Contracts:

* :func:`send_email` and :func:`post_webhook` make exactly one attempt and never raise for a failure of
  the remote: they return an :class:`Outcome` — ``SENT``, ``RETRY`` (worth trying again later) or
  ``FAILED`` (retrying cannot help) — whose ``reason`` says what happened in words an operator can act
  on. Reasons never contain the SMTP password or the webhook secret.
* Email classification: a refused or dropped connection, a timeout and any SMTP ``4xx`` reply
  (temporary) → ``RETRY``; an SMTP ``5xx`` reply (bad recipient, sender refused, authentication
  rejected), a server without STARTTLS when it is required, a TLS certificate that does not verify and
  no SMTP server configured → ``FAILED``.
* Webhook classification (the shared HTTP edge): ``2xx`` → ``SENT``; ``408``/``425``/``429``/``5xx``,
  timeouts and connection failures → ``RETRY`` (``Retry-After`` kept); any other status → ``FAILED``.
  The POST carries ``X-Tradelane-Signature`` made by :func:`tradelane.merchant.signing.sign` (verify it
  with :func:`tradelane.merchant.signing.verify`) and ``Idempotency-Key: notification-<id>``.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from enum import StrEnum
from typing import Any

import httpx

from tradelane import __version__
from tradelane.config import Settings
from tradelane.http_edge import StatusClass, excerpt, no_response, parse_retry_after, status_class
from tradelane.merchant.signing import SIGNATURE_HEADER, sign

#: How much of a remote's answer a reason quotes.
REASON_CHARS = 500


class Result(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    reason: str | None = None
    #: Seconds the remote asked us to wait (``Retry-After``), when it did.
    retry_after: float | None = None


@dataclass(frozen=True)
class SmtpConfig:
    """The SMTP server (from :class:`~tradelane.config.Settings`); ``host`` empty: not configured."""

    host: str
    port: int = 25
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = ""
    starttls: bool = False
    ssl: bool = False
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host.strip(),
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_from.strip(),
            starttls=settings.smtp_starttls,
            ssl=settings.smtp_ssl,
            timeout=settings.smtp_timeout,
        )

    def describe(self) -> str:
        """Where mail goes, for people (no credentials)."""
        if not self.host:
            return "no SMTP server configured (TRADELANE_SMTP_HOST)"
        security = "SSL" if self.ssl else "STARTTLS" if self.starttls else "plain"
        user = f", as {self.username}" if self.username else ""
        return f"{self.host}:{self.port} ({security}{user}), from {self.sender or '?'}"


@dataclass(frozen=True, slots=True)
class Message:
    """What a destination receives about one notification."""

    notification_id: int
    delivery_id: int
    tenant: str
    channel: str | None
    event: str
    subject: str
    body: str
    details: dict[str, Any]
    created_at: datetime


# --------------------------------------------------------------------------------------------- email


def build_email(config: SmtpConfig, to: str, message: Message) -> EmailMessage:
    """The email for ``to``: plain text, the body then the details one per line. Its ``Message-ID`` is
    stable per delivery, so a copy re-sent after a crash is recognisable as the same message."""
    email = EmailMessage()
    email["From"] = config.sender
    email["To"] = to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(message.created_at)
    domain = config.sender.rpartition("@")[2] or "tradelane"
    email["Message-ID"] = f"<notification-{message.notification_id}.{message.delivery_id}@{domain}>"
    email["X-Tradelane-Event"] = message.event
    lines = [message.body.rstrip(), ""]
    lines.append(f"Tenant: {message.tenant}")
    if message.channel:
        lines.append(f"Channel: {message.channel}")
    lines.append(f"Event: {message.event}")
    for key, value in message.details.items():
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        lines.append(f"{key}: {shown}")
    email.set_content("\n".join(lines) + "\n")
    return email


def send_email(config: SmtpConfig, to: str, message: Message) -> Outcome:
    """One attempt at mailing ``message`` to ``to`` (see the module docstring for the classification)."""
    if not config.host:
        return Outcome(Result.FAILED, "no SMTP server configured: set TRADELANE_SMTP_HOST and restart")
    if not config.sender:
        return Outcome(Result.FAILED, "no sender address configured: set TRADELANE_SMTP_FROM and restart")
    where = f"{config.host}:{config.port}"
    try:
        with _connect(config) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.username:
                smtp.login(config.username, config.password)
            smtp.send_message(build_email(config, to, message))
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()), (550, b"refused"))
        return _reply(code, reply, f"{where} refused recipient {to}")
    except smtplib.SMTPSenderRefused as exc:
        return _reply(exc.smtp_code, exc.smtp_error, f"{where} refused sender {config.sender}")
    except smtplib.SMTPAuthenticationError as exc:
        return _reply(exc.smtp_code, exc.smtp_error, f"{where} rejected the SMTP username or password")
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome(Result.FAILED, f"{where} does not support what is configured: {exc}")
    except smtplib.SMTPResponseException as exc:
        return _reply(exc.smtp_code, exc.smtp_error, f"{where} answered")
    except ssl.SSLCertVerificationError as exc:
        return Outcome(Result.FAILED, f"TLS certificate of {where} does not verify: {exc.verify_message}")
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, DNS, TLS, disconnected
        return Outcome(Result.RETRY, f"cannot talk to SMTP server {where}: {_oserror(exc)}")
    return Outcome(Result.SENT)


def _connect(config: SmtpConfig) -> smtplib.SMTP:
    if config.ssl:
        return smtplib.SMTP_SSL(
            config.host, config.port, timeout=config.timeout, context=ssl.create_default_context()
        )
    return smtplib.SMTP(config.host, config.port, timeout=config.timeout)


def _reply(code: int, reply: bytes | str, what: str) -> Outcome:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    reason = f"{what}: {code} {excerpt(' '.join(text.split()), REASON_CHARS)}"
    return Outcome(Result.RETRY if 400 <= code < 500 else Result.FAILED, reason)


def _oserror(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# ------------------------------------------------------------------------------------------- webhook


def webhook_body(message: Message) -> bytes:
    """The JSON document POSTed to a webhook (compact, keys sorted)."""
    document = {
        "id": message.notification_id,
        "event": message.event,
        "tenant": message.tenant,
        "channel": message.channel,
        "subject": message.subject,
        "body": message.body,
        "details": message.details,
        "created_at": message.created_at.isoformat(),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def post_webhook(
    url: str,
    secret: str,
    message: Message,
    *,
    now: datetime,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> Outcome:
    """One signed POST of ``message`` to ``url`` (see the module docstring for the classification)."""
    body = webhook_body(message)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, now),
        "Idempotency-Key": f"notification-{message.notification_id}",
        "User-Agent": f"tradelane/{__version__}",
    }
    owned = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=False)
    try:
        response = http.post(url, content=body, headers=headers)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError) as exc:
        return Outcome(Result.FAILED, f"webhook URL cannot be used: {exc}")
    except httpx.RequestError as exc:
        return Outcome(Result.RETRY, no_response(exc, method="POST", url=url).reason)
    finally:
        if owned:
            http.close()
    if status_class(response.status_code) is StatusClass.OK:
        return Outcome(Result.SENT)
    answer = excerpt(" ".join(response.text.split()), REASON_CHARS) or "(empty body)"
    reason = f"webhook answered HTTP {response.status_code}: {answer}"
    if status_class(response.status_code) is StatusClass.RETRYABLE:
        wait = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return Outcome(Result.RETRY, reason, wait)
    return Outcome(Result.FAILED, reason)
