"""Notifications: an email for every completed step and every problem, and an optional signed webhook.

Contracts:

* :func:`notify` only writes, in the caller's transaction: one ``notifications`` row (the outbox), one
  ``notification_deliveries`` row per destination configured at that moment, and one :data:`SEND_KIND`
  job (idempotency key ``notification:<id>``). Committed with the caller's change or not at all: a
  rolled-back caller sends nothing. It never talks to the network, so a mail server can never block or
  fail the caller's flow. Nothing configured → ``None`` and nothing written.
* Destinations (:func:`configure`): the tenant-wide settings (no channel) plus, for a notification about
  a channel, that channel's own settings; each distinct address gets one email, each webhook URL one
  signed POST. The webhook secret is stored Fernet-encrypted with the key ring, like channel
  credentials, and is never returned, logged or shown (:class:`Destinations` says only whether one is
  set).
* The :data:`SEND_KIND` job (:func:`send_notification`) runs at a lower priority than order work and
  tries each destination not yet sent (:mod:`.notification_transport` classifies the outcome), recording
  every attempt on its delivery row at once (status ``sent`` / ``retrying`` / ``failed``, attempts, last
  error): a destination reached is never tried again by a retry. Any destination worth retrying → the job
  is retried with the engine's backoff (a ``Retry-After`` honoured); when its attempts run out, or a
  destination failed for good (bad recipient, HTTP 4xx), the job is dead-lettered with the reasons. A
  replayed job (its first attempt again) also tries the destinations that failed. At least once: a
  crash between a send and its record re-sends that one destination (same ``Message-ID`` /
  ``Idempotency-Key``).
* :func:`send_test` sends a test notification at once, outside the job queue, and returns what
  happened to each destination.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.errors import PermanentError, RetryableError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.tables import (
    channels,
    notification_deliveries,
    notification_settings,
    notifications,
    tenants,
)
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.notification_settings import webhook_secret
from tradelane.services.notification_transport import (
    Message,
    Outcome,
    Result,
    SmtpConfig,
    post_webhook,
    send_email,
)
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry

log = structlog.get_logger("tradelane.notifications")

#: The job that delivers one notification. Payload: ``{"notification_id": int}``.
SEND_KIND = "notifications.send"
#: Lower than orders (10), deliveries (40) and the default (100): notifications wait for order work.
SEND_PRIORITY = 300
#: A notification is retried for a while (about half an hour with the default backoff) before its
#: job is dead-lettered with the reason; ``tradelane jobs replay`` tries the unsent destinations again.
SEND_MAX_ATTEMPTS = 12

#: The key of the :class:`Transport` in the worker's services (wired by ``bootstrap.build``).
TRANSPORT = "notifications.transport"
#: The event of :func:`send_test`.
TEST_EVENT = "notify.test"

EMAIL = "email"
WEBHOOK = "webhook"


@dataclass(frozen=True)
class Transport:
    """How notifications leave: the SMTP server, and the key ring that decrypts webhook secrets."""

    smtp: SmtpConfig
    keyring: KeyRing
    webhook_timeout: float = 10.0


MAX_SUBJECT = 300
_EVENT = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")


def notify(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int | None,
    event: str,
    subject: str,
    body: str,
    details: Mapping[str, Any] | None = None,
    now: datetime,
) -> int | None:
    """Queue a notification (in the caller's transaction) for every destination configured for the
    tenant (emails, signed webhook); returns the outbox id, or None when nothing is configured.

    ``event`` is a dotted lower-case name (``cutover.step``, ``golive.failed``); ``subject`` one line
    (cut to 300 characters); ``details`` JSON-serialisable (Decimals as str). Raises ``ValueError`` for
    an invalid event or an empty subject."""
    if not _EVENT.fullmatch(event) or len(event) > 60:
        raise ValueError(f"notification event must be dotted lower-case words, got {event!r}")
    line = " ".join(subject.split())
    if not line:
        raise ValueError("a notification needs a subject")
    destinations = _destinations(conn, tenant_id, channel_id)
    if not destinations:
        return None
    notification_id = _insert(
        conn,
        tenant_id=tenant_id,
        channel_id=channel_id,
        event=event,
        subject=line[:MAX_SUBJECT],
        body=body,
        details=details,
        destinations=destinations,
        status="queued",
        now=now,
    )
    job = enqueue(
        conn,
        JobSpec(
            tenant_id=tenant_id,
            kind=SEND_KIND,
            payload={"notification_id": notification_id},
            idempotency_key=f"notification:{notification_id}",
            priority=SEND_PRIORITY,
            max_attempts=SEND_MAX_ATTEMPTS,
        ),
        now=now,
    )
    conn.execute(
        sa.update(notifications).where(notifications.c.id == notification_id).values(job_id=job.job_id)
    )
    return notification_id


# ------------------------------------------------------------------------------------------- storage

#: (kind, destination, settings row id) of one delivery.
Destination = tuple[str, str, int]


def _destinations(conn: Connection, tenant_id: int, channel_id: int | None) -> list[Destination]:
    """Every distinct destination for a notification of ``tenant_id`` (about ``channel_id``)."""
    scope: sa.ColumnElement[bool] = notification_settings.c.channel_id.is_(None)
    if channel_id is not None:
        scope = sa.or_(scope, notification_settings.c.channel_id == channel_id)
    rows = conn.execute(
        sa.select(notification_settings)
        .where(notification_settings.c.tenant_id == tenant_id, scope)
        .order_by(notification_settings.c.channel_id.is_not(None), notification_settings.c.id)
    ).all()
    found: dict[tuple[str, str], int] = {}
    for row in rows:
        for address in row.emails or []:
            found.setdefault((EMAIL, str(address).lower()), row.id)
        if row.webhook_url:
            found.setdefault((WEBHOOK, row.webhook_url), row.id)
    return [(kind, destination, settings_id) for (kind, destination), settings_id in found.items()]


def _insert(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int | None,
    event: str,
    subject: str,
    body: str,
    details: Mapping[str, Any] | None,
    destinations: Sequence[Destination],
    status: str,
    now: datetime,
) -> int:
    notification_id = int(
        conn.execute(
            sa.insert(notifications)
            .values(
                tenant_id=tenant_id,
                channel_id=channel_id,
                event=event,
                subject=subject,
                body=body,
                details=dict(details or {}),
                status=status,
                created_at=now,
                updated_at=now,
            )
            .returning(notifications.c.id)
        ).scalar_one()
    )
    conn.execute(
        sa.insert(notification_deliveries),
        [
            {
                "tenant_id": tenant_id,
                "notification_id": notification_id,
                "kind": kind,
                "destination": destination,
                "settings_id": settings_id,
                "status": "pending",
                "attempts": 0,
                "updated_at": now,
            }
            for kind, destination, settings_id in destinations
        ],
    )
    return notification_id


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    kind: str
    destination: str
    status: str  # pending | retrying | sent | failed
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    settings_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "destination": self.destination,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    tenant: str
    channel_id: int | None
    channel: str | None
    event: str
    subject: str
    body: str
    details: dict[str, Any]
    status: str  # queued | retrying | sent | failed
    job_id: int | None
    created_at: datetime
    deliveries: tuple[Delivery, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "event": self.event,
            "subject": self.subject,
            "body": self.body,
            "details": self.details,
            "status": self.status,
            "job_id": self.job_id,
            "created_at": self.created_at.isoformat(),
            "deliveries": [d.as_json() for d in self.deliveries],
        }

    def message(self, delivery_id: int) -> Message:
        return Message(
            notification_id=self.id,
            delivery_id=delivery_id,
            tenant=self.tenant,
            channel=self.channel,
            event=self.event,
            subject=self.subject,
            body=self.body,
            details=self.details,
            created_at=self.created_at,
        )


def recent(
    conn: Connection, tenant_id: int, *, limit: int = 50, channel_id: int | None = None
) -> list[Notification]:
    """The tenant's latest notifications, newest first, each with its deliveries."""
    stmt = _select().where(notifications.c.tenant_id == tenant_id)
    if channel_id is not None:
        stmt = stmt.where(notifications.c.channel_id == channel_id)
    rows = conn.execute(stmt.order_by(notifications.c.id.desc()).limit(limit)).all()
    return _with_deliveries(conn, rows)


def get(conn: Connection, notification_id: int) -> Notification | None:
    rows = conn.execute(_select().where(notifications.c.id == notification_id)).all()
    found = _with_deliveries(conn, rows)
    return found[0] if found else None


def _select() -> sa.Select[Any]:
    return (
        sa.select(notifications, tenants.c.name.label("tenant_name"), channels.c.name.label("channel_name"))
        .join(tenants, tenants.c.id == notifications.c.tenant_id)
        .outerjoin(channels, channels.c.id == notifications.c.channel_id)
    )


def _with_deliveries(conn: Connection, rows: Sequence[Any]) -> list[Notification]:
    by_id: dict[int, list[Delivery]] = {r.id: [] for r in rows}
    if by_id:
        for d in conn.execute(
            sa.select(notification_deliveries)
            .where(notification_deliveries.c.notification_id.in_(list(by_id)))
            .order_by(notification_deliveries.c.id)
        ):
            by_id[d.notification_id].append(
                Delivery(
                    d.id, d.kind, d.destination, d.status, d.attempts, d.last_error, d.sent_at, d.settings_id
                )
            )
    return [
        Notification(
            id=r.id,
            tenant=r.tenant_name,
            channel_id=r.channel_id,
            channel=r.channel_name,
            event=r.event,
            subject=r.subject,
            body=r.body,
            details=dict(r.details or {}),
            status=r.status,
            job_id=r.job_id,
            created_at=r.created_at,
            deliveries=tuple(by_id[r.id]),
        )
        for r in rows
    ]


# ------------------------------------------------------------------------------------------- sending


def _attempt(
    conn: Connection, transport: Transport, note: Notification, delivery: Delivery, now: datetime
) -> Outcome:
    """One attempt at one destination (``conn`` only reads the webhook secret)."""
    message = note.message(delivery.id)
    if delivery.kind == EMAIL:
        return send_email(transport.smtp, delivery.destination, message)
    try:
        secret = webhook_secret(conn, transport.keyring, delivery.settings_id)
    except CredentialError as exc:
        return Outcome(Result.FAILED, f"webhook secret unusable: {exc}")
    if secret is None:
        return Outcome(Result.FAILED, "the webhook was removed from the settings since this was queued")
    return post_webhook(delivery.destination, secret, message, now=now, timeout=transport.webhook_timeout)


def _record(conn: Connection, delivery: Delivery, outcome: Outcome, status: str, now: datetime) -> None:
    conn.execute(
        sa.update(notification_deliveries)
        .where(notification_deliveries.c.id == delivery.id)
        .values(
            status=status,
            attempts=notification_deliveries.c.attempts + 1,
            last_error=outcome.reason if outcome.result is not Result.SENT else None,
            sent_at=now if outcome.result is Result.SENT else None,
            updated_at=now,
        )
    )
    log.info(
        "notification.attempt",
        delivery_id=delivery.id,
        kind=delivery.kind,
        destination=delivery.destination,
        status=status,
        reason=outcome.reason,
    )


def _overall(conn: Connection, notification_id: int, now: datetime) -> tuple[str, list[str]]:
    """Set and return the notification's status from its deliveries, with the reasons of those not sent."""
    rows = conn.execute(
        sa.select(notification_deliveries).where(notification_deliveries.c.notification_id == notification_id)
    ).all()
    statuses = {r.status for r in rows}
    if statuses & {"pending", "retrying"}:
        status = "retrying"
    elif statuses <= {"sent"}:
        status = "sent"
    else:
        status = "failed"
    conn.execute(
        sa.update(notifications)
        .where(notifications.c.id == notification_id)
        .values(status=status, updated_at=now)
    )
    reasons = [f"{r.kind} {r.destination}: {r.last_error}" for r in rows if r.status != "sent"]
    return status, reasons


def send_notification(ctx: JobContext) -> dict[str, Any] | None:
    """The :data:`SEND_KIND` job (see the module docstring)."""
    transport = ctx.services.get(TRANSPORT)
    if not isinstance(transport, Transport):
        raise RuntimeError(f"the worker has no {TRANSPORT!r} service: wire it in bootstrap.build")
    notification_id = int(ctx.job.payload["notification_id"])
    with read_only(ctx.engine) as conn:
        note = get(conn, notification_id)
    if note is None:  # removed with its channel or tenant
        with ctx.transaction() as conn:
            ctx.complete_in(conn, {"skipped": "notification no longer exists"})
        return None
    wanted = {"pending", "retrying"} | ({"failed"} if ctx.job.attempts == 1 else set())
    last_attempt = ctx.job.attempts >= ctx.job.max_attempts
    waits: list[float | None] = []
    gave_up = False
    for delivery in note.deliveries:
        if delivery.status not in wanted:
            continue
        with read_only(ctx.engine) as conn:
            outcome = _attempt(conn, transport, note, delivery, ctx.now())
        status = {Result.SENT: "sent", Result.RETRY: "retrying", Result.FAILED: "failed"}[outcome.result]
        if outcome.result is Result.RETRY:
            if last_attempt and outcome.retry_after is None:
                status, gave_up = "failed", True
                outcome = Outcome(
                    Result.FAILED, f"gave up after {ctx.job.attempts} attempts: {outcome.reason}"
                )
            else:
                waits.append(outcome.retry_after)
        with ctx.transaction() as conn:
            _record(conn, delivery, outcome, status, ctx.now())
    with ctx.transaction() as conn:
        status, reasons = _overall(conn, notification_id, ctx.now())
        if status == "sent":
            ctx.complete_in(conn, {"sent": len(note.deliveries)})
            return None
    summary = "; ".join(reasons)
    if gave_up:  # the engine dead-letters the job as exhausted ("gave up after N attempts")
        raise RetryableError(f"notification {notification_id} not delivered: {summary}")
    if status == "retrying":
        # The remote's wait is honoured only when every destination still to try asked for one.
        wait = max((w for w in waits if w is not None), default=None) if None not in waits else None
        raise RetryableError(f"notification {notification_id} not delivered yet: {summary}", retry_after=wait)
    raise PermanentError(f"notification {notification_id} not delivered: {summary}")


def send_test(
    engine: Engine, transport: Transport, *, tenant_id: int, channel_id: int | None, now: datetime
) -> Notification:
    """Send a test notification to every configured destination now (outside the job queue, no retry)
    and return it with what happened to each destination. ``ValidationError`` when nothing is
    configured."""
    with transaction(engine) as conn:
        destinations = _destinations(conn, tenant_id, channel_id)
        if not destinations:
            raise ValidationError("no notification destination configured: set one with `notify set`")
        notification_id = _insert(
            conn,
            tenant_id=tenant_id,
            channel_id=channel_id,
            event=TEST_EVENT,
            subject="tradelane test notification",
            body="This is a test notification from tradelane: this destination is configured correctly.",
            details={"smtp": transport.smtp.describe()},
            destinations=destinations,
            status="queued",
            now=now,
        )
        note = get(conn, notification_id)
    assert note is not None
    for delivery in note.deliveries:
        with read_only(engine) as conn:
            outcome = _attempt(conn, transport, note, delivery, now)
        with transaction(engine) as conn:
            status = "sent" if outcome.result is Result.SENT else "failed"
            _record(conn, delivery, outcome, status, now)
    with transaction(engine) as conn:
        _overall(conn, notification_id, now)
        result = get(conn, notification_id)
    assert result is not None
    return result


def register(registry: JobRegistry) -> None:
    registry.register(SEND_KIND, send_notification)
