"""An Amazon channel through the generic channel commands: `channel check` and `channel update
--options` (CLI), `/channels/{name}/check` (API) and the dashboard's budget limits all resolve the
channel's connector through the registry — nothing Mirakl-specific is asked of an Amazon channel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from amazon_sandbox_world import DE, World, sandbox
from typer.testing import CliRunner

from helpers import make_tenant
from tradelane.cli import build_app
from tradelane.connectors.amazon.connector import add_channel
from tradelane.connectors.registry import check_channel
from tradelane.domain.errors import ValidationError
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import get_channel
from tradelane.web.dashboard.limits import bucket_limit

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def world() -> World:  # type: ignore[misc]
    with sandbox() as w:
        yield w


def _channel(engine, world: World, keyring: KeyRing, *, refresh_token: str | None = None):
    tenant, _ = make_tenant(engine, "acme", NOW)
    app = world.state.application
    with engine.begin() as conn:
        return add_channel(
            conn, tenant_id=tenant.id, name="amz", seller_id=world.eu.seller_id, marketplace_id=DE,
            client_id=app.client_id, client_secret=app.client_secret,
            refresh_token=refresh_token or world.eu.refresh_token, keyring=keyring, now=NOW, region="eu",
            endpoint=world.url, token_endpoint=world.url,
        )  # fmt: skip


def _cli_env(monkeypatch, tmp_path, db_url: str, key: str) -> None:
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    for name in ("TRADELANE_MIRAKL_API_KEY", "TRADELANE_MIRAKL_STAGING_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_cli_check_uses_the_amazon_check(db_url, engine, monkeypatch, tmp_path, world: World) -> None:
    key = generate_key()
    _cli_env(monkeypatch, tmp_path, db_url, key)
    _channel(engine, world, KeyRing([key]), refresh_token="Atzr|revoked")
    bad = CliRunner().invoke(build_app(), ["channel", "check", "amz"])
    assert bad.exit_code == 2, bad.output
    assert "bad_credentials: bad refresh token" in " ".join(bad.output.split())
    staging = CliRunner().invoke(build_app(), ["channel", "check", "amz", "--staging"])
    assert staging.exit_code != 0 and "no staging account" in " ".join(staging.output.split())


def test_cli_update_options_then_check(db_url, engine, monkeypatch, tmp_path, world: World) -> None:
    key = generate_key()
    _cli_env(monkeypatch, tmp_path, db_url, key)
    channel = _channel(engine, world, KeyRing([key]))
    ok = CliRunner().invoke(build_app(), ["channel", "check", "amz"])
    assert ok.exit_code == 0 and f"seller {world.eu.seller_id} answers" in ok.output, ok.output

    mirakl_flag = CliRunner().invoke(build_app(), ["channel", "update", "amz", "--hostname", "x.example"])
    assert mirakl_flag.exit_code != 0 and "--hostname: Mirakl's" in mirakl_flag.output
    nothing = CliRunner().invoke(build_app(), ["channel", "update", "amz"])
    assert nothing.exit_code != 0 and "give --options" in nothing.output

    invalid = CliRunner().invoke(
        build_app(), ["channel", "update", "amz", "--options", '{"marketplace_id": "ATVPDKIKX0DER"}']
    )
    assert invalid.exit_code != 0 and "nothing changed" in invalid.output, invalid.output
    with engine.connect() as conn:
        assert get_channel(conn, channel.tenant_id, "amz").settings["marketplace_id"] == DE

    unreachable = CliRunner().invoke(
        build_app(), ["channel", "update", "amz", "--options", '{"endpoint": "http://127.0.0.1:9"}']
    )
    assert unreachable.exit_code == 2 and "saved, but the check fails — unreachable" in unreachable.output
    fixed = CliRunner().invoke(
        build_app(), ["channel", "update", "amz", "--options", f'{{"endpoint": "{world.url}"}}']
    )
    assert fixed.exit_code == 0 and "saved and checked" in fixed.output, fixed.output
    with engine.connect() as conn:
        assert get_channel(conn, channel.tenant_id, "amz").settings["endpoint"] == world.url


def test_registry_check_and_budget_limits(engine, world: World) -> None:
    keyring = KeyRing([generate_key()])
    channel = _channel(engine, world, keyring)
    with engine.connect() as conn:
        result = check_channel(conn, channel, keyring)
        assert result.ok and result.problem is None
        with pytest.raises(ValidationError, match="no staging account"):
            check_channel(conn, channel, keyring, staging=True)
    patch = bucket_limit(channel, "amazon:patchListingsItem")
    assert patch is not None and patch.rate == pytest.approx(5.0) and patch.burst == 5
    confirm = bucket_limit(channel, "amazon:confirmShipment")
    assert confirm is not None and confirm.rate == pytest.approx(2.0)
    assert bucket_limit(channel, "amazon:noSuchOperation") is None
    assert bucket_limit(channel, "mirakl:OR11") is None
