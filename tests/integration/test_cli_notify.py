"""`tradelane notify set|show|test|list` against a local SMTP server and webhook receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from notifications_support import SmtpServer, WebhookServer, free_port
from tradelane.cli import build_app
from tradelane.persistence.db import read_only
from tradelane.security.crypto import generate_key
from tradelane.services import audit

SECRET = "whsec-cli-secret"


@pytest.fixture
def servers(
    monkeypatch: pytest.MonkeyPatch, db_url: str, tmp_path: object
) -> Iterator[tuple[SmtpServer, WebhookServer]]:
    smtp = SmtpServer(free_port()).start()
    hook = WebhookServer().start()
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("TRADELANE_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TRADELANE_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("TRADELANE_SMTP_FROM", "hub@tradelane.test")
    monkeypatch.setenv("TRADELANE_SMTP_PASSWORD", "never-shown-pw")
    monkeypatch.chdir(tmp_path)
    yield smtp, hook
    smtp.stop()
    hook.stop()


def test_set_show_test_and_list(
    engine: Engine, now: datetime, servers: tuple[SmtpServer, WebhookServer]
) -> None:
    smtp, hook = servers
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    app, runner = build_app(), CliRunner()

    result = runner.invoke(
        app,
        [
            "notify",
            "set",
            "--tenant",
            "acme",
            "--email",
            "ops@acme.test",
            "--webhook",
            hook.url,
            "--webhook-secret-stdin",
        ],
        input=SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "ops@acme.test" in result.stdout and "signed" in result.stdout
    result = runner.invoke(
        app, ["notify", "set", "--tenant", "acme", "--channel", "shop", "--email", "shop@acme.test"]
    )
    assert result.exit_code == 0, result.output
    with read_only(engine) as conn:
        [event] = audit.history(conn, channel.id, prefix="notifications.")
    assert event.details["emails"] == ["shop@acme.test"] and event.actor.startswith("cli:")

    shown = runner.invoke(app, ["notify", "show", "--tenant", "acme", "--json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert [d["emails"] for d in document["destinations"]] == [["ops@acme.test"], ["shop@acme.test"]]
    assert document["destinations"][0]["webhook_secret_set"] is True
    assert document["smtp"].startswith(f"127.0.0.1:{smtp.port}")

    sent = runner.invoke(app, ["notify", "test", "--tenant", "acme", "--channel", "shop"])
    assert sent.exit_code == 0, sent.output
    assert "email ops@acme.test: sent" in sent.stdout and "email shop@acme.test: sent" in sent.stdout
    assert f"webhook {hook.url}: sent" in sent.stdout
    assert sorted(m.recipients[0] for m in smtp.received) == ["ops@acme.test", "shop@acme.test"]
    assert len(hook.hits) == 1

    hook.answers = [410]
    failed = runner.invoke(app, ["notify", "test", "--tenant", "acme"])
    assert failed.exit_code == 1 and "FAILED: webhook answered HTTP 410" in failed.stdout

    listed = runner.invoke(app, ["notify", "list", "--tenant", "acme", "--json"])
    assert listed.exit_code == 0, listed.output
    notes = json.loads(listed.stdout)
    assert [n["status"] for n in notes] == ["failed", "sent"]
    everything = "".join(r.output for r in (result, shown, sent, failed, listed))
    assert SECRET not in everything and "never-shown-pw" not in everything


def test_a_webhook_url_that_is_not_http_is_refused(
    engine: Engine, now: datetime, servers: tuple[SmtpServer, WebhookServer]
) -> None:
    make_tenant(engine, "acme", now)
    result = CliRunner().invoke(
        build_app(),
        ["notify", "set", "--tenant", "acme", "--webhook", "ftp://example.test/x", "--webhook-secret-stdin"],
        input="s3\n",
    )
    assert result.exit_code == 1 and "webhook URL must be http(s)://host/" in result.output
