"""Orders and the updates a merchant system sends back about them.

* ``GET /api/v1/orders`` — newest first, filtered by channel / marketplace state, paged;
* ``GET /api/v1/orders/{ref}`` — one order with its state history, raw marketplace payload versions
  (``?payloads=false`` leaves them out), updates sent back, documents, imported returns and, when the
  marketplace cancelled it, a ``cancellation`` summary;
* ``POST /api/v1/orders/{ref}/shipments`` | ``/cancellations`` | ``/refunds`` | ``/returns`` — record an
  update (see :mod:`tradelane.services.order_updates`): 201 when new, 200 when the same update (same
  ``external_id``, or same content without one) was already recorded;
* ``POST /api/v1/orders/{ref}/labels`` — a shipping label as JSON (``content_base64`` + ``format``
  ``pdf``|``html``) or as a multipart upload (part ``file``); HTML is rendered to PDF offline;
* ``GET /api/v1/orders/{ref}/labels/{document_id}`` — the stored PDF (``?as=base64``: JSON).

``ref`` is tradelane's order id, ``CHANNEL:MARKETPLACE_ORDER_ID`` or the bare marketplace order id
(URL-encoded; use the numeric id when the channel name contains ``/``). A bare id found on several of
the tenant's channels answers 409 with the ``CHANNEL:ID`` candidates.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError as PydanticValidationError
from python_multipart.exceptions import ParseError as MultipartParseError
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tradelane.bootstrap import Container
from tradelane.domain.errors import ValidationError
from tradelane.domain.labels import MAX_PDF_BYTES, LabelFormat, decode_base64
from tradelane.domain.order_updates import UpdateResult
from tradelane.domain.orders import OrderState
from tradelane.persistence.db import read_only, transaction
from tradelane.services import order_updates as updates
from tradelane.services.labels import ChromiumRenderer, HtmlRenderer, get_document, prepare_label
from tradelane.services.orders import list_orders
from tradelane.services.rules import merchant_system_id_by_name
from tradelane.web.api.common import (
    API_PREFIX,
    DEFAULT_PAGE_SIZE,
    MAX_DB_ID,
    PRINTABLE,
    Limit,
    Offset,
    Page,
    next_offset,
)
from tradelane.web.api.order_models import (
    CancellationIn,
    LabelDocumentOut,
    LabelIn,
    LabelOptions,
    LabelResultOut,
    OrderDetailOut,
    OrderOut,
    RefundIn,
    ReturnIn,
    ShipmentIn,
    UpdateResultOut,
)
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import ApiProblem, problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/orders", tags=["orders"])

OrderRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=300,
        pattern=PRINTABLE,
        description="tradelane's order id, `CHANNEL:MARKETPLACE_ORDER_ID` or the bare marketplace order id "
        "(URL-encoded; a bare id found on several channels is a 409 listing the `CHANNEL:ID` candidates).",
    ),
]
DocumentId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="Document id (from the label's answer).")]
# --- routes --------------------------------------------------------------------------------------


@router.get("", summary="List orders, newest first")
def list_orders_route(
    tenant: TenantDep,
    container: ContainerDep,
    channel: Annotated[str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE)] = None,
    state: Annotated[
        OrderState | None,
        Query(
            description="Only orders in this (marketplace-neutral) state; another value is a 422 listing "
            "them."
        ),
    ] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> Page[OrderOut]:
    with read_only(container.engine) as conn:
        rows = list_orders(
            conn, tenant.id, channel=channel, state=state.value if state else None, limit=limit, offset=offset
        )
    return Page[OrderOut](
        items=[OrderOut.model_validate(r) for r in rows],
        limit=limit,
        offset=offset,
        next_offset=next_offset(len(rows), limit, offset),
    )


@router.get(
    "/{ref}",
    summary="One order with history, raw payload versions, updates, documents and returns",
    responses=problem_responses(404, 409),
)
def get_order_route(
    ref: OrderRef,
    tenant: TenantDep,
    container: ContainerDep,
    payloads: Annotated[bool, Query(description="Include the raw marketplace payloads.")] = True,
) -> OrderDetailOut:
    with read_only(container.engine) as conn:
        order_id = updates.resolve_ref(conn, tenant.id, ref)
        detail = updates.order_detail(conn, tenant.id, order_id, with_payloads=payloads)
    return OrderDetailOut.model_validate(detail)


def _merchant(conn: Connection, tenant_id: int, name: str | None) -> int | None:
    return merchant_system_id_by_name(conn, tenant_id, name) if name else None


def _answer(result: UpdateResult, response: Response) -> UpdateResultOut:
    response.status_code = 201 if result.created else 200
    return UpdateResultOut.model_validate(result.as_dict())


_REPLAY = "The same update was already recorded: nothing new (its current state)."
_UPDATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": UpdateResultOut, "description": _REPLAY},
    **problem_responses(404, 409),
}


@router.post(
    "/{ref}/shipments",
    status_code=201,
    summary="Record a shipment and send it to the order's marketplace",
    responses=_UPDATE_RESPONSES,
)
def post_shipment(
    ref: OrderRef, body: ShipmentIn, response: Response, tenant: TenantDep, container: ContainerDep
) -> UpdateResultOut:
    with transaction(container.engine) as conn:
        result = updates.record_shipment(
            conn,
            tenant_id=tenant.id,
            order_ref=ref,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            tracking_url=body.tracking_url,
            lines=[ln.to_update() for ln in body.lines] if body.lines else None,
            external_id=body.external_id,
            merchant_system_id=_merchant(conn, tenant.id, body.merchant_system),
            now=container.now(),
        )
    return _answer(result, response)


@router.post(
    "/{ref}/cancellations",
    status_code=201,
    summary="Record a merchant-driven cancellation and send it to the order's marketplace",
    responses=_UPDATE_RESPONSES,
)
def post_cancellation(
    ref: OrderRef, body: CancellationIn, response: Response, tenant: TenantDep, container: ContainerDep
) -> UpdateResultOut:
    with transaction(container.engine) as conn:
        result = updates.record_cancellation(
            conn,
            tenant_id=tenant.id,
            order_ref=ref,
            lines=[ln.to_update() for ln in body.lines] if body.lines else None,
            reason=body.reason,
            external_id=body.external_id,
            merchant_system_id=_merchant(conn, tenant.id, body.merchant_system),
            now=container.now(),
        )
    return _answer(result, response)


@router.post(
    "/{ref}/refunds",
    status_code=201,
    summary="Record a refund of lines and send it to the order's marketplace",
    responses=_UPDATE_RESPONSES,
)
def post_refund(
    ref: OrderRef, body: RefundIn, response: Response, tenant: TenantDep, container: ContainerDep
) -> UpdateResultOut:
    with transaction(container.engine) as conn:
        result = updates.record_refund(
            conn,
            tenant_id=tenant.id,
            order_ref=ref,
            reason_code=body.reason_code,
            lines=[ln.to_update() for ln in body.lines],
            external_id=body.external_id,
            merchant_system_id=_merchant(conn, tenant.id, body.merchant_system),
            now=container.now(),
        )
    return _answer(result, response)


@router.post(
    "/{ref}/returns",
    status_code=201,
    summary="Record returned lines received or refunded (pushed where the marketplace supports it)",
    responses=_UPDATE_RESPONSES,
)
def post_return(
    ref: OrderRef, body: ReturnIn, response: Response, tenant: TenantDep, container: ContainerDep
) -> UpdateResultOut:
    with transaction(container.engine) as conn:
        result = updates.record_return(
            conn,
            tenant_id=tenant.id,
            order_ref=ref,
            lines=[ln.to_update() for ln in body.lines],
            status=body.status,
            marketplace_return_id=body.return_id,
            external_id=body.external_id,
            merchant_system_id=_merchant(conn, tenant.id, body.merchant_system),
            now=container.now(),
        )
    return _answer(result, response)


# --- labels --------------------------------------------------------------------------------------

_OPTION_PROPERTIES: dict[str, Any] = {
    "format": {"type": "string", "enum": [f.value for f in LabelFormat], "default": LabelFormat.PDF.value},
    "type_code": {
        "type": "string",
        "minLength": 1,
        "maxLength": 100,
        "pattern": PRINTABLE,
        "default": updates.DEFAULT_LABEL_TYPE,
        "description": "Marketplace document type (Mirakl: DO01 codes).",
    },
    "external_id": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": PRINTABLE},
    "merchant_system": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": PRINTABLE},
}
_LABEL_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["content_base64"],
                    "additionalProperties": False,
                    "properties": {
                        "content_base64": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": (MAX_PDF_BYTES // 3 + 1) * 4 + 1024,
                            "contentEncoding": "base64",
                            "description": "The label: a PDF, or UTF-8 HTML (rendered without network).",
                        },
                        **_OPTION_PROPERTIES,
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}, **_OPTION_PROPERTIES},
                }
            },
        },
    }
}


def _media_type(request: Request) -> str:
    return (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def _invalid(exc: PydanticValidationError, where: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": (where, *err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()]
    )


async def _read_label(request: Request) -> tuple[bytes, LabelOptions]:
    media = _media_type(request)
    if media == "application/json":
        try:
            body = LabelIn.model_validate_json(await request.body())
        except PydanticValidationError as exc:
            raise _invalid(exc, "body") from None
        return decode_base64(body.content_base64), body
    if media != "multipart/form-data":
        raise ApiProblem(
            415, "send the label as application/json or multipart/form-data", slug="unsupported-media-type"
        )
    try:
        form = await request.form(max_files=1, max_fields=10)
    except MultipartParseError as exc:
        raise ApiProblem(400, f"malformed multipart body: {exc}", slug="malformed-body") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationError("the multipart body needs a file part named 'file'")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        try:
            options = LabelOptions.model_validate(fields)
        except PydanticValidationError as exc:
            raise _invalid(exc, "body") from None
        content = await upload.read(MAX_PDF_BYTES + 1)
    finally:
        await form.close()
    if len(content) > MAX_PDF_BYTES:
        raise ValidationError(f"the label exceeds {MAX_PDF_BYTES} bytes")
    return content, options


def _check_order(container: Container, tenant_id: int, ref: str) -> None:
    with read_only(container.engine) as conn:
        updates.resolve_ref(conn, tenant_id, ref)


def _renderer(container: Container) -> HtmlRenderer:
    renderer: HtmlRenderer = container.extras.setdefault("label_renderer", ChromiumRenderer())
    return renderer


@router.post(
    "/{ref}/labels",
    status_code=201,
    summary="Attach a shipping label (PDF, or HTML rendered to PDF) and send it to the marketplace",
    responses={
        200: {"model": LabelResultOut, "description": _REPLAY},
        **problem_responses(404, 409, 413, 415, 503),
    },
    openapi_extra=_LABEL_OPENAPI,
)
async def post_label(
    ref: OrderRef, request: Request, response: Response, tenant: TenantDep, container: ContainerDep
) -> LabelResultOut:
    """JSON ``{content_base64, format, type_code?, external_id?, merchant_system?}`` or a multipart
    upload with a ``file`` part and the same fields. The answer carries the stored document's id."""
    content, options = await _read_label(request)
    await run_in_threadpool(_check_order, container, tenant.id, ref)  # 404 before any rendering
    label = await run_in_threadpool(prepare_label, content, options.format, renderer=_renderer(container))

    def attach() -> tuple[UpdateResult, dict[str, Any]]:
        with transaction(container.engine) as conn:
            result = updates.attach_label(
                conn,
                tenant_id=tenant.id,
                order_ref=ref,
                label=label,
                type_code=options.type_code,
                external_id=options.external_id,
                merchant_system_id=_merchant(conn, tenant.id, options.merchant_system),
                now=container.now(),
            )
            document = get_document(conn, tenant.id, result.order_id, int(result.payload["document_id"]))
        return result, document.meta()

    result, document = await run_in_threadpool(attach)
    response.status_code = 201 if result.created else 200
    return LabelResultOut.model_validate({**result.as_dict(), "document": document})


@router.get(
    "/{ref}/labels/{document_id}",
    summary="A stored label: the PDF itself, or JSON with base64 content (?as=base64)",
    response_model=LabelDocumentOut,
    responses={
        200: {
            "description": "The PDF (default) or, with `?as=base64`, JSON.",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(404, 409),
    },
)
def get_label(
    ref: OrderRef,
    document_id: DocumentId,
    tenant: TenantDep,
    container: ContainerDep,
    as_: Annotated[Literal["pdf", "base64"], Query(alias="as", description="Delivery form.")] = "pdf",
) -> Response:
    with read_only(container.engine) as conn:
        order_id = updates.resolve_ref(conn, tenant.id, ref)
        document = get_document(conn, tenant.id, order_id, document_id)
    if as_ == "base64":
        body = LabelDocumentOut.model_validate(
            {**document.meta(), "content_base64": base64.b64encode(document.content).decode("ascii")}
        )
        return Response(body.model_dump_json(), media_type="application/json")
    return Response(
        document.content,
        media_type=document.content_type,
        headers={"Content-Disposition": f'attachment; filename="{document.filename}"'},
    )
