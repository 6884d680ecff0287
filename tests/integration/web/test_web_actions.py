"""Dashboard actions go through the shared services, change only the logged-in tenant's objects, and
report what they did."""

from __future__ import annotations

import html
from dataclasses import dataclass

import sqlalchemy as sa
from webtest_support import csrf_of, login

from tradelane.persistence.tables import (
    channel_flows,
    jobs,
    offer_bindings,
    orders,
    products,
    sku_mappings,
)


@dataclass
class Page:
    status_code: int
    text: str  # HTML entities decoded, so flash messages read as written


def _post(client, url: str, **data) -> Page:
    answer = client.post(url, data={"csrf": csrf_of(client), **data}, follow_redirects=True)
    return Page(answer.status_code, html.unescape(answer.text))


def _scalar(container, stmt):
    with container.engine.connect() as conn:
        return conn.execute(stmt).scalar()


def _job_state(container, job_id: int) -> str:
    return _scalar(container, sa.select(jobs.c.state).where(jobs.c.id == job_id))


def _merchant_status(container, order_id: int) -> str:
    return _scalar(container, sa.select(orders.c.merchant_status).where(orders.c.id == order_id))


def _queued(container, kind: str, tenant_id: int) -> list:
    with container.engine.connect() as conn:
        return (
            conn.execute(
                sa.select(jobs.c.payload).where(
                    jobs.c.kind == kind, jobs.c.tenant_id == tenant_id, jobs.c.state == "queued"
                )
            )
            .scalars()
            .all()
        )


def test_pause_and_resume_one_flow(client, shops, container):
    login(client, shops.acme.token)
    page = _post(client, "/dashboard/channels/flows", channel="shop-fr", flow="orders", action="pause")
    assert "shop-fr: orders paused." in page.text

    def paused(channel_id):
        with container.engine.connect() as conn:
            rows = conn.execute(
                sa.select(channel_flows.c.flow, channel_flows.c.paused).where(
                    channel_flows.c.channel_id == channel_id
                )
            ).all()
        return {r.flow for r in rows if r.paused}

    assert paused(shops.acme.channel_id) == {"orders"}
    assert paused(shops.globex.channel_id) == set()  # same channel name, other tenant: untouched
    assert 'value="resume"' in page.text
    _post(client, "/dashboard/channels/flows", channel="shop-fr", flow="orders", action="resume")
    assert paused(shops.acme.channel_id) == set()
    refused = _post(client, "/dashboard/channels/flows", channel="nope", flow="orders", action="pause")
    assert "no channel named 'nope'" in refused.text


def test_republish_one_offer_and_all_failed(client, shops, container):
    login(client, shops.acme.token)

    def status(offer_id):
        return _scalar(container, sa.select(offer_bindings.c.status).where(offer_bindings.c.id == offer_id))

    page = _post(client, f"/dashboard/offers/{shops.acme.failed_offer_id}/republish")
    assert "ACME-BAD on shop-fr: 1 offer queued for republishing." in page.text
    assert status(shops.acme.failed_offer_id) == "pending"
    assert _queued(container, "offers.delta", shops.acme.tenant_id) == [{}]
    page = _post(client, "/dashboard/offers/republish-failed")
    assert "0 failed offer(s) on every channel" in page.text  # the only failed one is pending now
    assert status(shops.globex.failed_offer_id) == "error"
    login(client, shops.globex.token)
    page = _post(client, "/dashboard/offers/republish-failed", channel="shop-fr")
    assert "1 failed offer(s) on shop-fr" in page.text
    assert status(shops.globex.failed_offer_id) == "pending"


def test_replay_one_dead_job_and_all(client, shops, container):
    login(client, shops.acme.token)
    page = _post(client, f"/dashboard/jobs/{shops.acme.queued_job_id}/replay")
    assert "only dead jobs replay" in page.text
    page = _post(client, f"/dashboard/jobs/{shops.acme.dead_job_id}/replay")
    assert f"Job {shops.acme.dead_job_id} (test.fail.ACME) queued again." in page.text
    assert _job_state(container, shops.acme.dead_job_id) == "queued"
    page = _post(client, "/dashboard/jobs/replay-dead")
    assert "0 dead job(s) queued again." in page.text
    assert _job_state(container, shops.globex.dead_job_id) == "dead"


def test_retry_release_and_bulk_retry_quarantined_orders(client, shops, container):
    login(client, shops.acme.token)
    order_id = shops.acme.quarantined_order_id
    page = _post(client, f"/dashboard/order-health/{order_id}/retry")
    assert "Delivery queued for 1 order(s)." in page.text
    assert _queued(container, "orders.deliver", shops.acme.tenant_id) == [{"order_id": order_id}]
    page = _post(client, "/dashboard/order-health/retry", mode="selected", order=[str(order_id)])
    assert "Delivery queued for 1 order(s)." in page.text
    assert len(_queued(container, "orders.deliver", shops.acme.tenant_id)) == 1  # coalesced
    page = _post(client, "/dashboard/order-health/retry", mode="reason", reason="oms_rejected")
    assert "No order to retry." in page.text
    page = _post(client, "/dashboard/order-health/retry", mode="reason", reason="bogus")
    assert "unknown reason code" in page.text
    page = _post(client, f"/dashboard/order-health/{shops.acme.waiting_order_id}/release")
    assert "not quarantined" in page.text
    page = _post(client, f"/dashboard/order-health/{order_id}/release")
    assert f"Order {order_id} released" in page.text
    assert _merchant_status(container, order_id) == "released"
    assert 'data-reason="unknown_sku"' not in page.text


def test_other_tenants_orders_and_jobs_cannot_be_acted_on(client, shops, container):
    login(client, shops.globex.token)
    acme = shops.acme
    assert "no order" in _post(client, f"/dashboard/order-health/{acme.quarantined_order_id}/release").text
    assert "no order" in _post(client, f"/dashboard/order-health/{acme.quarantined_order_id}/retry").text
    bulk = _post(
        client, "/dashboard/order-health/retry", mode="selected", order=[str(acme.quarantined_order_id)]
    )
    assert "no order" in bulk.text
    assert "no job" in _post(client, f"/dashboard/jobs/{acme.dead_job_id}/replay").text
    assert "no offer" in _post(client, f"/dashboard/offers/{acme.failed_offer_id}/republish").text
    assert _merchant_status(container, acme.quarantined_order_id) == "quarantined"
    assert _job_state(container, acme.dead_job_id) == "dead"
    assert _queued(container, "orders.deliver", acme.tenant_id) == []
    assert (
        _scalar(
            container, sa.select(offer_bindings.c.status).where(offer_bindings.c.id == acme.failed_offer_id)
        )
        == "error"
    )


def test_sku_mapping_retries_the_orders_it_unblocks(client, shops, container):
    login(client, shops.acme.token)
    page = _post(
        client,
        "/dashboard/order-health/sku-mapping",
        marketplace_sku="ACME-LEGACY",
        merchant_sku="ACME-1",
        channel="shop-fr",
    )
    assert "ACME-LEGACY now maps to ACME-1 on shop-fr; 1 order(s) retried." in page.text
    assert _queued(container, "orders.deliver", shops.acme.tenant_id) == [
        {"order_id": shops.acme.quarantined_order_id}
    ]
    with container.engine.connect() as conn:
        rows = conn.execute(sa.select(sku_mappings.c.tenant_id, sku_mappings.c.channel_id)).all()
    assert [tuple(r) for r in rows] == [(shops.acme.tenant_id, shops.acme.channel_id)]
    invalid = _post(client, "/dashboard/order-health/sku-mapping", marketplace_sku="X", merchant_sku=" ")
    assert "merchant SKU must be" in invalid.text


def test_adding_the_unknown_sku_to_the_catalog_retries_its_orders(client, shops, container):
    login(client, shops.acme.token)
    page = _post(
        client,
        "/dashboard/order-health/product",
        sku="ACME-LEGACY",
        title="Legacy item",
        price="12.50",
        currency="eur",
        quantity="3",
    )
    assert "ACME-LEGACY added to the catalog (not published on any channel); 1 order(s) retried." in page.text
    with container.engine.connect() as conn:
        row = conn.execute(
            sa.select(products.c.title, products.c.price, products.c.currency, products.c.quantity).where(
                products.c.tenant_id == shops.acme.tenant_id, products.c.sku == "ACME-LEGACY"
            )
        ).one()
    assert (row.title, str(row.price), row.currency, row.quantity) == ("Legacy item", "12.5", "EUR", 3)
    again = _post(client, "/dashboard/order-health/product", sku="ACME-LEGACY", title="x")
    assert "already in the catalog" in again.text
    bad = _post(client, "/dashboard/order-health/product", sku="ACME-NEW", price="12,5", currency="EUR")
    assert "price" in bad.text and "ACME-NEW added" not in bad.text
