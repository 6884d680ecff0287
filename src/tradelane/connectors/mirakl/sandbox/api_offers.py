"""Offer routes: OF01 (file import), OF02 (import status), OF03 (error report), OF21, OF24."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError, bad_request, not_found
from tradelane.connectors.mirakl.sandbox.jsonout import MiraklJSONResponse
from tradelane.connectors.mirakl.sandbox.models import ImportMode, ImportRow, OfferImport, Shop
from tradelane.connectors.mirakl.sandbox.offers import (
    JSON_REPORT_COLUMNS,
    OfferFileError,
    error_report_csv,
    json_offer_row,
    missing_columns,
    parse_offer_file,
)
from tradelane.connectors.mirakl.sandbox.payloads import (
    as_list,
    as_object,
    get_decimal,
    get_int,
    get_str,
    page_window,
    parse_json_body,
    query_list,
)
from tradelane.connectors.mirakl.sandbox.routing import context, page_offset
from tradelane.connectors.mirakl.sandbox.state import SandboxState
from tradelane.connectors.mirakl.sandbox.views import import_view, offer_view

router = APIRouter()

_UNSUPPORTED_FILES = (".xlsx", ".xls", ".xml")


def _import_mode(raw: str) -> ImportMode:
    text = raw.strip()
    # The spec's curl sample sends the mode as a JSON string literal ('"NORMAL"'): accept both.
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = text
        text = str(decoded)
    try:
        return ImportMode(text)
    except ValueError:
        raise bad_request(f"The import_mode '{raw}' is invalid (expected NORMAL or REPLACE)") from None


@router.post("/api/offers/imports")
async def of01_import(request: Request) -> Response:
    state, shop = context(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise SandboxApiError(415, "The request must be multipart/form-data with a 'file' part")
    form = await request.form()
    upload = form.get("file")
    mode_raw = form.get("import_mode")
    if not isinstance(upload, UploadFile):
        raise bad_request("The 'file' part is required")
    if not isinstance(mode_raw, str) or not mode_raw.strip():
        raise bad_request("The 'import_mode' part is required")
    mode = _import_mode(mode_raw)
    if str(form.get("with_products", "false")).strip('"').lower() == "true":
        raise bad_request("with_products imports are not supported by the sandbox")
    name = (upload.filename or "").lower()
    if name.endswith(_UNSUPPORTED_FILES):
        raise bad_request("The sandbox only imports CSV offer files")
    content = await upload.read()
    failure: str | None = None
    columns: list[str] = []
    rows: list[ImportRow] = []
    try:
        columns, rows = parse_offer_file(content)
    except OfferFileError as exc:
        failure = str(exc)
    if failure is None:
        missing = missing_columns(columns, mode)
        if missing:
            failure = f"Missing mandatory column(s): {', '.join(missing)}"
    with state.locked():
        imp = state.add_import(
            OfferImport(
                import_id=state.new_import_id(),
                shop_id=shop.shop_id,
                mode=mode,
                created=state.now(),
                columns=columns,
                rows=rows,
                failure_reason=failure,
            )
        )
    return _created(imp)


def _created(imp: OfferImport) -> Response:
    return MiraklJSONResponse(
        {"import_id": imp.import_id},
        status_code=201,
        headers={"Location": f"/api/offers/imports/{imp.import_id}"},
    )


def _find_import(state: SandboxState, shop: Shop, raw_id: str) -> OfferImport:
    try:
        import_id = int(raw_id)
    except ValueError:
        raise bad_request(f"The import identifier must be an integer, got '{raw_id}'") from None
    imp = state.imports.get(import_id)
    if imp is None or imp.shop_id != shop.shop_id:
        raise not_found(f"Import {raw_id} not found")
    return imp


@router.get("/api/offers/imports/{import_id}")
async def of02_status(request: Request, import_id: str) -> Response:
    state, shop = context(request)
    with state.locked():
        imp = _find_import(state, shop, import_id)
        state.poll_import(imp)
        return MiraklJSONResponse(import_view(imp))


@router.get("/api/offers/imports/{import_id}/error_report")
async def of03_error_report(request: Request, import_id: str) -> Response:
    state, shop = context(request)
    with state.locked():
        imp = _find_import(state, shop, import_id)
        report = error_report_csv(imp)
    if report is None:
        raise not_found(f"No error report for import {import_id}")
    return Response(
        report,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="error-report-{import_id}.csv"'},
    )


@router.get("/api/offers")
async def of21_list(request: Request) -> Response:
    state, shop = context(request)
    params = request.query_params
    offset, size = page_window(params)
    sku = params.get("sku") or None
    product_id = params.get("product_id") or None
    states = query_list(params, "offer_state_codes")
    with state.locked():
        offers = sorted(state.shop_offers(shop.shop_id).values(), key=lambda o: o.offer_id)
        if sku is not None:
            offers = [o for o in offers if o.shop_sku == sku]
        if product_id is not None:
            offers = [o for o in offers if o.product.sku == product_id]
        if states is not None:
            offers = [o for o in offers if o.state_code in states]
        offset = page_offset(request, state, shop, "OF21", offset)
        page = offers[offset : offset + size] if size is not None else offers[offset:]
        now = state.now()
        classes = state.config.logistic_classes
        body = {
            "offers": [
                offer_view(o, shop, classes.get(o.logistic_class, o.logistic_class), now) for o in page
            ],
            "total_count": len(offers),
        }
    return MiraklJSONResponse(body)


_OF24_REQUIRED = ("shop_sku", "price", "state_code", "update_delete")


@router.post("/api/offers")
async def of24_upsert(request: Request) -> Response:
    state, shop = context(request)
    body = as_object(parse_json_body(await request.body()), "body")
    offers = as_list(body.get("offers"), "offers")
    if not offers:
        raise bad_request("offers must not be empty")
    checked: list[dict[str, object]] = []
    for index, raw in enumerate(offers):
        where = f"offers[{index}]"
        item = as_object(raw, where)
        for key in _OF24_REQUIRED:
            if key not in item:
                raise bad_request(f"{where}.{key} is required")
        # product_id / product_id_type: schema-required, but documented "Optional at offer update".
        for key in (
            "shop_sku",
            "product_id",
            "product_id_type",
            "state_code",
            "update_delete",
            "logistic_class",
        ):
            get_str(item, key, where)
        for key in ("description", "internal_description"):
            get_str(item, key, where)
        get_decimal(item, "price", where, required=True)
        for key in ("quantity", "leadtime_to_ship", "min_quantity_alert"):
            get_int(item, key, where)
        for j, field in enumerate(
            as_list(item.get("offer_additional_fields") or [], f"{where}.offer_additional_fields")
        ):
            entry = as_object(field, f"{where}.offer_additional_fields[{j}]")
            get_str(entry, "code", f"{where}.offer_additional_fields[{j}]", required=True)
        normalised = dict(item)
        for key in ("quantity", "leadtime_to_ship", "min_quantity_alert"):
            normalised[key] = get_int(item, key, where)
        normalised["price"] = get_decimal(item, "price", where)
        checked.append(normalised)
    with state.locked():
        imp = state.add_import(
            OfferImport(
                import_id=state.new_import_id(),
                shop_id=shop.shop_id,
                mode=ImportMode.NORMAL,
                created=state.now(),
                columns=list(JSON_REPORT_COLUMNS),
                rows=[json_offer_row(i + 1, o) for i, o in enumerate(checked)],
                json_offers=checked,
            )
        )
    return _created(imp)
