"""Pure parts of notifications: address and webhook URL checks, SMTP settings, the email built for a
destination, and the classification of SMTP replies."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tradelane.config import Settings
from tradelane.domain.errors import ValidationError
from tradelane.services.notification_settings import check_webhook_url, normalise_emails
from tradelane.services.notification_transport import (
    Message,
    Result,
    SmtpConfig,
    _reply,
    build_email,
    send_email,
    webhook_body,
)

MESSAGE = Message(
    notification_id=7,
    delivery_id=9,
    tenant="acme",
    channel="shop-fr",
    event="cutover.step_done",
    subject="[shop-fr] cutover step 3 done",
    body="Quantities set to 0.",
    details={"step": 3, "offers": 12},
    created_at=datetime(2026, 12, 6, 9, 30, tzinfo=UTC),
)


def test_addresses_are_checked_lowered_and_deduplicated() -> None:
    assert normalise_emails([" Ops@Acme.test", "ops@acme.test", "b@c.d"]) == ["ops@acme.test", "b@c.d"]
    for bad in ("", "no-at-sign", "a@b@c", "two words@x.y", "a@b,c@d", "<a@b.c>"):
        with pytest.raises(ValidationError, match="not an email address"):
            normalise_emails([bad])


def test_webhook_urls_must_be_http_without_credentials() -> None:
    assert check_webhook_url(" https://hooks.example/x?y=1 ") == "https://hooks.example/x?y=1"
    for bad in ("ftp://hooks.example/x", "https://", "hooks.example/x", "http://[::1"):
        with pytest.raises(ValidationError):
            check_webhook_url(bad)
    with pytest.raises(ValidationError, match="must not carry credentials"):
        check_webhook_url("https://user:pw@hooks.example/x")


def test_smtp_settings_refuse_ssl_and_starttls_together() -> None:
    with pytest.raises(ValueError, match="at most one of TRADELANE_SMTP_SSL and TRADELANE_SMTP_STARTTLS"):
        Settings(smtp_ssl=True, smtp_starttls=True)
    settings = Settings(smtp_host=" mail.example ", smtp_password="pw-secret", smtp_from="hub@x.example")
    config = SmtpConfig.from_settings(settings)
    assert config.host == "mail.example" and config.password == "pw-secret"
    assert "pw-secret" not in repr(settings) and "pw-secret" not in repr(config)
    assert "pw-secret" not in config.describe()


def test_the_email_carries_body_details_and_a_stable_message_id() -> None:
    config = SmtpConfig(host="mail.example", sender="hub@tradelane.example")
    email = build_email(config, "ops@acme.test", MESSAGE)
    assert email["Message-ID"] == "<notification-7.9@tradelane.example>"
    assert email["Subject"] == "[shop-fr] cutover step 3 done" and email["To"] == "ops@acme.test"
    text = email.get_content()
    assert text.startswith("Quantities set to 0.\n") and "offers: 12" in text and "Channel: shop-fr" in text
    assert b'"details":{"offers":12,"step":3}' in webhook_body(MESSAGE)


def test_smtp_replies_are_classified_by_their_code() -> None:
    assert _reply(451, b"4.7.1 greylisted", "x").result is Result.RETRY
    permanent = _reply(550, b"5.1.1 user   unknown", "mail refused recipient a@b.c")
    assert permanent.result is Result.FAILED
    assert permanent.reason == "mail refused recipient a@b.c: 550 5.1.1 user unknown"


def test_without_a_server_or_sender_an_email_fails_with_what_to_set() -> None:
    assert "TRADELANE_SMTP_HOST" in (send_email(SmtpConfig(host=""), "a@b.c", MESSAGE).reason or "")
    assert "TRADELANE_SMTP_FROM" in (
        send_email(SmtpConfig(host="mail.example"), "a@b.c", MESSAGE).reason or ""
    )
