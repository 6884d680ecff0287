"""The ASGI application of the Amazon SP-API sandbox and its request pipeline.

Routes: ``POST /auth/o2/token`` (Login with Amazon), the SP-API operations of :mod:`.operations`,
``GET|PUT /_documents/{id}`` (the local document store behind the feed document URLs, unauthenticated
like presigned S3 URLs) and the ``/_sandbox`` controls (:mod:`.control`).

An SP-API request goes through, in order: operation lookup (404), one-off fault (throttle, 5xx,
garbage), the access token (403), a lasting route override (off 404, forbidden 403, status,
garbage), the operation's token bucket (429 ``QuotaExceeded``), the handler, then truncation or delay.
Every SP-API answer carries ``x-amzn-RequestId``, and ``x-amzn-RateLimit-Limit`` (the operation's
usage-plan rate) whenever the path is an operation's.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tradelane.connectors.amazon.sandbox import control, operations
from tradelane.connectors.amazon.sandbox.api import HANDLERS, Context
from tradelane.connectors.amazon.sandbox.errors import LwaError, SpApiError, not_found, unauthorized
from tradelane.connectors.amazon.sandbox.ratelimits import GARBAGE_BODY, FaultKind, RouteMode
from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState, RequestRecord

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(state: AmazonSandboxState) -> Starlette:
    """The sandbox serving ``state`` (tests keep controlling ``state`` while it runs)."""
    app = Starlette(
        routes=[
            Route("/auth/o2/token", _lwa_token, methods=["POST"]),
            Route("/_documents/{document_id:path}", _document, methods=["GET", "PUT"]),
            Mount("/_sandbox", routes=control.routes()),
            Route("/{path:path}", _sp_api, methods=_ALL_METHODS),
        ]
    )
    app.state.sandbox = state
    return app


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


async def _lwa_token(request: Request) -> Response:
    state: AmazonSandboxState = request.app.state.sandbox
    raw = await request.body()
    form: dict[str, str]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            parsed = None
        form = {k: str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    else:
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    started = state.now()
    fault = None
    with state.lock:
        fault = state.faults.take("lwaToken")
    try:
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            response = _json({"error": "server_error", "error_description": "Internal failure"}, fault.status)
        else:
            response = _json(state.exchange(form), 200)
            if fault is not None and fault.kind is FaultKind.TIMEOUT:
                await asyncio.sleep(fault.delay)
    except LwaError as exc:
        response = _json(exc.body(), exc.status)
    state.record(RequestRecord("POST", "/auth/o2/token", "", "lwaToken", started, response.status_code, None))
    return response


async def _document(request: Request) -> Response:
    state: AmazonSandboxState = request.app.state.sandbox
    document_id = request.path_params["document_id"]
    if request.method == "PUT":
        try:
            state.upload(document_id, await request.body(), request.headers.get("content-type", ""))
        except SpApiError as exc:
            return Response(
                f"<Error><Code>{exc.code}</Code><Message>{exc.message}</Message></Error>",
                exc.status,
                media_type="application/xml",
            )
        return Response(status_code=200)
    with state.lock:
        doc = state.documents.get(document_id)
    if doc is None or doc.content is None:
        return Response("<Error><Code>NoSuchKey</Code></Error>", 404, media_type="application/xml")
    # A compressed document is served as stored (no Content-Encoding): the client gunzips it because
    # getFeedDocument said compressionAlgorithm GZIP, as with Amazon's presigned S3 URLs.
    media = "application/octet-stream" if doc.compression else doc.content_type
    return Response(doc.content, 200, media_type=media)


async def _sp_api(request: Request) -> Response:
    state: AmazonSandboxState = request.app.state.sandbox
    raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
    found = operations.match(request.method, raw_path)
    started = state.now()
    request_id = str(uuid.uuid4())
    op_id = found[0].op_id if found else None
    plan = state.buckets.plans.get(op_id or "")
    headers = {"x-amzn-RequestId": request_id}
    if plan is not None:  # a path no operation serves has no usage plan to report
        headers["x-amzn-RateLimit-Limit"] = plan.header()
    seller_id: str | None = None
    fault = None
    try:
        if found is None:
            if operations.path_exists(raw_path):
                raise SpApiError(
                    405, "MethodNotAllowed", f"Method {request.method} is not allowed on this resource."
                )
            raise not_found("Resource not found.")
        op, params = found
        with state.lock:
            fault = state.faults.take(op.op_id)
        if fault is not None and fault.kind is FaultKind.THROTTLE:
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            raise SpApiError(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
        if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
            raise SpApiError(
                fault.status, "InternalFailure", "We encountered an internal error. Please try again."
            )
        if fault is not None and fault.kind is FaultKind.GARBAGE:
            return _recorded(
                state,
                request,
                op_id,
                started,
                Response(GARBAGE_BODY, 200, headers=headers, media_type="application/json"),
                None,
                fault.kind.value,
            )
        seller = state.authorize(request.headers.get("x-amz-access-token"))
        seller_id = seller.seller_id
        override = state.routes.get(op.op_id)
        if override is not None and override.mode is RouteMode.OFF:
            raise not_found("Resource not found.")
        if override is not None and override.mode is RouteMode.FORBIDDEN:
            raise unauthorized(f"The application is not authorised for {op.op_id}.")
        if override is not None and override.mode is RouteMode.STATUS:
            raise SpApiError(
                override.status or 500,
                "InternalFailure",
                f"{op.op_id} answers {override.status} (sandbox route).",
            )
        if override is not None and override.mode is RouteMode.GARBAGE:
            return _recorded(
                state,
                request,
                op_id,
                started,
                Response(GARBAGE_BODY, 200, headers=headers, media_type="application/json"),
                seller_id,
                None,
            )
        with state.lock:
            wait = state.buckets.take(seller.seller_id, op.op_id, state.now())
        if wait is not None:
            raise SpApiError(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
        body = await request.body()
        if body and request.method in ("POST", "PUT", "PATCH"):
            ctype = request.headers.get("content-type", "")
            if not ctype.startswith("application/json"):
                raise SpApiError(
                    415,
                    "UnsupportedMediaType",
                    f"Content-Type '{ctype}' is not supported; use application/json.",
                )
        ctx = Context(
            state=state,
            seller=seller,
            params=params,
            query=parse_qs(request.url.query, keep_blank_values=True),
            body=body,
            base_url=str(request.base_url).rstrip("/"),
            duplicate_page=fault is not None and fault.kind is FaultKind.DUPLICATE_PAGE,
        )
        status, payload = HANDLERS[op.op_id](ctx)
        response = _json(payload, status, headers)
        truncate = (override is not None and override.mode is RouteMode.TRUNCATED) or (
            fault is not None and fault.kind is FaultKind.TRUNCATED
        )
        if truncate and payload is not None:
            full = bytes(response.body)
            response = Response(
                full[: len(full) // 2], status, headers=headers, media_type="application/json"
            )
        if fault is not None and fault.kind is FaultKind.TIMEOUT:
            await asyncio.sleep(fault.delay)
    except SpApiError as exc:
        response = _json(exc.body(), exc.status, headers)
    return _recorded(state, request, op_id, started, response, seller_id, fault.kind.value if fault else None)


def _recorded(
    state: AmazonSandboxState,
    request: Request,
    op_id: str | None,
    started: Any,
    response: Response,
    seller_id: str | None,
    fault: str | None,
) -> Response:
    state.record(
        RequestRecord(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            op_id=op_id,
            at=started,
            status=response.status_code,
            seller_id=seller_id,
            fault=fault,
        )
    )
    return response
