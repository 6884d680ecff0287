"""The audit trail of a channel: who did what, when and why (``channel_events``).

Every change of a channel's lifecycle or flows, every override of a go-live block and every cutover
step is recorded here by the service that makes the change, *in the same transaction*, so an action
and its record are committed together or not at all. Rows are append-only.

``actor`` names who acted, by interface: ``cli:<os user>`` (:func:`cli_actor`), ``api:<tenant>``,
``dashboard:<tenant>`` or :data:`SYSTEM` (the scheduler or a worker).
"""

from __future__ import annotations

import csv
import getpass
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.persistence.tables import channel_events

#: The actor of actions nobody typed (the scheduler ending a testing period, a worker's cutover step).
SYSTEM = "system"


def cli_actor() -> str:
    """``cli:<the operating-system user running the command>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no LOGNAME/USER
        user = "unknown"
    return f"cli:{user}"


@dataclass(frozen=True, slots=True)
class ChannelEvent:
    id: int
    channel_id: int
    at: datetime
    actor: str
    action: str
    reason: str | None
    details: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "reason": self.reason,
            "details": self.details,
        }


def record(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int,
    actor: str,
    action: str,
    now: datetime,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one event and return its id. ``details`` must be JSON-serialisable (Decimals as str)."""
    if not actor.strip():
        raise ValueError("an audited action needs an actor")
    if not action.strip():
        raise ValueError("an audited action needs a name")
    return int(
        conn.execute(
            sa.insert(channel_events)
            .values(
                tenant_id=tenant_id,
                channel_id=channel_id,
                at=now,
                actor=actor,
                action=action,
                reason=(reason or None),
                details=dict(details or {}),
            )
            .returning(channel_events.c.id)
        ).scalar_one()
    )


def history(
    conn: Connection,
    channel_id: int,
    *,
    prefix: str | None = None,
    limit: int | None = 500,
) -> list[ChannelEvent]:
    """The channel's events, oldest first; ``prefix`` keeps actions starting with it (``cutover.``)."""
    stmt = sa.select(channel_events).where(channel_events.c.channel_id == channel_id)
    if prefix:
        stmt = stmt.where(channel_events.c.action.startswith(prefix, autoescape=True))
    if limit is not None:
        newest = stmt.order_by(channel_events.c.id.desc()).limit(limit).subquery()
        rows = conn.execute(sa.select(newest).order_by(newest.c.id)).all()
    else:
        rows = conn.execute(stmt.order_by(channel_events.c.id)).all()
    return [
        ChannelEvent(r.id, r.channel_id, r.at, r.actor, r.action, r.reason, dict(r.details)) for r in rows
    ]


def to_csv(events: Iterable[ChannelEvent]) -> str:
    """An export for people and spreadsheets: one row per event, details as compact JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "actor", "action", "reason", "details"])
    for e in events:
        writer.writerow(
            [e.id, e.at.isoformat(), e.actor, e.action, e.reason or "", json.dumps(e.details, sort_keys=True)]
        )
    return out.getvalue()
