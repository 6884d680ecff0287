"""Webhook secrets are credentials like any other: a process whose keys cannot decrypt them refuses to
start, and ``tradelane keys rotate`` re-encrypts them under the first key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import make_tenant
from tradelane.bootstrap import build
from tradelane.cli import build_app
from tradelane.config import load_settings
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import notification_settings
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import notification_settings as destinations
from tradelane.services.key_check import KeyConfigurationError


@pytest.fixture
def store(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TRADELANE_SECRET_KEYS", "TRADELANE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)


def _configure_webhook(engine: sa.engine.Engine, keyring: KeyRing, now: datetime) -> int:
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        result = destinations.configure(
            conn,
            keyring,
            tenant_id=tenant.id,
            channel_id=None,
            webhook_url="https://hooks.example/in",
            webhook_secret="whsec-rotate-me",
            actor="test",
            now=now,
        )
    assert result is not None
    return result.id


def test_a_key_that_cannot_decrypt_a_webhook_secret_refuses_to_start_and_rotate_reencrypts(
    store: None, engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch, now: datetime
) -> None:
    old, new = generate_key(), generate_key()
    settings_id = _configure_webhook(engine, KeyRing([old]), now)

    monkeypatch.setenv("TRADELANE_SECRET_KEYS", new)
    with pytest.raises(KeyConfigurationError, match=r"notification_settings\.webhook_secret"):
        build(load_settings(), configure_logs=False)

    monkeypatch.setenv("TRADELANE_SECRET_KEYS", f"{new},{old}")
    result = CliRunner().invoke(build_app(), ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    with read_only(engine) as conn:
        assert destinations.webhook_secret(conn, KeyRing([new]), settings_id) == "whsec-rotate-me"
        token = conn.execute(sa.select(notification_settings.c.webhook_secret)).scalar_one()
    assert b"whsec-rotate-me" not in token
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", new)
    build(load_settings(), configure_logs=False).close()  # the new key alone now starts
