"""The engine's command line, end to end through Typer (same process, real database)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from tradelane.cli import build_app
from tradelane.persistence.tables import channel_flows, channels, jobs
from tradelane.security.crypto import KeyRing, generate_key


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    key = generate_key()
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result.stdout

    run.key = key  # type: ignore[attr-defined]
    return run


def test_tenant_create_prints_token_once_and_stores_hash(cli, engine):
    out = json.loads(cli("tenant", "create", "acme", "--json"))
    assert out["token"].startswith("tl_")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM api_tokens")).scalar_one()
    assert out["token"] not in stored and len(stored) == 64
    cli("tenant", "create", "acme", code=1)


def test_enqueue_burst_worker_and_list(cli, engine, now):
    make_tenant(engine, "acme", now)
    job_id = int(cli("jobs", "enqueue", "system.noop", "--tenant", "acme", "--payload", '{"x": 1}').strip())
    again = int(cli("jobs", "enqueue", "system.noop", "--tenant", "acme", "--idempotency-key", "k1").strip())
    same = int(cli("jobs", "enqueue", "system.noop", "--tenant", "acme", "--idempotency-key", "k1").strip())
    assert again == same != job_id
    cli("worker", "--burst", "--no-schedule")
    listed = json.loads(cli("jobs", "list", "--tenant", "acme", "--json"))
    assert {j["id"]: j["state"] for j in listed} == {job_id: "succeeded", again: "succeeded"}
    detail = json.loads(cli("jobs", "show", str(job_id), "--tenant", "acme"))
    assert detail["payload"] == {"x": 1} and detail["result"] == {"echo": {"x": 1}}
    cli("jobs", "enqueue", "no.such.kind", "--tenant", "acme", code=1)


def test_dead_letters_list_and_replay(cli, engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        for i in range(2):
            conn.execute(
                sa.insert(jobs).values(
                    tenant_id=tenant.id,
                    kind="system.noop",
                    payload={"i": i},
                    state="dead",
                    attempts=8,
                    max_attempts=8,
                    run_at=now,
                    created_at=now,
                    updated_at=now,
                    last_error="boom",
                )
            )
    dead = json.loads(cli("jobs", "dead", "--tenant", "acme", "--json"))
    assert len(dead) == 2 and all(d["last_error"] == "boom" for d in dead)
    cli("jobs", "replay", str(dead[0]["id"]), "--tenant", "acme")
    assert len(json.loads(cli("jobs", "dead", "--tenant", "acme", "--json"))) == 1
    cli("jobs", "replay", "--all", "--tenant", "acme")
    assert json.loads(cli("jobs", "dead", "--tenant", "acme", "--json")) == []
    cli("jobs", "replay", "999", "--tenant", "acme", code=1)
    cli("worker", "--burst", "--no-schedule")
    states = json.loads(cli("jobs", "list", "--tenant", "acme", "--json"))
    assert {j["state"] for j in states} == {"succeeded"}


def test_channel_pause_resume_by_flow(cli, engine, now):
    acme, _ = make_tenant(engine, "acme", now)
    other, _ = make_tenant(engine, "other", now)
    make_channel(engine, acme.id, "shop", now)
    make_channel(engine, acme.id, "solo", now)
    make_channel(engine, other.id, "shop", now)
    cli("channel", "pause", "solo", "--flow", "orders")
    cli("channel", "pause", "shop", "--flow", "orders", code=1)  # ambiguous without --tenant
    cli("channel", "pause", "shop", "--tenant", "acme")
    cli("channel", "pause", "solo", "--flow", "bogus", code=1)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                channels.c.name, channels.c.tenant_id, channel_flows.c.flow, channel_flows.c.paused
            ).join(channels, channels.c.id == channel_flows.c.channel_id)
        ).all()
    paused = {(r.name, r.tenant_id, r.flow) for r in rows if r.paused}
    assert ("solo", acme.id, "orders") in paused and ("solo", acme.id, "offers") not in paused
    assert {f for (n, t, f) in paused if n == "shop" and t == acme.id} == {
        "offers",
        "orders",
        "fulfillments",
        "reconciler",
    }
    assert not any(n == "shop" and t == other.id for (n, t, _f) in paused)
    cli("channel", "resume", "shop", "--tenant", "acme", "--flow", "orders")
    listed = json.loads(cli("channel", "list", "--tenant", "acme", "--json"))
    shop = next(c for c in listed if c["name"] == "shop")
    assert shop["flows"]["orders"]["paused"] is False and shop["flows"]["offers"]["paused"] is True


def test_keys_rotate_reencrypts_credentials(cli, engine, now, monkeypatch):
    tenant, _ = make_tenant(engine, "acme", now)
    from tradelane.services.channels import create_channel

    old = KeyRing([cli.key])
    with engine.begin() as conn:
        create_channel(
            conn,
            tenant_id=tenant.id,
            name="shop",
            connector="test",
            settings={},
            credentials={"api_key": "s3cret"},
            keyring=old,
            now=now,
        )
    new_key = generate_key()
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", f"{new_key},{cli.key}")
    cli("keys", "rotate")
    with engine.connect() as conn:
        token = conn.execute(sa.select(channels.c.credentials)).scalar_one()
    assert b"s3cret" not in token
    assert KeyRing([new_key]).decrypt(token) == {"api_key": "s3cret"}
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    cli("keys", "rotate", code=1)  # a key that cannot decrypt changes nothing
    with engine.connect() as conn:
        assert conn.execute(sa.select(channels.c.credentials)).scalar_one() == token
