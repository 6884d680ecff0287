"""Channels: creation (with their flows and offer bindings), lookup, pause/resume per flow."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.channels import DEFAULT_FREQUENCIES, MIN_FREQUENCY_SECONDS, Flow, LifecycleState
from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.persistence.tables import channel_flows, channels, offer_bindings, products
from tradelane.security.crypto import KeyRing


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    tenant_id: int
    name: str
    connector: str
    lifecycle_state: str
    settings: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlowStatus:
    flow: Flow
    enabled: bool
    paused: bool
    frequency_seconds: int | None
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None


def _row_to_channel(row: Any) -> Channel:
    return Channel(row.id, row.tenant_id, row.name, row.connector, row.lifecycle_state, dict(row.settings))


def create_channel(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    connector: str,
    settings: dict[str, Any],
    credentials: dict[str, Any] | None,
    keyring: KeyRing,
    now: datetime,
    frequencies: dict[Flow, int | None] | None = None,
) -> Channel:
    """Create a channel with every flow row, and bind all the tenant's products to it (dirty, so the
    first offers sync publishes them)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("channel name must be 1-100 characters")
    freqs = {**DEFAULT_FREQUENCIES, **(frequencies or {})}
    for flow, seconds in freqs.items():
        if seconds is not None and seconds < MIN_FREQUENCY_SECONDS:
            raise ValidationError(f"{flow.value} frequency below the {MIN_FREQUENCY_SECONDS}s floor")
    try:
        with conn.begin_nested():
            channel_id = conn.execute(
                sa.insert(channels)
                .values(
                    tenant_id=tenant_id,
                    name=name,
                    connector=connector,
                    settings=settings,
                    credentials=keyring.encrypt(credentials) if credentials is not None else None,
                    created_at=now,
                )
                .returning(channels.c.id)
            ).scalar_one()
    except sa.exc.IntegrityError:
        raise ConflictError(f"channel {name!r} already exists") from None
    conn.execute(
        sa.insert(channel_flows),
        [
            {
                "channel_id": channel_id,
                "flow": flow.value,
                "frequency_seconds": seconds,
                "next_run_at": now if seconds is not None else None,
            }
            for flow, seconds in freqs.items()
        ],
    )
    conn.execute(
        sa.insert(offer_bindings).from_select(
            ["tenant_id", "channel_id", "product_id", "dirty", "dirty_since"],
            sa.select(
                products.c.tenant_id,
                sa.literal(channel_id),
                products.c.id,
                sa.true(),
                sa.literal(now, type_=offer_bindings.c.dirty_since.type),
            ).where(products.c.tenant_id == tenant_id),
        )
    )
    return get_channel_by_id(conn, tenant_id, channel_id)


def get_channel(conn: Connection, tenant_id: int, name: str) -> Channel:
    row = conn.execute(
        sa.select(channels).where(channels.c.tenant_id == tenant_id, channels.c.name == name)
    ).first()
    if row is None:
        raise NotFoundError(f"no channel named {name!r}")
    return _row_to_channel(row)


def get_channel_by_id(conn: Connection, tenant_id: int, channel_id: int) -> Channel:
    row = conn.execute(
        sa.select(channels).where(channels.c.tenant_id == tenant_id, channels.c.id == channel_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no channel with id {channel_id}")
    return _row_to_channel(row)


def list_channels(conn: Connection, tenant_id: int) -> list[Channel]:
    rows = conn.execute(
        sa.select(channels).where(channels.c.tenant_id == tenant_id).order_by(channels.c.name)
    )
    return [_row_to_channel(r) for r in rows]


def channel_credentials(conn: Connection, channel: Channel, keyring: KeyRing) -> dict[str, Any]:
    token = conn.execute(sa.select(channels.c.credentials).where(channels.c.id == channel.id)).scalar_one()
    return keyring.decrypt(token) if token is not None else {}


def flow_statuses(conn: Connection, channel_id: int) -> list[FlowStatus]:
    rows = conn.execute(
        sa.select(channel_flows)
        .where(channel_flows.c.channel_id == channel_id)
        .order_by(channel_flows.c.flow)
    )
    return [
        FlowStatus(
            Flow(r.flow),
            r.enabled,
            r.paused,
            r.frequency_seconds,
            r.next_run_at,
            r.last_run_at,
            r.last_success_at,
            r.last_error,
        )
        for r in rows
    ]


def set_paused(conn: Connection, channel: Channel, flows: Iterable[Flow] | None, paused: bool) -> list[Flow]:
    """Pause (or resume) the given flows of a channel, or all of them when ``flows`` is None.

    Paused flows keep their queued jobs; workers simply do not claim them until resumed."""
    stmt = sa.update(channel_flows).where(channel_flows.c.channel_id == channel.id)
    selected = list(flows) if flows is not None else list(Flow)
    stmt = stmt.where(channel_flows.c.flow.in_([f.value for f in selected])).values(paused=paused)
    conn.execute(stmt)
    return selected


def set_enabled(conn: Connection, channel: Channel, flow: Flow, enabled: bool) -> None:
    conn.execute(
        sa.update(channel_flows)
        .where(channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value)
        .values(enabled=enabled)
    )


def set_frequency(conn: Connection, channel: Channel, flow: Flow, seconds: int | None, now: datetime) -> None:
    if seconds is not None and seconds < MIN_FREQUENCY_SECONDS:
        raise ValidationError(f"frequency below the {MIN_FREQUENCY_SECONDS}s floor")
    conn.execute(
        sa.update(channel_flows)
        .where(channel_flows.c.channel_id == channel.id, channel_flows.c.flow == flow.value)
        .values(frequency_seconds=seconds, next_run_at=now if seconds is not None else None)
    )


def set_lifecycle(conn: Connection, channel: Channel, state: LifecycleState) -> None:
    """Move a channel through setup -> testing (flows use the staging account) -> live; disabled
    channels keep their data but their jobs are skipped."""
    conn.execute(sa.update(channels).where(channels.c.id == channel.id).values(lifecycle_state=state.value))
