"""The generic HTTP/webhook OMS adapter: POST the order document, signed, to the merchant's URL.

Request: ``POST <settings.url>`` with the :class:`~tradelane.merchant.schema.OmsOrder` JSON as body,
``Content-Type: application/json``, ``X-Tradelane-Signature`` (see :mod:`tradelane.merchant.signing`) and
``Idempotency-Key: order-<id>`` so the OMS can deduplicate our retries.

Classification (pure :func:`classify`, on the shared HTTP edge :mod:`tradelane.http_edge`):

* 2xx with an empty or JSON body → delivered; the OMS's order id is the response JSON's ``id`` when there
  is one; ``"status": "duplicate"`` in it (the answer to a repeated ``Idempotency-Key``) → delivered with
  ``already_held``;
* a 2xx with any other body (an HTML page, garbage, truncated JSON) acknowledges nothing → retry;
* 408, 425, 429, 5xx, timeouts and connection failures → retry (``Retry-After`` honoured);
* any other status (4xx, and 3xx since redirects are not followed) → rejected, with the response kept.

Every reason quotes what the OMS said (:func:`partner_message`: its JSON ``message``/``error``/...,
plain text, or an HTML page's title).

Cancellations made on the marketplace (:meth:`HttpOmsAdapter.notify_cancellation`): ``POST`` to the
cancellations URL — ``settings.cancellations_url`` when set, otherwise the orders ``url`` with its last
path segment replaced by ``cancellations`` (``https://oms.example/api/orders`` →
``https://oms.example/api/cancellations``) — signed and keyed the same way, with the body
``{"type": "cancellation", "order": <ref>, "lines": [{"sku", "quantity"}...] | null, "reason": ...}``
(``lines`` null: the whole order). Classified like orders (2xx done, 408/425/429/5xx retry, other refused).

Settings: ``url`` (required), ``cancellations_url`` (optional), ``cancellations`` (default true; false:
the OMS has no cancellations module, nothing is sent there and each cancellation is refused at once —
an alert says to cancel by hand), ``timeout_seconds`` (default 10).
Credentials: ``{"secret": ...}``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tradelane import __version__
from tradelane.http_edge import StatusClass, excerpt, no_response, parse_retry_after, status_class
from tradelane.merchant.base import (
    Capability,
    DeliveryOutcome,
    MerchantCapabilities,
    MerchantSystem,
    OutcomeKind,
)
from tradelane.merchant.json_body import strict_json
from tradelane.merchant.schema import OmsOrder
from tradelane.merchant.signing import SIGNATURE_HEADER, sign

#: ``merchant_systems.kind`` of HTTP OMS systems.
HTTP_KIND = "http"
DEFAULT_TIMEOUT_SECONDS = 10.0
#: Raw responses are kept on the delivery row up to this many characters.
MAX_KEPT_RESPONSE = 64 * 1024
CANCELLATION_REASON = "cancelled on the marketplace"
#: An HTTP OMS receives orders and their cancellations, and sends shipments (and other order updates)
#: back by its webhook.
HTTP_CAPABILITIES = MerchantCapabilities.of(
    Capability.RECEIVE_ORDERS, Capability.RECEIVE_CANCELLATIONS, Capability.SEND_SHIPMENTS
)
#: ... unless its settings say ``"cancellations": false`` (the OMS has no cancellations module).
HTTP_CAPABILITIES_WITHOUT_CANCELLATIONS = MerchantCapabilities.of(
    Capability.RECEIVE_ORDERS, Capability.SEND_SHIPMENTS
)


def capabilities(settings: dict[str, Any]) -> MerchantCapabilities:
    """The :data:`~tradelane.merchant.base.CapabilitiesOf` of ``kind = "http"`` systems: ``ValueError``
    when ``cancellations`` is set to anything but a boolean."""
    declared = settings.get("cancellations", True)
    if not isinstance(declared, bool):
        raise ValueError(f"cancellations must be true or false, got {declared!r}")
    return HTTP_CAPABILITIES if declared else HTTP_CAPABILITIES_WITHOUT_CANCELLATIONS


def cancellations_url(orders_url: str) -> str:
    """The orders URL with its last path segment replaced by ``cancellations`` (query dropped)."""
    parts = urlsplit(orders_url)
    base = parts.path.rstrip("/").rsplit("/", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, f"{base}/cancellations", "", ""))


def cancellation_body(document: OmsOrder, lines: list[str] | None) -> dict[str, Any]:
    """The cancellation document (pure): ``lines`` are marketplace line ids of ``document``; None
    cancels the whole order. Line ids the document does not carry are left out."""
    items: list[dict[str, Any]] | None = None
    if lines is not None:
        wanted = set(lines)
        items = [{"sku": ln.sku, "quantity": ln.quantity} for ln in document.lines if ln.line_id in wanted]
    return {"type": "cancellation", "order": document.ref, "lines": items, "reason": CANCELLATION_REASON}


_TAGS = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
#: The partner's message is quoted in a reason up to this many characters.
MAX_MESSAGE = 300


def partner_message(body: Any, text: str) -> str | None:
    """What the OMS said, for a human (pure): the ``message``/``error_description``/``error``/``detail``/
    ``errors`` of a JSON answer (a list or object of messages joined), a plain-text body, or an HTML
    page's title (else its text); None when it said nothing."""
    said: Any = None
    if isinstance(body, dict):
        for name in ("message", "error_description", "error", "detail", "errors"):
            if body.get(name):
                said = body[name]
                break
    elif isinstance(body, str | list):
        said = body
    elif body is None and text.strip():
        title = _TITLE.search(text)
        said = title.group(1) if title else _TAGS.sub(" ", text)
    if isinstance(said, dict):
        said = "; ".join(
            f"{k}: {', '.join(str(m) for m in v) if isinstance(v, list) else v}" for k, v in said.items()
        )
    elif isinstance(said, list):
        said = "; ".join(str(item) for item in said)
    if said is None:
        return None
    flat = " ".join(str(said).split())
    return (excerpt(flat, MAX_MESSAGE) or None) if flat else None


def classify(
    status: int,
    headers: httpx.Headers | dict[str, str],
    text: str,
    *,
    request: str,
    now: datetime,
    what: str = "the order",
) -> DeliveryOutcome:
    """The outcome of one HTTP answer of the OMS (pure). ``what`` names what was sent, for the reason.

    A 2xx acknowledges with an empty body or JSON; a 2xx with any other body (an HTML page, garbage, a
    truncated JSON text) acknowledges nothing: retry (the same Idempotency-Key makes it safe). A JSON
    ``"status": "duplicate"`` says the OMS already held it (``already_held``)."""
    kept = f"HTTP {status}\n{excerpt(text, MAX_KEPT_RESPONSE)}"
    body = strict_json(text)
    reading = status_class(status)
    said = partner_message(body, text)
    if reading is StatusClass.OK and body is None and text.strip():
        return DeliveryOutcome(
            OutcomeKind.RETRY,
            f"OMS answered HTTP {status} with a body that is not JSON ({said or 'unreadable'}): not an "
            f"acknowledgement of {what}; it is sent again with the same Idempotency-Key",
            request,
            kept,
            status,
            response_body=text[:MAX_KEPT_RESPONSE],
        )
    if reading is StatusClass.OK:
        ref = body.get("id") if isinstance(body, dict) else None
        ref_text = None if ref is None else str(ref)[:200]
        duplicate = isinstance(body, dict) and body.get("status") == "duplicate"
        as_ref = f" as {ref_text}" if ref_text else ""
        reason = (
            f"already in the OMS{as_ref} (HTTP {status}, a repeated Idempotency-Key)"
            if duplicate
            else f"accepted with HTTP {status}{as_ref}"
        )
        return DeliveryOutcome(
            OutcomeKind.DELIVERED,
            reason,
            request,
            kept,
            status,
            external_ref=ref_text,
            response_body=body,
            already_held=duplicate,
        )
    detail = f": {said}" if said else ""
    if reading is StatusClass.RETRYABLE:
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
        return DeliveryOutcome(
            OutcomeKind.RETRY,
            f"OMS answered HTTP {status}{detail}",
            request,
            kept,
            status,
            retry_after=retry_after,
            response_body=body,
        )
    return DeliveryOutcome(
        OutcomeKind.REJECTED,
        f"OMS rejected {what} with HTTP {status}{detail}",
        request,
        kept,
        status,
        response_body=body if body is not None else text[:MAX_KEPT_RESPONSE],
    )


class HttpOmsAdapter:
    """One HTTP OMS. Pass ``client`` to share a connection pool; otherwise one is created and closed
    by :meth:`close`."""

    def __init__(
        self, system: MerchantSystem, credentials: dict[str, Any], client: httpx.Client | None = None
    ) -> None:
        url = system.settings.get("url")
        secret = credentials.get("secret")
        if not isinstance(url, str) or not url:
            raise ValueError(f"merchant system {system.name!r} has no url")
        if not isinstance(secret, str) or not secret:
            raise ValueError(f"merchant system {system.name!r} has no signing secret")
        self.system = system
        self.url = url
        configured = system.settings.get("cancellations_url")
        self.cancellations_url = (
            configured if isinstance(configured, str) and configured else cancellations_url(url)
        )
        self._secret = secret
        self.receives_cancellations = Capability.RECEIVE_CANCELLATIONS in capabilities(system.settings)
        timeout = float(system.settings.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS)
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def __repr__(self) -> str:
        return f"HttpOmsAdapter({self.system.name!r}, {self.url!r})"

    def deliver_order(self, document: OmsOrder, *, idempotency_key: str, now: datetime) -> DeliveryOutcome:
        body = document.model_dump_json().encode("utf-8")
        return self._post(self.url, body, idempotency_key, now, "the order")

    def notify_cancellation(
        self, document: OmsOrder, *, lines: list[str] | None, idempotency_key: str, now: datetime
    ) -> DeliveryOutcome:
        if not self.receives_cancellations:
            what = "the order" if lines is None else f"line(s) {', '.join(lines)}"
            return DeliveryOutcome(
                OutcomeKind.REJECTED,
                f"{self.system.name} declares no cancellations module (settings: cancellations false): "
                f"the cancellation of {what} was not sent to it",
                f"POST {self.cancellations_url} (not sent)",
            )
        body = json.dumps(cancellation_body(document, lines), ensure_ascii=False).encode("utf-8")
        return self._post(self.cancellations_url, body, idempotency_key, now, "the cancellation")

    def _post(self, url: str, body: bytes, idempotency_key: str, now: datetime, what: str) -> DeliveryOutcome:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "User-Agent": f"tradelane/{__version__}",
            SIGNATURE_HEADER: sign(self._secret, body, now),
        }
        request = f"POST {url}\nIdempotency-Key: {idempotency_key}\n\n{body.decode('utf-8')}"
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.RequestError as exc:
            failure = no_response(exc, method="POST", url=url)
            return DeliveryOutcome(OutcomeKind.RETRY, f"OMS unreachable: {failure.reason}", request)
        return classify(
            response.status_code, response.headers, response.text, request=request, now=now, what=what
        )

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def http_adapter(system: MerchantSystem, credentials: dict[str, Any]) -> HttpOmsAdapter:
    """The :data:`~tradelane.merchant.base.AdapterFactory` of ``kind = "http"`` systems."""
    return HttpOmsAdapter(system, credentials)
