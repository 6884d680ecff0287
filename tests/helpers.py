"""Small builders shared by tests (fakes, not mocks)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.channels import LifecycleState
from tradelane.persistence.tables import channels
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import Channel, create_channel, get_channel_by_id
from tradelane.services.tenants import Tenant, create_tenant


class FakeClock:
    """A settable clock: ``clock()`` returns the current instant, ``advance`` moves it."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current = self.current + timedelta(seconds=seconds)
        return self.current


def make_tenant(engine: Engine, name: str, now: datetime) -> tuple[Tenant, str]:
    with engine.begin() as conn:
        return create_tenant(conn, name, now=now)


def put_live(conn: Connection, channel_id: int) -> None:
    """Test-only: put a channel straight in Live (its flows run), without the lifecycle's checks and audit.
    A channel is created in Setup, where nothing is sent (see services/channel_lifecycle.py)."""
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel_id)
        .values(lifecycle_state=LifecycleState.LIVE.value)
    )


def make_channel(
    engine: Engine,
    tenant_id: int,
    name: str,
    now: datetime,
    connector: str = "test",
    *,
    lifecycle: LifecycleState = LifecycleState.LIVE,
) -> Channel:
    """A channel (no credentials) in ``lifecycle``: Live by default, so its flows run."""
    with engine.begin() as conn:
        channel = create_channel(
            conn,
            tenant_id=tenant_id,
            name=name,
            connector=connector,
            settings={},
            # No credentials: encrypted ones need the key the process under test is configured with
            # (a process refuses to start when no configured key decrypts the store's credentials).
            credentials=None,
            keyring=KeyRing([generate_key()]),
            now=now,
        )
        if lifecycle is not LifecycleState.SETUP:
            conn.execute(
                sa.update(channels).where(channels.c.id == channel.id).values(lifecycle_state=lifecycle.value)
            )
        return get_channel_by_id(conn, tenant_id, channel.id)
