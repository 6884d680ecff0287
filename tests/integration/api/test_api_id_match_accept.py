"""``POST /api/v1/channels/{name}/id-match/accept``: accepting ours for one conflict or all of them,
with a reason (audited as ``api:<tenant>``); ``GET .../id-match`` shows each conflict's acceptance and
the unresolved count; a missing reason, an SKU without a conflict and another tenant's channel are
refused."""

from __future__ import annotations

from apitest_support import CHANNEL, World

from tradelane.services import audit, id_match
from tradelane.services.channels import get_channel_by_id

BASE = f"/api/v1/channels/{CHANNEL}"


def _conflicts(container, world: World) -> None:
    rows = [
        id_match.MatchRow(
            "conflict", sku="A-1", their_sku="A-1", matched_by="sku", our_group="P", their_group="Q"
        ),
        id_match.MatchRow("conflict", sku="A-2", their_sku="A-2", matched_by="sku", their_group="R"),
        id_match.MatchRow("matched", sku="A-3", their_sku="A-3", matched_by="sku"),
    ]
    with container.engine.begin() as conn:
        channel = get_channel_by_id(conn, world.acme.id, world.acme.channel_id)
        id_match.store_run(conn, channel, 3, rows, actor="api:acme", now=container.now())


def test_accept_one_then_all(client, world: World, container) -> None:
    url = f"{BASE}/id-match/accept"
    assert client.post(url, json={"all": True, "reason": "r"}, headers=world.acme.auth).status_code == 404
    _conflicts(container, world)
    shown = client.get(f"{BASE}/id-match", headers=world.acme.auth).json()
    assert shown["unresolved"] == 2 and [c["sku"] for c in shown["conflicts"]] == ["A-1", "A-2"]

    assert client.post(url, json={"skus": ["A-1"]}, headers=world.acme.auth).status_code == 422
    neither = client.post(url, json={"reason": "r"}, headers=world.acme.auth)
    assert neither.status_code == 422 and "either skus or all" in neither.text
    wrong = client.post(url, json={"skus": ["A-3"], "reason": "r"}, headers=world.acme.auth)
    assert wrong.status_code == 422 and "no unresolved ID match conflict" in wrong.text
    other = client.post(url, json={"all": True, "reason": "r"}, headers=world.globex.auth)
    assert other.status_code == 404  # globex's shop was never matched

    one = client.post(url, json={"skus": ["A-1"], "reason": "ours is right"}, headers=world.acme.auth)
    assert one.status_code == 200, one.text
    assert one.json()["unresolved"] == 1
    [accepted] = one.json()["accepted"]
    assert (accepted["sku"], accepted["accepted_by"], accepted["reason"]) == (
        "A-1",
        "api:acme",
        "ours is right",
    )
    rest = client.post(url, json={"all": True, "reason": "all of them"}, headers=world.acme.auth)
    assert rest.status_code == 200 and [c["sku"] for c in rest.json()["accepted"]] == ["A-2"]
    shown = client.get(f"{BASE}/id-match", headers=world.acme.auth).json()
    assert shown["unresolved"] == 0 and all(c["accepted"] for c in shown["conflicts"])
    with container.engine.connect() as conn:
        events = audit.history(conn, world.acme.channel_id, prefix="idmatch.accept")
        assert id_match.unresolved_conflicts(conn, world.acme.channel_id) == 0
    assert [(e.actor, e.reason, e.details["all"]) for e in events] == [
        ("api:acme", "ours is right", False),
        ("api:acme", "all of them", True),
    ]
