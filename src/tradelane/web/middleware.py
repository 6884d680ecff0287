"""ASGI middleware of the API (pure ASGI: no extra tasks, so ``contextvars`` flow to the endpoints).

* :class:`RequestContextMiddleware` (outermost): request id (the client's ``X-Request-Id`` when sane, else
  a new one; echoed in the response), structlog context, one access-log line and the HTTP metrics per
  request, and the last-resort handler turning an unexpected exception into a 500 problem that leaks
  nothing (the exception is logged with the request id).
* :class:`BodyLimitMiddleware`: refuses request bodies over a limit with 413, both when
  ``Content-Length`` announces it and when a streamed body grows past it. The limit is chosen by path
  prefix (longest prefix wins).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradelane.logging import get_logger
from tradelane.web.metrics import UNMATCHED_ROUTE, ApiMetrics
from tradelane.web.problems import PayloadTooLarge, problem_response

REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Probe and scrape routes: their successful requests are logged at debug level, not info.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

log = get_logger("tradelane.web")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def route_template(scope: Scope) -> str:
    """The matched route's path template, or :data:`UNMATCHED_ROUTE`."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = supplied if supplied and _SANE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled_error", path=scope.get("path"), route=route_template(scope))
            if started:
                raise
            status = 500
            response = problem_response(
                500,
                detail="an unexpected error occurred; it was logged under this request id",
                type_="about:blank",
                request_id=request_id,
            )
            await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = route_template(scope)
            self.metrics.observe(method, route, status, elapsed)
            quiet = route in QUIET_ROUTES and status < 400
            (log.debug if quiet else log.info)(
                "http_request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, default_limit: int, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        # Longest prefix first.
        self.limits = sorted((limits or {}).items(), key=lambda item: len(item[0]), reverse=True)

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _header(scope, b"content-length")
        too_large_declared = declared is not None and declared.isdigit() and int(declared) > limit
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if too_large_declared:
                raise PayloadTooLarge(limit)
            message: Any = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            result: Message = message
            return result

        await self.app(scope, limited_receive, send)
