"""The FastAPI application of the Mirakl sandbox and its request pipeline.

Every ``/api`` request goes through :func:`_pipeline`, in this order: identify the operation (from
:mod:`.operations`), consume an injected fault, authenticate (``Authorization: <api key>``, optional
``shop_id``), check the operation's rate budget, run the route, post-process for faults (truncation,
delay), and record the request in the state's log. ``/_sandbox`` control endpoints skip all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, Response

from tradelane.connectors.mirakl.sandbox import api_misc, api_offers, api_orders, control, operations
from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError
from tradelane.connectors.mirakl.sandbox.faults import (
    GARBAGE_BODY,
    Fault,
    FaultKind,
    RequestRecord,
    RouteMode,
    RouteOverride,
)
from tradelane.connectors.mirakl.sandbox.jsonout import MiraklJSONResponse
from tradelane.connectors.mirakl.sandbox.models import Shop
from tradelane.connectors.mirakl.sandbox.state import SandboxState

_HTML_PAGE = (
    "<html><head><title>{status} Error</title></head><body><center><h1>{status} Error</h1></center>"
    "<hr><center>sandbox-gateway</center></body></html>"
)


def create_app(state: SandboxState) -> FastAPI:
    """A seller-API app serving ``state`` (which tests keep controlling while it runs)."""
    app = FastAPI(title="Mirakl seller API sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    app.include_router(api_offers.router)
    app.include_router(api_orders.router)
    app.include_router(api_misc.router)
    app.include_router(control.router)
    app.add_exception_handler(SandboxApiError, _sandbox_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.middleware("http")(_pipeline)
    return app


def error_response(error: SandboxApiError, headers: dict[str, str] | None = None) -> Response:
    return MiraklJSONResponse(error.body(), status_code=error.status, headers=headers)


async def _sandbox_error(_: Request, exc: SandboxApiError) -> Response:
    return error_response(exc)


async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
    return error_response(SandboxApiError(exc.status_code, str(exc.detail)))


async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    return error_response(SandboxApiError(400, f"Invalid request: {exc.errors()}"))


def authenticate(state: SandboxState, request: Request) -> Shop:
    """The shop the call acts for: the key's default shop, or the ``shop_id`` it names.

    401 for a missing or unknown key; 403 when the key has no access to the named shop (unknown
    shops included, so shop ids do not leak); 400 for a non-numeric ``shop_id``.
    """
    key = request.headers.get("authorization", "").strip()
    shop_ids = state.shops_for_key(key) if key else []
    if not shop_ids:
        raise SandboxApiError(401, "Unauthorized: missing or invalid API key")
    raw = request.query_params.get("shop_id")
    if raw is None or raw == "":
        return state.shops[shop_ids[0]]
    try:
        wanted = int(raw)
    except ValueError:
        raise SandboxApiError(400, f"The parameter shop_id must be an integer, got '{raw}'") from None
    if wanted not in shop_ids:
        raise SandboxApiError(403, f"Forbidden: this API key has no access to shop {wanted}")
    return state.shops[wanted]


def _fault_response(fault: Fault) -> Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return error_response(
            SandboxApiError(429, "Too many requests"), headers={"Retry-After": str(fault.retry_after)}
        )
    status = fault.status or 500
    if fault.kind is FaultKind.HTML_ERROR:
        return HTMLResponse(_HTML_PAGE.format(status=status), status_code=status)
    return error_response(SandboxApiError(status, "Internal server error"))


def _route_response(override: RouteOverride, op_id: str) -> Response | None:
    """The answer of a configured route (``None``: a ``truncated`` route, processed then cut)."""
    if override.mode is RouteMode.OFF:
        return error_response(SandboxApiError(404, f"Not Found: {op_id} is not available on this platform"))
    if override.mode is RouteMode.STATUS:
        status = override.status or 500
        return error_response(SandboxApiError(status, f"{op_id} failed (sandbox route answers {status})"))
    if override.mode is RouteMode.GARBAGE:
        return Response(GARBAGE_BODY, status_code=override.status or 200, media_type="application/json")
    return None


async def _truncate(response: Response) -> Response:
    body = b""
    async for chunk in response.body_iterator:  # type: ignore[attr-defined]
        body += chunk if isinstance(chunk, bytes) else chunk.encode()
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(body[: len(body) // 2], status_code=response.status_code, headers=headers)


async def _pipeline(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    path = request.url.path
    if not path.startswith("/api/"):
        return await call_next(request)
    state: SandboxState = request.app.state.sandbox
    op = operations.match(request.method, path)
    started = state.now()
    shop_id: int | None = None
    fault: Fault | None = None
    try:
        if op is not None:
            with state.lock:
                fault = state.faults.take(op.op_id)
        if fault is not None and fault.kind in (
            FaultKind.SERVER_ERROR,
            FaultKind.RATE_LIMIT,
            FaultKind.HTML_ERROR,
        ):
            response = _fault_response(fault)
        else:
            shop = authenticate(state, request)
            shop_id = shop.shop_id
            if op is not None:
                with state.lock:
                    wait = state.limiter.admit(shop.shop_id, op.op_id, state.now())
                if wait is not None:
                    raise _TooManyRequests(wait)
            override = state.route(op.op_id) if op is not None else None
            routed = None if override is None or op is None else _route_response(override, op.op_id)
            if routed is not None:
                return _recorded(state, request, op, started, routed, shop_id, fault)
            request.state.shop = shop
            request.state.fault = fault
            response = await call_next(request)
            if override is not None and override.mode is RouteMode.TRUNCATED:
                response = await _truncate(response)
            if fault is not None and fault.kind is FaultKind.TRUNCATED_JSON:
                response = await _truncate(response)
            if fault is not None and fault.kind is FaultKind.TIMEOUT and fault.delay:
                await asyncio.sleep(fault.delay)
    except _TooManyRequests as exc:
        response = error_response(
            SandboxApiError(429, "Too many requests: the rate limit of this operation is exceeded"),
            headers={"Retry-After": str(exc.wait)},
        )
    except SandboxApiError as exc:
        response = error_response(exc)
    return _recorded(state, request, op, started, response, shop_id, fault)


def _recorded(
    state: SandboxState,
    request: Request,
    op: operations.Operation | None,
    started: datetime,
    response: Response,
    shop_id: int | None,
    fault: Fault | None,
) -> Response:
    state.record(
        RequestRecord(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            op_id=op.op_id if op else None,
            at=started,
            status=response.status_code,
            shop_id=shop_id,
            fault=fault.kind if fault else None,
        )
    )
    return response


class _TooManyRequests(Exception):
    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait
