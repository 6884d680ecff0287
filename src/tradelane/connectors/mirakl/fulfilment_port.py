"""Mirakl's half of the port for fulfilment: shipments (OR23 + OR24, or ST01 for partial/split
shipments), cancellations (OR29), refunds (OR28), order documents (OR74, with OR72 to see what an order
already holds) and the operator's carrier codes (SH21). Pure mapping plus client calls: nothing here
reads or writes tables; the service converts carriers and picks lines before calling. ``plan_ship`` /
``plan_cancel`` describe the requests without making them (test orders).

Every refusal Mirakl's API cannot carry is a :class:`~tradelane.domain.errors.PermanentError` with the
reason, raised before any call (the capabilities declare them, so a service never asks).
"""

from __future__ import annotations

from dataclasses import dataclass

from tradelane.connectors.base import Cancellation, Document, PlannedRequest, Refund, Shipment
from tradelane.connectors.mirakl.client import (
    MiraklClient,
    cancel_path,
    ship_path,
    shipments_body,
    tracking_body,
    tracking_path,
)
from tradelane.connectors.mirakl.models import DocumentUpload, RefundRequest, ShipmentLine, ShipmentRequest
from tradelane.connectors.mirakl.settings import MiraklSettings
from tradelane.domain.errors import PermanentError

#: The document type a :class:`Document` of kind ``label`` is uploaded as (operators list theirs with
#: DO01; any other ``kind`` is taken as the operator's type code itself).
DEFAULT_LABEL_TYPE = "SHIPPING_LABEL"


def carrier_codes(client: MiraklClient) -> set[str]:
    """SH21: the carrier codes the operator knows (an unknown carrier is sent by name, never a code)."""
    return {carrier.code for carrier in client.carriers()}


@dataclass(frozen=True, slots=True)
class _ShipmentSteps:
    """What a shipment takes on Mirakl, decided once (pure) for both :func:`ship` and
    :func:`plan_ship`: one ST01 shipment, or OR23 (with these arguments) and/or OR24."""

    order_id: str
    st01: ShipmentRequest | None = None
    tracking: dict[str, str | None] | None = None
    confirm: bool = False


def _shipment_steps(settings: MiraklSettings, shipment: Shipment) -> _ShipmentSteps:
    url = shipment.tracking_url if shipment.carrier_name and not shipment.carrier_code else None
    if shipment.lines:
        if not settings.multi_shipment:
            raise PermanentError(
                f"partial shipment of {shipment.order_id} is not supported by this operator "
                "(multi-shipment is off)"
            )
        request = ShipmentRequest(
            order_id=shipment.order_id,
            lines=tuple(ShipmentLine(line.line_id, line.quantity) for line in shipment.lines),
            carrier_code=shipment.carrier_code,
            carrier_name=shipment.carrier_name,
            tracking_number=shipment.tracking_number,
            tracking_url=url,
        )
        return _ShipmentSteps(shipment.order_id, st01=request)
    tracking = None
    if shipment.tracking_number or shipment.carrier_code or shipment.carrier_name:
        tracking = {
            "carrier_code": shipment.carrier_code,
            "carrier_name": shipment.carrier_name,
            "carrier_url": url,
            "tracking_number": shipment.tracking_number,
        }
    return _ShipmentSteps(shipment.order_id, tracking=tracking, confirm=shipment.lines is None)


def ship(client: MiraklClient, settings: MiraklSettings, shipment: Shipment) -> None:
    """Whole order (``lines`` None): OR23 with the tracking when there is a carrier or a tracking number,
    then OR24. Tracking only (``lines`` empty: the order already left): OR23 alone. Some lines: one ST01
    shipment (only with the channel's ``multi_shipment`` setting; its per-shipment errors are permanent).

    A known carrier goes as ``carrier_code``; a free ``carrier_name`` travels with ``tracking_url``."""
    steps = _shipment_steps(settings, shipment)
    if steps.st01 is not None:
        outcome = client.create_shipments([steps.st01])
        if outcome.errors:
            raise PermanentError("; ".join(e.message for e in outcome.errors))
        return
    if steps.tracking is not None:
        client.update_tracking(shipment.order_id, **steps.tracking)
    if steps.confirm:
        client.ship(shipment.order_id)


def plan_ship(settings: MiraklSettings, shipment: Shipment) -> list[PlannedRequest]:
    """The requests :func:`ship` would make, in order, built from the same decision and the client's
    own request shapes; nothing is sent (test orders)."""
    steps = _shipment_steps(settings, shipment)
    if steps.st01 is not None:
        return [PlannedRequest("ST01", "POST", "/api/shipments", shipments_body([steps.st01]))]
    planned = []
    if steps.tracking is not None:
        try:
            body = tracking_body(**steps.tracking)
        except ValueError as exc:  # the client refuses it the same way before calling
            raise PermanentError(f"shipment of {shipment.order_id}: {exc}") from None
        planned.append(PlannedRequest("OR23", "PUT", tracking_path(shipment.order_id), body))
    if steps.confirm:
        planned.append(PlannedRequest("OR24", "PUT", ship_path(shipment.order_id)))
    return planned


def _check_cancellation(cancellation: Cancellation) -> None:
    if cancellation.lines:
        raise PermanentError(
            "line-level cancellation is not supported by Mirakl OR29; cancel the order or refund lines"
        )


def cancel(client: MiraklClient, settings: MiraklSettings, cancellation: Cancellation) -> None:
    """OR29: cancel the whole order (OR29 has no per-line form; ``reason`` is not carried)."""
    _check_cancellation(cancellation)
    client.cancel(cancellation.order_id)


def plan_cancel(settings: MiraklSettings, cancellation: Cancellation) -> list[PlannedRequest]:
    """The request :func:`cancel` would make (OR29, no body); nothing is sent."""
    _check_cancellation(cancellation)
    return [PlannedRequest("OR29", "PUT", cancel_path(cancellation.order_id))]


def refund(client: MiraklClient, settings: MiraklSettings, refund: Refund) -> None:
    """OR28: one refund per line, ``reason`` as Mirakl's reason code, amounts exact with their currency."""
    if not refund.lines:
        raise PermanentError("a refund needs at least one line")
    if not refund.reason:
        raise PermanentError("a refund needs a reason code")
    requests = [
        RefundRequest(
            order_line_id=line.line_id,
            amount=line.amount,
            reason_code=refund.reason,
            quantity=line.quantity,
            currency=line.currency,
        )
        for line in refund.lines
    ]
    client.refund(requests)


def _type_code(document: Document) -> str:
    return DEFAULT_LABEL_TYPE if document.kind == "label" else document.kind


def document_present(client: MiraklClient, settings: MiraklSettings, document: Document) -> bool:
    """OR72: whether the order already holds a file of this name and type (an earlier attempt may have
    uploaded it before failing to record so)."""
    listed = client.list_order_documents([document.order_id])
    code = _type_code(document)
    return any(d.file_name == document.filename and d.type_code == code for d in listed)


def upload_document(client: MiraklClient, settings: MiraklSettings, document: Document) -> None:
    """OR74: attach the file to the order as its type code (see :data:`DEFAULT_LABEL_TYPE`); a file
    Mirakl rejects is a permanent error carrying Mirakl's messages."""
    code = _type_code(document)
    upload = DocumentUpload(document.filename, code, document.content, document.media_type)
    rejected = client.upload_order_documents(document.order_id, [upload])
    if rejected:
        reasons = "; ".join(m for r in rejected for m in r.errors) or "rejected"
        raise PermanentError(f"Mirakl refused the label {document.filename} ({code}): {reasons}")
