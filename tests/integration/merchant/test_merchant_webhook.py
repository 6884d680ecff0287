"""The signed merchant webhook: valid updates are stored raw with one job and answered at once, the job
records them; forged, stale, malformed or replayed requests answer 401, store nothing, and leave only a
security log line."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from merchant_support import (
    SECRET,
    add_product,
    ingest,
    make_shop,
    marketplace_order,
    read,
    register_oms,
    run_worker,
)

from tradelane.merchant.sandbox.callback import send_update
from tradelane.merchant.sandbox.state import CallbackConfig
from tradelane.merchant.signing import SIGNATURE_HEADER, parse_signature, sign
from tradelane.persistence.merchant_systems import set_enabled
from tradelane.persistence.tables import inbound_events, jobs, merchant_systems, order_updates
from tradelane.services.merchant_webhooks import APPLY_KIND
from tradelane.services.order_health import enqueue_delivery
from tradelane.sync.jobs import replay as replay_job

URL = "/api/v1/merchant/oms/webhook"


@pytest.fixture
def order_id(container, shop, now):
    return ingest(container, shop, marketplace_order("W-1", [("A", 2, "5")], now=now), now)


@pytest.fixture
def system(container, shop):
    return register_oms(container, shop, "http://127.0.0.1:9/orders")


def _post(client, body: bytes, signature: str | None, url: str = URL):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return client.post(url, content=body, headers=headers)


def _shipment(order: str = "shop-fr:W-1", **extra) -> bytes:
    return json.dumps(
        {
            "type": "shipment",
            "order": order,
            "id": "SHIP-1",
            "carrier": "UPS",
            "tracking_number": "1Z999",
            **extra,
        }
    ).encode()


def _security_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "security.webhook_rejected"]


def _nothing_stored(engine) -> bool:
    return read(engine, sa.select(inbound_events)) == [] and read(engine, sa.select(order_updates)) == []


def _apply_jobs(engine) -> list:
    return read(engine, sa.select(jobs).where(jobs.c.kind == APPLY_KIND).order_by(jobs.c.id))


def test_a_signed_shipment_is_stored_raw_with_its_job_then_recorded(
    client, container, shop, system, order_id, clock, now
):
    body = _shipment()
    signature = sign(SECRET, body, now)
    r = _post(client, body, signature)
    assert r.status_code == 202, r.text
    ack = r.json()
    [event] = read(container.engine, sa.select(inbound_events))
    assert event.id == ack["event_id"] and event.tenant_id == shop.tenant_id
    assert event.source == "merchant:oms" and event.body == body
    assert event.external_id == parse_signature(signature)[1]
    # Answered before any work: the raw event and exactly one job to apply it, committed together.
    assert event.status == "received" and read(container.engine, sa.select(order_updates)) == []
    [apply_job] = _apply_jobs(container.engine)
    assert apply_job.id == ack["job_id"] and apply_job.state == "queued"
    assert apply_job.tenant_id == shop.tenant_id and apply_job.payload["event_id"] == event.id
    assert apply_job.payload["merchant_system_id"] == system.id

    run_worker(container, clock)
    [event] = read(container.engine, sa.select(inbound_events))
    assert event.status == "processed" and event.processed_at == now and event.error is None
    [apply_job] = _apply_jobs(container.engine)
    assert apply_job.state == "succeeded"
    result = apply_job.result["update"]
    assert result["kind"] == "shipment" and result["order_id"] == order_id
    assert result["external_id"] == "SHIP-1"
    [update] = read(container.engine, sa.select(order_updates))
    assert update.payload["carrier"] == "UPS" and update.payload["tracking_number"] == "1Z999"
    [job] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "fulfillments.ship"))
    assert job.channel_id == shop.channel_id and job.payload["order_id"] == order_id


def test_a_replayed_request_is_refused_and_changes_nothing(
    client, container, system, order_id, clock, now, capsys
):
    body = _shipment()
    signature = sign(SECRET, body, now)
    assert _post(client, body, signature).status_code == 202
    capsys.readouterr()
    events_before = read(container.engine, sa.select(inbound_events))
    replay = _post(client, body, signature)
    assert replay.status_code == 401
    assert replay.headers["content-type"] == "application/problem+json"
    assert replay.json()["type"] == "urn:tradelane:problem:invalid-signature"
    assert read(container.engine, sa.select(inbound_events)) == events_before
    assert len(_apply_jobs(container.engine)) == 1
    run_worker(container, clock)
    assert len(read(container.engine, sa.select(order_updates))) == 1
    [line] = _security_lines(capsys)
    assert line["reason"] == "replayed" and line["merchant"] == "oms" and line["remote_addr"] == "testclient"
    assert line["level"] == "warning"


@pytest.mark.parametrize(
    ("make_signature", "reason"),
    [
        (lambda body, now: sign("a-forger-s-guess-of-the-secret", body, now), "bad_signature"),
        (lambda body, now: sign(SECRET, body + b" ", now), "bad_signature"),
        (lambda body, now: sign(SECRET, body, now - timedelta(seconds=301)), "outside_replay_window"),
        (lambda body, now: sign(SECRET, body, now + timedelta(seconds=301)), "outside_replay_window"),
        (lambda body, now: None, "malformed_signature"),
        (lambda body, now: "t=1,v1=deadbeef", "malformed_signature"),
    ],
)
def test_forged_stale_or_malformed_requests_leave_only_a_log_line(
    client, container, system, order_id, now, capsys, make_signature, reason
):
    body = _shipment()
    r = _post(client, body, make_signature(body, now))
    assert r.status_code == 401 and r.json()["status"] == 401
    assert _nothing_stored(container.engine)
    [line] = _security_lines(capsys)
    assert line["reason"] == reason and line["merchant"] == "oms"
    assert SECRET not in json.dumps(line) and "1Z999" not in json.dumps(line)


def test_an_unknown_merchant_is_refused_like_a_forgery(client, container, system, order_id, now, capsys):
    body = _shipment()
    r = _post(client, body, sign(SECRET, body, now), url="/api/v1/merchant/someone-else/webhook")
    assert r.status_code == 401 and _nothing_stored(container.engine)
    assert _security_lines(capsys)[0]["reason"] == "unknown_merchant"


def test_same_name_in_two_tenants_goes_to_the_tenant_whose_secret_signed(
    client, container, shop, system, clock, now
):
    other = make_shop(container, "globex", "shop-fr", now)
    other_secret = "globex-own-signing-secret-42"
    register_oms(container, other, "http://127.0.0.1:9/orders", secret=other_secret)
    ingest(container, other, marketplace_order("W-1", [("A", 1, "5")], now=now), now)
    body = _shipment()
    assert _post(client, body, sign(other_secret, body, now)).status_code == 202
    [event] = read(container.engine, sa.select(inbound_events))
    assert event.tenant_id == other.tenant_id
    run_worker(container, clock)
    [update] = read(container.engine, sa.select(order_updates))
    assert update.tenant_id == other.tenant_id


def test_a_valid_but_unusable_update_is_kept_as_failed(client, container, system, order_id, clock, now):
    unknown_order = _shipment(order="shop-fr:NOPE")
    r = _post(client, unknown_order, sign(SECRET, unknown_order, now))
    assert r.status_code == 202, r.text
    not_json = b"{not json"
    r = _post(client, not_json, sign(SECRET, not_json, now))
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    run_worker(container, clock)
    events = read(container.engine, sa.select(inbound_events).order_by(inbound_events.c.id))
    assert [(e.status, e.body) for e in events] == [("failed", unknown_order), ("failed", not_json)]
    assert "NOPE" in events[0].error and events[1].error.startswith("invalid update")
    assert read(container.engine, sa.select(order_updates)) == []
    # The unusable one is a dead letter (replayable); the unparseable one never had a job.
    [dead] = _apply_jobs(container.engine)
    assert dead.state == "dead" and dead.payload["event_id"] == events[0].id and "NOPE" in dead.last_error


def test_a_dead_lettered_update_replays_once_its_order_exists(
    client, container, shop, system, order_id, clock, now
):
    early = _shipment(order="shop-fr:W-9")
    assert _post(client, early, sign(SECRET, early, now)).status_code == 202
    run_worker(container, clock)
    [dead] = _apply_jobs(container.engine)
    assert dead.state == "dead"
    ingest(container, shop, marketplace_order("W-9", [("A", 1, "5")], now=now), now)
    with container.engine.begin() as conn:
        assert replay_job(conn, shop.tenant_id, [dead.id], now=now) == [dead.id]
    run_worker(container, clock)
    [event] = read(container.engine, sa.select(inbound_events))
    assert (event.status, event.error) == ("processed", None)
    [update] = read(container.engine, sa.select(order_updates))
    assert update.external_id == "SHIP-1"


def test_a_cancellation_and_a_return_by_webhook(client, container, system, order_id, clock, now):
    cancel = json.dumps(
        {"type": "cancellation", "order": str(order_id), "id": "C-1", "reason": "no stock"}
    ).encode()
    r = _post(client, cancel, sign(SECRET, cancel, now))
    assert r.status_code == 202, r.text
    ret = json.dumps(
        {"type": "return", "order": str(order_id), "id": "R-1", "lines": [{"sku": "A", "quantity": 1}]}
    )
    r = _post(client, ret.encode(), sign(SECRET, ret.encode(), now))
    assert r.status_code == 202, r.text
    run_worker(container, clock)
    results = [job.result["update"] for job in _apply_jobs(container.engine)]
    assert [u["kind"] for u in results] == ["cancellation", "return"]
    assert results[1]["payload"]["status"] == "received"
    no_lines = json.dumps({"type": "return", "order": str(order_id)}).encode()
    assert _post(client, no_lines, sign(SECRET, no_lines, now)).status_code == 422


def test_the_sandbox_ships_a_delivered_order_back_through_the_webhook(
    client, container, shop, oms, clock, now
):
    register_oms(container, shop, oms.orders_url)
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("W-2", [("A", 2, "5")], now=now), now)
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    run_worker(container, clock)
    [received] = oms.state.orders()

    oms.state.callback = CallbackConfig("http://testserver", merchant_name="oms")
    response = send_update(
        oms.state,
        received,
        "shipment",
        {"carrier": "DHL", "tracking_number": "JD01", "lines": [{"sku": "A", "quantity": 1}]},
        via="webhook",
        client=client,
    )
    assert response.status_code == 202, response.text
    run_worker(container, clock)
    [update] = read(container.engine, sa.select(order_updates))
    assert update.order_id == order_id and update.external_id == "OMS-1-shipment-1"
    assert update.payload["lines"] == [{"sku": "A", "line_id": "W-2-1", "quantity": 1}]


def test_the_sandbox_ships_through_the_api_with_a_bearer_token(client, container, shop, oms, clock, now):
    register_oms(container, shop, oms.orders_url)
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("W-3", [("A", 1, "5")], now=now), now)
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    run_worker(container, clock)
    [received] = oms.state.orders()
    oms.state.callback = CallbackConfig("http://testserver", api_token=shop.token, merchant_name="oms")
    fields = {"carrier": "UPS", "tracking_number": "1Z1"}
    response = send_update(oms.state, received, "shipment", fields, via="api", client=client)
    assert response.status_code in (200, 201, 202), response.text
    [update] = read(container.engine, sa.select(order_updates))
    assert update.order_id == order_id and update.external_id == "OMS-1-shipment-1"
    assert update.payload["tracking_number"] == "1Z1"


def test_new_credentials_and_disabling_take_effect_on_the_next_request(
    client, container, system, order_id, now, capsys
):
    """The verification secret is cached in-process, keyed by its ciphertext: a rotated secret or a
    disabled system is never served from the cache."""
    first = _shipment(id="S-1")
    assert _post(client, first, sign(SECRET, first, now)).status_code == 202  # the old secret is cached
    rotated = "a-freshly-rotated-signing-secret"
    with container.engine.begin() as conn:
        conn.execute(
            sa.update(merchant_systems)
            .where(merchant_systems.c.id == system.id)
            .values(credentials=container.keyring.encrypt({"secret": rotated}))
        )
    capsys.readouterr()
    second = _shipment(id="S-2")
    assert _post(client, second, sign(SECRET, second, now)).status_code == 401
    assert _security_lines(capsys)[0]["reason"] == "bad_signature"
    assert _post(client, second, sign(rotated, second, now)).status_code == 202
    with container.engine.begin() as conn:
        set_enabled(conn, system, False)
    third = _shipment(id="S-3")
    assert _post(client, third, sign(rotated, third, now)).status_code == 401
    assert _security_lines(capsys)[0]["reason"] == "unknown_merchant"
    assert len(read(container.engine, sa.select(inbound_events))) == 2
