"""An HTTP OMS sandbox: a stand-in merchant system for tests and demos.

It receives tradelane's signed order POSTs (``POST /orders``: signature and replay window verified,
401 otherwise; idempotent on ``Idempotency-Key``), can be told to reject orders carrying given SKUs
(422), to fail the next requests (500, or 429 with ``Retry-After``), and can "ship" or "cancel" an
order by calling tradelane back — through the API with a bearer token or through the signed merchant
webhook. Control endpoints live under ``/_sandbox``.

* :class:`~.state.OmsSandboxState` — the world (thread-safe), controllable from Python;
* :func:`~.app.create_app` — the FastAPI app serving a state;
* :class:`~.server.OmsSandboxServer` — the app on a real socket in a background thread.
"""

from tradelane.merchant.sandbox.app import create_app
from tradelane.merchant.sandbox.server import OmsSandboxServer, serve
from tradelane.merchant.sandbox.state import CallbackConfig, Fault, OmsSandboxState, ReceivedOrder

__all__ = [
    "CallbackConfig",
    "Fault",
    "OmsSandboxServer",
    "OmsSandboxState",
    "ReceivedOrder",
    "create_app",
    "serve",
]
