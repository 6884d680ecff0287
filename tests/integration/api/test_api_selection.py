"""``/api/v1/channels/{name}/selection``: read, preview (current or proposed), change (audited as
``api:<tenant>``), tenant isolation and refusals."""

from __future__ import annotations

import sqlalchemy as sa
from apitest_support import CHANNEL, World

from tradelane.persistence.tables import channel_flows, offer_bindings, products
from tradelane.services import audit

BASE = f"/api/v1/channels/{CHANNEL}/selection"


def test_current_selection_is_every_product(client, world: World) -> None:
    reply = client.get(BASE, headers=world.acme.auth)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "selection": {"all": True, "labels": [], "where": [], "description": "all products"},
        "selected_count": 3,
    }


def test_preview_then_put_then_back_to_all(client, world: World, container) -> None:
    with container.engine.begin() as conn:  # A-2 loses the "new" label
        conn.execute(
            sa.update(products)
            .where(products.c.tenant_id == world.acme.id, products.c.sku == "A-2")
            .values(labels=["old"])
        )
    rule = {"labels": ["new"], "where": [{"attribute": "color", "value": "red"}]}
    shown = client.post(f"{BASE}/preview", json=rule, headers=world.acme.auth)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["selection"]["description"] == "label new and color=red"
    assert body["updated"] == {"count": 2, "sample": ["A-1", "A/3"]}
    assert body["delisted"] == {"count": 1, "sample": ["A-2"]}
    assert body["never_sent"] == {"count": 1, "sample": ["A-2"]}  # never synced: only unbound
    assert body["listed"]["count"] == 0
    assert client.get(BASE, headers=world.acme.auth).json()["selected_count"] == 3  # nothing changed

    applied = client.put(BASE, json={**rule, "reason": "summer range"}, headers=world.acme.auth)
    assert applied.status_code == 200, applied.text
    assert {k: applied.json()[k] for k in ("listed", "updated", "delisted")} == {
        k: body[k] for k in ("listed", "updated", "delisted")
    }
    state = client.get(BASE, headers=world.acme.auth).json()
    assert state["selection"]["labels"] == ["new"] and state["selected_count"] == 2
    current = client.post(f"{BASE}/preview", headers=world.acme.auth).json()  # no body: the current one
    assert current["selection"]["labels"] == ["new"] and current["updated"]["count"] == 2

    back = client.put(BASE, json={"all": True}, headers=world.acme.auth)
    assert back.json()["listed"] == {"count": 1, "sample": ["A-2"]}
    with container.engine.connect() as conn:
        events = audit.history(conn, world.acme.channel_id, prefix="selection.")
    assert [(e.actor, e.reason) for e in events] == [("api:acme", "summer range"), ("api:acme", None)]
    assert events[0].details["delisted"] == 1


def test_tenants_are_isolated_and_bad_input_is_refused(client, world: World) -> None:
    client.put(BASE, json={"labels": ["new"]}, headers=world.acme.auth)
    assert client.get(BASE, headers=world.globex.auth).json()["selection"]["all"] is True
    assert client.get("/api/v1/channels/nope/selection", headers=world.acme.auth).status_code == 404
    assert client.get(BASE).status_code == 401
    both = client.put(BASE, json={"all": True, "labels": ["x"]}, headers=world.acme.auth)
    assert both.status_code == 422 and "every product" in both.text
    clash = client.post(
        f"{BASE}/preview",
        json={"where": [{"attribute": "c", "value": "a"}, {"attribute": "c", "value": "b"}]},
        headers=world.acme.auth,
    )
    assert clash.status_code == 422 and "cannot equal both" in clash.text
    assert client.put(BASE, json={"labels": [""]}, headers=world.acme.auth).status_code == 422
    assert client.put(BASE, json={"labels": ["x"], "extra": 1}, headers=world.acme.auth).status_code == 422


def test_offers_list_says_which_offers_are_left_on_the_marketplace(client, world: World, container) -> None:
    with container.engine.begin() as conn:  # every offer published; the reconciler is off
        conn.execute(
            sa.update(offer_bindings)
            .where(offer_bindings.c.channel_id == world.acme.channel_id)
            .values(synced_seq=1, dirty=False, status="published")
        )
        conn.execute(
            sa.update(channel_flows)
            .where(channel_flows.c.channel_id == world.acme.channel_id, channel_flows.c.flow == "reconciler")
            .values(enabled=False)
        )
        conn.execute(sa.update(products).where(products.c.sku == "A-2").values(labels=["old"]))
    applied = client.put(BASE, json={"labels": ["new"]}, headers=world.acme.auth).json()
    assert applied["delist_action"] == "leave" and applied["left_on_marketplace"]["sample"] == ["A-2"]
    items = client.get("/api/v1/offers", headers=world.acme.auth).json()["items"]
    assert {o["sku"]: o["selection_state"] for o in items} == {
        "A-1": "selected",
        "A-2": "left",
        "A/3": "selected",
    }
