"""The cutover over HTTP, against a Mirakl sandbox: the dashboard page (link from the channels page,
Plan read-only, Run refused past step 1 without the checkbox, then run, the steps fragment refreshing
itself while the cutover moves, Revert with CSRF) and the API (plan, run, status, log as CSV, revert),
each action audited with its interface's actor; the engine's ``cutover.advance`` job is queued while a
step waits."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from webtest_support import csrf_of, login

from mirakl_world import API_KEY, GENEROUS, SHOP_ID, sandbox_catalog
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.persistence.tables import channels, jobs
from tradelane.services import cutover
from tradelane.services.tenants import create_tenant
from tradelane.sync.worker import Worker, WorkerConfig

NAME = "shop-cut"
PAGE = f"/dashboard/channels/{NAME}/cutover"
LIMITS = GENEROUS | {op: [1000, 1] for op in ("OF21", "OF02", "A02")}


@dataclass
class Account:
    state: SandboxState
    token: str
    channel_id: int


@pytest.fixture
def account(container, now: datetime) -> Iterator[Account]:
    container.clock = lambda: datetime.now(UTC)  # rate budgets refill with time: a moving clock
    state = SandboxState(
        7, shops=[Shop(SHOP_ID, "Web Shop", API_KEY)], products=sandbox_catalog(3), rate_limits={}, start=now
    )
    with SandboxServer(state) as server:
        with container.engine.begin() as conn:
            tenant, token = create_tenant(conn, "initech", now=now)
            channel = add_channel(
                conn,
                tenant_id=tenant.id,
                name=NAME,
                hostname=server.url,
                shop_id=str(SHOP_ID),
                api_key=API_KEY,
                keyring=container.keyring,
                now=now,
                options={"rate_limits": LIMITS},
            )
            conn.execute(
                sa.update(channels).where(channels.c.id == channel.id).values(lifecycle_state="live")
            )
        state.add_offer(SHOP_ID, "THEIRS-1", "OP-0", Decimal("12.50"), 4)
        state.add_offer(SHOP_ID, "THEIRS-2", "OP-1", Decimal("13.50"), 6)
        yield Account(state, token, channel.id)


def _queued_looks(container) -> int:
    with container.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.kind == "cutover.advance", jobs.c.state == "queued")
            ).scalar_one()
        )


def test_dashboard_plan_run_and_revert(client, container, account: Account) -> None:
    login(client, account.token)
    assert (
        f'href="/dashboard/channels/{NAME}/cutover" data-cutover-link'
        in client.get("/dashboard/channels").text
    )
    page = client.get(PAGE)
    assert page.status_code == 200 and 'id="cutover-steps"' in page.text
    assert 'data-cutover-status="none"' in client.get(f"{PAGE}/steps").text

    planned = html.unescape(client.get(PAGE, params={"plan": "1"}).text)
    assert "2 offers listed now · 0 outstanding orders" in planned
    assert account.state.calls("A02") == []  # the plan writes nothing

    refused = client.post(f"{PAGE}/run", data={"csrf": csrf_of(client, PAGE)}, follow_redirects=True)
    assert "cutover waiting at step 1" in html.unescape(refused.text)
    steps = client.get(PAGE).text
    assert 'data-step="1" data-state="waiting"' in steps
    assert 'http-equiv="refresh"' not in steps  # waits for a person: no reloading

    ran = client.post(
        f"{PAGE}/run",
        data={"csrf": csrf_of(client, PAGE), "previous_integrator_disabled": "1"},
        follow_redirects=True,
    )
    assert ran.status_code == 200
    steps = client.get(PAGE).text
    assert 'data-step="1" data-state="done"' in steps and 'data-step="2" data-state="done"' in steps, (
        html.unescape(ran.text).split('role="status">', 1)[-1][:400]
    )
    assert 'http-equiv="refresh"' in steps  # the imports run: the page reloads itself
    assert 'http-equiv="refresh"' not in client.get(PAGE, params={"live": "0"}).text
    assert 'data-step="3"' in client.get(f"{PAGE}/steps").text  # the steps alone, as a fragment
    assert _queued_looks(container) == 1
    assert account.state.shop(SHOP_ID).closed_from is not None

    assert client.post(f"{PAGE}/revert", data={"reason": "x"}, follow_redirects=False).status_code == 403
    for _ in range(5):
        client.post(
            f"{PAGE}/revert", data={"csrf": csrf_of(client, PAGE), "reason": "test"}, follow_redirects=True
        )
        with container.engine.connect() as conn:
            found = cutover.current(conn, account.channel_id)
        assert found is not None
        if found.status == "reverted":
            break
    assert found.status == "reverted"
    offers = account.state.shop_offers(SHOP_ID)
    assert (offers["THEIRS-1"].price, offers["THEIRS-1"].quantity) == (Decimal("12.50"), 4)
    assert account.state.shop(SHOP_ID).closed_from is None
    assert "data-revert-message" in client.get(f"{PAGE}/steps").text
    with container.engine.connect() as conn:
        actors = {e.actor for e in cutover.log(conn, account.channel_id)}
    assert actors == {"dashboard:initech"}


def test_api_plan_run_status_log_and_revert(client, container, account: Account) -> None:
    headers = {"Authorization": f"Bearer {account.token}"}
    base = f"/api/v1/channels/{NAME}/cutover"
    assert client.get(base, headers=headers).status_code == 404
    planned = client.post(f"{base}/plan", headers=headers)
    assert planned.status_code == 200 and planned.json()["offers_listed"] == 2

    waiting = client.post(f"{base}/run", headers=headers, json={})
    assert waiting.status_code == 200 and (waiting.json()["status"], waiting.json()["step"]) == ("waiting", 1)
    assert _queued_looks(container) == 0  # waits for a person
    ran = client.post(f"{base}/run", headers=headers, json={"previous_integrator_disabled": True}).json()
    assert ran["step"] >= 3 and ran["previous_integrator_confirmed_by"] == "api:initech"
    status = client.get(base, headers=headers).json()
    assert [s["state"] for s in status["steps"][:2]] == ["done", "done"]
    log = client.get(f"{base}/log", headers=headers, params={"format": "csv"})
    assert log.headers["content-type"].startswith("text/csv") and "cutover.holiday" in log.text
    assert client.post(f"{base}/run", headers=headers, json={"date": "2026-01-01T00:00:00"}).status_code in (
        400,
        422,
    )

    # the engine's look at the waiting cutover (due now) moves it on by itself, as actor "system"
    with container.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.kind == "cutover.advance").values(run_at=container.now()))
    worker = Worker(
        container.engine,
        container.registry,
        container.clock,
        WorkerConfig(schedule=False),
        services=container.extras,
    )
    worker.run(burst=True)
    with container.engine.connect() as conn:
        looked = conn.execute(
            sa.select(jobs.c.state, jobs.c.result).where(jobs.c.kind == "cutover.advance").order_by(jobs.c.id)
        ).first()
    assert looked is not None and looked.state == "succeeded", (looked, worker.stats)
    assert looked.result["step"] >= ran["step"]

    for _ in range(5):
        reverted = client.post(f"{base}/revert", headers=headers, json={"reason": "api"}).json()
        if reverted["status"] == "reverted":
            break
    assert reverted["status"] == "reverted" and reverted["revert_report"]["restored"] == 2
