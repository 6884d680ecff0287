"""``/api/v1/rules``: create, list, read, delete and preview order rules; validation and tenant isolation."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from apitest_support import CHANNEL
from fastapi.testclient import TestClient

from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine, OrderState
from tradelane.persistence.tables import merchant_systems, order_rules
from tradelane.services.channels import create_channel
from tradelane.services.orders import ingest_order
from tradelane.web.problems import PROBLEM_JSON

TAG_RULE = {"kind": "attribute", "channel": CHANNEL, "definition": {"attribute": "tags", "value": CHANNEL}}
PUBLISH_RULE = {
    "kind": "publish",
    "merchant_system": "oms",
    "definition": {"condition": {"field": "attributes.tags", "op": "contains_text", "value": CHANNEL}},
}


@pytest.fixture
def shop(container, world, now) -> dict[str, int]:
    """acme gets a merchant system ``oms``, a second channel ``shop-de`` and an order on shop-fr."""
    with container.engine.begin() as conn:
        conn.execute(
            sa.insert(merchant_systems).values(
                tenant_id=world.acme.id, name="oms", kind="http", settings={}, enabled=True, created_at=now
            )
        )
        create_channel(
            conn,
            tenant_id=world.acme.id,
            name="shop-de",
            connector="mirakl",
            settings={},
            credentials=None,
            keyring=container.keyring,
            now=now,
        )
        order = MarketplaceOrder(
            marketplace_order_id="MO-1",
            state=OrderState.TO_SHIP,
            raw_state="SHIPPING",
            currency="EUR",
            created_at=now - timedelta(hours=1),
            updated_at=now,
            lines=(MarketplaceOrderLine("L1", "A-1", 1, Decimal("19.90"), "EUR", "SHIPPING"),),
            shipping_address=Address(country="FR"),
            raw={"id": "MO-1"},
        )
        order_id = ingest_order(
            conn, tenant_id=world.acme.id, channel_id=world.acme.channel_id, order=order, now=now
        ).order_id
    return {"order_id": order_id}


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    return body


def _rule_count(container) -> int:
    with container.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(order_rules)).scalar_one())


def test_create_list_get_delete(client: TestClient, world, shop, now):
    auth = world.acme.auth
    created = client.post("/api/v1/rules", headers=auth, json=TAG_RULE)
    assert created.status_code == 201, created.text
    tag = created.json()
    assert tag == {
        "id": tag["id"],
        "kind": "attribute",
        "channel": CHANNEL,
        "merchant_system": None,
        "position": 10,
        "enabled": True,
        "definition": {"attribute": "tags", "mode": "append", "value": CHANNEL},
        "summary": f"append '{CHANNEL}' to tags",
        "created_at": now.isoformat().replace("+00:00", "Z"),
    }
    publish = client.post("/api/v1/rules", headers=auth, json={**PUBLISH_RULE, "position": 5}).json()
    assert (publish["merchant_system"], publish["channel"], publish["position"]) == ("oms", None, 5)
    assert publish["definition"]["then"] is True and publish["definition"]["otherwise"] is False

    listed = client.get("/api/v1/rules", headers=auth).json()["items"]
    assert [r["id"] for r in listed] == [tag["id"], publish["id"]]
    only_publish = client.get("/api/v1/rules", headers=auth, params={"kind": "publish"}).json()["items"]
    assert [r["id"] for r in only_publish] == [publish["id"]]
    assert client.get("/api/v1/rules", headers=auth, params={"channel": "shop-de"}).json()["items"] == []
    assert client.get(f"/api/v1/rules/{tag['id']}", headers=auth).json() == tag

    deleted = client.delete(f"/api/v1/rules/{tag['id']}", headers=auth)
    assert deleted.status_code == 204 and deleted.content == b""
    _problem(client.get(f"/api/v1/rules/{tag['id']}", headers=auth), 404)
    _problem(client.delete(f"/api/v1/rules/{tag['id']}", headers=auth), 404)


def test_null_decision_means_ask_the_next_rule(client: TestClient, world, shop):
    body = {**PUBLISH_RULE, "definition": {**PUBLISH_RULE["definition"], "otherwise": None}}
    rule = client.post("/api/v1/rules", headers=world.acme.auth, json=body).json()
    assert rule["definition"]["otherwise"] is None
    assert rule["summary"].endswith("otherwise ask the next rule")


INVALID_DEFINITIONS = [
    (
        {**TAG_RULE, "definition": {"attribute": "tags", "from": "tags"}},
        "unknown order field 'tags' in 'tags' (did you mean 'attributes.tags'?)",
    ),
    (
        {**TAG_RULE, "definition": {"attribute": "tags", "value": "x", "from": "channel"}},
        "an attribute rule needs exactly one of 'value' (a constant) or 'from' (an order field path)",
    ),
    (
        {
            "kind": "publish",
            "definition": {"condition": {"field": "attributes.tags", "op": "exists", "value": "x"}},
        },
        "operator exists takes no 'value'",
    ),
    (
        {
            "kind": "publish",
            "definition": {"condition": {"field": "shipping_address.contry", "op": "exists"}},
        },
        None,
    ),
]


def test_invalid_definitions_are_422_with_the_reason(client: TestClient, world, shop, container):
    for body, detail in INVALID_DEFINITIONS:
        problem = _problem(client.post("/api/v1/rules", headers=world.acme.auth, json=body), 422)
        assert problem["type"] == "urn:tradelane:problem:invalid-input"
        if detail is not None:
            assert problem["detail"] == detail
        else:
            assert "did you mean 'country'" in problem["detail"]
        assert _rule_count(container) == 0


SCHEMA_VIOLATIONS = [
    {
        **PUBLISH_RULE,
        "definition": {"condition": {"field": "attributes.tags", "op": "like", "value": "x"}},
    },
    {**PUBLISH_RULE, "definition": {**PUBLISH_RULE["definition"], "then": "yes"}},
    {**PUBLISH_RULE, "definition": {**PUBLISH_RULE["definition"], "else": False}},
    {**TAG_RULE, "merchant_system": "oms"},
    {**TAG_RULE, "definition": {"attribute": "tags", "value": "a\x00b"}},
    {**TAG_RULE, "kind": "route"},
    {k: v for k, v in TAG_RULE.items() if k != "channel"},
]


def test_schema_violations_are_422(client: TestClient, world, shop, container):
    for body in SCHEMA_VIOLATIONS:
        problem = _problem(client.post("/api/v1/rules", headers=world.acme.auth, json=body), 422)
        assert problem["type"] == "urn:tradelane:problem:validation-error"
        assert _rule_count(container) == 0


def test_unknown_channel_or_merchant_system_is_404(client: TestClient, world, shop, container):
    auth = world.acme.auth
    missing_channel = _problem(
        client.post("/api/v1/rules", headers=auth, json={**TAG_RULE, "channel": "x"}), 404
    )
    assert missing_channel["detail"] == "no channel named 'x'"
    missing_merchant = {**PUBLISH_RULE, "merchant_system": "erp"}
    assert _problem(client.post("/api/v1/rules", headers=auth, json=missing_merchant), 404)["detail"] == (
        "no merchant system named 'erp'"
    )
    assert _rule_count(container) == 0


def test_tenants_never_see_each_others_rules(client: TestClient, world, shop):
    rule = client.post("/api/v1/rules", headers=world.acme.auth, json=TAG_RULE).json()
    other = world.globex.auth
    assert client.get("/api/v1/rules", headers=other).json() == {"items": []}
    _problem(client.get(f"/api/v1/rules/{rule['id']}", headers=other), 404)
    _problem(client.delete(f"/api/v1/rules/{rule['id']}", headers=other), 404)
    # globex has no merchant system "oms" (acme's is invisible to it).
    _problem(client.post("/api/v1/rules", headers=other, json=PUBLISH_RULE), 404)
    # acme's order cannot be previewed by globex, by id or by reference.
    for ref in (str(shop["order_id"]), f"{CHANNEL}:MO-1"):
        _problem(client.post("/api/v1/rules/preview", headers=other, json={"order_ref": ref}), 404)
    assert client.get(f"/api/v1/rules/{rule['id']}", headers=world.acme.auth).status_code == 200


def test_preview_of_a_stored_order_and_of_a_sample(client: TestClient, world, shop, container):
    auth = world.acme.auth
    client.post("/api/v1/rules", headers=auth, json=TAG_RULE)
    country = {**TAG_RULE, "definition": {"attribute": "country", "from": "shipping_address.country"}}
    client.post("/api/v1/rules", headers=auth, json=country)
    publish = client.post("/api/v1/rules", headers=auth, json=PUBLISH_RULE).json()
    before = _rule_count(container)

    stored = client.post(
        "/api/v1/rules/preview", headers=auth, json={"order_ref": f"{CHANNEL}:MO-1", "merchant_system": "oms"}
    )
    assert stored.status_code == 200, stored.text
    result = stored.json()
    assert (result["origin_channel"], result["merchant_system"]) == (CHANNEL, "oms")
    assert result["attributes"] == {"tags": CHANNEL, "country": "FR"}
    assert [s["applied"] for s in result["steps"]] == [True, True]
    assert result["decisions"] == [
        {
            "channel": "shop-de",
            "publish": False,
            "reason": f"channel shop-de never had this order (it came from {CHANNEL})",
        },
        {
            "channel": CHANNEL,
            "publish": True,
            "reason": f"rule #{publish['id']} (attributes.tags contains_text '{CHANNEL}') matched: publish",
        },
    ]

    sample = {"channel": "shop-de", "attributes": {"tags": "b2b"}, "shipping_address": None}
    previewed = client.post("/api/v1/rules/preview", headers=auth, json={"order": sample}).json()
    assert previewed["attributes"] == {"tags": "b2b"}  # shop-de has no attribute rules
    assert [(d["channel"], d["publish"]) for d in previewed["decisions"]] == [
        ("shop-de", False),
        (CHANNEL, False),
    ]
    assert previewed["decisions"][0]["reason"].startswith(f"rule #{publish['id']}")
    assert _rule_count(container) == before


PREVIEW_REFUSALS = [
    ({}, 422),
    ({"order": {"channel": CHANNEL}, "order_ref": "1"}, 422),
    ({"order": {"attributes": {}}}, 422),
    ({"order": {"channel": "nowhere"}}, 422),
    ({"order_ref": "shop-fr:nope"}, 404),
    ({"order_ref": "99999999999999999999999"}, 404),
    ({"order_ref": "²"}, 404),
    ({"order": {"channel": CHANNEL}, "merchant_system": "erp"}, 404),
]


def test_preview_refusals(client: TestClient, world, shop):
    for body, status in PREVIEW_REFUSALS:
        _problem(client.post("/api/v1/rules/preview", headers=world.acme.auth, json=body), status)


def test_rules_are_published_in_openapi(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/rules"]) == {"get", "post"}
    assert set(paths["/api/v1/rules/{rule_id}"]) == {"get", "delete"}
    assert "post" in paths["/api/v1/rules/preview"]


def test_requires_a_token(client: TestClient):
    assert client.get("/api/v1/rules").status_code == 401
