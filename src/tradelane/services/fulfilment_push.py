"""Fulfilment push, written once for every marketplace and driven through the port: job kinds
``fulfillments.ship``, ``fulfillments.cancel``, ``fulfillments.refund`` and ``fulfillments.label``.

Contracts (every job pushes one update of one order to the order's own channel, and only there):

* Third Party Managed orders are skipped (``{"skipped": ...}``): nothing is sent;
* carrier conversion: the merchant's carrier name goes through the channel's ``carrier_map`` setting
  (lower-cased name → the marketplace's code); a code is only sent when the marketplace knows it —
  when the connector lists its carrier codes (:class:`CarrierDirectory`; cached per channel for
  :data:`CARRIERS_TTL`) — otherwise the carrier travels as its name with the tracking URL, never as a
  wrong code;
* lines are named by SKU (``[{sku, quantity}]``); shipping fewer than all of them is a partial shipment,
  sent only where ``capabilities.partial_shipments``; a line-level cancellation only where
  ``capabilities.line_level_cancellation`` — otherwise a permanent error with the reason, and nothing
  is sent. An order the marketplace already shows shipped gets its tracking only; a shipment without a
  tracking number where ``capabilities.tracking_required`` is a permanent error with the reason, refused
  before any call (the carrier codes are not even read);
* a label goes once, as far as the marketplace allows: a retried job first asks the connector whether
  the order already holds the file (:class:`DocumentLedger`) and does not upload it again. A document
  the marketplace refuses is marked failed, with its reason;
* a test order (``orders.is_test``, see :mod:`tradelane.services.test_orders`) goes through all of the
  above — validation, carrier conversion (SH21 codes included), line choice — and then is never sent:
  the connector builds the request it would make (:class:`~tradelane.connectors.base.RequestPlanner`;
  otherwise the port's value is kept) and the job completes with it (``test_not_sent``, ``would_send``,
  ``carrier``, ``problems``) and a ``<EVENT>_VERIFIED`` history entry. The check is here, on every run,
  so a replayed job sends nothing either;
* each push adds the order's history entry (``SHIPMENT_SENT``, ``CANCELLATION_SENT``, ``REFUND_SENT``,
  ``LABEL_SENT``) and keeps the job's raw exchanges under ``order:<id>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from tradelane.connectors.base import (
    Cancellation,
    Capabilities,
    Document,
    MarketplaceConnector,
    Operation,
    PlannedRequest,
    Refund,
    RefundLine,
    RequestPlanner,
    Shipment,
    ShippedLine,
)
from tradelane.domain.errors import NotFoundError, PermanentError
from tradelane.domain.orders import SHIPPED_STATES
from tradelane.http_edge import Exchange
from tradelane.services import labels as label_service
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.labels import DocumentStatus
from tradelane.services.offer_publishing import PortSession
from tradelane.sync.context import JobContext

CARRIERS_CURSOR = "fulfilment.carrier_codes"
CARRIERS_TTL = timedelta(hours=1)
#: The document kind of a label when the job names no marketplace document type.
LABEL_KIND = "label"
#: Order states (neutral) in which the goods already left: a shipment adds tracking only.
ALREADY_SHIPPED = frozenset(state.value for state in SHIPPED_STATES)


@runtime_checkable
class CarrierDirectory(Protocol):
    """A connector that can list the carrier codes its marketplace knows."""

    def carrier_codes(self) -> set[str]: ...


@runtime_checkable
class DocumentLedger(Protocol):
    """A connector that can tell whether an order already holds a document (same file name and kind)."""

    def document_present(self, document: Document) -> bool: ...


#: Opens the session of one job on one channel (see :class:`~tradelane.services.offer_publishing.PortSession`:
#: its exchanges are read, and an upload's summarised, before they are recorded).
OpenFulfilmentSession = Callable[[JobContext, Channel], AbstractContextManager[PortSession]]


# --- pure ------------------------------------------------------------------------------------------


def resolve_carrier(
    carrier: str | None, carrier_map: Mapping[str, str], known_codes: set[str] | None
) -> tuple[str | None, str | None]:
    """(carrier code, carrier name) for a merchant carrier name/code (pure): the mapped (or given) code
    when the marketplace knows it (``known_codes`` None: the marketplace lists none, a mapped code is
    trusted), else the name."""
    if not carrier or not carrier.strip():
        return None, None
    name = carrier.strip()
    mapped = carrier_map.get(name.lower())
    code = mapped if mapped is not None else name
    if known_codes is None:
        return (mapped, None) if mapped is not None else (None, name)
    if code in known_codes:
        return code, None
    return None, name


def partial_lines(
    order: Mapping[str, Any], lines: Sequence[Mapping[str, Any]] | None
) -> list[ShippedLine] | None:
    """The lines ``lines`` ([{sku, quantity}]) ship when that is less than the whole order, else None
    (pure). A SKU the order lacks or a quantity above the line's is a permanent error."""
    if not lines:
        return None
    by_sku: dict[str, list[Mapping[str, Any]]] = {}
    for line in order["lines"]:
        by_sku.setdefault(line["sku"], []).append(line)
    chosen: list[tuple[str, int]] = []
    for item in lines:
        candidates = by_sku.get(item["sku"])
        if not candidates:
            raise PermanentError(f"order {order['marketplace_order_id']} has no line for SKU {item['sku']}")
        line = candidates[0]
        if int(item["quantity"]) > line["quantity"]:
            raise PermanentError(
                f"cannot ship {item['quantity']} of {item['sku']}: the line has {line['quantity']}"
            )
        chosen.append((line["line_id"], int(item["quantity"])))
    whole = {(ln["line_id"], ln["quantity"]) for ln in order["lines"]}
    return None if set(chosen) == whole else [ShippedLine(line_id, qty) for line_id, qty in chosen]


def refund_lines(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> list[RefundLine]:
    """``items`` ([{sku, quantity?, amount?}]) as refund lines (pure): the whole line's quantity when
    none is given, the unit price × quantity when no amount is, in the line's currency."""
    refunds: list[RefundLine] = []
    for item in items:
        line = next((ln for ln in order["lines"] if ln["sku"] == item["sku"]), None)
        if line is None:
            raise PermanentError(f"order {order['marketplace_order_id']} has no line for SKU {item['sku']}")
        quantity = int(item.get("quantity", line["quantity"]))
        amount = (
            Decimal(str(item["amount"])) if item.get("amount") is not None else line["unit_price"] * quantity
        )
        refunds.append(RefundLine(line["line_id"], quantity, amount, line["currency"]))
    return refunds


def _require(connector: MarketplaceConnector, operation: Operation, what: str) -> Capabilities:
    capabilities = connector.capabilities
    if not capabilities.supports(operation):
        hint = capabilities.hints.get(operation.value)
        raise PermanentError(f"{what} are not supported by {connector.name}" + (f" ({hint})" if hint else ""))
    return capabilities


# --- test orders: everything but the call ----------------------------------------------------------


def _port_call(operation: str, value: Any) -> PlannedRequest:
    """What a connector without a request plan would be asked (the port's value; test orders)."""
    return PlannedRequest(operation, "port", str(getattr(value, "order_id", "")), _plain(asdict(value)))


def _plain(value: Any) -> Any:
    """``value`` with Decimals and datetimes as strings (for a job result)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (Decimal, datetime)):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    return value


def _planned_ship(
    connector: MarketplaceConnector, shipment: Shipment, order: Mapping[str, Any]
) -> list[PlannedRequest]:
    """The requests ``connector.ship(shipment)`` would make; the order's live lines stand in for what a
    connector would read from the marketplace (the order exists only here)."""
    if not isinstance(connector, RequestPlanner):
        return [_port_call("ship", shipment)]
    lines = {
        str(ln["line_id"]): int(ln["quantity"])
        for ln in order["lines"]
        if str(ln.get("state") or "").upper() not in {"CANCELED", "CANCELLED", "REFUSED"}
    }
    return connector.plan_ship(shipment, lines)


def _carrier_problems(
    connector: MarketplaceConnector, carrier: str | None, code: str | None, known: set[str] | None
) -> list[str]:
    """Why the carrier conversion would not give the marketplace a carrier code it knows (empty: fine).
    Only where the marketplace lists its codes: elsewhere the connector maps names itself."""
    if not carrier or code is not None or known is None:
        return []
    return [
        f"unknown carrier {carrier!r}: neither the channel's carrier_map nor {connector.name}'s "
        f"{len(known)} carrier codes know it, so it would be sent as a free carrier name (no carrier "
        "code: the customer gets no carrier tracking link); add it to the channel's carrier_map"
    ]


def _not_sent(
    ctx: JobContext,
    session: PortSession,
    channel: Channel,
    order: Mapping[str, Any],
    event: str,
    planned: Sequence[PlannedRequest],
    *,
    now: datetime,
    carrier: Mapping[str, Any] | None = None,
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """Complete a test order's update job without sending anything: the order's history gets
    ``<EVENT>_VERIFIED`` ("test: not sent — would send ..."), the job's result carries the requests
    (``would_send``), the carrier conversion and any problem. Replaying the job does the same again."""
    calls = ", ".join(f"{p.operation} {p.method} {p.path}" for p in planned) or "no request"
    text = f"test: not sent — would send {calls}"
    if problems:
        text += "; PROBLEM: " + "; ".join(problems)
    result: dict[str, Any] = {
        "test_not_sent": text,
        "would_send": [_plain(p.as_dict()) for p in planned],
        "problems": list(problems),
    }
    if carrier is not None:
        result["carrier"] = dict(carrier)
    return _finish(ctx, session, channel, int(order["id"]), f"{event}_VERIFIED", text, result, now=now)


# --- the jobs --------------------------------------------------------------------------------------


def _summarise(exchanges: list[Exchange], start: int, summary: str) -> None:
    """Exchanges from ``start`` on are kept with ``summary`` instead of their request body (an uploaded
    file's bytes are never stored)."""
    exchanges[start:] = [
        replace(ex, request_body=summary) if ex.request_body is not None else ex for ex in exchanges[start:]
    ]


def _order(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    order_id = int(ctx.job.payload["order_id"])
    with ctx.engine.connect() as conn:
        order = order_service.get_order(conn, channel.tenant_id, order_id)
    if order["channel"] != channel.name:
        raise PermanentError(f"order {order_id} does not come from channel {channel.name}")
    return order


def _known_codes(
    ctx: JobContext, channel: Channel, connector: MarketplaceConnector, now: datetime
) -> set[str] | None:
    """The marketplace's carrier codes (cached per channel for :data:`CARRIERS_TTL`), or None when the
    connector does not list them."""
    if not isinstance(connector, CarrierDirectory):
        return None
    with ctx.engine.connect() as conn:
        cached = order_service.get_cursor(conn, channel.id, CARRIERS_CURSOR)
    if cached:
        data = json.loads(cached)
        if datetime.fromisoformat(data["at"]) + CARRIERS_TTL > now:
            return set(data["codes"])
    codes = connector.carrier_codes()
    with ctx.engine.begin() as conn:
        payload = json.dumps({"at": now.isoformat(), "codes": sorted(codes)})
        order_service.set_cursor(conn, channel.id, CARRIERS_CURSOR, payload, now=now)
    return codes


def _finish(
    ctx: JobContext,
    session: PortSession,
    channel: Channel,
    order_id: int,
    event: str,
    note: str | None,
    result: dict[str, Any],
    *,
    now: datetime,
) -> dict[str, Any]:
    with ctx.transaction() as conn:
        order_service.add_history(conn, channel.tenant_id, order_id, event, now=now, note=note)
        session.record(conn, f"order:{order_id}", now=now)
        ctx.complete_in(conn, result)
    return result


def ship(ctx: JobContext, channel: Channel, open_session: OpenFulfilmentSession) -> dict[str, Any]:
    """Payload: ``order_id``, optional ``carrier``, ``tracking_number``, ``tracking_url`` and ``lines``
    ([{sku, quantity}] for a partial shipment)."""
    payload = ctx.job.payload
    now = ctx.now()
    order = _order(ctx, channel)
    if order["third_party_managed"]:
        return {"skipped": "third party managed: no update is sent to the marketplace"}
    marketplace_id = order["marketplace_order_id"]
    with open_session(ctx, channel) as session:
        connector = session.connector
        capabilities = _require(connector, Operation.SHIP, "shipments")
        tracking = payload.get("tracking_number")
        if capabilities.tracking_required and not str(tracking or "").strip():
            hint = capabilities.hints.get("tracking_required")
            raise PermanentError(
                f"shipment of {marketplace_id} has no tracking number, which {connector.name} requires"
                + (f" ({hint})" if hint else "")
            )
        code, name = None, None
        carrier_known: set[str] | None = None
        if payload.get("carrier"):
            carrier_map = {
                str(k).strip().lower(): str(v) for k, v in (channel.settings.get("carrier_map") or {}).items()
            }
            carrier_known = _known_codes(ctx, channel, connector, now)
            code, name = resolve_carrier(payload["carrier"], carrier_map, carrier_known)
        partial = partial_lines(order, payload.get("lines"))
        if partial is not None and not capabilities.partial_shipments:
            hint = capabilities.hints.get("partial_shipments")
            raise PermanentError(
                f"partial shipment of {marketplace_id} is not supported by {connector.name} on this channel"
                + (f" ({hint})" if hint else "")
            )
        lines: Sequence[ShippedLine] | None = partial
        if partial is None and order["state"] in ALREADY_SHIPPED:
            lines = ()  # the goods already left: tracking only
        shipment = Shipment(
            order_id=marketplace_id,
            lines=lines,
            carrier_code=code,
            carrier_name=name,
            tracking_number=tracking,
            tracking_url=payload.get("tracking_url"),
            shipped_at=now,
        )
        if order["is_test"]:
            # codes_listed: False where the connector publishes no carrier codes and converts names itself
            carrier = {
                "from": payload.get("carrier"),
                "code": code,
                "name": name,
                "codes_listed": carrier_known is not None,
            }
            return _not_sent(
                ctx,
                session,
                channel,
                order,
                "SHIPMENT",
                _planned_ship(connector, shipment, order),
                now=now,
                carrier=carrier,
                problems=_carrier_problems(connector, payload.get("carrier"), code, carrier_known),
            )
        connector.ship(shipment)
        if partial is not None:
            note = f"partial shipment sent ({len(partial)} line(s))"
        else:
            note = "shipment confirmed" + (f", tracking {tracking}" if tracking else ", no tracking")
        return _finish(ctx, session, channel, order["id"], "SHIPMENT_SENT", note, {"note": note}, now=now)


def cancel(ctx: JobContext, channel: Channel, open_session: OpenFulfilmentSession) -> dict[str, Any]:
    """The merchant cancels the order (``lines`` [{sku, quantity}] only where the connector declares
    line-level cancellation); payload ``reason`` optional."""
    now = ctx.now()
    order = _order(ctx, channel)
    if order["third_party_managed"]:
        return {"skipped": "third party managed"}
    with open_session(ctx, channel) as session:
        connector = session.connector
        capabilities = _require(connector, Operation.CANCEL, "cancellations")
        items = ctx.job.payload.get("lines")
        lines: list[ShippedLine] | None = None
        if items:
            if not capabilities.line_level_cancellation:
                hint = capabilities.hints.get("line_cancellation")
                raise PermanentError(
                    f"line-level cancellation is not supported by {connector.name}"
                    + (f" ({hint})" if hint else "")
                )
            lines = [ShippedLine(line.line_id, line.quantity) for line in refund_lines(order, items)]
        reason = str(ctx.job.payload.get("reason") or "cancelled by the merchant")
        cancellation = Cancellation(order["marketplace_order_id"], lines, reason)
        if order["is_test"]:
            planned = (
                connector.plan_cancel(cancellation)
                if isinstance(connector, RequestPlanner)
                else [_port_call("cancel", cancellation)]
            )
            return _not_sent(ctx, session, channel, order, "CANCELLATION", planned, now=now)
        connector.cancel(cancellation)
        return _finish(
            ctx, session, channel, order["id"], "CANCELLATION_SENT", None, {"cancelled": True}, now=now
        )


def refund(ctx: JobContext, channel: Channel, open_session: OpenFulfilmentSession) -> dict[str, Any]:
    """Payload ``lines`` [{sku, quantity?, amount?}] and ``reason_code``."""
    now = ctx.now()
    order = _order(ctx, channel)
    if order["third_party_managed"]:
        return {"skipped": "third party managed"}
    reason = ctx.job.payload.get("reason_code")
    if not reason:
        raise PermanentError("a refund needs a reason code")
    lines = refund_lines(order, ctx.job.payload.get("lines") or [])
    if not lines:
        raise PermanentError("a refund needs at least one line")
    with open_session(ctx, channel) as session:
        _require(session.connector, Operation.REFUND, "refunds")
        request = Refund(order["marketplace_order_id"], lines, str(reason))
        if order["is_test"]:
            planned = [_port_call("refund", request)]
            return _not_sent(ctx, session, channel, order, "REFUND", planned, now=now)
        session.connector.refund(request)
        note = f"{len(lines)} refund(s) created, reason {reason}"
        return _finish(
            ctx, session, channel, order["id"], "REFUND_SENT", note, {"refunds": len(lines)}, now=now
        )


def upload_label(ctx: JobContext, channel: Channel, open_session: OpenFulfilmentSession) -> dict[str, Any]:
    """Payload: ``order_id``, ``document_id`` (an ``order_documents`` row of that order) and ``type_code``
    (the marketplace's document type; absent: the connector's label type)."""
    payload = ctx.job.payload
    now = ctx.now()
    order_id = int(payload["order_id"])
    with ctx.engine.connect() as conn:
        order = order_service.get_order(conn, channel.tenant_id, order_id)
        try:
            stored = label_service.get_document(
                conn, channel.tenant_id, order_id, int(payload["document_id"])
            )
        except NotFoundError as exc:
            raise PermanentError(str(exc)) from None
    if order["channel"] != channel.name:
        raise PermanentError(f"order {order_id} does not come from channel {channel.name}")
    if order["third_party_managed"]:
        return {"skipped": "third party managed: no update is sent to the marketplace"}
    kind = str(payload.get("type_code") or LABEL_KIND)
    document = Document(
        order["marketplace_order_id"], stored.filename, stored.content, stored.content_type, kind
    )
    with open_session(ctx, channel) as session:
        connector = session.connector
        _require(connector, Operation.UPLOAD_DOCUMENT, "shipping labels")
        if order["is_test"]:
            upload = {"filename": stored.filename, "bytes": len(stored.content), "kind": kind}
            planned = [PlannedRequest("upload_document", "port", order["marketplace_order_id"], upload)]
            return _not_sent(ctx, session, channel, order, "LABEL", planned, now=now)
        present = False
        if ctx.job.attempts > 1 and isinstance(connector, DocumentLedger):
            # An earlier attempt may have uploaded it before failing to record so.
            present = connector.document_present(document)
        if not present:
            summary = f"multipart upload: {stored.filename} ({len(stored.content)} bytes, {kind})"
            start = len(session.exchanges)
            try:
                connector.upload_document(document)
            except PermanentError:
                _summarise(session.exchanges, start, summary)
                with ctx.transaction() as conn:
                    label_service.set_document_status(conn, stored.id, DocumentStatus.FAILED)
                    session.record(conn, f"order:{order_id}", now=now)
                raise
            _summarise(session.exchanges, start, summary)
        note = f"label {stored.filename} attached as {kind}" + (" (already there)" if present else "")
        with ctx.transaction() as conn:
            label_service.set_document_status(conn, stored.id, DocumentStatus.SENT)
            order_service.add_history(conn, channel.tenant_id, order_id, "LABEL_SENT", now=now, note=note)
            session.record(conn, f"order:{order_id}", now=now)
            ctx.complete_in(conn, {"note": note, "document_id": stored.id})
    return {"note": note}
