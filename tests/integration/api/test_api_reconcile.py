"""``/api/v1/channels/{name}/reconcile`` and ``/id-match``: a dry run is queued (202, a job), the stored
report is read back, enabling confirms it (audited as ``api:<tenant>``, refused without a reason on a
live channel, and for another tenant's channel), the ID match read back as JSON and as CSV."""

from __future__ import annotations

import sqlalchemy as sa
from apitest_support import CHANNEL, World

from tradelane.persistence.tables import jobs
from tradelane.services import audit, id_match, reconciler
from tradelane.services.channels import get_channel_by_id

BASE = f"/api/v1/channels/{CHANNEL}"


def _report(container, world: World) -> int:
    with container.engine.begin() as conn:
        channel = get_channel_by_id(conn, world.acme.id, world.acme.channel_id)
        comparison = reconciler.compare(
            ["A-1", "A-2", "X-9"],
            ["A-1", "A-2", "A/3"],
            ["A-1", "A/3"],
            can_delete=True,
            include_unmanaged=False,
        )
        return reconciler.store_report(
            conn, channel, comparison, kind="dry_run", actor="api:acme", hint=None, now=container.now()
        ).id


def test_dry_run_is_queued_then_read_and_enabled(client, world: World, container) -> None:
    queued = client.post(f"{BASE}/reconcile", json={"include_unmanaged": True}, headers=world.acme.auth)
    assert queued.status_code == 202, queued.text
    with container.engine.connect() as conn:
        job = conn.execute(
            sa.select(jobs.c.kind, jobs.c.payload).where(jobs.c.id == queued.json()["job_id"])
        ).one()
    assert job.kind == reconciler.DRY_RUN and job.payload == {"actor": "api:acme", "include_unmanaged": True}

    assert client.get(f"{BASE}/reconcile/reports/latest", headers=world.acme.auth).status_code == 404
    report_id = _report(container, world)
    latest = client.get(f"{BASE}/reconcile/reports/latest", headers=world.acme.auth)
    assert latest.status_code == 200, latest.text
    body = latest.json()
    assert body["id"] == report_id and body["kind"] == "dry_run"
    assert (body["not_listed"], body["not_selected"], body["unmanaged"], body["to_remove"]) == (
        ["A/3"],
        ["A-2"],
        ["X-9"],
        ["A-2"],
    )
    assert body["counts"]["to_remove"] == 1 and body["warning"].startswith("1 listings exist")

    other = client.post(f"{BASE}/reconcile/enable", json={"report_id": report_id}, headers=world.globex.auth)
    assert other.status_code == 404  # globex's shop has no such report
    unexplained = client.post(
        f"{BASE}/reconcile/enable", json={"report_id": report_id}, headers=world.acme.auth
    )
    assert unexplained.status_code == 422 and "reason" in unexplained.text  # a live channel
    enabled = client.post(
        f"{BASE}/reconcile/enable",
        json={"report_id": report_id, "reason": "go live"},
        headers=world.acme.auth,
    )
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["confirmed_by"] == "api:acme"
    with container.engine.connect() as conn:
        [event] = audit.history(conn, world.acme.channel_id, prefix="reconciler.")
    assert (event.actor, event.action, event.reason, event.details["report_id"]) == (
        "api:acme",
        "reconciler.enable",
        "go live",
        report_id,
    )


def test_id_match_json_and_csv(client, world: World, container) -> None:
    assert client.get(f"{BASE}/id-match", headers=world.acme.auth).status_code == 404
    queued = client.post(f"{BASE}/id-match", headers=world.acme.auth)
    assert queued.status_code == 202
    rows = [
        id_match.MatchRow(
            "conflict", sku="A-1", their_sku="A-1", matched_by="sku", our_group="P", their_group="Q"
        ),
        id_match.MatchRow("only_theirs", their_sku="X-9", their_product_id="4006381333931"),
    ]
    with container.engine.begin() as conn:
        channel = get_channel_by_id(conn, world.acme.id, world.acme.channel_id)
        id_match.store_run(conn, channel, 2, rows, actor="api:acme", now=container.now())
    shown = client.get(f"{BASE}/id-match", headers=world.acme.auth).json()
    assert shown["counts"] == {"listed": 2, "matched": 0, "conflict": 1, "only_theirs": 1, "only_ours": 0}
    assert [r["category"] for r in shown["rows"]] == ["conflict", "only_theirs"]
    csv_reply = client.get(f"{BASE}/id-match.csv", headers=world.acme.auth)
    assert csv_reply.status_code == 200 and csv_reply.headers["content-type"].startswith("text/csv")
    assert csv_reply.text.splitlines() == [
        "category,sku,their_sku,matched_by,gtin,their_product_id,our_group,their_group",
        "conflict,A-1,A-1,sku,,,P,Q",
        "only_theirs,,X-9,,,4006381333931,,",
    ]
    assert client.get(f"{BASE}/id-match.csv", headers=world.globex.auth).status_code == 404
