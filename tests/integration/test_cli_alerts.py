"""`tradelane orders alerts`: a secondary feed's alert is visible from the command line."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner

from helpers import make_tenant
from tradelane.cli import build_app
from tradelane.domain.feeds import FeedFailureKind, SecondaryFeed
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import feeds
from tradelane.services.channels import create_channel


def test_feed_alert_is_listed_until_the_feed_recovers(db_url, engine, now, monkeypatch, tmp_path):
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        channel = create_channel(
            conn,
            tenant_id=tenant.id,
            name="mk",
            connector="mirakl",
            settings={},
            credentials=None,
            keyring=KeyRing([generate_key()]),
            now=now,
        )
        feeds.record_failure(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            channel_name="mk",
            feed=SecondaryFeed.RETURNS,
            operation="RT11",
            kind=FeedFailureKind.UNAVAILABLE,
            reason="not found (RT11, HTTP 404)",
            raw="GET https://mk/api/returns -> HTTP 404\n{}",
            now=now,
        )
    app, runner = build_app(), CliRunner()
    result = runner.invoke(app, ["orders", "alerts", "--tenant", "acme", "--json"])
    assert result.exit_code == 0, result.output
    [alert] = json.loads(result.stdout)
    assert (
        alert["kind"] == "feed_unavailable" and "RT11" in alert["message"] and "HTTP 404" in alert["message"]
    )
    table = runner.invoke(app, ["orders", "alerts", "--tenant", "acme"])
    assert table.exit_code == 0 and "1 alert(s)" in table.stdout

    with engine.begin() as conn:
        assert feeds.record_success(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            feed=SecondaryFeed.RETURNS,
            now=now + timedelta(hours=7),
        )
    assert json.loads(runner.invoke(app, ["orders", "alerts", "--tenant", "acme", "--json"]).stdout) == []
    resolved = json.loads(
        runner.invoke(app, ["orders", "alerts", "--tenant", "acme", "--all", "--json"]).stdout
    )
    assert [a["resolved_at"] is not None for a in resolved] == [True]
