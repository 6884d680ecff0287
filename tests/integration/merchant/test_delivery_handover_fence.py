"""A delivery job handed over while its first runner's request is in flight does not send the order
twice: the second runner waits for the first one's answer (the marker on the order's delivery row),
then finds the order held. Found behind a chaos run without faults (41 OMS POSTs for 40 orders under
load): the first runner's lease lapsed (its heartbeat starved) between the fenced check and the POST's
answer, another worker claimed the job, saw no delivery recorded and POSTed again.

Deterministic: a fake clock; the first runner's adapter, mid-request, moves the clock past the lease and
lets a second worker run the job before the merchant system answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from merchant_support import add_product, delivery_rows, ingest, marketplace_order, order_row

from tradelane.merchant.base import DeliveryOutcome, MerchantAdapter, MerchantSystem
from tradelane.merchant.http_oms import http_adapter
from tradelane.merchant.schema import OmsOrder
from tradelane.persistence.tables import jobs, order_deliveries
from tradelane.services import order_delivery
from tradelane.services.order_health import enqueue_delivery
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

LEASE = 3.0


class _InterruptedOms:
    """The real HTTP adapter, but ``before_answer`` runs after the request is decided and before it is
    sent (what a starved runner looks like from outside: the job's lease lapses meanwhile)."""

    def __init__(self, inner: MerchantAdapter, before_answer: Any) -> None:
        self.inner = inner
        self.before_answer = before_answer

    def deliver_order(self, document: OmsOrder, *, idempotency_key: str, now: Any) -> DeliveryOutcome:
        self.before_answer()
        return self.inner.deliver_order(document, idempotency_key=idempotency_key, now=now)

    def notify_cancellation(self, document: OmsOrder, **kwargs: Any) -> DeliveryOutcome:
        return self.inner.notify_cancellation(document, **kwargs)

    def close(self) -> None:
        self.inner.close()


def _worker(container, clock, name: str, registry: JobRegistry | None = None) -> Worker:
    return Worker(
        container.engine,
        registry or container.registry,
        clock,
        WorkerConfig(schedule=False, lease_seconds=LEASE),
        services=container.extras,
        name=name,
    )


def _order_with_delivery_job(container, shop, now) -> tuple[int, int]:
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("C-1", [("A", 1, "5")], now=now), now)
    with container.engine.begin() as conn:
        job = enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    return order_id, job.job_id


def _job(container, job_id: int) -> Any:
    with container.engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()


def test_a_runner_taking_over_mid_request_waits_for_the_answer_instead_of_sending_again(
    container, shop, merchant, oms, clock, now
):
    order_id, job_id = _order_with_delivery_job(container, shop, now)
    second = _worker(container, clock, "second")
    seen_by_second: list[int] = []

    def lease_lapses_and_the_job_is_taken_over() -> None:
        clock.advance(LEASE + 1)  # no heartbeat came: the first runner's lease expired
        seen_by_second.append(second.run_once())
        assert oms.state.orders() == []  # the second runner did not send it

    def factory(system: MerchantSystem, credentials: dict[str, Any]) -> MerchantAdapter:
        return _InterruptedOms(http_adapter(system, credentials), lease_lapses_and_the_job_is_taken_over)

    registry = JobRegistry()
    order_delivery.register(registry, adapters={"http": factory})
    first = _worker(container, clock, "first", registry)

    assert first.run_once() == 1
    # The second runner claimed the job, found the hand-over in flight and queued it again shortly
    # (a wait, not an attempt); the first one's accepted order is recorded although its lease is gone.
    assert seen_by_second == [1]
    assert (second.stats.retried, second.stats.succeeded) == (1, 0)
    assert (first.stats.lost, first.stats.succeeded) == (1, 0)
    job = _job(container, job_id)
    assert (job.state, job.error_kind, job.attempts) == ("queued", "throttled", 1)
    assert "another attempt has been sending this order" in job.last_error
    [row] = delivery_rows(container.engine, order_id)
    assert (row.status, row.sending_token, row.sending_since) == ("delivered", None, None)

    clock.advance(order_delivery.WAIT_POLL_SECONDS)
    assert second.run_once() == 1
    assert _job(container, job_id).state == "succeeded"
    assert order_row(container.engine, order_id).merchant_status == "delivered"
    [received] = oms.state.orders()
    assert received.deliveries == 1  # one POST in all


def _mark(container, order_id: int, system_id: int, tenant_id: int, since: Any) -> None:
    with container.engine.begin() as conn:
        conn.execute(
            sa.insert(order_deliveries).values(
                tenant_id=tenant_id,
                order_id=order_id,
                merchant_system_id=system_id,
                status="pending",
                attempts=0,
                created_at=since,
                sending_token="a-runner-that-died",
                sending_since=since,
            )
        )


def test_a_fresh_marker_of_another_attempt_holds_the_delivery_back(
    container, shop, merchant, oms, clock, now
):
    order_id, job_id = _order_with_delivery_job(container, shop, now)
    _mark(container, order_id, merchant.id, shop.tenant_id, now)

    worker = _worker(container, clock, "w")
    assert worker.run_once() == 1
    assert oms.state.orders() == []
    job = _job(container, job_id)
    assert (job.state, job.error_kind, job.attempts) == ("queued", "throttled", 0)
    assert job.run_at == now + timedelta(seconds=order_delivery.WAIT_POLL_SECONDS)


def test_the_marker_of_a_runner_that_died_lapses_and_the_order_is_sent(
    container, shop, merchant, oms, clock, now
):
    order_id, job_id = _order_with_delivery_job(container, shop, now)
    grace = order_delivery.sending_grace(merchant)
    assert grace == timedelta(seconds=2 * 5 + 10)  # the test OMS is registered with a 5 s timeout
    _mark(container, order_id, merchant.id, shop.tenant_id, now - grace - timedelta(seconds=1))

    worker = _worker(container, clock, "w")
    assert worker.run_once() == 1
    assert _job(container, job_id).state == "succeeded"
    [received] = oms.state.orders()
    assert received.deliveries == 1
    [row] = delivery_rows(container.engine, order_id)
    assert (row.status, row.sending_token) == ("delivered", None)
