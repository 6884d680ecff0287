"""``orders.deliver`` end to end: marketplace order in the database → worker (in-process) → HTTP OMS
sandbox on 127.0.0.1, with quarantines, automatic release, retries and Retry-After."""

from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from merchant_support import (
    SECRET,
    add_product,
    deliver_jobs,
    delivery_rows,
    history,
    ingest,
    marketplace_order,
    order_row,
    quarantine_row,
    register_oms,
    run_worker,
)

from tradelane.connectors.mirakl.mapping import MiraklOrderState
from tradelane.domain.orders import Address
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.sku_mappings import put_sku_mapping
from tradelane.persistence.tables import jobs
from tradelane.services.order_health import (
    DELIVERY_MAX_ATTEMPTS,
    enqueue_delivery,
    retry_orders,
    retry_quarantined_for_skus,
)


def _enqueue(container, shop, order_id) -> None:
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=container.now()
        )


def _deliver(container, shop, clock, order_id) -> None:
    _enqueue(container, shop, order_id)
    run_worker(container, clock)


def test_unknown_sku_quarantines_then_a_mapping_delivers_the_whole_order(
    container, shop, merchant, oms, clock, now
):
    add_product(container.engine, shop.tenant_id, "KNOWN", now)
    order_id = ingest(
        container,
        shop,
        marketplace_order("O-1", [("KNOWN", 1, "10.00"), ("MYSTERY", 2, "4.50")], now=now),
        now,
    )
    assert order_row(container.engine, order_id).merchant_status == "pending"

    _deliver(container, shop, clock, order_id)

    q = quarantine_row(container.engine, order_id)
    assert q is not None and q.reason_code == "unknown_sku" and q.attempts == 1
    assert q.detail["skus"] == ["MYSTERY"]
    assert q.detail["lines"] == [{"line_id": "O-1-2", "sku": "MYSTERY", "offer_sku": "offer-MYSTERY"}]
    assert "MYSTERY" in q.reason
    assert order_row(container.engine, order_id).merchant_status == "quarantined"
    # Validation happens before the OMS is contacted: nothing at all reached it, not even one line.
    assert oms.state.requests() == [] and oms.state.orders() == []
    assert delivery_rows(container.engine, order_id) == []

    with container.engine.begin() as conn:
        assert retry_quarantined_for_skus(conn, tenant_id=shop.tenant_id, skus=["OTHER"], now=now) == 0
        put_sku_mapping(
            conn,
            tenant_id=shop.tenant_id,
            channel_id=shop.channel_id,
            marketplace_sku="MYSTERY",
            merchant_sku="M-1",
            merchant_only=True,  # known to the OMS, not in the catalog
            now=now,
        )
        assert retry_quarantined_for_skus(conn, tenant_id=shop.tenant_id, skus=["MYSTERY"], now=now) == 1

    stats = run_worker(container, clock)
    assert stats.succeeded == 1

    row = order_row(container.engine, order_id)
    assert row.merchant_status == "delivered"
    assert quarantine_row(container.engine, order_id) is None
    [delivery] = delivery_rows(container.engine, order_id)
    assert delivery.status == "delivered" and delivery.external_ref == "OMS-1" and delivery.attempts == 1
    assert f"Idempotency-Key: order-{order_id}" in delivery.last_request
    assert delivery.last_response.startswith("HTTP 201")
    [received] = oms.state.orders()
    assert received.idempotency_key == f"order-{order_id}"
    doc = received.document
    assert doc["id"] == order_id and doc["ref"] == "shop-fr:O-1" and doc["channel"] == "shop-fr"
    assert [(ln["sku"], ln["marketplace_sku"], ln["quantity"]) for ln in doc["lines"]] == [
        ("KNOWN", "KNOWN", 1),
        ("M-1", "MYSTERY", 2),
    ]
    assert [Decimal(ln["unit_price"]) for ln in doc["lines"]] == [Decimal("10.00"), Decimal("4.50")]
    assert Decimal(doc["lines"][1]["line_total"]) == Decimal("9.00")
    assert Decimal(doc["total_price"]) == Decimal("19.00")
    assert doc["shipping_address"]["city"] == "Paris" and doc["attributes"]["source"] == "test"
    states = [state for state, _ in history(container.engine, order_id)]
    assert states.index("QUARANTINED") < states.index("RETRY_REQUESTED") < states.index("DELIVERED")

    # Delivering again sends nothing: the order is already delivered.
    _deliver(container, shop, clock, order_id)
    assert [o.deliveries for o in oms.state.orders()] == [1]
    assert deliver_jobs(container.engine)[-1].result["status"] == "skipped"


def test_a_catalog_import_of_the_sku_releases_the_order(container, shop, merchant, oms, clock, now):
    order_id = ingest(container, shop, marketplace_order("O-2", [("NEW-SKU", 1, "3.10")], now=now), now)
    _deliver(container, shop, clock, order_id)
    assert quarantine_row(container.engine, order_id).reason_code == "unknown_sku"

    add_product(container.engine, shop.tenant_id, "NEW-SKU", now)  # what a catalog import does
    with container.engine.begin() as conn:
        assert retry_quarantined_for_skus(conn, tenant_id=shop.tenant_id, skus=["NEW-SKU", "X"], now=now) == 1
    run_worker(container, clock)

    assert order_row(container.engine, order_id).merchant_status == "delivered"
    assert [ln["sku"] for ln in oms.state.orders()[0].document["lines"]] == ["NEW-SKU"]


def test_a_tenant_wide_mapping_of_the_offer_sku_counts_and_other_channels_mappings_do_not(
    container, shop, merchant, oms, clock, now
):
    from merchant_support import make_shop

    other = make_shop(container, "globex", "shop-de", now)
    order_id = ingest(container, shop, marketplace_order("O-3", [("S1", 1, "1")], now=now), now)
    with container.engine.begin() as conn:
        # Another tenant's mapping of the same SKU changes nothing here.
        put_sku_mapping(
            conn,
            tenant_id=other.tenant_id,
            channel_id=None,
            marketplace_sku="S1",
            merchant_sku="NO",
            merchant_only=True,
            now=now,
        )
    _deliver(container, shop, clock, order_id)
    assert quarantine_row(container.engine, order_id).reason_code == "unknown_sku"
    with container.engine.begin() as conn:
        put_sku_mapping(
            conn,
            tenant_id=shop.tenant_id,
            channel_id=None,
            marketplace_sku="offer-S1",
            merchant_sku="M-S1",
            merchant_only=True,
            now=now,
        )
        assert retry_quarantined_for_skus(conn, tenant_id=shop.tenant_id, skus=["offer-S1"], now=now) == 1
    run_worker(container, clock)
    assert [ln["sku"] for ln in oms.state.orders()[0].document["lines"]] == ["M-S1"]


def test_an_oms_rejection_is_quarantined_with_its_response_and_retried_by_hand(
    container, shop, merchant, oms, clock, now
):
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-4", [("A", 1, "5")], now=now), now)
    oms.state.reject_skus({"A"})

    _deliver(container, shop, clock, order_id)
    q = quarantine_row(container.engine, order_id)
    assert q.reason_code == "oms_rejected" and q.attempts == 1
    assert q.detail["merchant_system"] == "oms" and q.detail["status"] == 422
    assert q.detail["response"] == {"error": "unknown_sku", "message": "unknown SKU(s): A", "skus": ["A"]}
    [delivery] = delivery_rows(container.engine, order_id)
    assert delivery.status == "quarantined" and delivery.last_response.startswith("HTTP 422")

    # Failing again updates the same quarantine row (attempts), no duplicate, one history entry.
    clock.advance(60)
    with container.engine.begin() as conn:
        assert retry_orders(conn, tenant_id=shop.tenant_id, refs=["shop-fr:O-4"], now=clock()) == [order_id]
    run_worker(container, clock)
    q = quarantine_row(container.engine, order_id)
    assert q.attempts == 2 and q.since == now and q.last_attempt_at == now + timedelta(seconds=60)
    assert [s for s, _ in history(container.engine, order_id)].count("QUARANTINED") == 1

    oms.state.reject_skus(set())
    with container.engine.begin() as conn:
        retry_orders(conn, tenant_id=shop.tenant_id, refs=[str(order_id)], now=clock())
    run_worker(container, clock)
    assert order_row(container.engine, order_id).merchant_status == "delivered"
    assert quarantine_row(container.engine, order_id) is None
    [delivery] = delivery_rows(container.engine, order_id)
    assert delivery.status == "delivered" and delivery.attempts == 3


def test_server_errors_are_retried_with_backoff_until_2xx(container, shop, merchant, oms, clock, now):
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-5", [("A", 2, "5")], now=now), now)
    oms.state.fail_next(2, status=500)

    _deliver(container, shop, clock, order_id)
    [job] = deliver_jobs(container.engine)
    assert job.state == "queued" and job.run_at > now and job.error_kind == "retryable"
    assert "HTTP 500" in job.last_error
    assert order_row(container.engine, order_id).merchant_status == "pending"
    assert quarantine_row(container.engine, order_id) is None
    [delivery] = delivery_rows(container.engine, order_id)
    assert (
        delivery.status == "pending"
        and delivery.attempts == 1
        and delivery.last_response.startswith("HTTP 500")
    )

    for _ in range(2):
        clock.advance(1000)
        run_worker(container, clock)
    assert order_row(container.engine, order_id).merchant_status == "delivered"
    [delivery] = delivery_rows(container.engine, order_id)
    assert delivery.attempts == 3 and delivery.status == "delivered"
    [received] = oms.state.orders()
    assert received.deliveries == 1
    assert [r["status"] for r in oms.state.requests()] == [500, 500, 201]
    assert {r["idempotency_key"] for r in oms.state.requests()} == {f"order-{order_id}"}


def test_429_retry_after_is_honoured_exactly(container, shop, merchant, oms, clock, now):
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-6", [("A", 1, "5")], now=now), now)
    oms.state.fail_next(1, status=429, retry_after=37)

    _deliver(container, shop, clock, order_id)
    [job] = deliver_jobs(container.engine)
    assert job.state == "queued" and job.run_at == now + timedelta(seconds=37)
    assert job.attempts == 0  # throttling does not consume the attempt budget

    clock.advance(36)
    assert run_worker(container, clock).total() == 0
    clock.advance(1)
    run_worker(container, clock)
    assert order_row(container.engine, order_id).merchant_status == "delivered"


def test_transient_failures_outlasting_the_budget_end_in_order_health(
    container, shop, merchant, oms, clock, now
):
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-7", [("A", 1, "5")], now=now), now)
    oms.state.fail_next(DELIVERY_MAX_ATTEMPTS + 5, status=503)
    _enqueue(container, shop, order_id)
    for _ in range(DELIVERY_MAX_ATTEMPTS):
        run_worker(container, clock)
        clock.advance(1000)
    [job] = deliver_jobs(container.engine)
    assert job.state == "succeeded" and job.attempts == DELIVERY_MAX_ATTEMPTS
    q = quarantine_row(container.engine, order_id)
    assert q.reason_code == "oms_unavailable" and q.detail["status"] == 503
    assert len(oms.state.requests()) == DELIVERY_MAX_ATTEMPTS


def test_an_unreachable_oms_is_retried(container, shop, clock, now):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    register_oms(container, shop, f"http://127.0.0.1:{port}/orders")
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-8", [("A", 1, "5")], now=now), now)
    _deliver(container, shop, clock, order_id)
    [job] = deliver_jobs(container.engine)
    assert job.state == "queued" and "unreachable" in job.last_error
    [delivery] = delivery_rows(container.engine, order_id)
    assert delivery.status == "pending" and "unreachable" in delivery.last_response


def test_the_oms_refuses_a_wrong_signature(container, shop, oms, clock, now):
    register_oms(container, shop, oms.orders_url, secret="not-the-secret-the-oms-knows")
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-9", [("A", 1, "5")], now=now), now)
    _deliver(container, shop, clock, order_id)
    q = quarantine_row(container.engine, order_id)
    assert q.reason_code == "oms_rejected" and q.detail["status"] == 401
    assert oms.state.orders() == []


@pytest.mark.parametrize(
    ("address", "missing"),
    [
        (
            Address(first_name="Ada", street1="1 rue", country="FRA"),
            ["shipping_address.city", "shipping_address.zip_code"],
        ),
        (Address(street1="1 rue", zip_code="1", city="Paris", country="FRA"), ["shipping_address.name"]),
        (None, ["shipping_address"]),
    ],
)
def test_missing_mandatory_fields_quarantine_before_the_oms_is_contacted(
    container, shop, merchant, oms, clock, now, address, missing
):
    add_product(container.engine, shop.tenant_id, "A", now)
    order = marketplace_order("O-10", [("A", 1, "5")], now=now, address=address)
    order_id = ingest(container, shop, order, now)
    _deliver(container, shop, clock, order_id)
    q = quarantine_row(container.engine, order_id)
    assert q.reason_code == "missing_field" and q.detail["missing_fields"] == missing
    assert oms.state.requests() == []


def test_orders_not_for_the_merchant_side_are_skipped(container, shop, merchant, oms, clock, now):
    add_product(container.engine, shop.tenant_id, "A", now)
    tpm = ingest(
        container, shop, marketplace_order("O-11", [("A", 1, "5")], now=now), now, third_party_managed=True
    )
    waiting = ingest(
        container,
        shop,
        marketplace_order("O-12", [("A", 1, "5")], now=now, state=MiraklOrderState.WAITING_ACCEPTANCE),
        now,
    )
    for order_id in (tpm, waiting):
        _deliver(container, shop, clock, order_id)
    results = [j.result for j in deliver_jobs(container.engine)]
    assert [r["status"] for r in results] == ["skipped", "skipped"]
    assert results[0]["reason"] == "third-party managed"
    assert oms.state.requests() == []


def test_without_a_merchant_system_the_order_waits_in_order_health(container, shop, clock, now):
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-13", [("A", 1, "5")], now=now), now)
    _deliver(container, shop, clock, order_id)
    assert quarantine_row(container.engine, order_id).reason_code == "no_merchant_system"


def test_a_system_that_has_the_order_is_not_sent_it_again(container, shop, merchant, oms, clock, now):
    second = OmsSandboxState(SECRET, clock=clock)
    with OmsSandboxServer(second) as oms2:
        register_oms(container, shop, oms2.orders_url, name="warehouse")
        add_product(container.engine, shop.tenant_id, "A", now)
        order_id = ingest(container, shop, marketplace_order("O-14", [("A", 1, "5")], now=now), now)
        second.fail_next(1, status=502)
        _deliver(container, shop, clock, order_id)
        assert order_row(container.engine, order_id).merchant_status == "pending"
        clock.advance(1000)
        run_worker(container, clock)
    assert order_row(container.engine, order_id).merchant_status == "delivered"
    assert [o.deliveries for o in oms.state.orders()] == [1]  # not re-sent on the retry
    assert [o.deliveries for o in second.orders()] == [1]
    assert sorted(d.status for d in delivery_rows(container.engine, order_id)) == ["delivered", "delivered"]
    notes = [note for state, note in history(container.engine, order_id) if state == "DELIVERED"]
    assert notes == ["delivered to oms (OMS-1), warehouse (OMS-1)"]


def test_delivery_jobs_coalesce_per_order(container, shop, now):
    order_id = ingest(container, shop, marketplace_order("O-15", [("A", 1, "5")], now=now), now)
    for _ in range(3):
        _enqueue(container, shop, order_id)
    with container.engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.kind == "orders.deliver")
        )
        assert count.scalar_one() == 1


def test_a_value_the_document_cannot_hold_is_quarantined_not_crashed_on(
    container, shop, merchant, oms, clock, now
):
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("O-16", [("A", 0, "5")], now=now), now)
    _deliver(container, shop, clock, order_id)
    q = quarantine_row(container.engine, order_id)
    assert q.reason_code == "missing_field"
    assert [f.split(":")[0] for f in q.detail["invalid_fields"]] == ["lines.0.quantity"]
    assert deliver_jobs(container.engine)[0].state == "succeeded" and oms.state.requests() == []
