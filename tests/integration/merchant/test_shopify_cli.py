"""``tradelane merchant add shopify``: settings stored in clear, credentials encrypted, webhook URL shown."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tradelane.cli import build_app
from tradelane.persistence.tables import merchant_systems
from tradelane.security.crypto import KeyRing, generate_key

TOKEN = "shpat_cli_token_for_tests"
SECRET = "cli-webhook-secret-for-tests"


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    key = generate_key()
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result

    run.key = key  # type: ignore[attr-defined]
    return run


def test_merchant_add_shopify_stores_an_encrypted_system(cli, engine):
    cli("tenant", "create", "acme")
    out = json.loads(
        cli(
            "merchant", "add", "shopify", "--tenant", "acme", "--name", "my-shop",
            "--shop-domain", "My-Shop.myshopify.com", "--access-token", TOKEN,
            "--webhook-secret", SECRET, "--currency", "eur", "--json",
        ).stdout
    )  # fmt: skip
    assert out["kind"] == "shopify" and out["name"] == "my-shop"
    assert out["settings"]["shop_domain"] == "my-shop.myshopify.com"
    assert out["settings"]["api_url"] == "https://my-shop.myshopify.com"
    assert out["settings"]["currency"] == "EUR"
    assert out["webhook_path"] == "/api/v1/shopify/acme/my-shop/webhooks"
    assert TOKEN not in json.dumps(out) and SECRET not in json.dumps(out)
    with engine.connect() as conn:
        row = conn.execute(sa.select(merchant_systems)).one()
    assert TOKEN.encode() not in row.credentials and SECRET.encode() not in row.credentials
    assert KeyRing([cli.key]).decrypt(row.credentials) == {"access_token": TOKEN, "webhook_secret": SECRET}
    listed = json.loads(cli("merchant", "list", "--tenant", "acme", "--json").stdout)
    assert [(s["name"], s["kind"]) for s in listed] == [("my-shop", "shopify")]


def test_merchant_add_shopify_refuses_bad_input(cli, engine):
    cli("tenant", "create", "acme")
    base = ["merchant", "add", "shopify", "--tenant", "acme", "--access-token", TOKEN]
    bad_domain = cli(*base, "--name", "a", "--shop-domain", "https://x/y", "--webhook-secret", SECRET, code=1)
    assert "shop domain must be a host name" in bad_domain.output
    short = cli(*base, "--name", "b", "--shop-domain", "x.myshopify.com", "--webhook-secret", "short", code=1)
    assert "at least 16 characters" in short.output
    cli(*base, "--name", "c", "--shop-domain", "x.myshopify.com", "--webhook-secret", SECRET)
    duplicate = cli(
        *base, "--name", "c", "--shop-domain", "x.myshopify.com", "--webhook-secret", SECRET, code=1
    )
    assert "already exists" in duplicate.output
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(merchant_systems)).scalar_one() == 1
