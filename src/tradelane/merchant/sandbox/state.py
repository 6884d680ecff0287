"""The sandbox OMS's world: received orders, injected faults, rejected SKUs, and the way back to
tradelane. Thread-safe (the HTTP server and the test drive it concurrently)."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tradelane.merchant.signing import DEFAULT_TOLERANCE_SECONDS, SignatureError, verify
from tradelane.timeutil import utcnow


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure: ``status`` (e.g. 500 or 429) and an optional ``Retry-After`` (seconds)."""

    status: int
    retry_after: int | None = None


@dataclass
class ReceivedOrder:
    oms_id: str
    idempotency_key: str
    document: dict[str, Any]
    received_at: datetime
    deliveries: int = 1
    shipments: list[dict[str, Any]] = field(default_factory=list)
    #: Cancellations received (``POST /cancellations``): ``idempotency_key``, ``lines``, ``reason``, ``at``.
    cancellations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return str(self.document.get("ref") or self.document.get("id"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.oms_id,
            "idempotency_key": self.idempotency_key,
            "ref": self.ref,
            "received_at": self.received_at.isoformat(),
            "deliveries": self.deliveries,
            "shipments": list(self.shipments),
            "cancellations": list(self.cancellations),
            "document": self.document,
        }


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    """How the sandbox reaches tradelane: its base URL, an API token (for ``/api/v1/orders/...``) and
    the merchant system's name (for the signed ``/api/v1/merchant/{name}/webhook``)."""

    tradelane_url: str
    api_token: str | None = None
    merchant_name: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class OmsSandboxState:
    def __init__(
        self,
        secret: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        tolerance: int = DEFAULT_TOLERANCE_SECONDS,
        callback: CallbackConfig | None = None,
        latency_seconds: float = 0.0,
    ) -> None:
        self._secret = secret
        #: A slow OMS: each order POST is answered this many seconds after it arrived.
        self.latency_seconds = latency_seconds
        self.clock = clock
        self.tolerance = tolerance
        self.callback = callback
        self._lock = threading.Lock()
        self._orders: dict[str, ReceivedOrder] = {}
        self._faults: deque[Fault] = deque()
        self._reject_skus: set[str] = set()
        self._log: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"OmsSandboxState(<{len(self._orders)} orders>)"

    @property
    def secret(self) -> str:
        return self._secret

    # -- control ---------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 500, retry_after: int | None = None) -> None:
        """The next ``count`` order or cancellation POSTs (with a valid signature) answer ``status``."""
        with self._lock:
            self._faults.extend(Fault(status, retry_after) for _ in range(count))

    def reject_skus(self, skus: set[str] | list[str]) -> None:
        """Orders carrying any of these (merchant) SKUs are refused with 422."""
        with self._lock:
            self._reject_skus = set(skus)

    def orders(self) -> list[ReceivedOrder]:
        with self._lock:
            return sorted(self._orders.values(), key=lambda o: int(o.oms_id.rsplit("-", 1)[1]))

    def find(self, key: str) -> ReceivedOrder | None:
        """An order by OMS id, idempotency key or tradelane ref."""
        with self._lock:
            for order in self._orders.values():
                if key in (order.oms_id, order.idempotency_key, order.ref, str(order.document.get("id"))):
                    return order
        return None

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def record_shipment(self, order: ReceivedOrder, shipment: dict[str, Any]) -> None:
        with self._lock:
            order.shipments.append(shipment)

    # -- the OMS API -----------------------------------------------------------------------------
    def receive(self, headers: dict[str, str], body: bytes) -> Answer:
        """Handle ``POST /orders`` (``headers`` with lower-case names).

        Order: signature and replay window (401), ``Idempotency-Key`` (400), injected fault, JSON
        shape (400), rejected SKUs (422), then store — a repeated key answers 200 with the same id.
        A re-sent signature inside the window is *not* refused here: tradelane re-signs each retry,
        and two retries within one second carry the same signature; the idempotency key dedupes."""
        return self._logged(headers, self._receive(headers, body))

    def _check(self, headers: dict[str, str], body: bytes) -> Answer | str:
        """The signature, the ``Idempotency-Key`` and an injected fault: the refusal, or the key."""
        try:
            verify(self._secret, headers.get("x-tradelane-signature"), body, self.clock(), self.tolerance)
        except SignatureError as exc:
            return Answer(401, {"error": "invalid_signature", "message": exc.reason})
        key = headers.get("idempotency-key", "").strip()
        if not key:
            return Answer(400, {"error": "missing_idempotency_key", "message": "Idempotency-Key is required"})
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return Answer(fault.status, {"error": "injected_fault", "message": f"HTTP {fault.status}"}, extra)
        return key

    def _logged(self, headers: dict[str, str], answer: Answer) -> Answer:
        with self._lock:
            self._log.append(
                {
                    "at": self.clock().isoformat(),
                    "idempotency_key": headers.get("idempotency-key"),
                    "status": answer.status,
                }
            )
        return answer

    def receive_cancellation(self, headers: dict[str, str], body: bytes) -> Answer:
        """Handle ``POST /cancellations`` (checked like orders; injected faults apply too): record
        ``{"order": <ref or id>, "lines": [...] | null, "reason"}`` on the received order (404 when
        unknown). A repeated ``Idempotency-Key`` answers 200 without recording twice."""
        return self._logged(headers, self._receive_cancellation(headers, body))

    def _receive_cancellation(self, headers: dict[str, str], body: bytes) -> Answer:
        checked = self._check(headers, body)
        if isinstance(checked, Answer):
            return checked
        try:
            document = json.loads(body)
        except ValueError:
            return Answer(400, {"error": "invalid_json", "message": "body is not JSON"})
        if not isinstance(document, dict) or not isinstance(document.get("lines"), list | None):
            return Answer(400, {"error": "invalid_cancellation", "message": "order and lines are required"})
        order = self.find(str(document.get("order")))
        if order is None:
            return Answer(404, {"error": "unknown_order", "message": f"no order {document.get('order')!r}"})
        with self._lock:
            if any(c["idempotency_key"] == checked for c in order.cancellations):
                return Answer(200, {"order": order.oms_id, "status": "duplicate"})
            order.cancellations.append(
                {
                    "idempotency_key": checked,
                    "lines": document["lines"],
                    "reason": document.get("reason"),
                    "at": self.clock().isoformat(),
                }
            )
        return Answer(201, {"order": order.oms_id, "status": "cancelled"})

    def _receive(self, headers: dict[str, str], body: bytes) -> Answer:
        checked = self._check(headers, body)
        if isinstance(checked, Answer):
            return checked
        key = checked
        with self._lock:
            rejected = set(self._reject_skus)
        try:
            document = json.loads(body)
        except ValueError:
            return Answer(400, {"error": "invalid_json", "message": "body is not JSON"})
        if not isinstance(document, dict) or not isinstance(document.get("lines"), list):
            return Answer(
                400, {"error": "invalid_order", "message": "an order object with lines is required"}
            )
        skus = sorted(
            {str(line.get("sku")) for line in document["lines"] if isinstance(line, dict)} & rejected
        )
        if skus:
            return Answer(
                422, {"error": "unknown_sku", "message": f"unknown SKU(s): {', '.join(skus)}", "skus": skus}
            )
        with self._lock:
            existing = self._orders.get(key)
            if existing is not None:
                existing.deliveries += 1
                return Answer(200, {"id": existing.oms_id, "status": "duplicate"})
            order = ReceivedOrder(f"OMS-{len(self._orders) + 1}", key, document, self.clock())
            self._orders[key] = order
            return Answer(201, {"id": order.oms_id, "status": "created"})
