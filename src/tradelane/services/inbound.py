"""Inbound webhook events: stored verbatim, durably and once, before anything else happens to them.

Contracts:

* :func:`store_inbound_event` inserts the raw body, the headers and the content type into
  ``inbound_events`` with ``INSERT ... ON CONFLICT DO NOTHING`` on ``(tenant_id, source, external_id)``;
  it never checks-then-inserts. A duplicate delivery returns the original event's id and
  ``created=False`` and changes nothing.
* The external id is the first non-empty delivery-id header of :data:`EXTERNAL_ID_HEADERS`, else
  ``sha256:<hex digest of the body>`` (so a redelivered identical body is also deduplicated).
* Secrets never reach the table: ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` are dropped.
* The caller owns the transaction: the event is durable once the caller's transaction commits, and only
  then may the sender be acknowledged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import ValidationError
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import inbound_events
from tradelane.sync.jobs import JobSpec

#: The job that applies a stored event has this prefix and the event's id as its idempotency key: one
#: job per stored event (see :func:`apply_event_job`).
APPLY_KEY_PREFIX = "inbound-event:"

#: Delivery-id headers, most specific first (lower case). The first non-empty one is the external id.
EXTERNAL_ID_HEADERS: tuple[str, ...] = ("x-event-id", "x-shopify-webhook-id", "x-webhook-id")

#: Headers never stored (credentials).
DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

MAX_SOURCE_LENGTH = 100
MAX_EXTERNAL_ID_LENGTH = 300
MAX_CONTENT_TYPE_LENGTH = 200


class InboundStatus(StrEnum):
    """State of a stored event. Storage only ever writes ``received``; processors move it to
    ``processed`` or ``failed`` (with ``error``) and set ``processed_at``."""

    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"


def _has_control_chars(value: str) -> bool:
    return any(ord(ch) < 0x20 and ch != "\t" for ch in value) or "\x7f" in value


def storable_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased header names to values, credentials dropped; repeated headers joined with ``", "``."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for raw_name, value in pairs:
        name = raw_name.lower()
        if name in DROPPED_HEADERS:
            continue
        if "\x00" in name or "\x00" in value:
            raise ValidationError(f"header {name!r} contains a NUL character")
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


def external_id_for(headers: Mapping[str, str], body: bytes) -> str:
    """The sender's delivery id (see :data:`EXTERNAL_ID_HEADERS`) or ``sha256:<hex>`` of the body.

    ``headers`` must have lower-case names (as :func:`storable_headers` returns them)."""
    for name in EXTERNAL_ID_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            if len(value) > MAX_EXTERNAL_ID_LENGTH or _has_control_chars(value):
                raise ValidationError(
                    f"header {name} must be 1-{MAX_EXTERNAL_ID_LENGTH} printable characters"
                )
            return value
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _check_source(source: str) -> None:
    if not source or len(source) > MAX_SOURCE_LENGTH or _has_control_chars(source):
        raise ValidationError(f"source must be 1-{MAX_SOURCE_LENGTH} printable characters")


def _check_content_type(content_type: str | None) -> None:
    if content_type is not None and (len(content_type) > MAX_CONTENT_TYPE_LENGTH or "\x00" in content_type):
        raise ValidationError(f"content type must be at most {MAX_CONTENT_TYPE_LENGTH} characters")


def store_inbound_event(
    conn: Connection,
    *,
    tenant_id: int,
    source: str,
    channel_id: int | None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    now: datetime,
) -> tuple[int, bool]:
    """Store one inbound event unless the same (tenant, source, external id) is already stored.

    Returns ``(event_id, created)``; for a duplicate, the id of the event stored first and False.
    Raises :class:`ValidationError` for values the table cannot hold (over-long source, content type or
    delivery id, NUL characters). Runs inside the caller's transaction."""
    row = inbound_event_row(
        tenant_id=tenant_id,
        source=source,
        channel_id=channel_id,
        headers=headers,
        body=body,
        content_type=content_type,
        now=now,
    )
    event_id = conn.execute(insert_ignore(conn, inbound_events).returning(inbound_events.c.id), row).scalar()
    if event_id is not None:
        return int(event_id), True
    existing = conn.execute(
        _EXISTING, {"tenant_id": tenant_id, "source": source, "external_id": row["external_id"]}
    ).scalar_one()
    return int(existing), False


def apply_event_job(kind: str, tenant_id: int, event_id: int, merchant_system_id: int) -> JobSpec:
    """The ``kind`` job that applies stored event ``event_id`` received from merchant system
    ``merchant_system_id``: idempotency key :data:`APPLY_KEY_PREFIX` + the event id, payload
    ``{"event_id", "merchant_system_id"}``."""
    return JobSpec(
        tenant_id=tenant_id,
        kind=kind,
        payload={"event_id": event_id, "merchant_system_id": merchant_system_id},
        idempotency_key=f"{APPLY_KEY_PREFIX}{event_id}",
    )


def inbound_event_row(
    *,
    tenant_id: int,
    source: str,
    channel_id: int | None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The ``inbound_events`` row :func:`store_inbound_event` inserts (column name to value; ``headers``
    as a dict for the JSON column), for writers that insert it themselves in one statement (see
    :mod:`tradelane.web.api.pg_intake`). Raises :class:`ValidationError` as :func:`store_inbound_event`."""
    _check_source(source)
    _check_content_type(content_type)
    kept = storable_headers(headers)
    return {
        "tenant_id": tenant_id,
        "channel_id": channel_id,
        "source": source,
        "external_id": external_id_for(kept, body),
        "content_type": content_type,
        "headers": kept,
        "body": body,
        "status": InboundStatus.RECEIVED.value,
        "received_at": now,
    }


_EXISTING = sa.select(inbound_events.c.id).where(
    inbound_events.c.tenant_id == sa.bindparam("tenant_id"),
    inbound_events.c.source == sa.bindparam("source"),
    inbound_events.c.external_id == sa.bindparam("external_id"),
)
