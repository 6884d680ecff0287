"""Helpers shared by the route modules: the call's state and shop, and offset-page bookkeeping."""

from __future__ import annotations

from fastapi import Request

from tradelane.connectors.mirakl.sandbox.faults import FaultKind
from tradelane.connectors.mirakl.sandbox.models import Shop
from tradelane.connectors.mirakl.sandbox.state import SandboxState


def context(request: Request) -> tuple[SandboxState, Shop]:
    """The sandbox state and the authenticated shop (set by the app's request pipeline)."""
    return request.app.state.sandbox, request.state.shop


def page_offset(request: Request, state: SandboxState, shop: Shop, op_id: str, offset: int) -> int:
    """The offset actually served: a ``duplicate_page`` fault serves the previous page again."""
    fault = getattr(request.state, "fault", None)
    if fault is not None and fault.kind is FaultKind.DUPLICATE_PAGE:
        offset = state.last_page_offset.get((shop.shop_id, op_id), 0)
    state.last_page_offset[(shop.shop_id, op_id)] = offset
    return offset
