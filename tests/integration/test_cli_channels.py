"""`tradelane channel ...` hardening through Typer: manual runs out of a backoff (never ahead of a
Retry-After), secrets off the command line, `channel update` after rejected credentials, `remove`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from mirakl_world import API_KEY, SHOP_ID, catalog, sandbox_catalog
from tradelane.cli import build_app
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.domain.channels import Flow
from tradelane.persistence.tables import (
    alerts,
    channel_flows,
    channels,
    jobs,
    merchant_systems,
    offer_bindings,
    products,
)
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import channels as channel_service
from tradelane.services.outbox import bind_new_products
from tradelane.sync import jobs as jobstore


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    key = generate_key()
    for var in (
        "TRADELANE_MIRAKL_API_KEY",
        "TRADELANE_MIRAKL_STAGING_API_KEY",
        "TRADELANE_MERCHANT_SECRET",
        "TRADELANE_SHOPIFY_ACCESS_TOKEN",
        "TRADELANE_SHOPIFY_WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return " ".join(result.output.split())  # Rich wraps long lines at the terminal width

    run.keyring = KeyRing([key])  # type: ignore[attr-defined]
    return run


@pytest.fixture
def sandbox():
    state = SandboxState(
        7,
        shops=[Shop(SHOP_ID, "CLI Shop", API_KEY)],
        products=sandbox_catalog(3),
        rate_limits={},
        start=datetime.now(UTC),
    )
    with SandboxServer(state) as server:
        yield server


def _job(engine, job_id: int) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()


def _pending_in(engine, tenant_id: int, channel_id: int, *, delay: float, throttled: bool) -> int:
    """A pending offers.delta of the channel that failed and waits ``delay`` seconds (backoff, or a
    rate-limit hold when ``throttled``)."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        job_id = jobstore.enqueue(
            conn,
            jobstore.JobSpec(
                tenant_id,
                "offers.delta",
                {},
                channel_id=channel_id,
                flow="offers",
                dedupe_key=f"offers.delta:{channel_id}",
            ),
            now=now,
        ).job_id
        [claimed] = jobstore.claim(conn, worker="w", now=now, lease_seconds=60)
        reason = "HTTP 429 Too Many Requests (Retry-After 300)" if throttled else "HTTP 503"
        jobstore.retry_later(conn, claimed, now=now, delay=delay, error=reason, count_attempt=not throttled)
    return job_id


def test_manual_run_brings_a_backed_off_job_forward(cli, engine):
    tenant, _ = make_tenant(engine, "acme", datetime.now(UTC))
    channel = make_channel(engine, tenant.id, "shop", datetime.now(UTC), connector="mirakl")
    job_id = _pending_in(engine, tenant.id, channel.id, delay=100, throttled=False)
    out = cli("channel", "sync", "shop", "--flow", "offers")
    assert f"offers.delta job {job_id} already pending; due now" in out
    assert _job(engine, job_id).run_at <= datetime.now(UTC)


def test_manual_run_keeps_a_retry_after_and_says_until_when(cli, engine):
    tenant, _ = make_tenant(engine, "acme", datetime.now(UTC))
    channel = make_channel(engine, tenant.id, "shop", datetime.now(UTC), connector="mirakl")
    job_id = _pending_in(engine, tenant.id, channel.id, delay=300, throttled=True)
    due = _job(engine, job_id).run_at
    out = cli("channel", "sync", "shop", "--flow", "offers")
    assert f"held by a rate limit until {due:%H:%M:%S} UTC" in out and "Retry-After 300" in out
    assert _job(engine, job_id).run_at == due


def test_manual_run_says_the_flow_is_paused(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.begin() as conn:
        channel_service.credentials_rejected(conn, channel, host="h.example", reason="HTTP 401", now=now)
        run = channel_service.run_flow_now(conn, channel, Flow.ORDERS, full=False, now=now)
    assert run.created and run.paused and "paused (credentials rejected)" in run.message()
    later = now + timedelta(seconds=1)
    with engine.begin() as conn:
        again = channel_service.run_flow_now(conn, channel, Flow.ORDERS, full=False, now=later)
    assert (again.job_id, again.created, again.run_at) == (run.job_id, False, now)


def test_secrets_from_stdin_prompt_or_environment_never_required_on_the_command_line(
    cli, engine, sandbox, monkeypatch
):
    make_tenant(engine, "acme", datetime.now(UTC))
    help_text = cli("channel", "add", "mirakl", "--help")
    assert "TRADELANE_MIRAKL_API_KEY" in help_text and "--api-key-stdin" in help_text
    common = ("--tenant", "acme", "--hostname", sandbox.url, "--shop-id", str(SHOP_ID))
    cli("channel", "add", "mirakl", *common, "--name", "piped", "--api-key-stdin", input=f"{API_KEY}\n")
    cli("channel", "add", "mirakl", *common, "--name", "dash", "--api-key", "-", input=f"{API_KEY}\n")
    cli("channel", "add", "mirakl", *common, "--name", "prompted", input=f"{API_KEY}\n")
    monkeypatch.setenv("TRADELANE_MIRAKL_API_KEY", API_KEY)
    cli("channel", "add", "mirakl", *common, "--name", "from-env")
    monkeypatch.delenv("TRADELANE_MIRAKL_API_KEY")
    out = cli("channel", "add", "mirakl", *common, "--name", "empty", "--api-key-stdin", input="\n", code=1)
    assert "--api-key: no Mirakl API key on standard input" in out
    with engine.connect() as conn:
        stored = {r.name: r.credentials for r in conn.execute(sa.select(channels))}
    assert sorted(stored) == ["dash", "from-env", "piped", "prompted"]
    assert {cli.keyring.decrypt(token)["api_key"] for token in stored.values()} == {API_KEY}
    cli("channel", "check", "prompted")

    assert "TRADELANE_MERCHANT_SECRET" in cli("merchant", "add", "http", "--help")
    cli(
        "merchant", "add", "http", "--tenant", "acme", "--name", "oms", "--url", "https://oms.example/o",
        "--secret-stdin", input="s3cret-from-stdin\n",
    )  # fmt: skip
    shopify_help = cli("merchant", "add", "shopify", "--help")
    assert (
        "TRADELANE_SHOPIFY_ACCESS_TOKEN" in shopify_help
        and "TRADELANE_SHOPIFY_WEBHOOK_SECRET" in shopify_help
    )
    cli(
        "merchant", "add", "shopify", "--tenant", "acme", "--name", "shop", "--shop-domain",
        "acme.myshopify.com", "--access-token-stdin", "--webhook-secret-stdin",
        input="shpat_token\nwhsec-0123456789abcdef\n",
    )  # fmt: skip
    with engine.connect() as conn:
        creds = {
            r.name: cli.keyring.decrypt(r.credentials) for r in conn.execute(sa.select(merchant_systems))
        }
    assert "s3cret-from-stdin" in str(creds["oms"])
    assert "shpat_token" in str(creds["shop"]) and "whsec-0123456789abcdef" in str(creds["shop"])


def test_update_fixes_rejected_credentials_and_remove_asks_first(cli, engine, sandbox):
    make_tenant(engine, "acme", datetime.now(UTC))
    cli(
        "channel", "add", "mirakl", "--tenant", "acme", "--name", "shop", "--hostname", sandbox.url,
        "--shop-id", str(SHOP_ID), "--api-key-stdin", input="wrong-key\n",
    )  # fmt: skip
    with engine.connect() as conn:
        row = conn.execute(sa.select(channels)).one()
    channel = channel_service.Channel(row.id, row.tenant_id, row.name, row.connector, row.lifecycle_state, {})
    with engine.begin() as conn:  # what the worker does when the marketplace answers 401
        channel_service.credentials_rejected(
            conn, channel, host=sandbox.url, reason="API key rejected (HTTP 401)", now=datetime.now(UTC)
        )
    listed = cli("channel", "list", "--tenant", "acme", "--json")
    assert "credentials rejected by" in listed and '"pause_reason": "auth"' in listed

    out = cli("channel", "update", "shop", "--api-key-stdin", input="still-wrong\n", code=2)
    assert "saved, but the check fails" in out and "wrong_key" in out
    with engine.connect() as conn:
        assert conn.execute(sa.select(alerts.c.resolved_at)).scalar_one() is None
    out = cli("channel", "update", "shop", input=f"{API_KEY}\n")  # no option: the key is asked for
    assert "saved and checked" in out and "credentials alert resolved" in out
    with engine.connect() as conn:
        assert {r.paused for r in conn.execute(sa.select(channel_flows))} == {False}
        assert conn.execute(sa.select(alerts.c.resolved_at)).scalar_one() is not None

    out = cli("channel", "remove", "shop", input="n\n", code=1)
    assert "kept, read-only, for audit" in out and "NOT deleted" in out and "not confirmed" in out
    out = cli("channel", "remove", "shop", "--yes")
    assert "shop: removed" in out
    assert "shop" not in cli("channel", "list", "--tenant", "acme")
    cli("channel", "sync", "shop", "--flow", "orders", code=1)


def test_full_sync_with_wait_runs_here_with_a_progress_bar(cli, engine, sandbox):
    tenant, _ = make_tenant(engine, "acme", datetime.now(UTC))
    cli(
        "channel", "add", "mirakl", "--tenant", "acme", "--name", "shop", "--hostname", sandbox.url,
        "--shop-id", str(SHOP_ID), "--api-key-stdin", input=f"{API_KEY}\n",
    )  # fmt: skip
    cli("channel", "activate", "shop")  # a channel in setup sends nothing
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = [
            conn.execute(
                sa.insert(products)
                .values(
                    tenant_id=tenant.id, sku=p.sku, title=p.title, gtin=p.gtin, price=p.price,
                    currency=p.currency, quantity=p.quantity, labels=[], attributes={},
                    content_hash=p.content_hash(), created_at=now, updated_at=now,
                )
                .returning(products.c.id)
            ).scalar_one()
            for p in catalog(3)
        ]  # fmt: skip
        bind_new_products(conn, tenant.id, ids, now=now)
    out = cli("channel", "sync", "shop", "--flow", "offers", "--full", "--wait")
    assert "offers.full job" in out and "succeeded" in out and "3/3 offers" in out
    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(offer_bindings.c.status)).scalars())
    assert statuses == {"submitted"}
    assert len(sandbox.state.calls("OF01")) == 1


def test_orders_sync_with_wait_shows_the_jobs_state_not_an_offer_bar(cli, engine, sandbox):
    make_tenant(engine, "acme", datetime.now(UTC))
    cli(
        "channel", "add", "mirakl", "--tenant", "acme", "--name", "shop", "--hostname", sandbox.url,
        "--shop-id", str(SHOP_ID), "--api-key-stdin", input=f"{API_KEY}\n",
    )  # fmt: skip
    cli("channel", "activate", "shop")
    out = cli("channel", "sync", "shop", "--flow", "orders", "--wait")
    # a spinner with the job's state: no "0/None offers" bar for a flow that has no offers to count
    assert "offers" not in out and "None" not in out, out
    assert re.search(r"orders\.poll job \d+: succeeded \(attempt 1\)", out), out
    assert "succeeded" in out.splitlines()[-1]
    assert len(sandbox.state.calls("OR11")) >= 1
