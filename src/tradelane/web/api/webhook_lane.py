"""A direct ASGI lane for the two inbound webhook routes, in front of FastAPI's routing.

Senders of webhooks are machines that retry and then drop subscriptions that time out, and the
webhook routes are the API's busiest by far: FastAPI's route matching (a scan over every route) and
dependency solving cost about as much CPU per request as storing the event. :class:`WebhookLane`
recognises exactly

* ``POST /api/v1/webhooks/{source}`` and ``POST /api/v1/webhooks/{source}/{channel_name}``
  (:mod:`tradelane.web.api.webhooks`),
* ``POST /api/v1/merchant/{name}/webhook`` (:mod:`tradelane.web.api.merchant_webhook`),

with path parameters that satisfy the routes' own constraints, and calls the same handler functions the
FastAPI routes call. Contracts:

* Same answers as the FastAPI routes: the same handlers, and errors (401, 404, 413, 422, 503...) turned
  into problem documents by the app's own exception handlers. Anything else, including a path
  parameter the route would reject, is passed on untouched to the app, which answers it as it always did.
* The lane sits inside the request-context and body-limit middleware: request id, access log, metrics
  (labelled with the route's template, as FastAPI's routes are) and the body limit apply as for every
  route.
* An exception with no registered handler propagates (the request-context middleware answers 500).
* The OpenAPI document is unchanged: the FastAPI routes stay registered and document these operations.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tradelane.bootstrap import Container
from tradelane.web.api import merchant_webhook, webhooks
from tradelane.web.api.common import API_PREFIX, PRINTABLE
from tradelane.web.auth import bearer_scheme

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # the routes' source / merchant name pattern
_PRINTABLE = re.compile(PRINTABLE)
_MAX_SEGMENT = 100

GENERIC_PATH = f"{API_PREFIX}/webhooks/{{source}}"
CHANNEL_PATH = f"{API_PREFIX}/webhooks/{{source}}/{{channel_name}}"
MERCHANT_PATH = f"{API_PREFIX}/merchant/{{name}}/webhook"

_WEBHOOKS_PREFIX = f"{API_PREFIX}/webhooks/"
_MERCHANT_PREFIX = f"{API_PREFIX}/merchant/"

Handler = Callable[[FastAPI, Request, bytes], Awaitable[Response]]


def _name_ok(value: str) -> bool:
    return 0 < len(value) <= _MAX_SEGMENT and _NAME.match(value) is not None


def _channel_ok(value: str) -> bool:
    return 0 < len(value) <= _MAX_SEGMENT and _PRINTABLE.match(value) is not None


def match(path: str) -> tuple[str, dict[str, str]] | None:
    """The lane's route template and path parameters for ``path``, or None (not a lane route, or a
    parameter the route would reject)."""
    if path.startswith(_WEBHOOKS_PREFIX):
        parts = path[len(_WEBHOOKS_PREFIX) :].split("/")
        if len(parts) == 1 and _name_ok(parts[0]):
            return GENERIC_PATH, {"source": parts[0]}
        if len(parts) == 2 and _name_ok(parts[0]) and _channel_ok(parts[1]):
            return CHANNEL_PATH, {"source": parts[0], "channel_name": parts[1]}
        return None
    if path.startswith(_MERCHANT_PREFIX):
        parts = path[len(_MERCHANT_PREFIX) :].split("/")
        if len(parts) == 2 and parts[1] == "webhook" and _name_ok(parts[0]):
            return MERCHANT_PATH, {"name": parts[0]}
    return None


async def _generic(api: FastAPI, request: Request, body: bytes) -> Response:
    params = request.scope["path_params"]
    credentials = await bearer_scheme(request)
    source, channel_name = params["source"], params.get("channel_name")
    intake = getattr(api.state, "pg_intake", None)
    if intake is not None:  # PostgreSQL: one statement on the event loop (see pg_intake)
        return await webhooks.receive_async(
            api.state.container, intake, credentials, source, channel_name, request, body
        )
    return await webhooks.receive(api.state.container, credentials, source, channel_name, request, body)


async def _merchant(api: FastAPI, request: Request, body: bytes) -> Response:
    name = request.scope["path_params"]["name"]
    container: Container = api.state.container
    intake = getattr(api.state, "pg_intake", None)
    if intake is not None:  # PostgreSQL: one statement on the event loop (see pg_intake)
        return await merchant_webhook.receive_async(container, intake, name, request, body)
    return await run_in_threadpool(merchant_webhook.receive, container, name, request, body)


_HANDLERS: dict[str, Handler] = {
    GENERIC_PATH: _generic,
    CHANNEL_PATH: _generic,
    MERCHANT_PATH: _merchant,
}


@dataclass(frozen=True, slots=True)
class LaneRoute:
    """What the lane puts in ``scope["route"]``: the template the access log and metrics label by (as
    for a route FastAPI matched, see :func:`tradelane.web.middleware.route_template`)."""

    path_format: str


_ROUTES = {template: LaneRoute(template) for template in _HANDLERS}


class WebhookLane:
    """ASGI middleware; ``api`` is the FastAPI app it stands in front of (its exception handlers render
    the errors, its ``state.container`` serves the requests)."""

    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        found = match(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        template, params = found
        scope["route"] = _ROUTES[template]
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            body = await request.body()
            response = await _HANDLERS[template](self.api, request, body)
        except Exception as exc:
            response = await self._error_response(request, exc)
        await response(scope, receive, send)

    async def _error_response(self, request: Request, exc: Exception) -> Response:
        handlers: dict[Any, Any] = self.api.exception_handlers
        handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
        if handler is None:
            raise exc
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        assert isinstance(response, Response)
        return response
