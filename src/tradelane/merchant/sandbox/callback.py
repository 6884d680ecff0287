"""The sandbox OMS calling tradelane back with an update (shipment, cancellation, return).

Two ways, as a real OMS would: the REST API (``POST {tradelane}/api/v1/orders/{ref}/shipments`` etc.
with ``Authorization: Bearer <token>``) or the signed merchant webhook
(``POST {tradelane}/api/v1/merchant/{name}/webhook`` with ``X-Tradelane-Signature``).
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import quote

import httpx

from tradelane.merchant.sandbox.state import OmsSandboxState, ReceivedOrder
from tradelane.merchant.signing import SIGNATURE_HEADER, sign

UpdateKind = Literal["shipment", "cancellation", "return"]
Via = Literal["api", "webhook"]

#: REST sub-resources of ``/api/v1/orders/{ref}`` per update kind.
API_PATHS: dict[str, str] = {"shipment": "shipments", "cancellation": "cancellations", "return": "returns"}
TIMEOUT_SECONDS = 10.0


def send_update(
    state: OmsSandboxState,
    order: ReceivedOrder,
    kind: UpdateKind,
    fields: dict[str, Any],
    *,
    via: Via,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """Send one update about ``order`` to tradelane; returns tradelane's response (not raised on 4xx)."""
    config = state.callback
    if config is None:
        raise RuntimeError("the sandbox has no tradelane callback configured")
    external_id = str(fields.get("id") or f"{order.oms_id}-{kind}-{len(order.shipments) + 1}")
    base = config.tradelane_url.rstrip("/")
    if via == "api":
        if not config.api_token:
            raise RuntimeError("the sandbox has no tradelane API token configured")
        url = f"{base}/api/v1/orders/{quote(order.ref, safe=':')}/{API_PATHS[kind]}"
        payload = {**{k: v for k, v in fields.items() if k != "id"}, "external_id": external_id}
        if config.merchant_name:
            payload["merchant_system"] = config.merchant_name
        body = json.dumps(payload).encode("utf-8")
        headers = {"Authorization": f"Bearer {config.api_token}", "Content-Type": "application/json"}
    else:
        if not config.merchant_name:
            raise RuntimeError("the sandbox has no merchant system name configured")
        url = f"{base}/api/v1/merchant/{quote(config.merchant_name, safe='')}/webhook"
        payload = {"type": kind, "order": order.ref, "id": external_id, **fields}
        body = json.dumps(payload).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(state.secret, body, state.clock()),
        }
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT_SECONDS)
    try:
        response = http.post(url, content=body, headers=headers)
    finally:
        if own:
            http.close()
    if kind == "shipment" and response.is_success:
        state.record_shipment(order, {"id": external_id, "via": via, **fields})
    return response
