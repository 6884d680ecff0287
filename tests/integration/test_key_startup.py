"""Keys do not depend on the current directory, and a process never starts with a key that cannot
decrypt the store's credentials (nor creates one over them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import make_tenant
from tradelane.bootstrap import build
from tradelane.cli import build_app
from tradelane.config import load_settings
from tradelane.persistence.merchant_systems import (
    add_merchant_system,
    get_merchant_system,
    merchant_credentials,
)
from tradelane.persistence.tables import channels, merchant_systems
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import channel_credentials, create_channel, get_channel
from tradelane.services.key_check import KeyConfigurationError

BACKEND = os.environ.get("TRADELANE_TEST_DB", "sqlite")


@pytest.fixture
def store(db_url, monkeypatch, tmp_path) -> Path:
    """Settings from the environment only, as a real process sees them; returns the data directory.

    SQLite: no data directory is configured, it is the SQLite file's folder. PostgreSQL has no
    default, so an explicit TRADELANE_DATA_DIR is set there."""
    for name in ("TRADELANE_SECRET_KEYS", "TRADELANE_DATA_DIR", "TRADELANE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    if BACKEND == "sqlite":
        data_dir = Path(sa.engine.make_url(db_url).database or "").parent
    else:
        data_dir = tmp_path / "data"
        monkeypatch.setenv("TRADELANE_DATA_DIR", str(data_dir))
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    return data_dir


def _add_credentials(now, keyring: KeyRing) -> None:
    app = build(load_settings(), configure_logs=False)
    try:
        tenant, _ = make_tenant(app.engine, "acme", now)
        with app.engine.begin() as conn:
            create_channel(
                conn,
                tenant_id=tenant.id,
                name="shop",
                connector="mirakl",
                settings={},
                credentials={"api_key": "s3cret"},
                keyring=keyring,
                now=now,
            )
            add_merchant_system(
                conn,
                tenant_id=tenant.id,
                name="oms",
                kind="http",
                settings={"url": "https://oms.example/orders"},
                credentials={"secret": "hmac-key"},
                keyring=keyring,
                now=now,
            )
    finally:
        app.close()


def _flat(output: str) -> str:
    return " ".join(output.split())


def _decrypts(app) -> bool:
    with app.engine.connect() as conn:
        tenant_id = conn.execute(sa.select(channels.c.tenant_id)).scalar_one()
        channel = get_channel(conn, tenant_id, "shop")
        system = get_merchant_system(conn, tenant_id, "oms")
        return channel_credentials(conn, channel, app.keyring) == {
            "api_key": "s3cret"
        } and merchant_credentials(conn, system, app.keyring) == {"secret": "hmac-key"}


def test_processes_started_from_other_directories_use_the_same_key(store, monkeypatch, tmp_path, now):
    monkeypatch.chdir(tmp_path / "a")
    first = build(load_settings(), configure_logs=False)
    key_file = store / "secret.key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    _add_credentials(now, first.keyring)
    first.close()

    monkeypatch.chdir(tmp_path / "b")  # e.g. a worker started by a service manager elsewhere
    second = build(load_settings(), configure_logs=False)
    try:
        assert _decrypts(second)
    finally:
        second.close()
    assert not (tmp_path / "b" / "var").exists()  # no stray key next to the start directory
    result = CliRunner().invoke(build_app(), ["worker", "--burst", "--no-schedule"])
    assert result.exit_code == 0, result.output


def test_relative_sqlite_url_is_resolved_once_at_load(monkeypatch, tmp_path):
    for name in ("TRADELANE_SECRET_KEYS", "TRADELANE_DATA_DIR", "TRADELANE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRADELANE_DATABASE_URL", "sqlite:///var/hub.db")
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    monkeypatch.chdir("/")
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path}/var/hub.db"
    assert settings.data_dir == tmp_path / "var"
    assert settings.key_file() == tmp_path / "var" / "secret.key"


def test_a_wrong_key_refuses_to_start_and_says_where_it_looked(store, monkeypatch, tmp_path, now):
    right = generate_key()
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", right)
    _add_credentials(now, KeyRing([right]))
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(KeyConfigurationError) as info:
        build(load_settings(), configure_logs=False)
    message = str(info.value)
    assert "TRADELANE_SECRET_KEYS (1 key(s))" in message and "channels.credentials" in message
    assert "TRADELANE_DATA_DIR" in message
    for command in (["worker", "--burst"], ["tenant", "list"], ["keys", "rotate"]):
        result = CliRunner().invoke(build_app(), command)
        assert result.exit_code == 1 and "decrypt none" in _flat(result.output), (command, result.output)
    assert not (store / "secret.key").exists()
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", f"{generate_key()},{right}")  # old key kept: starts
    build(load_settings(), configure_logs=False).close()


def test_a_missing_key_file_is_never_recreated_over_encrypted_data(store, monkeypatch, tmp_path, now):
    monkeypatch.chdir(tmp_path / "a")
    app = build(load_settings(), configure_logs=False)
    _add_credentials(now, app.keyring)
    app.close()
    key_file = store / "secret.key"
    key_file.unlink()  # lost, or a data directory that points elsewhere
    with pytest.raises(KeyConfigurationError) as info:
        build(load_settings(), configure_logs=False)
    assert f"{key_file} (missing)" in str(info.value) and "refusing to create a new key" in str(info.value)
    assert not key_file.exists()
    result = CliRunner().invoke(build_app(), ["worker", "--burst"])
    assert result.exit_code == 1 and "refusing to create a new key" in _flat(result.output)
    assert not key_file.exists()


def test_a_key_file_that_cannot_decrypt_refuses_to_start(store, monkeypatch, tmp_path, now):
    app = build(load_settings(), configure_logs=False)
    _add_credentials(now, app.keyring)
    app.close()
    key_file = store / "secret.key"
    key_file.write_text(generate_key() + "\n")
    with pytest.raises(KeyConfigurationError, match=r"decrypt none of the 2 most recent"):
        build(load_settings(), configure_logs=False)


@pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL has no default data directory")
def test_postgres_without_keys_or_data_dir_is_a_clear_configuration_error(store, monkeypatch):
    monkeypatch.delenv("TRADELANE_DATA_DIR")
    with pytest.raises(KeyConfigurationError, match=r"TRADELANE_SECRET_KEYS .*TRADELANE_DATA_DIR"):
        build(load_settings(), configure_logs=False)


def test_keys_rotate_reencrypts_channels_and_merchant_systems(store, monkeypatch, engine, now):
    old = generate_key()
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", old)
    _add_credentials(now, KeyRing([old]))
    new = generate_key()
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", f"{new},{old}")
    result = CliRunner().invoke(build_app(), ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "1 channel(s) and 1 merchant system(s)" in result.output
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", new)  # the old key dropped: everything still decrypts
    app = build(load_settings(), configure_logs=False)
    try:
        assert _decrypts(app)
    finally:
        app.close()
    with engine.connect() as conn:
        assert b"hmac-key" not in conn.execute(sa.select(merchant_systems.c.credentials)).scalar_one()
