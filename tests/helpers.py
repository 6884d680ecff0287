"""Small builders shared by tests (fakes, not mocks)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import Channel, create_channel
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


def make_channel(
    engine: Engine, tenant_id: int, name: str, now: datetime, connector: str = "test"
) -> Channel:
    with engine.begin() as conn:
        return create_channel(
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
