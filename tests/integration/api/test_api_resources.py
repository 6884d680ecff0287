"""Channels, jobs and products through the API, checked against the database."""

from __future__ import annotations

import sqlalchemy as sa
from apitest_support import CHANNEL
from fastapi.testclient import TestClient

from tradelane.persistence.tables import channel_flows, jobs


def _paused_flows(container, channel_id: int) -> set[str]:
    with container.engine.connect() as conn:
        rows = conn.execute(
            sa.select(channel_flows.c.flow).where(
                channel_flows.c.channel_id == channel_id, channel_flows.c.paused.is_(True)
            )
        )
        return {r.flow for r in rows}


def test_channel_list_and_detail(client: TestClient, world, now):
    listed = client.get("/api/v1/channels", headers=world.acme.auth).json()
    assert listed == {
        "items": [
            {"id": world.acme.channel_id, "name": CHANNEL, "connector": "mirakl", "lifecycle_state": "live"}
        ]
    }
    detail = client.get(f"/api/v1/channels/{CHANNEL}", headers=world.acme.auth).json()
    flows = {f["flow"]: f for f in detail["flows"]}
    assert set(flows) == {"offers", "orders", "fulfillments", "reconciler"}
    assert flows["orders"]["frequency_seconds"] == 300
    assert flows["fulfillments"]["next_run_at"] is None
    assert flows["offers"]["next_run_at"] == now.isoformat().replace("+00:00", "Z")
    assert "credentials" not in detail and "secret-of-acme" not in str(detail)


def test_pause_and_resume_named_flows(client: TestClient, world, container):
    auth = world.acme.auth
    response = client.post(
        f"/api/v1/channels/{CHANNEL}/pause", headers=auth, json={"flows": ["orders", "offers"]}
    )
    assert response.status_code == 200
    assert {f["flow"] for f in response.json()["flows"] if f["paused"]} == {"orders", "offers"}
    assert _paused_flows(container, world.acme.channel_id) == {"orders", "offers"}
    client.post(f"/api/v1/channels/{CHANNEL}/resume", headers=auth, json={"flows": ["offers"]})
    assert _paused_flows(container, world.acme.channel_id) == {"orders"}
    # No body: every flow.
    client.post(f"/api/v1/channels/{CHANNEL}/pause", headers=auth)
    assert len(_paused_flows(container, world.acme.channel_id)) == 4
    client.post(f"/api/v1/channels/{CHANNEL}/resume", headers=auth, json={})
    assert _paused_flows(container, world.acme.channel_id) == set()


def test_pause_refuses_unknown_flows_and_empty_lists(client: TestClient, world, container):
    bodies: list[dict[str, object]] = [{"flows": ["nope"]}, {"flows": []}, {"flows": "orders"}, {"other": 1}]
    for body in bodies:
        response = client.post(f"/api/v1/channels/{CHANNEL}/pause", headers=world.acme.auth, json=body)
        assert response.status_code == 422, body
    assert _paused_flows(container, world.acme.channel_id) == set()


def test_unknown_channel_is_404(client: TestClient, world):
    response = client.get("/api/v1/channels/nope", headers=world.acme.auth)
    assert response.status_code == 404
    assert response.json()["detail"] == "no channel named 'nope'"


def test_job_list_filters_and_paging(client: TestClient, world):
    auth = world.acme.auth
    everything = client.get("/api/v1/jobs", headers=auth).json()
    assert [j["id"] for j in everything["items"]] == sorted(
        [world.acme.queued_job, world.acme.dead_job], reverse=True
    )
    assert everything["next_offset"] is None
    queued = client.get("/api/v1/jobs", headers=auth, params={"state": "queued"}).json()["items"]
    assert [j["id"] for j in queued] == [world.acme.queued_job]
    assert queued[0]["channel"] == CHANNEL and queued[0]["flow"] == "orders"
    by_kind = client.get("/api/v1/jobs", headers=auth, params={"kind": "test.fail.acme"}).json()["items"]
    assert [j["id"] for j in by_kind] == [world.acme.dead_job]
    by_channel = client.get("/api/v1/jobs", headers=auth, params={"channel": CHANNEL}).json()["items"]
    assert [j["id"] for j in by_channel] == [world.acme.queued_job]
    first = client.get("/api/v1/jobs", headers=auth, params={"limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_offset"] == 1
    second = client.get("/api/v1/jobs", headers=auth, params={"limit": 1, "offset": 1}).json()
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {world.acme.queued_job, world.acme.dead_job}
    assert client.get("/api/v1/jobs", headers=auth, params={"state": "sleeping"}).status_code == 422
    assert client.get("/api/v1/jobs", headers=auth, params={"limit": 0}).status_code == 422


def test_job_detail_has_payload_and_history(client: TestClient, world):
    detail = client.get(f"/api/v1/jobs/{world.acme.dead_job}", headers=world.acme.auth).json()
    assert detail["state"] == "dead"
    assert detail["payload"] == {"order": "A-1"}
    assert detail["last_error"] == "marketplace said no" and detail["error_kind"] == "permanent"
    assert [(h["attempt"], h["worker"], h["outcome"]) for h in detail["history"]] == [(1, "w-test", "dead")]
    assert client.get("/api/v1/jobs/999999", headers=world.acme.auth).status_code == 404
    assert client.get("/api/v1/jobs/0", headers=world.acme.auth).status_code == 422
    assert client.get(f"/api/v1/jobs/{2**64}", headers=world.acme.auth).status_code == 422


def test_replay_one_dead_job(client: TestClient, world, container, now):
    auth = world.acme.auth
    response = client.post(f"/api/v1/jobs/{world.acme.dead_job}/replay", headers=auth)
    assert response.status_code == 200 and response.json() == {"replayed": [world.acme.dead_job]}
    with container.engine.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == world.acme.dead_job)).one()
    assert row.state == "queued" and row.attempts == 0 and row.run_at == now
    # Now it is not dead any more: replaying it again conflicts.
    again = client.post(f"/api/v1/jobs/{world.acme.dead_job}/replay", headers=auth)
    assert again.status_code == 409
    assert again.json()["detail"] == f"job {world.acme.dead_job} is queued, only dead jobs can be replayed"
    assert client.get("/api/v1/jobs/dead", headers=auth).json()["items"] == []


def test_products_list_get_and_exact_prices(client: TestClient, world):
    auth = world.acme.auth
    page = client.get("/api/v1/products", headers=auth).json()
    prices = {p["sku"]: p["price"] for p in page["items"]}
    # Exact decimal strings (trailing zeros are dropped by the column type, never digits).
    assert prices == {"A-1": "19.9", "A-2": "5", "A/3": "0.000001"}
    one = client.get("/api/v1/products/A/3", headers=auth).json()  # SKUs may contain '/'
    assert one["sku"] == "A/3" and one["currency"] == "EUR" and one["labels"] == ["new"]
    assert one["attributes"] == {"color": "red"} and one["quantity"] == 3
    prefixed = client.get("/api/v1/products", headers=auth, params={"sku": "A-"}).json()["items"]
    assert [p["sku"] for p in prefixed] == ["A-1", "A-2"]
    assert client.get("/api/v1/products", headers=auth, params={"sku": "a-"}).json()["items"] == []
    paged = client.get("/api/v1/products", headers=auth, params={"limit": 2, "offset": 2}).json()
    assert [p["sku"] for p in paged["items"]] == ["A/3"] and paged["next_offset"] is None
    assert client.get("/api/v1/products/nope", headers=auth).status_code == 404
    assert client.get("/api/v1/products", headers=auth, params={"sku": "a\x00"}).status_code == 422
