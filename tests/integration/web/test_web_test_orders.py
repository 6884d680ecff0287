"""Dashboard: "Create test order" on the orders page, the TEST badge on the list and the order page, and
the test report page; another tenant's test order is not shown."""

from __future__ import annotations

import re

import sqlalchemy as sa
from webtest_support import CHANNEL, csrf_of, login

from tradelane.persistence.tables import channel_events, jobs, orders


def _create(client, **data: str):
    return client.post("/dashboard/orders/test", data={"csrf": csrf_of(client, "/dashboard/orders"), **data})


def test_create_test_order_from_the_orders_page_shows_the_test_badge(client, shops, container):
    login(client, shops.acme.token)
    page = client.get("/dashboard/orders")
    assert "Create test order" in page.text and "data-test-order-form" in page.text
    assert "data-test-order " not in page.text  # no test order yet: no badge

    answer = _create(client, channel=CHANNEL, sku="ACME-1", quantity="2")
    assert answer.status_code == 200, answer.text
    order_id = int(str(answer.url).rsplit("/", 1)[1])
    assert f"TEST-{CHANNEL}-1" in answer.text and "never to shop-fr" in answer.text  # flash
    badge = re.search(r'<span class="badge warn" data-test-order[^>]*>TEST</span>', answer.text)
    assert badge is not None
    assert "Test report →" in answer.text

    listing = client.get("/dashboard/orders").text
    row = re.search(rf'<tr data-order="TEST-{CHANNEL}-1">.*?</tr>', listing, re.S)
    assert row is not None and "data-test-order" in row.group(0)
    real = re.search(r'<tr data-order="ACME-ORD-W">.*?</tr>', listing, re.S)
    assert real is not None and "data-test-order" not in real.group(0)

    with container.engine.connect() as conn:
        stored = conn.execute(sa.select(orders).where(orders.c.id == order_id)).one()
        assert (stored.is_test, stored.state, stored.tenant_id) == (True, "to_ship", shops.acme.tenant_id)
        assert conn.execute(
            sa.select(jobs.c.kind).where(jobs.c.payload["order_id"].as_integer() == order_id)
        ).scalars().all() == ["orders.deliver"]  # delivered to the merchant system; no acceptance
        [event] = conn.execute(
            sa.select(channel_events.c.actor, channel_events.c.action).where(
                channel_events.c.action == "orders.create_test"
            )
        ).all()
        assert tuple(event) == ("dashboard:acme", "orders.create_test")

    report = client.get(f"/dashboard/orders/{order_id}/test-report")
    assert report.status_code == 200
    assert "data-verdict>problem" in report.text
    assert "not delivered to a merchant system yet" in report.text  # this shop has none


def test_create_test_order_refusals_and_tenant_isolation(client, other_client, shops, container):
    login(client, shops.acme.token)
    answer = _create(client, channel=CHANNEL, sku="NOPE", quantity="1")
    assert "SKU &#39;NOPE&#39; is not in the catalog" in answer.text
    answer = _create(client, channel=CHANNEL, sku="GLOBEX-1", quantity="1")  # the other tenant's SKU
    assert "SKU &#39;GLOBEX-1&#39; is not in the catalog" in answer.text
    answer = _create(client, channel=CHANNEL, quantity="0")
    assert "Quantity must be a whole number from 1 to 10000." in answer.text
    answer = _create(client, channel=CHANNEL)
    order_id = int(str(answer.url).rsplit("/", 1)[1])

    login(other_client, shops.globex.token)
    assert "TEST-" not in other_client.get("/dashboard/orders").text
    assert other_client.get(f"/dashboard/orders/{order_id}/test-report").status_code == 404
    real = client.get(f"/dashboard/orders/{shops.acme.waiting_order_id}/test-report")
    assert real.status_code == 404 and "is not a test order" in real.text
