"""notify() -> the notifications.send job -> a local SMTP server (aiosmtpd, in-process) and a local webhook
receiver: content, retries while the server is down, permanent failures, signatures, secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from helpers import FakeClock, make_channel, make_tenant
from notifications_support import SmtpServer, WebhookServer, free_port
from tradelane.merchant.signing import SIGNATURE_HEADER, verify
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.tables import jobs
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import notification_settings as destinations
from tradelane.services import notifications as notes
from tradelane.services.notification_transport import SmtpConfig
from tradelane.sync import jobs as jobstore
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

#: AUTH without TLS is what a loopback test server can offer.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SECRET = "whsec-very-secret-value"
PASSWORD = "smtp-pa55-word"


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing([generate_key()])


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), username="hub", password=PASSWORD).start()
    yield server
    server.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer().start()
    yield server
    server.stop()


def _transport(keyring: KeyRing, port: int) -> notes.Transport:
    config = SmtpConfig(
        host="127.0.0.1", port=port, username="hub", password=PASSWORD, sender="hub@tradelane.test", timeout=5
    )
    return notes.Transport(config, keyring, webhook_timeout=5)


def _worker(engine: Engine, clock: FakeClock, transport: notes.Transport) -> Worker:
    registry = JobRegistry()
    notes.register(registry)
    config = WorkerConfig(lease_seconds=30, schedule=False)
    return Worker(engine, registry, clock, config, name="w-notify", services={notes.TRANSPORT: transport})


def _notify(engine: Engine, tenant_id: int, channel_id: int | None, now: datetime) -> int:
    with transaction(engine) as conn:
        nid = notes.notify(
            conn,
            tenant_id=tenant_id,
            channel_id=channel_id,
            event="cutover.step",
            subject="Cutover of shop: step 2 done",
            body="The store is on holiday; 3 orders still to process.",
            details={"step": 2, "outstanding": 3},
            now=now,
        )
    assert nid is not None
    return nid


def _configure(engine: Engine, keyring: KeyRing, tenant_id: int, now: datetime, **kw: Any) -> None:
    with transaction(engine) as conn:
        destinations.configure(
            conn, keyring, tenant_id=tenant_id, channel_id=None, actor="cli:t", now=now, **kw
        )


def _note(engine: Engine, nid: int) -> notes.Notification:
    with read_only(engine) as conn:
        found = notes.get(conn, nid)
    assert found is not None
    return found


def _job(engine: Engine, nid: int) -> Any:
    with read_only(engine) as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.id == _note(engine, nid).job_id)).one()


def test_the_email_reaches_the_smtp_server_with_its_content(
    engine: Engine, now: datetime, keyring: KeyRing, smtp: SmtpServer
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop-fr", now)
    _configure(engine, keyring, tenant.id, now, emails=["Ops@Acme.test"])
    nid = _notify(engine, tenant.id, channel.id, now)
    _worker(engine, FakeClock(now), _transport(keyring, smtp.port)).run(burst=True)

    [mail] = smtp.received
    assert mail.sender == "hub@tradelane.test" and mail.recipients == ["ops@acme.test"]
    assert mail.message["From"] == "hub@tradelane.test" and mail.message["To"] == "ops@acme.test"
    assert mail.message["Subject"] == "Cutover of shop: step 2 done"
    assert mail.message["X-Tradelane-Event"] == "cutover.step"
    text = mail.message.get_payload(decode=True).decode()
    assert "The store is on holiday; 3 orders still to process." in text
    assert "Channel: shop-fr" in text and "outstanding: 3" in text
    assert smtp.logins == ["hub"]
    note = _note(engine, nid)
    assert note.status == "sent"
    assert [(d.destination, d.status, d.attempts) for d in note.deliveries] == [("ops@acme.test", "sent", 1)]
    assert _job(engine, nid).state == "succeeded"


def test_smtp_down_is_retried_then_sent_when_it_comes_back(
    engine: Engine, now: datetime, keyring: KeyRing
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(engine, keyring, tenant.id, now, emails=["ops@acme.test"])
    nid = _notify(engine, tenant.id, None, now)
    port = free_port()
    clock = FakeClock(now)
    worker = _worker(engine, clock, _transport(keyring, port))
    worker.run(burst=True)  # nothing listens on the port

    note = _note(engine, nid)
    assert note.status == "retrying"
    [delivery] = note.deliveries
    assert delivery.status == "retrying" and "connection refused" in (delivery.last_error or "")
    job = _job(engine, nid)
    assert job.state == "queued" and job.attempts == 1 and "connection refused" in job.last_error

    server = SmtpServer(port, username="hub", password=PASSWORD).start()
    try:
        clock.advance(3600)
        worker.run(burst=True)
    finally:
        server.stop()
    assert [m.recipients for m in server.received] == [["ops@acme.test"]]
    note = _note(engine, nid)
    assert (
        note.status == "sent" and note.deliveries[0].attempts == 2 and note.deliveries[0].last_error is None
    )
    assert _job(engine, nid).state == "succeeded"


def test_a_bad_recipient_fails_for_good_with_the_reason_and_the_others_still_get_it(
    engine: Engine, now: datetime, keyring: KeyRing, smtp: SmtpServer
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(engine, keyring, tenant.id, now, emails=["ops@acme.test", "nobody@acme.test"])
    smtp.refuse("nobody@acme.test")
    nid = _notify(engine, tenant.id, None, now)
    _worker(engine, FakeClock(now), _transport(keyring, smtp.port)).run(burst=True)

    assert [m.recipients for m in smtp.received] == [["ops@acme.test"]]
    note = _note(engine, nid)
    by_address = {d.destination: d for d in note.deliveries}
    assert by_address["ops@acme.test"].status == "sent"
    refused = by_address["nobody@acme.test"]
    assert refused.status == "failed" and "550" in (refused.last_error or "")
    assert "refused recipient nobody@acme.test" in (refused.last_error or "")
    assert note.status == "failed"
    job = _job(engine, nid)
    assert job.state == "dead" and job.error_kind == "permanent" and job.attempts == 1
    assert "nobody@acme.test" in job.last_error and "550" in job.last_error


def test_a_temporary_smtp_refusal_is_retried(
    engine: Engine, now: datetime, keyring: KeyRing, smtp: SmtpServer
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(engine, keyring, tenant.id, now, emails=["ops@acme.test"])
    smtp.defer("ops@acme.test")
    nid = _notify(engine, tenant.id, None, now)
    clock = FakeClock(now)
    worker = _worker(engine, clock, _transport(keyring, smtp.port))
    worker.run(burst=True)
    [delivery] = _note(engine, nid).deliveries
    assert delivery.status == "retrying" and "451" in (delivery.last_error or "")
    assert _job(engine, nid).state == "queued"
    smtp.handler.deferred.clear()
    clock.advance(3600)
    worker.run(burst=True)
    assert [m.recipients for m in smtp.received] == [["ops@acme.test"]]
    assert _note(engine, nid).status == "sent"


def test_exhausted_retries_dead_letter_and_a_replay_sends(
    engine: Engine, now: datetime, keyring: KeyRing
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(engine, keyring, tenant.id, now, emails=["ops@acme.test"])
    nid = _notify(engine, tenant.id, None, now)
    port = free_port()
    clock = FakeClock(now)
    worker = _worker(engine, clock, _transport(keyring, port))
    for _ in range(notes.SEND_MAX_ATTEMPTS):
        worker.run(burst=True)
        clock.advance(3600)
    job = _job(engine, nid)
    assert job.state == "dead" and job.error_kind == "exhausted"
    assert job.attempts == notes.SEND_MAX_ATTEMPTS and "connection refused" in job.last_error
    [delivery] = _note(engine, nid).deliveries
    assert delivery.status == "failed" and delivery.attempts == notes.SEND_MAX_ATTEMPTS
    assert (delivery.last_error or "").startswith(f"gave up after {notes.SEND_MAX_ATTEMPTS} attempts")
    assert _note(engine, nid).status == "failed"

    with transaction(engine) as conn:
        assert jobstore.replay(conn, tenant.id, [job.id], now=clock()) == [job.id]
    server = SmtpServer(port, username="hub", password=PASSWORD).start()
    try:
        worker.run(burst=True)
    finally:
        server.stop()
    assert [m.recipients for m in server.received] == [["ops@acme.test"]]
    assert _note(engine, nid).status == "sent" and _job(engine, nid).state == "succeeded"


def test_the_webhook_is_signed_and_retried_after_a_5xx(
    engine: Engine, now: datetime, keyring: KeyRing, webhook: WebhookServer
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(engine, keyring, tenant.id, now, webhook_url=webhook.url, webhook_secret=SECRET)
    nid = _notify(engine, tenant.id, None, now)
    webhook.answers = [503]
    clock = FakeClock(now)
    worker = _worker(engine, clock, _transport(keyring, free_port()))
    worker.run(burst=True)
    assert _note(engine, nid).deliveries[0].status == "retrying"
    assert "HTTP 503" in (_note(engine, nid).deliveries[0].last_error or "")

    clock.advance(3600)
    worker.run(burst=True)
    assert len(webhook.hits) == 2
    hit = webhook.hits[-1]
    verify(SECRET, hit.headers[SIGNATURE_HEADER], hit.body, clock())
    assert hit.headers["Idempotency-Key"] == f"notification-{nid}"
    document = json.loads(hit.body)
    assert document["event"] == "cutover.step" and document["tenant"] == "acme"
    assert document["details"] == {"step": 2, "outstanding": 3} and document["id"] == nid
    assert _note(engine, nid).status == "sent" and _job(engine, nid).state == "succeeded"


def test_a_webhook_4xx_is_permanent(
    engine: Engine, now: datetime, keyring: KeyRing, webhook: WebhookServer
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(engine, keyring, tenant.id, now, webhook_url=webhook.url, webhook_secret=SECRET)
    nid = _notify(engine, tenant.id, None, now)
    webhook.answers = [404]
    _worker(engine, FakeClock(now), _transport(keyring, free_port())).run(burst=True)
    [delivery] = _note(engine, nid).deliveries
    assert delivery.status == "failed" and "HTTP 404" in (delivery.last_error or "")
    assert _job(engine, nid).state == "dead"


def test_send_test_reports_each_destination_at_once(
    engine: Engine, now: datetime, keyring: KeyRing, smtp: SmtpServer, webhook: WebhookServer
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(
        engine,
        keyring,
        tenant.id,
        now,
        emails=["ops@acme.test"],
        webhook_url=webhook.url,
        webhook_secret=SECRET,
    )
    webhook.answers = [500]
    note = notes.send_test(
        engine, _transport(keyring, smtp.port), tenant_id=tenant.id, channel_id=None, now=now
    )
    assert note.event == notes.TEST_EVENT and note.job_id is None
    assert [(d.kind, d.status) for d in note.deliveries] == [("email", "sent"), ("webhook", "failed")]
    assert "HTTP 500" in (note.deliveries[1].last_error or "")
    assert smtp.received[0].message["Subject"] == "tradelane test notification"


def test_secrets_never_reach_logs_or_shown_settings(
    engine: Engine,
    now: datetime,
    keyring: KeyRing,
    smtp: SmtpServer,
    webhook: WebhookServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(
        engine,
        keyring,
        tenant.id,
        now,
        emails=["ops@acme.test"],
        webhook_url=webhook.url,
        webhook_secret=SECRET,
    )
    nid = _notify(engine, tenant.id, None, now)
    transport = _transport(keyring, smtp.port)
    _worker(engine, FakeClock(now), transport).run(burst=True)
    with read_only(engine) as conn:
        shown = json.dumps([d.as_json() for d in destinations.show(conn, tenant.id)])
        listed = json.dumps([n.as_json() for n in notes.recent(conn, tenant.id)])
    assert _note(engine, nid).status == "sent"
    assert '"webhook_secret_set": true' in shown
    captured = capsys.readouterr()
    everything = shown + listed + captured.out + captured.err + caplog.text + repr(transport)
    assert SECRET not in everything and PASSWORD not in everything
