"""Merchant-side updates pushed to Mirakl: shipments (OR23 then OR24, or ST01 for partial/split
shipments), cancellations (OR29) and refunds (OR28).

Carrier codes go through the channel's carrier conversion table and are checked against SH21 (cached
per channel for an hour): an unknown carrier is sent as name + URL, never as a wrong code.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tradelane.connectors.mirakl.gateway import MiraklGateway
from tradelane.connectors.mirakl.models import RefundRequest, ShipmentLine, ShipmentRequest
from tradelane.domain.errors import PermanentError
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.sync.context import JobContext

CARRIERS_CURSOR = "mirakl.sh21.carriers"
CARRIERS_TTL = timedelta(hours=1)


def _carrier_codes(ctx: JobContext, gw: MiraklGateway, now: datetime) -> set[str]:
    with ctx.engine.connect() as conn:
        cached = order_service.get_cursor(conn, gw.channel.id, CARRIERS_CURSOR)
    if cached:
        data = json.loads(cached)
        if datetime.fromisoformat(data["at"]) + CARRIERS_TTL > now:
            return set(data["codes"])
    codes = {c.code for c in gw.call("SH21", lambda c: c.carriers())}
    with ctx.engine.begin() as conn:
        payload = json.dumps({"at": now.isoformat(), "codes": sorted(codes)})
        order_service.set_cursor(conn, gw.channel.id, CARRIERS_CURSOR, payload, now=now)
    return codes


def resolve_carrier(
    carrier: str | None, carrier_map: dict[str, str], known_codes: set[str], tracking_url: str | None
) -> dict[str, str | None]:
    """Pure: OR23's carrier fields for a merchant carrier name/code."""
    if not carrier:
        return {"carrier_code": None, "carrier_name": None, "carrier_url": tracking_url}
    code = carrier_map.get(carrier.strip().lower(), carrier.strip())
    if code in known_codes:
        return {"carrier_code": code, "carrier_name": None, "carrier_url": None}
    return {"carrier_code": None, "carrier_name": carrier.strip(), "carrier_url": tracking_url}


def _order(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    order_id = int(ctx.job.payload["order_id"])
    with ctx.engine.connect() as conn:
        order = order_service.get_order(conn, channel.tenant_id, order_id)
    if order["channel"] != channel.name:
        raise PermanentError(f"order {order_id} does not come from channel {channel.name}")
    return order


def ship(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """Payload: ``order_id``, optional ``carrier``, ``tracking_number``, ``tracking_url`` and ``lines``
    ([{sku, quantity}] for a partial shipment)."""
    payload = ctx.job.payload
    now = ctx.now()
    order = _order(ctx, channel)
    if order["third_party_managed"]:
        return {"skipped": "third party managed: no update is sent to the marketplace"}
    mirakl_id = order["marketplace_order_id"]
    with MiraklGateway(ctx, channel) as gw:
        tracking = payload.get("tracking_number")
        carrier = payload.get("carrier")
        fields: dict[str, str | None] = {"carrier_code": None, "carrier_name": None, "carrier_url": None}
        if carrier:
            fields = resolve_carrier(
                carrier, gw.settings.carrier_map, _carrier_codes(ctx, gw, now), payload.get("tracking_url")
            )
        partial = _partial_lines(order, payload.get("lines"))
        if partial is not None:
            if not gw.settings.multi_shipment:
                raise PermanentError(
                    f"partial shipment of {mirakl_id} is not supported by this operator "
                    "(multi-shipment is off)"
                )
            request = ShipmentRequest(
                order_id=mirakl_id,
                lines=tuple(ShipmentLine(line_id, qty) for line_id, qty in partial),
                carrier_code=fields["carrier_code"],
                carrier_name=fields["carrier_name"],
                tracking_number=tracking,
                tracking_url=fields["carrier_url"],
            )
            outcome = gw.call("ST01", lambda c: c.create_shipments([request]))
            if outcome.errors:
                raise PermanentError("; ".join(e.message for e in outcome.errors))
            note = f"partial shipment sent ({len(partial)} line(s))"
        else:
            if tracking or carrier:
                gw.call("OR23", lambda c: c.update_tracking(mirakl_id, tracking_number=tracking, **fields))
            if order["state"] != "SHIPPED":
                gw.call("OR24", lambda c: c.ship(mirakl_id))
            note = "shipment confirmed" + (f", tracking {tracking}" if tracking else ", no tracking")
        with ctx.transaction() as conn:
            order_service.add_history(
                conn, channel.tenant_id, order["id"], "SHIPMENT_SENT", now=now, note=note
            )
            gw.record(conn, f"order:{order['id']}", now=now)
            ctx.complete_in(conn, {"note": note})
    return {"note": note}


def _partial_lines(order: dict[str, Any], lines: list[dict[str, Any]] | None) -> list[tuple[str, int]] | None:
    """(line id, quantity) pairs when ``lines`` ships less than the whole order, else None."""
    if not lines:
        return None
    by_sku: dict[str, list[dict[str, Any]]] = {}
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
    return None if set(chosen) == whole else chosen


def cancel(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """OR29: a merchant-driven cancellation of the whole order (Mirakl's OR29 has no per-line form)."""
    now = ctx.now()
    order = _order(ctx, channel)
    if order["third_party_managed"]:
        return {"skipped": "third party managed"}
    if ctx.job.payload.get("lines"):
        raise PermanentError(
            "line-level cancellation is not supported by Mirakl OR29; cancel the order or refund lines"
        )
    with MiraklGateway(ctx, channel) as gw:
        gw.call("OR29", lambda c: c.cancel(order["marketplace_order_id"]))
        with ctx.transaction() as conn:
            order_service.add_history(
                conn, channel.tenant_id, order["id"], "CANCELLATION_SENT", now=now, note=None
            )
            gw.record(conn, f"order:{order['id']}", now=now)
            ctx.complete_in(conn, {"cancelled": True})
    return {"cancelled": True}


def refund(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """OR28: payload ``lines`` [{sku, quantity, amount?}] and ``reason_code``."""
    now = ctx.now()
    order = _order(ctx, channel)
    if order["third_party_managed"]:
        return {"skipped": "third party managed"}
    reason = ctx.job.payload.get("reason_code")
    if not reason:
        raise PermanentError("a refund needs a reason code")
    requests = []
    for item in ctx.job.payload.get("lines") or []:
        line = next((ln for ln in order["lines"] if ln["sku"] == item["sku"]), None)
        if line is None:
            raise PermanentError(f"order {order['marketplace_order_id']} has no line for SKU {item['sku']}")
        quantity = int(item.get("quantity", line["quantity"]))
        amount = (
            Decimal(str(item["amount"])) if item.get("amount") is not None else line["unit_price"] * quantity
        )
        requests.append(
            RefundRequest(
                order_line_id=line["line_id"],
                amount=amount,
                reason_code=reason,
                quantity=quantity,
                currency=line["currency"],
            )
        )
    if not requests:
        raise PermanentError("a refund needs at least one line")
    with MiraklGateway(ctx, channel) as gw:
        refunds = gw.call("OR28", lambda c: c.refund(requests))
        with ctx.transaction() as conn:
            note = f"{len(refunds)} refund(s) created, reason {reason}"
            order_service.add_history(conn, channel.tenant_id, order["id"], "REFUND_SENT", now=now, note=note)
            gw.record(conn, f"order:{order['id']}", now=now)
            ctx.complete_in(conn, {"refunds": [r.refund_id for r in refunds]})
    return {"refunds": len(refunds)}
