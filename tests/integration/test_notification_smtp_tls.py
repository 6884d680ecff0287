"""SMTP over TLS against local aiosmtpd servers with a self-signed certificate: STARTTLS and implicit TLS
send (and log in) once the certificate is trusted, and a certificate that does not verify is a
permanent failure saying so — never a silent downgrade."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from notifications_support import free_port
from tradelane.services.notification_transport import Message, Result, SmtpConfig, send_email

MESSAGE = Message(
    1, 1, "acme", None, "notify.test", "TLS test", "body", {}, dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class _Collect:
    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.content)
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"hub", b"pw")
    return AuthResult(success=ok)


@pytest.fixture
def starttls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, _Collect]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    handler, port = _Collect(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    controller.start()
    yield port, handler
    controller.stop()


@pytest.fixture
def implicit_tls_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, _Collect]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    handler, port = _Collect(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    yield port, handler
    controller.stop()


def _config(port: int, **kw: Any) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, sender="hub@tradelane.test", timeout=5, **kw)


def test_starttls_with_a_trusted_certificate_logs_in_and_sends(
    starttls_server: tuple[int, _Collect], certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, handler = starttls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    outcome = send_email(
        _config(port, starttls=True, username="hub", password="pw"), "ops@acme.test", MESSAGE
    )
    assert outcome.result is Result.SENT, outcome.reason
    assert len(handler.received) == 1 and b"Subject: TLS test" in handler.received[0]


def test_a_certificate_that_does_not_verify_is_a_permanent_failure(
    starttls_server: tuple[int, _Collect],
) -> None:
    port, handler = starttls_server
    outcome = send_email(
        _config(port, starttls=True, username="hub", password="pw"), "ops@acme.test", MESSAGE
    )
    assert outcome.result is Result.FAILED and "certificate" in (outcome.reason or "")
    assert handler.received == []


def test_without_starttls_the_server_refuses_and_says_why(starttls_server: tuple[int, _Collect]) -> None:
    port, handler = starttls_server
    outcome = send_email(_config(port), "ops@acme.test", MESSAGE)
    assert outcome.result is Result.FAILED and "530" in (outcome.reason or "")
    assert handler.received == []


def test_implicit_tls_sends(
    implicit_tls_server: tuple[int, _Collect], certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, handler = implicit_tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    outcome = send_email(_config(port, ssl=True), "ops@acme.test", MESSAGE)
    assert outcome.result is Result.SENT, outcome.reason
    assert len(handler.received) == 1
