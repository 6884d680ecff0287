"""Every dashboard page renders the logged-in tenant's data, and only theirs."""

from __future__ import annotations

import pytest
from webtest_support import login

PAGES = [
    "/dashboard",
    "/dashboard/channels",
    "/dashboard/offers",
    "/dashboard/orders",
    "/dashboard/order-health",
    "/dashboard/jobs",
    "/dashboard/jobs?state=dead",
    "/dashboard/offers?status=error",
]


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_only_the_tenants_data(client, shops, page):
    login(client, shops.globex.token)
    answer = client.get(page)
    assert answer.status_code == 200, answer.text
    assert "text/html" in answer.headers["content-type"]
    assert "GLOBEX" in answer.text or page == "/dashboard/channels"
    assert "ACME" not in answer.text and "acme" not in answer.text


def test_overview_shows_business_health(client, shops):
    login(client, shops.acme.token)
    text = client.get("/dashboard").text
    assert "Waiting for acceptance" in text and "next deadline in 20h 0m" in text
    assert 'href="/dashboard/order-health">1<' in text  # one quarantined order
    assert 'href="/dashboard/jobs?state=dead">1<' in text  # one dead letter
    assert "50.0 %" in text  # one published, one rejected offer
    assert "12m 0s old" in text  # the oldest unsynced change
    assert "ACME order missed its deadline" in text
    assert text.count("<svg") == 2 and 'class="bar s-orders"' in text


def test_channels_page_shows_flows_and_budgets(client, shops):
    login(client, shops.acme.token)
    text = client.get("/dashboard/channels").text
    for flow in ("listings (offers)", "orders", "fulfillments", "reconciler"):
        assert flow in text
    assert "mirakl:OR11" in text and "0.25 / 1" in text  # 15 s of a 1-per-minute bucket refilled
    assert "1 per 1m 0s" in text and "45s" in text
    assert text.count('value="pause"') == 4


def test_offer_page_shows_marketplace_errors_and_raw_traffic(client, shops):
    login(client, shops.acme.token)
    text = client.get(f"/dashboard/offers/{shops.acme.failed_offer_id}").text
    assert "ACME product not found in the operator catalog" in text
    assert "offer-sku;price" in text and "lines_in_error" in text
    assert "ACME ERROR REPORT LINE" in text and "OF03" in text


def test_offer_search_by_sku_and_status(client, shops):
    login(client, shops.acme.token)
    found = client.get("/dashboard/offers", params={"sku": shops.acme.failed_sku}).text
    assert 'data-sku="ACME-BAD"' in found and 'data-sku="ACME-1"' not in found
    errors = client.get("/dashboard/offers", params={"status": "published"}).text
    assert 'data-sku="ACME-1"' in errors and 'data-sku="ACME-BAD"' not in errors


def test_order_pages_show_history_payloads_and_quarantine(client, shops):
    login(client, shops.acme.token)
    listing = client.get("/dashboard/orders", params={"merchant_status": "quarantined"}).text
    assert 'data-order="ACME-ORD-Q"' in listing and 'data-order="ACME-ORD-W"' not in listing
    text = client.get(f"/dashboard/orders/{shops.acme.quarantined_order_id}").text
    assert "Quarantined: unknown_sku" in text and "raw payload of ACME-ORD-Q" in text
    assert "QUARANTINED" in text and "seen on marketplace" in text  # state history


def test_order_search_by_ref_opens_the_order(client, shops):
    login(client, shops.acme.token)
    answer = client.get("/dashboard/orders", params={"ref": "shop-fr:ACME-ORD-W"}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/dashboard/orders/{shops.acme.waiting_order_id}"
    missing = client.get("/dashboard/orders", params={"ref": "shop-fr:GLOBEX-ORD-W"})
    assert "No order" in missing.text


def test_health_page_groups_by_reason_and_offers_sku_fixes(client, shops):
    login(client, shops.acme.token)
    text = client.get("/dashboard/order-health").text
    assert 'data-reason="unknown_sku"' in text and "1 order · oldest 40m 0s" in text
    assert 'data-unknown-sku="ACME-LEGACY"' in text


def test_job_page_shows_payload_error_and_attempts(client, shops):
    login(client, shops.acme.token)
    text = client.get(f"/dashboard/jobs/{shops.acme.dead_job_id}").text
    assert "ACME marketplace said no" in text and "&#34;order&#34;: &#34;ACME&#34;" in text
    assert "w-test" in text and "Replay this job" in text


@pytest.mark.parametrize(
    "path",
    ["/dashboard/offers/{offer}", "/dashboard/orders/{order}", "/dashboard/jobs/{job}"],
)
def test_other_tenants_objects_are_not_found(client, shops, path):
    login(client, shops.globex.token)
    a = shops.acme
    answer = client.get(path.format(offer=a.failed_offer_id, order=a.quarantined_order_id, job=a.dead_job_id))
    assert answer.status_code == 404
    assert "ACME" not in answer.text
