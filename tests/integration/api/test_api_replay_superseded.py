"""Replaying a dead job whose work is already in flight in another job (same ``exclusive_key``)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tradelane.sync import jobs as jobstore


def test_replay_of_a_dead_delivery_while_another_runs_is_refused_and_says_why(
    client: TestClient, world, container, now
):
    acme = world.acme
    spec = jobstore.JobSpec(acme.id, "orders.deliver", {"order_id": 7}, exclusive_key="orders.deliver:7")
    with container.engine.begin() as conn:
        dead_id = jobstore.enqueue(conn, spec, now=now).job_id
        [claimed] = jobstore.claim(conn, worker="w", now=now, lease_seconds=30, kinds=["orders.deliver"])
        jobstore.bury(conn, claimed, now=now, error="boom", kind=jobstore.ErrorKind.PERMANENT)
        live_id = jobstore.enqueue(conn, spec, now=now).job_id
        jobstore.claim(conn, worker="w", now=now, lease_seconds=30, kinds=["orders.deliver"])

    answer = client.post(f"/api/v1/jobs/{dead_id}/replay", headers=acme.auth)

    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"] == (
        f"job {dead_id} is cancelled (superseded: job {live_id} doing the same work (orders.deliver:7) is "
        "already in flight), only dead jobs can be replayed"
    )
    assert client.get(f"/api/v1/jobs/{live_id}", headers=acme.auth).json()["state"] == "running"
