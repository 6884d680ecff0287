"""Local servers for the notification tests: an in-process SMTP server (aiosmtpd) and an HTTP server that
records webhook POSTs. Both listen on 127.0.0.1."""

from __future__ import annotations

import email
import socket
import threading
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: Message


@dataclass
class _Handler:
    """Accepts every recipient except those in ``refused`` (answered ``550 5.1.1``) and those in
    ``deferred`` (answered ``451 4.7.1``, a temporary refusal)."""

    refused: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower() in self.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.deferred:
            return f"451 4.7.1 <{address}>: Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), email.message_from_bytes(envelope.content))
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on ``port``; with ``username`` it requires that login (AUTH over plain text,
    acceptable on loopback only)."""

    def __init__(self, port: int, *, username: str = "", password: str = "") -> None:
        self.port = port
        self.handler = _Handler()
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {}
        if username:

            def authenticator(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = isinstance(data, LoginPassword) and data.login.decode() == username
                ok = ok and data.password.decode() == password
                if ok:
                    self.logins.append(username)
                return AuthResult(success=ok)

            kwargs = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port, **kwargs)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def refuse(self, address: str) -> None:
        self.handler.refused.add(address.lower())

    def defer(self, address: str) -> None:
        self.handler.deferred.add(address.lower())

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookServer:
    """Records every POST; answers with the statuses queued in ``answers`` (then 200)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.answers: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                outer.hits.append(Hit(self.path, {k: v for k, v in self.headers.items()}, body))
                status = outer.answers.pop(0) if outer.answers else 200
                payload = b'{"ok": true}' if status < 300 else b'{"message": "nope"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tradelane"

    def start(self) -> WebhookServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
