"""Merchant-side updates against a real database (SQLite and PostgreSQL): idempotency, statuses
(queued / not_supported / skipped), the origin channel only, split shipments, SKU mapping, publishing
rules, customer-driven cancellations — and, end to end, a shipment reaching the Mirakl sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from helpers import make_tenant
from mirakl_world import SHOP_ID, World, build_world
from order_updates_support import make_order
from tradelane.connectors.base import Capabilities, Operation
from tradelane.connectors.mirakl.mapping import MiraklOrderState
from tradelane.domain.channels import Flow
from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.domain.order_updates import (
    UpdateKind,
    UpdateLine,
    UpdateStatus,
    effective_status,
    refusal_reason,
)
from tradelane.persistence.tables import jobs, merchant_systems, order_updates, returns, sku_mappings
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import order_updates as updates
from tradelane.services import rules
from tradelane.services.channels import Channel, create_channel, get_channel, set_enabled
from tradelane.services.order_updates import unsupported_reason
from tradelane.services.orders import list_orders
from tradelane.sync import jobs as jobstore


@dataclass
class Shop:
    engine: Engine
    tenant_id: int
    mk: Channel  # Mirakl, multi-shipment on
    single: Channel  # Mirakl, multi-shipment off
    now: datetime

    def order(self, mid: str, channel: Channel | None = None, **kwargs: object) -> int:
        return make_order(self.engine, self.tenant_id, (channel or self.mk).id, mid, self.now, **kwargs)


def _channel(
    engine: Engine, tenant_id: int, name: str, now: datetime, connector: str = "mirakl", **settings: object
) -> Channel:
    with engine.begin() as conn:
        return create_channel(
            conn,
            tenant_id=tenant_id,
            name=name,
            connector=connector,
            # A Mirakl channel's capabilities are read from its settings, which name the host.
            settings={"hostname": f"{name}.example.com", **settings}
            if connector == "mirakl"
            else dict(settings),
            credentials=None,
            keyring=KeyRing([generate_key()]),
            now=now,
        )


@pytest.fixture
def shop(engine: Engine, now: datetime) -> Shop:
    tenant, _ = make_tenant(engine, "acme", now)
    return Shop(
        engine,
        tenant.id,
        _channel(engine, tenant.id, "mk", now, multi_shipment=True),
        _channel(engine, tenant.id, "single", now, multi_shipment=False),
        now,
    )


def _jobs(engine: Engine, kind: str | None = None) -> list[sa.Row]:
    stmt = sa.select(jobs).order_by(jobs.c.id)
    if kind:
        stmt = stmt.where(jobs.c.kind == kind)
    with engine.connect() as conn:
        return list(conn.execute(stmt).all())


def _count_updates(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(order_updates)).scalar_one())


def _ship(
    shop: Shop,
    ref: str,
    *,
    lines: list[UpdateLine] | None = None,
    external_id: str | None = None,
    tracking: str = "1Z999",
    merchant_system_id: int | None = None,
) -> updates.UpdateResult:
    with shop.engine.begin() as conn:
        return updates.record_shipment(
            conn,
            tenant_id=shop.tenant_id,
            order_ref=ref,
            carrier="UPS",
            tracking_number=tracking,
            tracking_url="https://track.example/1Z999",
            lines=lines,
            external_id=external_id,
            merchant_system_id=merchant_system_id,
            now=shop.now,
        )


# --- pure parts ------------------------------------------------------------------------------------


def test_unsupported_reasons_name_the_connector():
    assert unsupported_reason("mirakl", {}, UpdateKind.SHIPMENT) is None
    assert unsupported_reason("mirakl", {}, UpdateKind.CANCELLATION) is None
    assert "line-level cancellation is not supported by mirakl" in str(
        unsupported_reason("mirakl", {}, UpdateKind.CANCELLATION, line_level=True)
    )
    assert "not supported by mirakl" in str(unsupported_reason("mirakl", {}, UpdateKind.RETURN))
    assert "multi_shipment" in str(unsupported_reason("mirakl", {}, UpdateKind.SHIPMENT, line_level=True))
    assert (
        unsupported_reason(
            "mirakl",
            {"hostname": "shop.example.com", "multi_shipment": True},
            UpdateKind.SHIPMENT,
            line_level=True,
        )
        is None
    )
    assert unsupported_reason("ebay", {}, UpdateKind.LABEL) == "shipping labels are not supported by ebay"


def test_refusals_follow_the_declared_capabilities():
    bare = Capabilities(operations=frozenset({Operation.SHIP}), hints={"refund": "no refund API"})
    assert refusal_reason("x", bare, UpdateKind.SHIPMENT) is None
    assert refusal_reason("x", bare, UpdateKind.REFUND) == "refunds are not supported by x (no refund API)"
    assert refusal_reason("x", bare, UpdateKind.LABEL) == "shipping labels are not supported by x"
    assert (
        refusal_reason("x", bare, UpdateKind.RETURN)
        == "return received/refunded updates are not supported by x"
    )
    assert "partial shipments are not supported by x" in str(
        refusal_reason("x", bare, UpdateKind.SHIPMENT, line_level=True)
    )
    full = Capabilities(
        operations=frozenset({Operation.SHIP, Operation.CANCEL, Operation.UPLOAD_DOCUMENT}),
        partial_shipments=True,
        line_level_cancellation=True,
        returns_push=True,
    )
    assert refusal_reason("x", full, UpdateKind.SHIPMENT, line_level=True) is None
    assert refusal_reason("x", full, UpdateKind.CANCELLATION, line_level=True) is None
    assert refusal_reason("x", full, UpdateKind.RETURN) is None
    assert (
        refusal_reason("x", full, UpdateKind.LABEL) == "shipping labels are not supported by x"
    )  # labels False
    assert refusal_reason("x", None, UpdateKind.SHIPMENT) == "shipments are not supported by x"


def test_effective_status_follows_the_job():
    assert effective_status("queued", "d", None, None, None) == ("queued", "d")
    assert effective_status("queued", "d", "running", None, None) == ("queued", "d")
    assert effective_status("queued", "d", "succeeded", None, {"note": "ok"}) == ("sent", "d")
    assert effective_status("queued", "d", "succeeded", None, {"skipped": "tpm"}) == ("skipped", "tpm")
    assert effective_status("queued", "d", "dead", "OR24 refused", None) == ("failed", "OR24 refused")
    assert effective_status("not_supported", "x", None, None, None) == ("not_supported", "x")


# --- shipments -------------------------------------------------------------------------------------


def test_shipment_is_queued_for_the_origin_channel_once(shop: Shop):
    order_id = shop.order("M-1")
    first = _ship(shop, "mk:M-1", external_id="oms-ship-1")
    assert first.created and first.status is UpdateStatus.QUEUED
    [job] = _jobs(shop.engine)
    assert (job.kind, job.channel_id, job.flow) == ("fulfillments.ship", shop.mk.id, "fulfillments")
    assert job.idempotency_key == f"fulfillments.ship:{first.id}"
    assert job.payload["order_id"] == order_id and job.payload["tracking_number"] == "1Z999"
    assert job.payload["carrier"] == "UPS" and "lines" not in job.payload
    # The OMS retries (by id, and by numeric ref): nothing new.
    again = _ship(shop, str(order_id), external_id="oms-ship-1")
    assert (again.created, again.id, again.job_id) == (False, first.id, first.job_id)
    assert _count_updates(shop.engine) == 1 and len(_jobs(shop.engine)) == 1
    # Same external id, different content: refused, nothing stored.
    with pytest.raises(ConflictError, match="different content"):
        _ship(shop, "mk:M-1", external_id="oms-ship-1", tracking="OTHER")
    assert _count_updates(shop.engine) == 1
    with shop.engine.connect() as conn:
        detail = updates.order_detail(conn, shop.tenant_id, order_id)
    assert [h["state"] for h in detail["history"]][-1] == "SHIPMENT_RECORDED"
    assert [(u["kind"], u["status"]) for u in detail["updates"]] == [("shipment", "queued")]


def test_update_without_external_id_is_deduplicated_by_content(shop: Shop):
    shop.order("M-1")
    a = _ship(shop, "mk:M-1")
    b = _ship(shop, "mk:M-1")
    c = _ship(shop, "mk:M-1", tracking="2ND-PARCEL")
    assert a.external_id.startswith("sha256:") and a.id == b.id and not b.created
    assert c.created and c.id != a.id
    assert len(_jobs(shop.engine, "fulfillments.ship")) == 2


def test_split_shipments_and_overshipping(shop: Shop):
    shop.order("M-1")  # SKU-1 × 2, SKU-2 × 1
    first = _ship(shop, "mk:M-1", lines=[UpdateLine(1, "SKU-1")], external_id="p1")
    second = _ship(shop, "mk:M-1", lines=[UpdateLine(1, "SKU-1"), UpdateLine(1, "SKU-2")], external_id="p2")
    assert first.status is UpdateStatus.QUEUED and second.status is UpdateStatus.QUEUED
    payloads = [j.payload["lines"] for j in _jobs(shop.engine, "fulfillments.ship")]
    assert payloads == [
        [{"sku": "SKU-1", "line_id": "M-1-L1", "quantity": 1}],
        [
            {"sku": "SKU-1", "line_id": "M-1-L1", "quantity": 1},
            {"sku": "SKU-2", "line_id": "M-1-L2", "quantity": 1},
        ],
    ]
    with pytest.raises(ConflictError, match="2 of 2 already shipped"):
        _ship(shop, "mk:M-1", lines=[UpdateLine(1, "SKU-1")], external_id="p3")
    # A retry of an earlier split shipment is still a no-op, not an overshipment.
    assert _ship(shop, "mk:M-1", lines=[UpdateLine(1, "SKU-1")], external_id="p1").id == first.id
    with pytest.raises(ValidationError, match="more than the line holds"):
        _ship(shop, "mk:M-1", lines=[UpdateLine(3, "SKU-1")], external_id="p4")
    with pytest.raises(ValidationError, match="has no SKU 'NOPE'"):
        _ship(shop, "mk:M-1", lines=[UpdateLine(1, "NOPE")])


def test_partial_shipment_without_multi_shipment_is_not_supported(shop: Shop):
    shop.order("S-1", shop.single)
    partial = _ship(shop, "single:S-1", lines=[UpdateLine(1, "SKU-1")])
    assert partial.status is UpdateStatus.NOT_SUPPORTED
    assert "partial shipments are not supported by mirakl" in str(partial.detail)
    # Naming every line in full is a full shipment, which this channel can do.
    full = _ship(shop, "single:S-1", lines=[UpdateLine(2, "SKU-1"), UpdateLine(1, line_id="S-1-L2")])
    assert full.status is UpdateStatus.QUEUED and "lines" not in full.payload
    assert [j.payload["update_id"] for j in _jobs(shop.engine)] == [full.id]


def test_refused_lines_are_never_shipped_and_do_not_make_a_shipment_partial(shop: Shop):
    shop.order("X-1", shop.single, line_states={"L2": "REFUSED"})
    with pytest.raises(ValidationError, match="is REFUSED on the marketplace"):
        _ship(shop, "single:X-1", lines=[UpdateLine(1, "SKU-2")])
    # Every live line in full: a full shipment (OR23/OR24), fine without multi-shipment.
    full = _ship(shop, "single:X-1", lines=[UpdateLine(2, "SKU-1")])
    assert full.status is UpdateStatus.QUEUED and "lines" not in full.payload
    [job] = _jobs(shop.engine)
    assert "lines" not in job.payload


def test_lines_match_merchant_offer_and_catalog_skus(shop: Shop):
    shop.order("M-1")
    with shop.engine.begin() as conn:
        conn.execute(
            sa.insert(sku_mappings),
            [
                {
                    "tenant_id": shop.tenant_id,
                    "channel_id": None,
                    "marketplace_sku": "SKU-1",
                    "merchant_sku": "ERP-1",
                    "created_at": shop.now,
                },
                {
                    "tenant_id": shop.tenant_id,
                    "channel_id": shop.mk.id,
                    "marketplace_sku": "SKU-2",
                    "merchant_sku": "ERP-2",
                    "created_at": shop.now,
                },
            ],
        )
    by_mapping = _ship(shop, "mk:M-1", lines=[UpdateLine(1, "ERP-1"), UpdateLine(1, "ERP-2")])
    assert [(ln["sku"], ln["line_id"]) for ln in by_mapping.payload["lines"]] == [
        ("SKU-1", "M-1-L1"),
        ("SKU-2", "M-1-L2"),
    ]
    by_offer = _ship(shop, "mk:M-1", lines=[UpdateLine(1, "OFFER-SKU-1")], tracking="B")
    assert by_offer.payload["lines"] == [{"sku": "SKU-1", "line_id": "M-1-L1", "quantity": 1}]


def test_third_party_managed_orders_never_send_anything(shop: Shop):
    shop.order("T-1", third_party_managed=True)
    shop.order("T-2")
    with shop.engine.begin() as conn:
        set_enabled(conn, get_channel(conn, shop.tenant_id, "mk"), Flow.FULFILLMENTS, False)
    for ref in ("mk:T-1", "mk:T-2"):
        result = _ship(shop, ref)
        assert result.status is UpdateStatus.SKIPPED and "third party managed" in str(result.detail)
        with shop.engine.begin() as conn:
            cancel = updates.record_cancellation(conn, tenant_id=shop.tenant_id, order_ref=ref, now=shop.now)
        assert cancel.status is UpdateStatus.SKIPPED
    assert _jobs(shop.engine) == []


def test_unknown_connector_is_not_supported_and_other_tenants_orders_are_invisible(shop: Shop, now):
    other = _channel(shop.engine, shop.tenant_id, "plain", now, connector="test")
    shop.order("P-1", other)
    result = _ship(shop, "plain:P-1")
    assert (result.status, result.detail) == (
        UpdateStatus.NOT_SUPPORTED,
        "shipments are not supported by test",
    )
    stranger, _ = make_tenant(shop.engine, "globex", now)
    with shop.engine.begin() as conn:
        for ref in ("plain:P-1", str(result.order_id), "²", "99999999999999999999999", "", "mk"):
            with pytest.raises(NotFoundError):
                updates.record_shipment(
                    conn,
                    tenant_id=stranger.id if ref.startswith("plain") or ref.isdigit() else shop.tenant_id,
                    order_ref=ref,
                    carrier=None,
                    tracking_number=None,
                    tracking_url=None,
                    lines=None,
                    external_id=None,
                    now=now,
                )
    assert _jobs(shop.engine) == []


def test_bad_inputs_are_refused_before_anything_is_stored(shop: Shop):
    shop.order("M-1")
    with shop.engine.begin() as conn, pytest.raises(ValidationError, match="http"):
        updates.record_shipment(
            conn,
            tenant_id=shop.tenant_id,
            order_ref="mk:M-1",
            carrier=None,
            tracking_number="1",
            tracking_url="javascript:alert(1)",
            lines=None,
            external_id=None,
            now=shop.now,
        )
    with pytest.raises(ValidationError, match="quantity"):
        _ship(shop, "mk:M-1", lines=[UpdateLine(0, "SKU-1")])
    with pytest.raises(ValidationError, match="printable"):
        _ship(shop, "mk:M-1", external_id="a\x00b")
    assert _count_updates(shop.engine) == 0


# --- publishing rules ------------------------------------------------------------------------------


def test_publishing_rule_keeps_an_update_away_and_updates_only_go_to_the_origin(shop: Shop):
    with shop.engine.begin() as conn:
        oms = conn.execute(
            sa.insert(merchant_systems)
            .values(tenant_id=shop.tenant_id, name="oms", kind="http", settings={}, created_at=shop.now)
            .returning(merchant_systems.c.id)
        ).scalar_one()
        rules.add_publish_rule(
            conn,
            tenant_id=shop.tenant_id,
            merchant_system_id=oms,
            field="attributes.tags",
            op="contains_text",
            value="mk",
            then=True,
            otherwise=False,
            now=shop.now,
        )
    shop.order("R-1", attributes={"tags": "vip,mk"})
    shop.order("R-2", shop.single, attributes={"tags": "vip"})
    allowed = _ship(shop, "mk:R-1", merchant_system_id=oms)
    refused = _ship(shop, "single:R-2", merchant_system_id=oms)
    assert allowed.status is UpdateStatus.QUEUED and "matched: publish" in str(allowed.detail)
    assert refused.status is UpdateStatus.SKIPPED
    assert "not published to single" in str(refused.detail) and "do not publish" in str(refused.detail)
    [job] = _jobs(shop.engine)
    assert job.channel_id == shop.mk.id and job.payload["update_id"] == allowed.id


# --- cancellations, refunds, returns ----------------------------------------------------------------


def _cancel(shop: Shop, ref: str, lines: list[UpdateLine] | None = None) -> updates.UpdateResult:
    with shop.engine.begin() as conn:
        return updates.record_cancellation(
            conn, tenant_id=shop.tenant_id, order_ref=ref, lines=lines, reason="out of stock", now=shop.now
        )


def test_cancellations_whole_line_level_and_customer_driven(shop: Shop):
    shop.order("C-1")
    line_level = _cancel(shop, "mk:C-1", [UpdateLine(1, "SKU-1")])
    assert line_level.status is UpdateStatus.NOT_SUPPORTED
    assert "line-level cancellation is not supported by mirakl" in str(line_level.detail)
    every_line = _cancel(shop, "mk:C-1", [UpdateLine(2, "SKU-1"), UpdateLine(1, "SKU-2")])
    whole = _cancel(shop, "mk:C-1")
    assert every_line.status is UpdateStatus.QUEUED and every_line.id == whole.id and not whole.created
    [job] = _jobs(shop.engine)
    assert (
        job.kind == "fulfillments.cancel"
        and "lines" not in job.payload
        and job.payload["reason"] == "out of stock"
    )
    # A customer cancels on the marketplace: visible on the order, and a merchant cancel is a no-op.
    order_id = shop.order("C-2")
    make_order(
        shop.engine,
        shop.tenant_id,
        shop.mk.id,
        "C-2",
        shop.now,
        state=MiraklOrderState.CANCELED,
        updated=timedelta(minutes=5),
    )
    with shop.engine.connect() as conn:
        detail = updates.order_detail(conn, shop.tenant_id, order_id)
    assert detail["state"] == "cancelled"
    assert detail["cancellation"] == {
        "source": "marketplace",
        "whole_order": True,
        "at": shop.now,
        "lines": ["C-2-L1", "C-2-L2"],
    }
    late = _cancel(shop, "mk:C-2")
    assert late.status is UpdateStatus.SKIPPED and "already cancelled" in str(late.detail)
    with pytest.raises(ConflictError, match="nothing to ship"):
        _ship(shop, "mk:C-2")
    assert len(_jobs(shop.engine)) == 1


def test_refunds_carry_reason_code_and_exact_amounts(shop: Shop):
    shop.order("F-1")
    with shop.engine.begin() as conn:
        result = updates.record_refund(
            conn,
            tenant_id=shop.tenant_id,
            order_ref="mk:F-1",
            reason_code="DAMAGED",
            lines=[UpdateLine(1, "SKU-1", amount=Decimal("10.10")), UpdateLine(1, "SKU-2")],
            now=shop.now,
        )
        with pytest.raises(ValidationError, match="exceeds"):
            updates.record_refund(
                conn,
                tenant_id=shop.tenant_id,
                order_ref="mk:F-1",
                reason_code="X",
                lines=[UpdateLine(1, "SKU-2", amount=Decimal("5.01"))],
                now=shop.now,
            )
        with pytest.raises(ValidationError, match="reason code"):
            updates.record_refund(
                conn,
                tenant_id=shop.tenant_id,
                order_ref="mk:F-1",
                reason_code=" ",
                lines=[UpdateLine(1, "SKU-2")],
                now=shop.now,
            )
    assert result.status is UpdateStatus.QUEUED
    [job] = _jobs(shop.engine)
    assert job.kind == "fulfillments.refund" and job.payload["reason_code"] == "DAMAGED"
    assert job.payload["lines"] == [
        {"sku": "SKU-1", "line_id": "F-1-L1", "quantity": 1, "amount": "10.10"},
        {"sku": "SKU-2", "line_id": "F-1-L2", "quantity": 1},
    ]


def test_returns_are_recorded_and_not_supported_on_mirakl(shop: Shop):
    order_id = shop.order("R-1")
    with shop.engine.begin() as conn:
        conn.execute(
            sa.insert(returns).values(
                tenant_id=shop.tenant_id,
                channel_id=shop.mk.id,
                order_id=order_id,
                marketplace_return_id="RET-9",
                marketplace_order_id="R-1",
                state="WAITING_RECEPTION",
                rma="RMA-1",
                lines=[{"order_line_id": "R-1-L1", "quantity": 1}],
                raw={},
                marketplace_updated_at=shop.now,
                created_at=shop.now,
                updated_at=shop.now,
            )
        )
        received = updates.record_return(
            conn,
            tenant_id=shop.tenant_id,
            order_ref="mk:R-1",
            lines=[UpdateLine(1, "SKU-1")],
            status=updates.ReturnStatus.RECEIVED,
            marketplace_return_id="RET-9",
            now=shop.now,
        )
        refunded = updates.record_return(
            conn,
            tenant_id=shop.tenant_id,
            order_ref="mk:R-1",
            lines=[UpdateLine(1, "SKU-1")],
            status=updates.ReturnStatus.REFUNDED,
            marketplace_return_id="RET-9",
            now=shop.now,
        )
        with pytest.raises(NotFoundError, match="no return 'RET-0'"):
            updates.record_return(
                conn,
                tenant_id=shop.tenant_id,
                order_ref="mk:R-1",
                lines=[UpdateLine(1, "SKU-1")],
                status=updates.ReturnStatus.RECEIVED,
                marketplace_return_id="RET-0",
                now=shop.now,
            )
        detail = updates.order_detail(conn, shop.tenant_id, order_id)
    assert received.id != refunded.id
    for result in (received, refunded):
        assert result.status is UpdateStatus.NOT_SUPPORTED and "not supported by mirakl" in str(result.detail)
    assert detail["returns"][0]["marketplace_return_id"] == "RET-9" and detail["returns"][0]["rma"] == "RMA-1"
    assert _jobs(shop.engine) == []


def test_status_reads_sent_and_failed_from_the_jobs(shop: Shop):
    order_id = shop.order("J-1")
    ok = _ship(shop, "mk:J-1", tracking="A")
    ko = _ship(shop, "mk:J-1", tracking="B")
    with shop.engine.begin() as conn:
        claimed = {
            j.payload["update_id"]: j
            for j in jobstore.claim(conn, worker="w", now=shop.now, lease_seconds=30)
        }
        jobstore.complete(conn, claimed[ok.id], now=shop.now, result={"note": "shipment confirmed"})
        jobstore.bury(
            conn,
            claimed[ko.id],
            now=shop.now,
            error="OR24 refused: ORDER_INVALID_STATE",
            kind=jobstore.ErrorKind.PERMANENT,
        )
    with shop.engine.connect() as conn:
        states = {
            u["id"]: (u["status"], u["detail"]) for u in updates.list_updates(conn, shop.tenant_id, order_id)
        }
    assert states[ok.id][0] == "sent"
    assert states[ko.id] == ("failed", "OR24 refused: ORDER_INVALID_STATE")
    assert (
        _ship(shop, "mk:J-1", tracking="A").status is UpdateStatus.SENT
    )  # a retry answers the current state


# --- end to end with the Mirakl sandbox ---------------------------------------------------------------


@pytest.fixture
def mirakl(engine: Engine, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def _seed_offers(world: World, count: int) -> None:
    """Offers SKU-0..n on the sandbox, as a finished offers sync would have left them."""
    for i, product in enumerate(list(world.state.catalog.values())[:count]):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal("10.00") + i, 10)


def _imported(world: World, count: int = 2) -> dict[str, object]:
    _seed_offers(world, count)
    mirakl_id = world.order([{"offer_sku": "SKU-1", "quantity": 2}, {"offer_sku": "SKU-0", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(120)
    world.enqueue("orders.poll")
    world.run()
    with world.engine.connect() as conn:
        [order] = list_orders(conn, world.tenant_id)
    assert order["marketplace_order_id"] == mirakl_id and order["state"] == "to_ship"
    return order


def test_shipment_reaches_the_sandbox_and_line_cancellation_sends_nothing(mirakl: World):
    order = _imported(mirakl)
    ref = f"{mirakl.channel.name}:{order['marketplace_order_id']}"
    with mirakl.engine.begin() as conn:
        line_cancel = updates.record_cancellation(
            conn,
            tenant_id=mirakl.tenant_id,
            order_ref=ref,
            lines=[UpdateLine(1, "SKU-0")],
            now=mirakl.clock(),
        )
        shipped = updates.record_shipment(
            conn,
            tenant_id=mirakl.tenant_id,
            order_ref=ref,
            carrier="UPS",
            tracking_number="1Z42",
            tracking_url=None,
            lines=None,
            external_id="oms-1",
            now=mirakl.clock(),
        )
    assert line_cancel.status is UpdateStatus.NOT_SUPPORTED
    mirakl.run()
    assert mirakl.state.order(order["marketplace_order_id"]).state.value == "SHIPPED"
    assert mirakl.state.calls("OR29") == [] and len(mirakl.state.calls("OR24")) == 1
    with mirakl.engine.connect() as conn:
        statuses = {u["id"]: u["status"] for u in updates.list_updates(conn, mirakl.tenant_id, order["id"])}
    assert statuses == {line_cancel.id: "not_supported", shipped.id: "sent"}
