"""A faithful in-process sandbox of the Mirakl seller (shop) API.

``create_app(SandboxState(seed))`` is a FastAPI app answering the seller operations the way the
OpenAPI spec (``specs/mirakl``) and Mirakl's documentation describe them — rejections included —
with a controllable clock, per-operation rate limits, fault injection and a request log. Serve it in
tests with ``fastapi.testclient.TestClient``, over real HTTP with :class:`SandboxServer`, or from the
command line (``tradelane sandbox mirakl``).
"""

from __future__ import annotations

from tradelane.connectors.mirakl.sandbox.app import create_app
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.connectors.mirakl.sandbox.config import OrderLineSpec, SandboxConfig
from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError
from tradelane.connectors.mirakl.sandbox.faults import FaultKind, RateLimit, RequestRecord
from tradelane.connectors.mirakl.sandbox.models import (
    Address,
    Carrier,
    Customer,
    LineState,
    OrderState,
    Product,
    Shop,
)
from tradelane.connectors.mirakl.sandbox.server import SandboxServer, serve
from tradelane.connectors.mirakl.sandbox.state import SandboxState

__all__ = [
    "Address",
    "Carrier",
    "Customer",
    "FaultKind",
    "LineState",
    "OrderLineSpec",
    "OrderState",
    "Product",
    "RateLimit",
    "RequestRecord",
    "SandboxApiError",
    "SandboxClock",
    "SandboxConfig",
    "SandboxServer",
    "SandboxState",
    "Shop",
    "create_app",
    "serve",
]
