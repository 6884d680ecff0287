"""Bearer authentication and tenant isolation on every /api/v1 route."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from apitest_support import CHANNEL
from fastapi.testclient import TestClient

from tradelane.persistence.tables import api_tokens, channel_flows, inbound_events, jobs
from tradelane.services.channels import create_channel
from tradelane.web.problems import PROBLEM_JSON

#: /api/v1 operations that authenticate otherwise than by bearer token (their own module tests them).
BEARER_EXEMPT = frozenset(
    {
        ("POST", "/api/v1/merchant/{name}/webhook"),  # HMAC-signed by the merchant system
        ("POST", "/api/v1/shopify/{tenant}/{merchant_name}/webhooks"),  # HMAC-signed by Shopify
    }
)


def _operations(app) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), template, operation)
        for template, item in app.openapi()["paths"].items()
        if template.startswith("/api/v1")
        for method, operation in item.items()
    ]


def _api_routes(app) -> list[tuple[str, str]]:
    """(method, concrete path) of every bearer-protected /api/v1 operation, path parameters filled in."""
    result: list[tuple[str, str]] = []
    for method, template, operation in _operations(app):
        if {"bearerAuth": []} in operation.get("security", []):
            path = re.sub(r"\{job_id\}", "1", template)
            result.append((method, re.sub(r"\{[a-z_]+\}", "x", path)))
    return result


def test_every_api_route_is_listed(app):
    routes = _api_routes(app)
    assert len(routes) >= 15  # tenant, channels(4), jobs(6), products(2), imports, webhooks(2)


def test_only_known_operations_skip_bearer_auth(app):
    unprotected = {
        (method, template)
        for method, template, operation in _operations(app)
        if {"bearerAuth": []} not in operation.get("security", [])
    }
    assert unprotected <= BEARER_EXEMPT


def _assert_401(response, *, invalid: bool) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert ('error="invalid_token"' in challenge) is invalid
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["type"]


def test_every_api_route_requires_a_token(app, client: TestClient, world):
    no_token: list[dict[str, str]] = [
        {},
        {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
        {"Authorization": "Bearer"},
    ]
    for headers in no_token:
        for method, path in _api_routes(app):
            _assert_401(client.request(method, path, headers=headers), invalid=False)


def test_unknown_token_is_rejected_everywhere(app, client: TestClient, world):
    bad = {"Authorization": f"Bearer {world.acme.token}x"}
    for method, path in _api_routes(app):
        _assert_401(client.request(method, path, headers=bad), invalid=True)


def test_revoked_token_is_rejected(client: TestClient, world, container, now):
    assert client.get("/api/v1/tenant", headers=world.acme.auth).status_code == 200
    with container.engine.begin() as conn:
        conn.execute(
            sa.update(api_tokens).where(api_tokens.c.tenant_id == world.acme.id).values(revoked_at=now)
        )
    _assert_401(client.get("/api/v1/tenant", headers=world.acme.auth), invalid=True)


def test_token_acts_for_its_own_tenant(client: TestClient, world):
    for tenant in (world.acme, world.globex):
        body = client.get("/api/v1/tenant", headers=tenant.auth).json()
        assert body == {"id": tenant.id, "name": tenant.name}


def test_ops_endpoints_need_no_token(client: TestClient, world):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path


# --- isolation: another tenant's ids answer 404, exactly like ids that do not exist ------------------


def _assert_404(response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


@pytest.fixture
def globex_only_channel(container, world, now) -> str:
    with container.engine.begin() as conn:
        create_channel(
            conn,
            tenant_id=world.globex.id,
            name="globex-only",
            connector="mirakl",
            settings={},
            credentials=None,
            keyring=container.keyring,
            now=now,
        )
    return "globex-only"


def test_other_tenants_channel_is_not_found(client: TestClient, world, globex_only_channel):
    auth = world.acme.auth
    _assert_404(client.get(f"/api/v1/channels/{globex_only_channel}", headers=auth))
    _assert_404(client.post(f"/api/v1/channels/{globex_only_channel}/pause", headers=auth))
    _assert_404(client.post(f"/api/v1/channels/{globex_only_channel}/resume", headers=auth))
    _assert_404(client.post(f"/api/v1/webhooks/shopify/{globex_only_channel}", headers=auth, content=b"{}"))
    names = [c["name"] for c in client.get("/api/v1/channels", headers=auth).json()["items"]]
    assert names == [CHANNEL]
    # The owner sees it.
    assert client.get(f"/api/v1/channels/{globex_only_channel}", headers=world.globex.auth).status_code == 200


def test_same_channel_name_resolves_per_tenant(client: TestClient, world, container):
    response = client.post(f"/api/v1/channels/{CHANNEL}/pause", headers=world.acme.auth)
    assert response.status_code == 200
    assert response.json()["id"] == world.acme.channel_id
    with container.engine.connect() as conn:
        paused = dict(
            conn.execute(
                sa.select(
                    channel_flows.c.channel_id, sa.func.sum(sa.cast(channel_flows.c.paused, sa.Integer))
                ).group_by(channel_flows.c.channel_id)
            ).all()
        )
    assert paused[world.acme.channel_id] == 4
    assert paused[world.globex.channel_id] == 0
    detail = client.get(f"/api/v1/channels/{CHANNEL}", headers=world.globex.auth).json()
    assert detail["id"] == world.globex.channel_id
    assert not any(f["paused"] for f in detail["flows"])


def test_other_tenants_jobs_are_not_found(client: TestClient, world, container):
    auth = world.acme.auth
    for job_id in (world.globex.dead_job, world.globex.queued_job):
        _assert_404(client.get(f"/api/v1/jobs/{job_id}", headers=auth))
        _assert_404(client.post(f"/api/v1/jobs/{job_id}/replay", headers=auth))
    listed = {j["id"] for j in client.get("/api/v1/jobs", headers=auth).json()["items"]}
    assert listed == {world.acme.queued_job, world.acme.dead_job}
    dead = {j["id"] for j in client.get("/api/v1/jobs/dead", headers=auth).json()["items"]}
    assert dead == {world.acme.dead_job}
    # Replaying "all" replays only the caller's dead letters.
    replayed = client.post("/api/v1/jobs/replay", headers=auth).json()["replayed"]
    assert replayed == [world.acme.dead_job]
    with container.engine.connect() as conn:
        state = conn.execute(sa.select(jobs.c.state).where(jobs.c.id == world.globex.dead_job)).scalar_one()
    assert state == "dead"


def test_other_tenants_products_are_not_found(client: TestClient, world):
    auth = world.acme.auth
    _assert_404(client.get("/api/v1/products/G-1", headers=auth))
    skus = [p["sku"] for p in client.get("/api/v1/products", headers=auth).json()["items"]]
    assert skus == world.acme.skus
    assert client.get("/api/v1/products/G-1", headers=world.globex.auth).status_code == 200


def test_webhook_events_belong_to_the_caller(client: TestClient, world, container):
    headers = {"X-Event-Id": "evt-1", "Content-Type": "application/json"}
    a = client.post("/api/v1/webhooks/shopify", headers={**world.acme.auth, **headers}, content=b"{}")
    g = client.post("/api/v1/webhooks/shopify", headers={**world.globex.auth, **headers}, content=b"{}")
    assert a.status_code == g.status_code == 202  # same delivery id, different tenants: two events
    assert a.json()["event_id"] != g.json()["event_id"]
    with container.engine.connect() as conn:
        owners = dict(conn.execute(sa.select(inbound_events.c.id, inbound_events.c.tenant_id)).all())
    assert owners == {a.json()["event_id"]: world.acme.id, g.json()["event_id"]: world.globex.id}
