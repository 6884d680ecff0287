"""Channel set-up against the sandbox: `channel check` tells problems apart; Testing uses staging."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import FakeClock, make_tenant
from mirakl_world import API_KEY, SHOP_ID, sandbox_catalog
from tradelane.bootstrap import register_handlers
from tradelane.cli import build_app
from tradelane.connectors.mirakl.connector import add_channel, check_channel
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import ValidationError
from tradelane.persistence.tables import products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import set_lifecycle
from tradelane.services.outbox import bind_new_products
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

STAGING_SHOP, STAGING_KEY = 3000, "staging-key"


@pytest.fixture
def sandbox(now):
    state = SandboxState(
        3,
        shops=[
            Shop(SHOP_ID, "Live", API_KEY),
            Shop(STAGING_SHOP, "Staging", STAGING_KEY),
            Shop(4000, "Other", "other-key"),
        ],
        products=sandbox_catalog(3),
        rate_limits={},
        start=now,
    )
    with SandboxServer(state) as server:
        yield state, server.url


@pytest.fixture
def plain_web_server(tmp_path):
    """Some web server that is not a Mirakl API (404 HTML for /api/account)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("host", "key", "shop", "problem"),
    [
        (None, API_KEY, str(SHOP_ID), None),
        (None, "wrong-key", str(SHOP_ID), "wrong_key"),
        (None, API_KEY, "4000", "wrong_shop"),
        ("closed", API_KEY, str(SHOP_ID), "unreachable"),
        ("not-mirakl", API_KEY, str(SHOP_ID), "wrong_host"),
    ],
)
def test_channel_check_tells_problems_apart(engine, now, sandbox, plain_web_server, host, key, shop, problem):
    _state, url = sandbox
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    hostname = {None: url, "closed": f"http://127.0.0.1:{_closed_port()}", "not-mirakl": plain_web_server}[
        host
    ]
    with engine.begin() as conn:
        channel = add_channel(
            conn,
            tenant_id=tenant.id,
            name="mk",
            hostname=hostname,
            shop_id=shop,
            api_key=key,
            keyring=keyring,
            now=now,
        )
        result = check_channel(conn, channel, keyring)
    assert result.ok is (problem is None), result.message
    if problem:
        assert result.problem.value == problem and result.message


def test_bad_settings_are_refused_before_anything_is_stored(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn, pytest.raises(ValidationError):
        add_channel(
            conn,
            tenant_id=tenant.id,
            name="mk",
            hostname="not a host!",
            shop_id="1",
            api_key="k",
            keyring=KeyRing([generate_key()]),
            now=now,
        )


def test_testing_lifecycle_uses_the_staging_account(engine, now, sandbox):
    state, url = sandbox
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    clock = FakeClock(now)
    with engine.begin() as conn:
        channel = add_channel(
            conn,
            tenant_id=tenant.id,
            name="mk",
            hostname=url,
            shop_id=str(SHOP_ID),
            api_key=API_KEY,
            keyring=keyring,
            now=now,
            staging_api_key=STAGING_KEY,
            options={
                "staging_hostname": url,
                "staging_shop_id": str(STAGING_SHOP),
                "rate_limits": {"OF01": [100, 1], "OF24": [100, 1]},
            },
        )
        pid = conn.execute(
            sa.insert(products)
            .values(
                tenant_id=tenant.id,
                sku="SKU-0",
                gtin=sandbox_catalog(1)[0].references[0][1],
                price=Decimal(5),
                currency="EUR",
                quantity=3,
                labels=[],
                attributes={},
                content_hash="x",
                created_at=now,
                updated_at=now,
            )
            .returning(products.c.id)
        ).scalar_one()
        bind_new_products(conn, tenant.id, [pid], now=now)
        set_lifecycle(conn, channel, LifecycleState.TESTING)
    registry = JobRegistry()
    register_handlers(registry)
    worker = Worker(engine, registry, clock, WorkerConfig(schedule=False), services={"keyring": keyring})

    def settle() -> None:  # run, then let the marketplace finish the import and run the checks
        worker.run(burst=True)
        clock.advance(61)
        state.advance(61)
        worker.run(burst=True)

    settle()
    assert "SKU-0" in state.shop_offers(STAGING_SHOP) and state.shop_offers(SHOP_ID) == {}
    with engine.begin() as conn:
        set_lifecycle(conn, channel, LifecycleState.LIVE)
        enqueue(
            conn, JobSpec(tenant.id, "offers.full", {}, channel_id=channel.id, flow="offers"), now=clock()
        )
    settle()
    assert "SKU-0" in state.shop_offers(SHOP_ID)


def test_channel_add_and_check_through_the_cli(db_url, engine, now, sandbox, monkeypatch):
    _state, url = sandbox
    make_tenant(engine, "acme", now)
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    runner = CliRunner()
    app = build_app()
    args = ["channel", "add", "mirakl", "--tenant", "acme", "--name", "shop", "--hostname", url, "--shop-id"]
    assert runner.invoke(app, [*args, str(SHOP_ID), "--api-key", API_KEY]).exit_code == 0
    assert runner.invoke(app, [*args[:6], "bad", *args[7:], str(SHOP_ID), "--api-key", "nope"]).exit_code == 0
    ok = runner.invoke(app, ["channel", "check", "shop"])
    assert ok.exit_code == 0 and "OK" in ok.output
    bad = runner.invoke(app, ["channel", "check", "bad"])
    assert bad.exit_code == 2 and "wrong_key" in bad.output
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT credentials FROM channels WHERE name = 'shop'")).scalar_one()
    assert API_KEY.encode() not in bytes(stored)
