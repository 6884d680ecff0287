"""An Amazon channel through the generic channel commands: `channel check` and `channel update
--options` (CLI), `POST /channels/{name}/check` and `PATCH /channels/{name}` (API) and the dashboard's
budget limits all resolve the channel's connector through the registry — nothing Mirakl-specific is
asked of an Amazon channel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from amazon_sandbox_world import DE, World, sandbox
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from helpers import make_tenant
from tradelane.bootstrap import build
from tradelane.cli import build_app
from tradelane.config import Settings
from tradelane.connectors.amazon.connector import add_channel
from tradelane.connectors.registry import check_channel
from tradelane.domain.errors import ValidationError
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import channel_credentials, get_channel
from tradelane.services.tenants import issue_token
from tradelane.web.app import create_app
from tradelane.web.dashboard.limits import bucket_limit

NOW = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def world() -> World:  # type: ignore[misc]
    with sandbox() as w:
        yield w


def _channel(engine, world: World, keyring: KeyRing, *, refresh_token: str | None = None):
    tenant, _ = make_tenant(engine, "acme", NOW)
    return _add(engine, tenant.id, world, keyring, refresh_token=refresh_token)


def _add(engine, tenant_id: int, world: World, keyring: KeyRing, *, refresh_token: str | None = None):
    app = world.state.application
    with engine.begin() as conn:
        return add_channel(
            conn, tenant_id=tenant_id, name="amz", seller_id=world.eu.seller_id, marketplace_id=DE,
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


def test_cli_update_replaces_a_revoked_refresh_token(
    db_url, engine, monkeypatch, tmp_path, world: World
) -> None:
    key = generate_key()
    _cli_env(monkeypatch, tmp_path, db_url, key)
    channel = _channel(engine, world, KeyRing([key]), refresh_token="Atzr|revoked")
    unknown = CliRunner().invoke(
        build_app(), ["channel", "update", "amz", "--credential", "api_key"], input="x\n"
    )
    assert unknown.exit_code != 0 and "not a credential of connector 'amazon'" in unknown.output
    fixed = CliRunner().invoke(
        build_app(),
        ["channel", "update", "amz", "--credential", "refresh_token", "--credentials-stdin"],
        input=world.eu.refresh_token + "\n",
    )
    assert fixed.exit_code == 0 and "saved and checked" in fixed.output, fixed.output
    with engine.connect() as conn:
        stored = get_channel(conn, channel.tenant_id, "amz")
        assert channel_credentials(conn, stored, KeyRing([key]))["refresh_token"] == world.eu.refresh_token


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


def test_api_checks_and_updates_an_amazon_channel(db_url, engine, world: World) -> None:
    container = build(Settings(database_url=db_url, secret_keys=generate_key()), configure_logs=False)
    try:
        tenant, _ = make_tenant(container.engine, "acme", NOW)
        with container.engine.begin() as conn:
            token = issue_token(conn, tenant.id, now=NOW, label="amazon-api")
        _add(container.engine, tenant.id, world, container.keyring, refresh_token="Atzr|revoked")
        auth = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(container)) as client:
            check = client.post("/api/v1/channels/amz/check", headers=auth).json()
            assert (check["ok"], check["problem"]) == (False, "bad_credentials")
            assert "bad refresh token" in check["message"]
            staging = client.post("/api/v1/channels/amz/check", params={"staging": "true"}, headers=auth)
            assert staging.status_code == 422 and "no staging account" in staging.text

            mirakl_only = client.patch("/api/v1/channels/amz", json={"hostname": "x.example"}, headers=auth)
            assert mirakl_only.status_code == 422 and "hostname: Mirakl's" in mirakl_only.text
            invalid = client.patch(
                "/api/v1/channels/amz", json={"options": {"marketplace_id": "ATVPDKIKX0DER"}}, headers=auth
            )
            assert invalid.status_code == 422 and "served by the 'na' region" in invalid.text
            changed = client.patch(
                "/api/v1/channels/amz", json={"options": {"feed_poll_seconds": 30}}, headers=auth
            )
            assert changed.status_code == 200, changed.text
            body = changed.json()
            assert body["check"]["ok"] is False and body["check"]["problem"] == "bad_credentials"
            mixed = client.patch("/api/v1/channels/amz", json={"credentials": {"api_key": "k"}}, headers=auth)
            assert mixed.status_code == 422 and "not a credential of connector 'amazon'" in mixed.text
            fixed = client.patch(
                "/api/v1/channels/amz",
                json={"credentials": {"refresh_token": world.eu.refresh_token}},
                headers=auth,
            )
            assert fixed.status_code == 200 and fixed.json()["check"]["ok"] is True, fixed.text
        with container.engine.connect() as conn:
            settings = get_channel(conn, tenant.id, "amz").settings
        assert settings["feed_poll_seconds"] == 30 and settings["marketplace_id"] == DE
    finally:
        container.close()


def test_api_creates_an_amazon_channel_from_its_settings_and_credentials(db_url, world: World) -> None:
    """``POST /channels`` takes a non-Mirakl connector's ``settings`` and ``credentials``, validated by
    the connector; the channel then checks OK against the sandbox and its credentials are stored
    encrypted. Mirakl's fields are Mirakl's; OpenAPI shows both bodies."""
    container = build(Settings(database_url=db_url, secret_keys=generate_key()), configure_logs=False)
    try:
        tenant, _ = make_tenant(container.engine, "acme", NOW)
        with container.engine.begin() as conn:
            token = issue_token(conn, tenant.id, now=NOW, label="amazon-api")
        auth = {"Authorization": f"Bearer {token}"}
        app = world.state.application
        credentials = {
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "refresh_token": world.eu.refresh_token,
        }
        settings = {
            "seller_id": world.eu.seller_id,
            "marketplace_id": DE,
            "region": "eu",
            "endpoint": world.url,
            "token_endpoint": world.url,
            "feed_poll_seconds": 30,
        }
        body = {"connector": "amazon", "name": "amz", "settings": settings, "credentials": credentials}
        with TestClient(create_app(container)) as client:
            wrong_region = client.post(
                "/api/v1/channels",
                json={**body, "settings": {**settings, "marketplace_id": "ATVPDKIKX0DER"}},
                headers=auth,
            )
            assert wrong_region.status_code == 422 and "served by the 'na' region" in wrong_region.text
            missing = client.post(
                "/api/v1/channels",
                json={**body, "credentials": {"client_id": app.client_id}},
                headers=auth,
            )
            assert missing.status_code == 422 and "client_secret" in missing.text
            unknown = client.post(
                "/api/v1/channels",
                json={**body, "credentials": {**credentials, "api_key": "k"}},
                headers=auth,
            )
            assert unknown.status_code == 422 and "not api_key" in unknown.text
            mirakl_fields = client.post(
                "/api/v1/channels", json={**body, "hostname": "x.example", "api_key": "k"}, headers=auth
            )
            assert mirakl_fields.status_code == 422
            mirakl_shape = client.post(
                "/api/v1/channels",
                json={"connector": "mirakl", "name": "m", "settings": settings, "credentials": credentials},
                headers=auth,
            )
            assert mirakl_shape.status_code == 422  # Mirakl's request shape is its own

            created = client.post("/api/v1/channels", json=body, headers=auth)
            assert created.status_code == 201, created.text
            assert created.json()["connector"] == "amazon"
            again = client.post("/api/v1/channels", json=body, headers=auth)
            assert again.status_code == 409
            check = client.post("/api/v1/channels/amz/check", headers=auth).json()
            assert check["ok"] is True, check

            schema = client.get("/openapi.json").json()["components"]["schemas"]
            assert {"MiraklChannelIn", "ConnectorChannelIn"} <= set(schema)
            assert set(schema["ConnectorChannelIn"]["required"]) == {
                "connector",
                "name",
                "settings",
                "credentials",
            }
        with container.engine.connect() as conn:
            channel = get_channel(conn, tenant.id, "amz")
            stored = channel_credentials(conn, channel, container.keyring)
        assert channel.connector == "amazon"
        assert (
            channel.settings["feed_poll_seconds"] == 30
            and channel.settings["seller_id"] == world.eu.seller_id
        )
        assert stored == credentials
        assert app.client_secret not in str(channel.settings)
    finally:
        container.close()
