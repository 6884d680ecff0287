"""Offer publishing and fulfilment push driven through the port by a FAKE in-memory connector: the
services are connector-neutral (batches, asynchronous and synchronous imports, refusals at submission,
declared capabilities honoured — an undeclared operation is never called), carriers converted and
cached, labels sent once."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from helpers import FakeClock, make_tenant
from order_updates_support import make_order, tiny_pdf
from tradelane.connectors.base import (
    Cancellation,
    Capabilities,
    Document,
    ImportRef,
    ImportResult,
    OfferOutcome,
    OfferUpdate,
    Operation,
    Refund,
    Shipment,
    SubmitMode,
    UnsupportedOperation,
)
from tradelane.connectors.mirakl.mapping import MiraklOrderState
from tradelane.domain.errors import RetryableError
from tradelane.http_edge import Exchange
from tradelane.persistence.tables import exchanges, jobs, offer_bindings, order_history, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import fulfilment_push, offer_publishing
from tradelane.services.channels import Channel, create_channel, get_channel_by_id
from tradelane.services.labels import LabelFormat, PreparedLabel, get_document, store_label
from tradelane.services.offers import OFFER_SYNC_PROGRESS, OfferSyncProgress
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

EVERYTHING = frozenset(
    {
        Operation.SUBMIT_OFFERS_FULL,
        Operation.SUBMIT_OFFERS_DELTA,
        Operation.READ_IMPORT,
        Operation.SHIP,
        Operation.CANCEL,
        Operation.REFUND,
        Operation.UPLOAD_DOCUMENT,
    }
)


@dataclass
class FakeMarketplace:
    """An in-memory marketplace account behind the port (only what these services call)."""

    capabilities: Capabilities
    name: str = "fake"
    #: SKU -> reason the marketplace rejects when it processes an import / refuses at submission
    rejects: dict[str, str] = field(default_factory=dict)
    refuses: dict[str, str] = field(default_factory=dict)
    processing: bool = False
    #: the summary an asynchronous import's first answer carries (e.g. a planner's reason)
    note: str | None = None
    #: submission numbers (1-based) answered with a retryable error once, as a spent budget would be
    fail_submission: set[int] = field(default_factory=set)
    submissions: int = 0
    codes: set[str] = field(default_factory=lambda: {"UPS", "DHL"})
    calls: list[str] = field(default_factory=list)
    imports: dict[str, list[OfferUpdate]] = field(default_factory=dict)
    shipments: list[Shipment] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    exchange_sink: list[Exchange] = field(default_factory=list)

    def _call(self, operation: Operation) -> None:
        if not self.capabilities.supports(operation):
            raise UnsupportedOperation(self.name, operation)
        self.calls.append(operation.value)

    def submit_offers(self, offers: Sequence[OfferUpdate], mode: SubmitMode) -> ImportRef:
        self._call(Operation.SUBMIT_OFFERS_FULL if mode is SubmitMode.FULL else Operation.SUBMIT_OFFERS_DELTA)
        assert len(offers) <= self.capabilities.batch_size(
            Operation.SUBMIT_OFFERS_FULL if mode is SubmitMode.FULL else Operation.SUBMIT_OFFERS_DELTA,
            len(offers),
        )
        self.submissions += 1
        if self.submissions in self.fail_submission:
            self.fail_submission.discard(self.submissions)
            raise RetryableError("no token of the submission budget left", retry_after=5.0)
        self.exchange_sink.append(
            Exchange("submit", "POST", "/offers", f"{len(offers)} offers", 200, "{}", 1.0)
        )
        refused = tuple(
            OfferOutcome(o.sku, False, (self.refuses[o.sku],)) for o in offers if o.sku in self.refuses
        )
        sent = [o for o in offers if o.sku not in self.refuses]
        reference = f"imp-{len(self.imports) + 1}"
        self.imports[reference] = sent
        if self.capabilities.asynchronous_offer_imports:
            return ImportRef(
                reference, mode, len(sent), ImportResult(False, refused, retry_after=30.0, summary=self.note)
            )
        return ImportRef(reference, mode, len(sent), ImportResult(True, refused + self._outcomes(sent)))

    def _outcomes(self, offers: Sequence[OfferUpdate]) -> tuple[OfferOutcome, ...]:
        return tuple(
            OfferOutcome(
                o.sku, o.sku not in self.rejects, (self.rejects[o.sku],) if o.sku in self.rejects else ()
            )
            for o in offers
        )

    def import_result(self, ref: ImportRef) -> ImportResult:
        self._call(Operation.READ_IMPORT)
        if self.processing:
            return ImportResult(False, retry_after=9.0, summary=f"{ref.reference} is running")
        return ImportResult(True, self._outcomes(self.imports[ref.reference]), summary="report")

    def ship(self, shipment: Shipment) -> None:
        self._call(Operation.SHIP)
        self.shipments.append(shipment)

    def cancel(self, cancellation: Cancellation) -> None:
        self._call(Operation.CANCEL)
        self.cancellations.append(cancellation)

    def refund(self, refund: Refund) -> None:
        self._call(Operation.REFUND)
        self.refunds.append(refund)

    def upload_document(self, document: Document) -> None:
        self._call(Operation.UPLOAD_DOCUMENT)
        self.exchange_sink.append(Exchange("upload", "POST", "/docs", "%PDF-binary", 200, "{}", 1.0))
        self.documents.append(document)

    def carrier_codes(self) -> set[str]:
        self.calls.append("carrier_codes")
        return set(self.codes)

    def document_present(self, document: Document) -> bool:
        self.calls.append("document_present")
        return any(d.filename == document.filename and d.kind == document.kind for d in self.documents)

    def close(self) -> None:
        pass


class FakeSession:
    def __init__(self, connector: FakeMarketplace, channel: Channel) -> None:
        self.connector = connector
        self.channel = channel
        self.exchanges = connector.exchange_sink

    def record(self, conn: Connection, subject: str, *, now: datetime) -> None:
        rows = [
            {
                "tenant_id": self.channel.tenant_id,
                "channel_id": self.channel.id,
                "subject": subject,
                "operation": ex.op,
                "method": ex.method,
                "url": ex.url,
                "status": ex.status,
                "request": ex.request_body,
                "response": ex.response_body,
                "at": now,
            }
            for ex in self.exchanges
        ]
        if rows:
            conn.execute(sa.insert(exchanges), rows)


@dataclass
class Hub:
    engine: Engine
    clock: FakeClock
    tenant_id: int
    channel: Channel
    fake: FakeMarketplace
    worker: Worker

    def enqueue(self, kind: str, payload: dict[str, Any] | None = None, flow: str = "offers") -> int:
        with self.engine.begin() as conn:
            spec = JobSpec(self.tenant_id, kind, payload or {}, channel_id=self.channel.id, flow=flow)
            return enqueue(conn, spec, now=self.clock()).job_id

    def run(self, *, step: float = 0.0, rounds: int = 20) -> None:
        for _ in range(rounds):
            self.worker.run(burst=True)
            if not step:
                return
            self.clock.advance(step)

    def jobs(self, kind: str) -> list[Any]:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id)).all()

    def offers(self) -> dict[str, tuple[str, str | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(products.c.sku, offer_bindings.c.status, offer_bindings.c.last_error).join(
                    products, products.c.id == offer_bindings.c.product_id
                )
            ).all()
        return {r.sku: (r.status, r.last_error) for r in rows}


def _handlers(fake: FakeMarketplace) -> dict[str, Callable[[JobContext, Channel], Any]]:
    def session(_ctx: JobContext, channel: Channel) -> contextlib.nullcontext[FakeSession]:
        return contextlib.nullcontext(FakeSession(fake, channel))

    return {
        "offers.delta": lambda ctx, ch: offer_publishing.push_delta(ctx, ch, session),
        "offers.full": lambda ctx, ch: offer_publishing.push_full(ctx, ch, session),
        "offers.import_check": lambda ctx, ch: offer_publishing.check_import(ctx, ch, session),
        "fulfillments.ship": lambda ctx, ch: fulfilment_push.ship(ctx, ch, session),
        "fulfillments.cancel": lambda ctx, ch: fulfilment_push.cancel(ctx, ch, session),
        "fulfillments.refund": lambda ctx, ch: fulfilment_push.refund(ctx, ch, session),
        "fulfillments.label": lambda ctx, ch: fulfilment_push.upload_label(ctx, ch, session),
    }


def build_hub(
    engine: Engine,
    now: datetime,
    capabilities: Capabilities,
    *,
    count: int = 5,
    settings: dict[str, Any] | None = None,
) -> Hub:
    clock = FakeClock(now)
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        for i in range(count):
            conn.execute(
                sa.insert(products).values(
                    tenant_id=tenant.id,
                    sku=f"SKU-{i}",
                    title=f"Product {i}",
                    price=None if i == 0 else Decimal("10.00") + i,
                    currency=None if i == 0 else "EUR",
                    quantity=3,
                    labels=[],
                    attributes={"colour": "red"},
                    content_hash=f"h{i}",
                    created_at=now,
                    updated_at=now,
                )
            )
        channel = create_channel(
            conn,
            tenant_id=tenant.id,
            name="fake-shop",
            connector="fake",
            settings=settings or {},
            credentials=None,
            keyring=KeyRing([generate_key()]),
            now=now,
        )
    fake = FakeMarketplace(capabilities)
    registry = JobRegistry()
    for kind, handler in _handlers(fake).items():

        def handle(ctx: JobContext, handler: Callable[[JobContext, Channel], Any] = handler) -> Any:
            with ctx.engine.connect() as conn:
                current = get_channel_by_id(conn, ctx.job.tenant_id, ctx.job.channel_id or 0)
            return handler(ctx, current)

        registry.register(kind, handle)
    worker = Worker(
        engine,
        registry,
        clock,
        WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
        services={},
        name="port-services",
        sleep=clock.advance,
    )
    return Hub(engine, clock, tenant.id, channel, fake, worker)


def caps(**kwargs: Any) -> Capabilities:
    values: dict[str, Any] = {"operations": EVERYTHING, "asynchronous_offer_imports": True}
    values.update(kwargs)
    return Capabilities(**values)


# --- offers ----------------------------------------------------------------------------------------


def test_full_sync_then_import_check_sets_each_offer_outcome(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps())
    hub.fake.rejects["SKU-2"] = "unknown product"
    hub.fake.refuses["SKU-3"] = "currency differs from the shop's"
    hub.fake.processing = True
    hub.enqueue("offers.full")
    hub.run()
    [check] = hub.jobs("offers.import_check")
    assert check.payload["import_id"] == "imp-1" and check.run_at.replace(tzinfo=None) == (
        now + timedelta(seconds=30)
    ).replace(tzinfo=None)  # the connector said when to look first
    statuses = hub.offers()
    assert statuses["SKU-0"] == ("blocked", "no price")  # the hub's own check: never sent
    assert statuses["SKU-3"] == ("blocked", "currency differs from the shop's")  # refused at submission
    assert {statuses[s][0] for s in ("SKU-1", "SKU-2", "SKU-4")} == {"submitted"}
    assert [o.sku for o in hub.fake.imports["imp-1"]] == ["SKU-1", "SKU-2", "SKU-4"]
    sent = hub.fake.imports["imp-1"][0]
    assert sent.price == Decimal("11.00") and sent.currency == "EUR" and sent.attributes["colour"] == "red"

    hub.clock.advance(30)
    hub.run()  # still processing: retried after the connector's retry_after
    assert hub.jobs("offers.import_check")[0].state == "queued"
    hub.fake.processing = False
    hub.run(step=10)
    statuses = hub.offers()
    assert statuses["SKU-1"] == ("published", None) and statuses["SKU-4"] == ("published", None)
    assert statuses["SKU-2"] == ("error", "unknown product")
    assert hub.jobs("offers.import_check")[0].state == "succeeded"


def test_a_pending_imports_summary_is_kept_in_each_offers_last_request(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps())
    hub.fake.note = "imp-1 submitted (full sync of 4 offer(s): one feed per 25,000 offers)"
    hub.enqueue("offers.full")
    hub.run()
    with engine.connect() as conn:
        requests = dict(
            conn.execute(
                sa.select(products.c.sku, offer_bindings.c.last_request).join(
                    products, products.c.id == offer_bindings.c.product_id
                )
            ).all()
        )
    for sku in ("SKU-1", "SKU-2", "SKU-3", "SKU-4"):
        assert requests[sku] == f"full import imp-1: {hub.fake.note}"
    assert requests["SKU-0"] is None  # blocked by the hub, never sent
    hub.fake.note = None  # a later delta without a summary says only what it was
    with engine.begin() as conn:
        conn.execute(sa.update(offer_bindings).values(dirty=True, change_seq=offer_bindings.c.change_seq + 1))
    hub.enqueue("offers.delta")
    hub.run()
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(offer_bindings.c.last_request)).scalars()) == {
            "delta import imp-2",
            None,
        }


def test_deltas_are_chunked_by_the_declared_batch_size(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(max_batch={Operation.SUBMIT_OFFERS_DELTA: 2}), count=6)
    hub.fake.refuses["SKU-0"] = "unused"  # SKU-0 has no price: the hub blocks it before the connector
    hub.enqueue("offers.full")
    hub.run(step=31)
    hub.fake.calls.clear()
    with engine.begin() as conn:  # every offer changes
        conn.execute(sa.update(offer_bindings).values(dirty=True, change_seq=offer_bindings.c.change_seq + 1))
    hub.enqueue("offers.delta")
    hub.run(step=31)
    deltas = [o for ref, o in hub.fake.imports.items() if ref != "imp-1"]
    # Two dirty offers per job: SKU-0 (no price: blocked, never sent) and SKU-1, then two by two.
    assert [[o.sku for o in d] for d in deltas] == [["SKU-1"], ["SKU-2", "SKU-3"], ["SKU-4", "SKU-5"]]
    assert hub.fake.calls.count("submit_offers_delta") == 3
    assert {s for s, _ in hub.offers().values()} == {"published", "blocked"}


def test_a_full_sync_is_split_by_the_declared_batch_size(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(max_batch={Operation.SUBMIT_OFFERS_FULL: 3}), count=8)
    hub.enqueue("offers.full")
    hub.run()
    assert [len(o) for o in hub.fake.imports.values()] == [3, 3, 1]
    assert len(hub.jobs("offers.import_check")) == 3


def test_a_full_sync_retried_midway_resumes_with_the_offers_not_sent(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(max_batch={Operation.SUBMIT_OFFERS_FULL: 3}), count=10)
    hub.fake.fail_submission = {3}  # the third call meets a spent budget: the job is retried
    hub.enqueue("offers.full")
    hub.run()
    [job] = hub.jobs("offers.full")
    assert job.state == "queued" and [len(o) for o in hub.fake.imports.values()] == [3, 3]
    assert {s for sku, (s, _) in hub.offers().items() if sku in {"SKU-1", "SKU-6"}} == {"submitted"}
    hub.clock.advance(10)
    hub.run()
    [job] = hub.jobs("offers.full")
    assert job.state == "succeeded" and job.result["sent"] == 9 and job.result["blocked"] == 1
    sent = [o.sku for offers in hub.fake.imports.values() for o in offers]
    assert sent == [f"SKU-{i}" for i in range(1, 10)]  # each offer once, none sent again
    with engine.connect() as conn:
        subjects = conn.execute(sa.select(exchanges.c.subject).order_by(exchanges.c.id)).scalars().all()
    assert subjects == ["import:imp-1", "import:imp-2", "import:imp-3"]  # each submission's own exchange
    assert len(hub.jobs("offers.import_check")) == 3


def test_a_full_sync_reports_its_upload_submission_by_submission(engine: Engine, now: datetime) -> None:
    # The progress bar of `channel sync --full --wait` and the demo: it moves as each submission goes
    # (not only once the last one did), and a retried attempt starts from what the first one handled.
    hub = build_hub(engine, now, caps(max_batch={Operation.SUBMIT_OFFERS_FULL: 3}), count=10)
    hub.fake.fail_submission = {3}  # the third call meets a spent budget: the job is retried
    seen: list[tuple[int, int, int]] = []  # (offers handled, of all, submissions made by then)

    def report(step: OfferSyncProgress) -> None:
        if step.stage == "sent":
            seen.append((step.done, step.total, hub.fake.submissions))

    hub.worker.services[OFFER_SYNC_PROGRESS] = report
    hub.enqueue("offers.full")
    hub.run()
    # SKU-0 has no price (blocked by the hub, handled at once); then 3 offers per submission.
    assert seen == [(1, 10, 0), (4, 10, 1), (7, 10, 2)]
    hub.clock.advance(10)
    hub.run()
    assert seen[3:] == [(7, 10, 3), (10, 10, 4)]
    [job] = hub.jobs("offers.full")
    assert job.state == "succeeded"


def test_a_synchronous_import_applies_its_result_at_once(engine: Engine, now: datetime) -> None:
    hub = build_hub(
        engine, now, caps(asynchronous_offer_imports=False, operations=EVERYTHING - {Operation.READ_IMPORT})
    )
    hub.fake.rejects["SKU-1"] = "bad"
    hub.enqueue("offers.full")
    hub.run()
    assert hub.jobs("offers.import_check") == [] and "read_import" not in hub.fake.calls
    statuses = hub.offers()
    assert statuses["SKU-1"] == ("error", "bad") and statuses["SKU-2"] == ("published", None)


def test_an_undeclared_offer_operation_is_never_called(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(operations=frozenset({Operation.SUBMIT_OFFERS_DELTA})))
    hub.enqueue("offers.full")
    hub.run()
    [job] = hub.jobs("offers.full")
    assert job.state == "dead" and "does not support submit_offers_full" in job.last_error
    assert hub.fake.calls == []


# --- fulfilment ------------------------------------------------------------------------------------


def _order(hub: Hub, mid: str = "M-1", **kwargs: Any) -> int:
    return make_order(hub.engine, hub.tenant_id, hub.channel.id, mid, hub.clock(), **kwargs)


def _history(hub: Hub, order_id: int) -> list[tuple[str, str | None]]:
    with hub.engine.connect() as conn:
        rows = conn.execute(
            sa.select(order_history.c.state, order_history.c.note)
            .where(order_history.c.order_id == order_id)
            .order_by(order_history.c.id)
        ).all()
    return [(r.state, r.note) for r in rows]


def test_ship_converts_the_carrier_and_caches_the_marketplace_codes(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(), count=0, settings={"carrier_map": {"UPS Parcel": "UPS"}})
    first, second = _order(hub, "M-1"), _order(hub, "M-2")
    hub.enqueue(
        "fulfillments.ship",
        {"order_id": first, "carrier": "ups parcel", "tracking_number": "1Z"},
        "fulfillments",
    )
    hub.enqueue(
        "fulfillments.ship",
        {"order_id": second, "carrier": "Bob's Vans", "tracking_url": "https://bv.example/1"},
        "fulfillments",
    )
    hub.run()
    known, unknown = hub.fake.shipments
    assert (known.order_id, known.carrier_code, known.carrier_name, known.lines) == ("M-1", "UPS", None, None)
    assert known.tracking_number == "1Z"
    assert (unknown.carrier_code, unknown.carrier_name) == (None, "Bob's Vans")  # never a wrong code
    assert unknown.tracking_url == "https://bv.example/1"
    assert hub.fake.calls.count("carrier_codes") == 1  # cached for the channel
    assert ("SHIPMENT_SENT", "shipment confirmed, tracking 1Z") in _history(hub, first)


def test_partial_shipment_only_where_declared(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(hints={"partial_shipments": "not on this plan"}), count=0)
    order = _order(hub)
    hub.enqueue(
        "fulfillments.ship", {"order_id": order, "lines": [{"sku": "SKU-1", "quantity": 1}]}, "fulfillments"
    )
    hub.run()
    [job] = hub.jobs("fulfillments.ship")
    assert job.state == "dead" and "partial shipment of M-1 is not supported by fake" in job.last_error
    assert "not on this plan" in job.last_error and hub.fake.shipments == []

    hub.fake.capabilities = caps(partial_shipments=True)
    hub.enqueue(
        "fulfillments.ship", {"order_id": order, "lines": [{"sku": "SKU-1", "quantity": 1}]}, "fulfillments"
    )
    hub.run()
    [shipment] = hub.fake.shipments
    assert [(line.line_id, line.quantity) for line in shipment.lines or ()] == [("M-1-L1", 1)]


def test_an_order_already_shipped_gets_its_tracking_only(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(), count=0)
    order = _order(hub, state=MiraklOrderState.SHIPPED)
    hub.enqueue(
        "fulfillments.ship", {"order_id": order, "carrier": "DHL", "tracking_number": "D1"}, "fulfillments"
    )
    hub.run()
    [shipment] = hub.fake.shipments
    assert shipment.lines == () and shipment.carrier_code == "DHL"


def test_line_cancellation_only_where_declared_and_refunds_carry_amounts(
    engine: Engine, now: datetime
) -> None:
    hub = build_hub(engine, now, caps(), count=0)
    order = _order(hub)
    hub.enqueue("fulfillments.cancel", {"order_id": order, "lines": [{"sku": "SKU-2"}]}, "fulfillments")
    hub.enqueue(
        "fulfillments.refund",
        {"order_id": order, "reason_code": "DAMAGED", "lines": [{"sku": "SKU-1", "quantity": 1}]},
        "fulfillments",
    )
    hub.run()
    [cancel] = hub.jobs("fulfillments.cancel")
    assert cancel.state == "dead" and "line-level cancellation is not supported by fake" in cancel.last_error
    assert hub.fake.cancellations == []
    [refund] = hub.fake.refunds
    [line] = refund.lines
    assert (refund.order_id, refund.reason) == ("M-1", "DAMAGED")
    assert (line.line_id, line.quantity, line.amount, line.currency) == ("M-1-L1", 1, Decimal("19.90"), "EUR")

    hub.fake.capabilities = caps(line_level_cancellation=True)
    hub.enqueue("fulfillments.cancel", {"order_id": order, "lines": [{"sku": "SKU-2"}]}, "fulfillments")
    hub.run()
    [cancellation] = hub.fake.cancellations
    assert [(ln.line_id, ln.quantity) for ln in cancellation.lines or ()] == [("M-1-L2", 1)]


def test_undeclared_fulfilment_operations_are_refused_without_a_call(engine: Engine, now: datetime) -> None:
    hub = build_hub(engine, now, caps(operations=frozenset({Operation.SHIP})), count=0)
    order = _order(hub)
    hub.enqueue("fulfillments.cancel", {"order_id": order}, "fulfillments")
    hub.run()
    [job] = hub.jobs("fulfillments.cancel")
    assert job.state == "dead" and "cancellations are not supported by fake" in job.last_error
    assert hub.fake.calls == []


@pytest.mark.parametrize("retried", [False, True])
def test_label_goes_once_and_its_bytes_are_never_stored(engine: Engine, now: datetime, retried: bool) -> None:
    hub = build_hub(engine, now, caps(), count=0)
    order = _order(hub)
    with engine.begin() as conn:
        stored, _ = store_label(
            conn,
            tenant_id=hub.tenant_id,
            order_id=order,
            label=PreparedLabel(tiny_pdf(), LabelFormat.PDF),
            now=now,
        )
    if retried:  # an earlier attempt uploaded it but died before recording so
        hub.fake.documents.append(Document("M-1", stored.filename, b"", "application/pdf", "SHIPPING_LABEL"))
        with engine.begin() as conn:
            conn.execute(sa.update(jobs).values(attempts=1))
    job = hub.enqueue(
        "fulfillments.label",
        {"order_id": order, "document_id": stored.id, "type_code": "SHIPPING_LABEL"},
        "fulfillments",
    )
    if retried:
        with engine.begin() as conn:
            conn.execute(sa.update(jobs).where(jobs.c.id == job).values(attempts=1))
    hub.run()
    assert len(hub.fake.documents) == 1
    with engine.connect() as conn:
        document = get_document(conn, hub.tenant_id, order, stored.id)
        requests = conn.execute(sa.select(exchanges.c.request)).scalars().all()
    assert document.status == "sent"
    state, note = _history(hub, order)[-1]
    assert state == "LABEL_SENT" and ("already there" in str(note)) is retried
    if retried:
        assert "upload_document" not in hub.fake.calls and requests == []
    else:
        assert hub.fake.calls == ["upload_document"] and "document_present" not in hub.fake.calls
        assert requests == [
            f"multipart upload: {stored.filename} ({len(stored.content)} bytes, SHIPPING_LABEL)"
        ]
