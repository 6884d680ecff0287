"""The sandbox OMS's HTTP API.

* ``POST /orders`` — receive a signed order (see :meth:`OmsSandboxState.receive`), answered after
  ``latency_seconds`` (a slow OMS; default 0);
* ``POST /cancellations`` — receive a signed cancellation (:meth:`OmsSandboxState.receive_cancellation`);
* ``GET /orders``, ``GET /orders/{key}`` — what was received (key: OMS id, idempotency key or ref);
* ``POST /_sandbox/faults`` ``{"count", "status", "retry_after"}`` — fail the next order or
  cancellation POSTs;
* ``PUT /_sandbox/reject-skus`` ``{"skus": [...]}`` — refuse orders carrying these SKUs (422);
* ``POST /_sandbox/orders/{key}/ship`` ``{"carrier", "tracking_number", "tracking_url", "lines", "via"}``
  and ``POST /_sandbox/orders/{key}/cancel`` ``{"lines", "reason", "via"}`` — call tradelane back;
* ``GET /_sandbox/requests`` — the log of order POSTs (idempotency key and answer status).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tradelane.merchant.sandbox.callback import send_update
from tradelane.merchant.sandbox.state import OmsSandboxState, ReceivedOrder


class FaultsIn(BaseModel):
    count: int = Field(ge=1, le=1000)
    status: int = Field(default=500, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0, le=3600)


class RejectIn(BaseModel):
    skus: list[str]


class LineQty(BaseModel):
    sku: str
    quantity: int = Field(ge=1)


class ShipIn(BaseModel):
    carrier: str
    tracking_number: str
    tracking_url: str | None = None
    lines: list[LineQty] | None = None
    via: Literal["api", "webhook"] = "webhook"


class CancelIn(BaseModel):
    lines: list[LineQty] | None = None
    reason: str | None = None
    via: Literal["api", "webhook"] = "webhook"


def _state(request: Request) -> OmsSandboxState:
    state: OmsSandboxState = request.app.state.sandbox
    return state


def _order(request: Request, key: str) -> ReceivedOrder:
    order = _state(request).find(key)
    if order is None:
        raise HTTPException(404, f"no order {key!r}")
    return order


api = APIRouter()
control = APIRouter(prefix="/_sandbox")


@api.post("/orders")
async def receive_order(request: Request) -> JSONResponse:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    state = _state(request)
    answer = state.receive(headers, body)
    if state.latency_seconds > 0:
        await asyncio.sleep(state.latency_seconds)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


@api.post("/cancellations")
async def receive_cancellation(request: Request) -> JSONResponse:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = _state(request).receive_cancellation(headers, body)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


@api.get("/orders")
def list_orders(request: Request) -> list[dict[str, Any]]:
    return [o.as_dict() for o in _state(request).orders()]


@api.get("/orders/{key}")
def get_order(request: Request, key: str) -> dict[str, Any]:
    return _order(request, key).as_dict()


@control.post("/faults", status_code=204)
def add_faults(request: Request, body: FaultsIn) -> None:
    _state(request).fail_next(body.count, body.status, body.retry_after)


@control.put("/reject-skus", status_code=204)
def set_rejected(request: Request, body: RejectIn) -> None:
    _state(request).reject_skus(body.skus)


def _relay(request: Request, key: str, kind: Any, fields: dict[str, Any], via: Any) -> JSONResponse:
    state = _state(request)
    response = send_update(state, _order(request, key), kind, fields, via=via)
    try:
        content: Any = response.json()
    except ValueError:
        content = response.text
    return JSONResponse({"tradelane_status": response.status_code, "tradelane_response": content})


@control.post("/orders/{key}/ship")
def ship(request: Request, key: str, body: ShipIn) -> JSONResponse:
    fields = body.model_dump(exclude={"via"}, exclude_none=True)
    return _relay(request, key, "shipment", fields, body.via)


@control.post("/orders/{key}/cancel")
def cancel(request: Request, key: str, body: CancelIn) -> JSONResponse:
    fields = body.model_dump(exclude={"via"}, exclude_none=True)
    return _relay(request, key, "cancellation", fields, body.via)


@control.get("/requests")
def requests_log(request: Request) -> list[dict[str, Any]]:
    return _state(request).requests()


def create_app(state: OmsSandboxState) -> FastAPI:
    """An OMS app serving ``state`` (which callers keep controlling while it runs)."""
    app = FastAPI(title="tradelane HTTP OMS sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    app.include_router(api)
    app.include_router(control)
    return app
