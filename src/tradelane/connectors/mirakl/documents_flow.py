"""Shipping labels pushed to Mirakl as order documents (OR74), job kind ``fulfillments.label``.

Payload: ``order_id``, ``document_id`` (an ``order_documents`` row of that order) and ``type_code``
(the operator's document type, default ``SHIPPING_LABEL``; operators list theirs with DO01).

Exactly once, as far as Mirakl allows: a retried job first lists the order's documents (OR72) and does
not upload a file that is already there. Documents Mirakl rejects are reported with its messages and
the raw exchange is kept.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tradelane.connectors.mirakl.gateway import MiraklGateway
from tradelane.connectors.mirakl.models import DocumentUpload
from tradelane.domain.errors import NotFoundError, PermanentError
from tradelane.services import labels as label_service
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.labels import DocumentStatus
from tradelane.sync.context import JobContext

DEFAULT_TYPE_CODE = "SHIPPING_LABEL"


def _summarise_uploads(gw: MiraklGateway, summary: str) -> None:
    """Keep OR74 exchanges without the file bytes (binary; PostgreSQL text cannot even hold NUL)."""
    gw.exchanges[:] = [
        replace(ex, request_body=f"multipart upload: {summary}") if ex.op == "OR74" else ex
        for ex in gw.exchanges
    ]


def upload_label(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """OR74: attach the stored label PDF to the Mirakl order it belongs to."""
    payload = ctx.job.payload
    now = ctx.now()
    order_id = int(payload["order_id"])
    type_code = str(payload.get("type_code") or DEFAULT_TYPE_CODE)
    with ctx.engine.connect() as conn:
        order = order_service.get_order(conn, channel.tenant_id, order_id)
        try:
            document = label_service.get_document(
                conn, channel.tenant_id, order_id, int(payload["document_id"])
            )
        except NotFoundError as exc:
            raise PermanentError(str(exc)) from None
    if order["channel"] != channel.name:
        raise PermanentError(f"order {order_id} does not come from channel {channel.name}")
    if order["third_party_managed"]:
        return {"skipped": "third party managed: no update is sent to the marketplace"}
    mirakl_id = order["marketplace_order_id"]
    upload = DocumentUpload(document.filename, type_code, document.content, document.content_type)
    with MiraklGateway(ctx, channel) as gw:
        present = False
        if ctx.job.attempts > 1:  # an earlier attempt may have uploaded it before failing to record so
            listed = gw.call("OR72", lambda c: c.list_order_documents([mirakl_id]))
            present = any(d.file_name == document.filename and d.type_code == type_code for d in listed)
        rejected = () if present else gw.call("OR74", lambda c: c.upload_order_documents(mirakl_id, [upload]))
        _summarise_uploads(gw, f"{document.filename} ({len(document.content)} bytes, {type_code})")
        if rejected:
            reasons = "; ".join(m for r in rejected for m in r.errors) or "rejected"
            with ctx.transaction() as conn:
                label_service.set_document_status(conn, document.id, DocumentStatus.FAILED)
                gw.record(conn, f"order:{order_id}", now=now)
            raise PermanentError(f"Mirakl refused the label {document.filename} ({type_code}): {reasons}")
        note = f"label {document.filename} attached as {type_code}" + (" (already there)" if present else "")
        with ctx.transaction() as conn:
            label_service.set_document_status(conn, document.id, DocumentStatus.SENT)
            order_service.add_history(conn, channel.tenant_id, order_id, "LABEL_SENT", now=now, note=note)
            gw.record(conn, f"order:{order_id}", now=now)
            ctx.complete_in(conn, {"note": note, "document_id": document.id})
    return {"note": note}
