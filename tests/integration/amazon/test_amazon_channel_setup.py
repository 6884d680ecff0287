"""Setting an Amazon channel up: `tradelane channel add amazon` validates and stores the LWA
credentials encrypted; check_channel reaches the sandbox with them and tells the causes apart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from amazon_sandbox_world import DE, World, sandbox
from typer.testing import CliRunner

from helpers import make_tenant
from tradelane.cli import build_app
from tradelane.connectors.amazon.connector import add_channel, check_channel
from tradelane.connectors.base import CheckOutcome
from tradelane.domain.errors import ValidationError
from tradelane.persistence.tables import channels
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import get_channel

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def world() -> World:  # type: ignore[misc]
    with sandbox() as w:
        yield w


def test_cli_adds_the_channel_with_encrypted_credentials(
    db_url, engine, monkeypatch, tmp_path, world: World
) -> None:
    key = generate_key()
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("TRADELANE_AMAZON_REFRESH_TOKEN", world.eu.refresh_token)
    monkeypatch.delenv("TRADELANE_AMAZON_CLIENT_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)
    tenant, _ = make_tenant(engine, "acme", NOW)
    app = world.state.application

    def args(name: str, marketplace: str) -> list[str]:
        return [
            "channel", "add", "amazon", "--tenant", "acme", "--name", name,
            "--seller-id", world.eu.seller_id, "--marketplace-id", marketplace, "--client-id", app.client_id,
            "--client-secret-stdin", "--region", "eu", "--endpoint", world.url, "--token-endpoint", world.url,
        ]  # fmt: skip

    result = CliRunner().invoke(build_app(), args("amazon-de", DE), input=app.client_secret + "\n")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "added (amazon" in result.output
    with engine.connect() as conn:
        row = conn.execute(sa.select(channels).where(channels.c.name == "amazon-de")).one()
        stored = str(row.credentials)
        assert app.client_secret not in stored and world.eu.refresh_token not in stored
        channel = get_channel(conn, tenant.id, "amazon-de")
        assert channel.connector == "amazon"
        assert channel.settings["endpoint"] == world.url and channel.settings["region"] == "eu"
        report = check_channel(conn, channel, KeyRing([key]))
    assert report.outcome is CheckOutcome.OK, report.message
    wrong = CliRunner().invoke(
        build_app(), args("amazon-us", "ATVPDKIKX0DER"), input=app.client_secret + "\n"
    )
    assert wrong.exit_code != 0 and "served by the 'na' region" in " ".join(wrong.output.split())


def test_check_channel_names_a_bad_refresh_token(engine, world: World) -> None:
    keyring = KeyRing([generate_key()])
    tenant, _ = make_tenant(engine, "acme", NOW)
    app = world.state.application
    with engine.begin() as conn:
        channel = add_channel(
            conn, tenant_id=tenant.id, name="amz", seller_id=world.eu.seller_id, marketplace_id=DE,
            client_id=app.client_id, client_secret=app.client_secret, refresh_token="Atzr|not-this-one",
            keyring=keyring, now=NOW, region="eu", endpoint=world.url, token_endpoint=world.url,
        )  # fmt: skip
    with engine.connect() as conn:
        report = check_channel(conn, channel, keyring)
    assert report.outcome is CheckOutcome.BAD_CREDENTIALS
    assert report.details["problem"] == "bad_refresh_token" and "refresh token" in report.message


def test_add_channel_refuses_invalid_settings_before_storing(engine) -> None:
    tenant, _ = make_tenant(engine, "acme", NOW)
    with engine.begin() as conn, pytest.raises(ValidationError, match="invalid Amazon seller id"):
        add_channel(
            conn, tenant_id=tenant.id, name="amz", seller_id="nope", marketplace_id=DE, client_id="c",
            client_secret="s", refresh_token="r", keyring=KeyRing([generate_key()]), now=NOW,
        )  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(channels)).scalar_one() == 0
