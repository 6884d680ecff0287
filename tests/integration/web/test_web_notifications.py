"""The dashboard's Notifications page: destinations (never the secret), recent notifications with each
destination's status, and the test button against a local SMTP server; tenant isolation."""

from __future__ import annotations

import html

from webtest_support import csrf_of, login

from notifications_support import SmtpServer, free_port
from tradelane.services import notification_settings as destinations
from tradelane.services import notifications as notes
from tradelane.services.notification_transport import SmtpConfig

SECRET = "whsec-dashboard-secret"


def test_the_page_lists_destinations_and_statuses_and_sends_a_test(
    client, other_client, shops, container, now
):
    smtp = SmtpServer(free_port()).start()
    hook = f"http://127.0.0.1:{free_port()}/in"  # nothing listens there
    try:
        config = SmtpConfig(host="127.0.0.1", port=smtp.port, sender="hub@tradelane.test")
        container.extras[notes.TRANSPORT] = notes.Transport(config, container.keyring)
        with container.engine.begin() as conn:
            destinations.configure(
                conn,
                container.keyring,
                tenant_id=shops.acme.tenant_id,
                channel_id=None,
                emails=["ops@acme.test"],
                webhook_url=hook,
                webhook_secret=SECRET,
                actor="test",
                now=now,
            )
            notes.notify(
                conn,
                tenant_id=shops.acme.tenant_id,
                channel_id=shops.acme.channel_id,
                event="cutover.problem",
                subject="ACME cutover stopped at step 5",
                body="3 offers rejected",
                now=now,
            )
        login(client, shops.acme.token)
        page = html.unescape(client.get("/dashboard/notifications").text)
        assert "ops@acme.test" in page and hook in page and SECRET not in page
        assert "ACME cutover stopped at step 5" in page and "cutover.problem" in page
        assert 'data-delivery="ops@acme.test"' in page and "queued" in page

        # Nothing listens at the webhook: the email is sent, the webhook's failure is reported.
        answer = client.post(
            "/dashboard/notifications/test", data={"csrf": csrf_of(client)}, follow_redirects=True
        )
        assert answer.status_code == 200
        text = html.unescape(answer.text)
        assert "Test notification not delivered everywhere" in text and hook in text
        assert [m.recipients for m in smtp.received] == [["ops@acme.test"]]

        login(other_client, shops.globex.token)
        other = html.unescape(other_client.get("/dashboard/notifications").text)
        assert "ACME" not in other and "ops@acme.test" not in other
    finally:
        smtp.stop()
