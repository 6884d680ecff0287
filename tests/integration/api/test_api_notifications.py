"""``/api/v1/notifications``: settings (secret write-only), a test send to a local SMTP server and webhook,
the recent list; validation and tenant isolation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apitest_support import CHANNEL
from fastapi.testclient import TestClient

from notifications_support import SmtpServer, WebhookServer, free_port
from tradelane.bootstrap import Container
from tradelane.persistence.db import read_only
from tradelane.services import audit
from tradelane.services import notifications as notes
from tradelane.services.notification_transport import SmtpConfig

SECRET = "whsec-api-secret"
URL = "/api/v1/notifications"


@pytest.fixture
def servers(container: Container) -> Iterator[tuple[SmtpServer, WebhookServer]]:
    smtp = SmtpServer(free_port()).start()
    hook = WebhookServer().start()
    config = SmtpConfig(host="127.0.0.1", port=smtp.port, sender="hub@tradelane.test", password="pw-hidden")
    container.extras[notes.TRANSPORT] = notes.Transport(config, container.keyring)
    yield smtp, hook
    smtp.stop()
    hook.stop()


def test_settings_test_send_and_list(client: TestClient, world, container, servers) -> None:
    smtp, hook = servers
    auth = world.acme.auth
    changed = client.patch(
        f"{URL}/settings",
        json={"emails": ["Ops@Acme.test"], "webhook_url": hook.url, "webhook_secret": SECRET},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["settings"]["emails"] == ["ops@acme.test"]
    scoped = client.patch(
        f"{URL}/settings", json={"channel": CHANNEL, "emails": ["shop@acme.test"]}, headers=auth
    )
    assert scoped.status_code == 200, scoped.text
    with read_only(container.engine) as conn:
        [event] = audit.history(conn, world.acme.channel_id, prefix="notifications.")
    assert event.actor == "api:acme"

    shown = client.get(f"{URL}/settings", headers=auth)
    assert shown.status_code == 200
    body = shown.json()
    assert [d["channel"] for d in body["destinations"]] == [None, CHANNEL]
    assert body["destinations"][0]["webhook_secret_set"] is True
    assert body["smtp"].startswith(f"127.0.0.1:{smtp.port}")

    sent = client.post(f"{URL}/test", json={"channel": CHANNEL}, headers=auth)
    assert sent.status_code == 200, sent.text
    assert {(d["destination"], d["status"]) for d in sent.json()["deliveries"]} == {
        ("ops@acme.test", "sent"),
        ("shop@acme.test", "sent"),
        (hook.url, "sent"),
    }
    assert sorted(m.recipients[0] for m in smtp.received) == ["ops@acme.test", "shop@acme.test"]

    listed = client.get(URL, headers=auth)
    assert listed.status_code == 200 and [n["status"] for n in listed.json()["items"]] == ["sent"]
    assert client.get(URL, headers=world.globex.auth).json()["items"] == []
    assert client.get(f"{URL}/settings", headers=world.globex.auth).json()["destinations"] == []
    for response in (changed, scoped, shown, sent, listed):
        assert SECRET not in response.text and "pw-hidden" not in response.text


def test_bad_settings_are_refused(client: TestClient, world, servers) -> None:
    auth = world.acme.auth
    no_secret = client.patch(f"{URL}/settings", json={"webhook_url": "https://hooks.example/x"}, headers=auth)
    assert no_secret.status_code == 422 and "needs a secret" in no_secret.text
    bad_email = client.patch(f"{URL}/settings", json={"emails": ["not-an-address"]}, headers=auth)
    assert bad_email.status_code == 422 and "not an email address" in bad_email.text
    unknown = client.patch(f"{URL}/settings", json={"channel": "nope", "emails": ["a@b.test"]}, headers=auth)
    assert unknown.status_code == 404
    nothing = client.post(f"{URL}/test", json={}, headers=auth)
    assert nothing.status_code == 422 and "no notification destination configured" in nothing.text
