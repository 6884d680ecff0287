"""Notifications: an email for every completed step and every problem, and an optional signed webhook.

Contracts:

* :func:`notify` only writes, in the caller's transaction: one ``notifications`` row (the outbox), one
  ``notification_deliveries`` row per destination configured for the tenant (and the channel) at that
  moment, and one :data:`SEND_KIND` job (idempotency key ``notification:<id>``). Committed with the
  caller's change or not at all; a rolled-back caller sends nothing. It never talks to the network, so it
  can never block or fail the caller's flow on a mail server. Nothing configured → ``None``, no rows.
* Destinations: the tenant-wide settings (``channel_id`` NULL) plus, for a notification about a channel,
  that channel's own settings; each distinct address gets one email, each webhook URL one POST.
* Job kinds run at a lower priority than order work (:data:`SEND_PRIORITY`), so a backlog of
  notifications never delays orders.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.persistence.tables import notification_deliveries, notification_settings, notifications
from tradelane.sync.jobs import JobSpec, enqueue

#: The job that delivers one notification. Payload: ``{"notification_id": int}``.
SEND_KIND = "notifications.send"
#: Lower than orders (10), deliveries (40) and the default (100): notifications wait for order work.
SEND_PRIORITY = 300
#: A notification is retried for a while (about half an hour with the default backoff) before its
#: job is dead-lettered with the reason; ``tradelane jobs replay`` tries the unsent destinations again.
SEND_MAX_ATTEMPTS = 12

EMAIL = "email"
WEBHOOK = "webhook"

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
