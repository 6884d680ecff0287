"""Other routes: A01 / A02 (account, closing period), SH21 (carriers), RE01 (reasons), M01 (messages),
RT11 (returns) and order documents OR72 (list), OR73 (download), OR74 (upload)."""

from __future__ import annotations

import base64
import binascii
import io
import json
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError, bad_request, not_found
from tradelane.connectors.mirakl.sandbox.jsonout import MiraklJSONResponse
from tradelane.connectors.mirakl.sandbox.models import ReturnState
from tradelane.connectors.mirakl.sandbox.payloads import (
    as_object,
    page_window,
    parse_json_body,
    query_datetime,
    query_int,
    query_list,
    sort_direction,
)
from tradelane.connectors.mirakl.sandbox.routing import context, page_offset
from tradelane.connectors.mirakl.sandbox.views import (
    JsonObject,
    account_update_view,
    account_view,
    carrier_view,
    document_view,
    message_view,
    return_view,
)

router = APIRouter()

#: OR74: accepted file types and the per-order document cap (spec description).
DOCUMENT_EXTENSIONS = frozenset(
    [
        "csv",
        "doc",
        "xls",
        "xlsx",
        "ppt",
        "pdf",
        "odt",
        "ods",
        "odp",
        "txt",
        "rtf",
        "png",
        "jpg",
        "gif",
        "zpl",
        "mov",
        "mp4",
    ]
)
MAX_DOCUMENTS_PER_ORDER = 50
_RETURN_STATES = frozenset(s.value for s in ReturnState)


@router.get("/api/account")
async def a01_account(request: Request) -> Response:
    state, shop = context(request)
    with state.locked():
        offers = len(state.shop_offers(shop.shop_id))
        orders = sum(1 for o in state.orders.values() if o.shop_id == shop.shop_id)
        body = account_view(shop, created=state.created, offers_count=offers, orders_count=orders)
    return MiraklJSONResponse(body)


#: A02 request fields (``A02_Request``) the sandbox does not model: answered in ``errors`` as not
#: editable, which the spec allows ("Depending on the operator's configuration, some fields might not be
#: editable"), and left unchanged. Fields the schema does not declare are ignored.
_A02_NOT_EDITABLE = (
    "address",
    "channels",
    "description",
    "fax",
    "is_professional",
    "payment_info",
    "pro_details",
    "producer_identifiers",
    "recycling_policy",
    "return_policy",
    "shipping_country",
    "shop_additional_fields",
    "web_site",
)


@router.put("/api/account")
async def a02_update_account(request: Request) -> Response:
    """A02: update the shop account. Served: ``closed_from`` / ``closed_to`` (the closing period; each
    nullable, an absent field stays as it is), ``shop_name`` and ``email`` (not nullable).

    A body that is not a JSON object or a date-time that is not ISO 8601 with a zone is a 400 (nothing
    changes). Business refusals are answered 200 with ``errors`` (``code``, ``field``, ``message``) and
    leave that field unchanged: a closing period whose ``closed_to`` is not after its ``closed_from``
    (the closing fields sent are refused), a null or blank name or email, a field the sandbox does not
    model. The ``updated`` shop is the account after the call; A01 shows the same closing period.

    The closing period changes nothing else here: the published contract says nothing of orders or
    offers during it, so the control API still creates orders for a closed shop.
    """
    state, shop = context(request)
    body = as_object(parse_json_body(await request.body()), "The request body")
    closing = {key: _body_datetime(body, key) for key in ("closed_from", "closed_to") if key in body}
    texts: dict[str, str] = {}
    errors: list[JsonObject] = []
    for key in ("shop_name", "email"):
        if key not in body:
            continue
        value = body[key]
        if value is None or (isinstance(value, str) and not value.strip()):
            errors.append(_a02_error("FIELD_NOT_NULLABLE", key, f"{key} cannot be null or blank"))
        elif not isinstance(value, str):
            raise bad_request(f"The field {key} must be a string")
        else:
            texts[key] = value
    errors.extend(
        _a02_error("FIELD_NOT_EDITABLE", key, f"{key} is not editable on this platform")
        for key in _A02_NOT_EDITABLE
        if key in body
    )
    with state.locked():
        closed_from = closing.get("closed_from", shop.closed_from)
        closed_to = closing.get("closed_to", shop.closed_to)
        changed = bool(texts)
        if closing and closed_from is not None and closed_to is not None and closed_to <= closed_from:
            message = (
                f"The closing period must end after it starts (closed_from {closed_from.isoformat()}, "
                f"closed_to {closed_to.isoformat()})"
            )
            errors.extend(_a02_error("INVALID_CLOSING_PERIOD", key, message) for key in sorted(closing))
        elif closing:
            shop.closed_from, shop.closed_to = closed_from, closed_to
            changed = True
        if "shop_name" in texts:
            shop.name = texts["shop_name"]
        if "email" in texts:
            shop.email = texts["email"]
        if changed:
            shop.last_updated = state.now()
        answer = account_update_view(shop, errors)
    return MiraklJSONResponse(answer)


def _a02_error(code: str, field: str, message: str) -> JsonObject:
    return {"code": code, "field": field, "message": message}


def _body_datetime(body: Mapping[str, object], key: str) -> datetime | None:
    """A nullable ISO 8601 date-time with a zone (``Z`` or an offset) from an A02 body, in UTC."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"The field {key} must be an ISO 8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise bad_request(f"The field {key} is not an ISO 8601 date-time: '{value}'") from None
    if parsed.utcoffset() is None:
        raise bad_request(f"The field {key} must carry a time zone (e.g. 2025-08-01T00:00:00Z)")
    return parsed.astimezone(UTC)


@router.get("/api/shipping/carriers")
async def sh21_carriers(request: Request) -> Response:
    state, _ = context(request)
    carriers = sorted(state.config.carriers, key=lambda c: c.label.lower())
    return MiraklJSONResponse({"carriers": [carrier_view(c) for c in carriers]})


@router.get("/api/reasons")
async def re01_reasons(request: Request) -> Response:
    state, _ = context(request)
    reasons = [
        {"code": code, "is_shop_right": True, "label": label, "type": kind}
        for kind, entries in sorted(state.config.reasons.items())
        for code, label in entries
    ]
    return MiraklJSONResponse({"reasons": reasons, "total_count": len(reasons)})


@router.get("/api/messages")
async def m01_messages(request: Request) -> Response:
    state, shop = context(request)
    params = request.query_params
    received = (params.get("received") or "TRUE").upper()
    if received not in ("TRUE", "FALSE", "ALL"):
        raise bad_request(
            f"The parameter received must be TRUE, FALSE or ALL, got '{params.get('received')}'"
        )
    order_id = params.get("order_id") or None
    customer_id = params.get("customer_id") or None
    start, end = query_datetime(params, "start_date"), query_datetime(params, "end_date")
    offset, size = page_window(params)
    if params.get("sort") not in (None, "", "dateCreated"):
        raise bad_request(f"The sort field '{params.get('sort')}' is invalid (expected dateCreated)")
    descending = sort_direction(params, default="desc")
    with state.locked():
        messages = [m for m in state.messages if m.shop_id == shop.shop_id]
        if received == "TRUE":
            messages = [m for m in messages if m.from_type != "SHOP"]
        elif received == "FALSE":
            messages = [m for m in messages if m.from_type == "SHOP"]
        if order_id is not None:
            messages = [m for m in messages if m.order_id == order_id]
        if customer_id is not None:
            messages = [m for m in messages if m.to_customer_id == customer_id]
        if params.get("offer_id"):
            messages = []  # the sandbox only has messages on orders
        if start is not None:
            messages = [m for m in messages if m.created >= start]
        if end is not None:
            messages = [m for m in messages if m.created <= end]
        messages.sort(key=lambda m: (m.created, m.message_id), reverse=descending)
        offset = page_offset(request, state, shop, "M01", offset)
        page = messages[offset : offset + size] if size is not None else messages[offset:]
        body = {"messages": [message_view(m, shop) for m in page], "total_count": len(messages)}
    return MiraklJSONResponse(body)


def _decode_token(token: str) -> int:
    try:
        value = int(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_request("The page_token is invalid") from None
    if value < 0:
        raise bad_request("The page_token is invalid")
    return value


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


@router.get("/api/returns")
async def rt11_returns(request: Request) -> Response:
    state, shop = context(request)
    params = request.query_params
    limit = query_int(params, "limit", default=10, minimum=1, maximum=100)
    token = params.get("page_token")
    offset = _decode_token(token) if token else 0
    sort = params.get("sort") or "date_created"
    field, _, direction = sort.partition(",")
    if field != "date_created" or direction.upper() not in ("", "ASC", "DESC"):
        raise bad_request(f"The sort '{sort}' is invalid (expected date_created[,ASC|DESC])")
    states = params.getlist("return_state")
    for value in states:
        if value not in _RETURN_STATES:
            raise bad_request(f"The return_state '{value}' is invalid")
    filters = {
        "return_id": params.getlist("return_id"),
        "order_commercial_id": params.getlist("order_commercial_id"),
        "customer_id": params.getlist("customer_id"),
        "order_line_id": params.getlist("order_line_id"),
        "return_rma": params.getlist("return_rma"),
    }
    created_from = query_datetime(params, "return_creation_date_from")
    created_to = query_datetime(params, "return_creation_date_to")
    updated_from = query_datetime(params, "return_last_updated_from")
    updated_to = query_datetime(params, "return_last_updated_to")
    with state.locked():
        returns = [r for r in state.returns.values() if r.shop_id == shop.shop_id]
        if states:
            returns = [r for r in returns if r.state.value in states]
        if filters["return_id"]:
            returns = [r for r in returns if r.return_id in filters["return_id"]]
        if filters["order_commercial_id"]:
            returns = [r for r in returns if r.commercial_id in filters["order_commercial_id"]]
        if filters["customer_id"]:
            returns = [r for r in returns if r.customer_id in filters["customer_id"]]
        if filters["order_line_id"]:
            returns = [
                r for r in returns if any(rl.order_line_id in filters["order_line_id"] for rl in r.lines)
            ]
        if filters["return_rma"]:
            returns = [r for r in returns if r.rma in filters["return_rma"]]
        if created_from is not None:
            returns = [r for r in returns if r.created >= created_from]
        if created_to is not None:
            returns = [r for r in returns if r.created <= created_to]
        if updated_from is not None:
            returns = [r for r in returns if r.last_updated >= updated_from]
        if updated_to is not None:
            returns = [r for r in returns if r.last_updated <= updated_to]
        returns.sort(key=lambda r: (r.created, r.return_id), reverse=direction.upper() == "DESC")
        page = returns[offset : offset + limit]
        body: dict[str, object] = {"data": [return_view(r) for r in page]}
    if offset + limit < len(returns):
        body["next_page_token"] = _encode_token(offset + limit)
    if offset > 0:
        body["previous_page_token"] = _encode_token(max(0, offset - limit))
    return MiraklJSONResponse(body)


@router.get("/api/orders/documents")
async def or72_documents(request: Request) -> Response:
    state, shop = context(request)
    order_ids = query_list(request.query_params, "order_ids")
    if not order_ids:
        raise bad_request("The parameter order_ids is required")
    with state.locked():
        docs = [
            d
            for d in sorted(state.documents.values(), key=lambda d: d.document_id)
            if d.shop_id == shop.shop_id and d.order_id in order_ids
        ]
        body = {"order_documents": [document_view(d) for d in docs], "total_count": len(docs)}
    return MiraklJSONResponse(body)


@router.get("/api/orders/documents/download")
async def or73_download(request: Request) -> Response:
    state, shop = context(request)
    params = request.query_params
    order_ids = query_list(params, "order_ids")
    raw_ids = query_list(params, "document_ids")
    codes = query_list(params, "document_codes")
    if not order_ids and not raw_ids:
        raise bad_request("One of order_ids or document_ids is required")
    try:
        document_ids = [int(v) for v in raw_ids or []]
    except ValueError:
        raise bad_request("document_ids must be integers") from None
    with state.locked():
        owned = {d.document_id: d for d in state.documents.values() if d.shop_id == shop.shop_id}
        if document_ids:
            unknown = [i for i in document_ids if i not in owned]
            if unknown:
                raise not_found(f"Document(s) not found: {', '.join(map(str, unknown))}")
            docs = [owned[i] for i in document_ids]
        else:
            docs = [d for d in owned.values() if d.order_id in (order_ids or [])]
        if codes:
            docs = [d for d in docs if d.type_code in codes]
    if not docs:
        raise not_found("No document matches the request")
    if len(document_ids) == 1:
        doc = docs[0]
        return Response(
            doc.content,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{doc.file_name}"'},
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for doc in docs:
            archive.writestr(f"{doc.order_id}/{doc.file_name}", doc.content)
    return Response(
        buffer.getvalue(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="documents.zip"'},
    )


@router.post("/api/orders/{order_id}/documents")
async def or74_upload(request: Request, order_id: str) -> Response:
    state, shop = context(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise SandboxApiError(
            415, "The request must be multipart/form-data with 'files' and 'order_documents'"
        )
    form = await request.form()
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    raw_docs = form.get("order_documents")
    if not files:
        raise bad_request("The 'files' part is required")
    if not isinstance(raw_docs, str):
        raise bad_request("The 'order_documents' part is required (JSON)")
    try:
        described = json.loads(raw_docs)
        entries = described["order_documents"]
        declared = {str(e["file_name"]): str(e["type_code"]) for e in entries}
    except (ValueError, KeyError, TypeError):
        raise bad_request(
            'order_documents must be {"order_documents": [{"file_name", "type_code"}]}'
        ) from None
    names = [f.filename or "" for f in files]
    if len(set(names)) != len(names):
        raise bad_request("Documents file names must be distinct")
    contents = [await f.read() for f in files]
    errors: list[dict[str, object]] = []
    with state.locked():
        order = state.orders.get(order_id)
        if order is None or order.shop_id != shop.shop_id:
            raise not_found(f"The order {order_id} does not exist")
        count = sum(1 for d in state.documents.values() if d.order_id == order_id)
        for name, content in zip(names, contents, strict=True):
            type_code = declared.get(name)
            problem = _document_problem(name, type_code, state.config.document_types, count)
            if problem is not None:
                field, message = problem
                errors.append(
                    {
                        "errors": [{"code": "INVALID_DOCUMENT", "field": field, "message": message}],
                        "input": {"file_name": name, "type_code": type_code or ""},
                    }
                )
                continue
            assert type_code is not None
            state.add_document(order, name, type_code, content)
            count += 1
    return MiraklJSONResponse({"errors_count": len(errors), "order_documents": errors})


def _document_problem(
    name: str, type_code: str | None, known_types: frozenset[str], count: int
) -> tuple[str, str] | None:
    if not name.isascii() or not name:
        return "file_name", "File names must contain only US-ASCII characters"
    if type_code is None:
        return "file_name", f"No order_documents entry describes the file '{name}'"
    if type_code not in known_types:
        return "type_code", f"The document type '{type_code}' does not exist"
    if name.rsplit(".", 1)[-1].lower() not in DOCUMENT_EXTENSIONS or "." not in name:
        return "file_name", f"The file type of '{name}' is not supported"
    if count >= MAX_DOCUMENTS_PER_ORDER:
        return "file_name", f"An order can have at most {MAX_DOCUMENTS_PER_ORDER} documents"
    return None
