"""``POST /api/v1/catalog/imports``: import a catalog file (CSV or JSON Lines) into the tenant's products.

The file comes either as a multipart upload (part ``file``) or as the raw request body. The format is
``?format=`` when given, else the upload's file extension, else the content type (``text/csv``,
``application/x-ndjson``/``application/jsonl``). The upload is spooled to a private temporary file,
imported by :func:`tradelane.services.catalog_import.import_catalog` (which refuses bad files with
``CatalogFileError``, a 422 here), and deleted. The body size is capped by the body-limit middleware.
"""

from __future__ import annotations

import re
import tempfile
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from python_multipart.exceptions import ParseError as MultipartParseError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tradelane.domain.errors import ValidationError
from tradelane.persistence.db import transaction
from tradelane.services.catalog_followups import release_resolved_orders
from tradelane.services.catalog_import import import_catalog
from tradelane.web.api.common import API_PREFIX
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import ApiProblem, problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/catalog", tags=["catalog"])

_CHUNK = 1 << 16


class ImportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


_BY_CONTENT_TYPE = {
    "text/csv": ImportFormat.CSV,
    "application/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.JSONL,
    "application/jsonl": ImportFormat.JSONL,
    "application/x-jsonlines": ImportFormat.JSONL,
}
_BY_SUFFIX = {".csv": ImportFormat.CSV, ".jsonl": ImportFormat.JSONL, ".ndjson": ImportFormat.JSONL}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class RejectedRow(BaseModel):
    line: int = Field(description="Physical line of the file (1-based; the CSV header is line 1).")
    sku: str | None
    error: str


class ImportSummaryOut(BaseModel):
    """Outcome of the import; ``errors`` holds the first rejected rows, ``rejected`` counts them all."""

    import_id: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[RejectedRow]
    errors_truncated: bool


_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "sku,title,price,currency,quantity,labels,attr:color\n"
                "TEE-1,Tee,19.90,EUR,5,new;summer,red\n",
            },
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"sku": "TEE-1", "title": "Tee", "price": "19.90", "currency": "EUR"}\n',
            },
        },
    }
}


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _recorded_name(filename: str | None, fmt: ImportFormat) -> str:
    """The name recorded with the import: the upload's base name without control characters, bounded."""
    readable = (filename or "").encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    base = _CONTROL_CHARS.sub("", PurePosixPath(readable.replace("\\", "/")).name)[:200]
    return base or f"upload.{fmt.value}"


def _format_for(explicit: ImportFormat | None, filename: str | None, media_type: str) -> ImportFormat:
    if explicit is not None:
        return explicit
    by_suffix = _BY_SUFFIX.get(Path(filename or "").suffix.lower())
    if by_suffix is not None:
        return by_suffix
    by_type = _BY_CONTENT_TYPE.get(media_type)
    if by_type is not None:
        return by_type
    raise ValidationError(
        "cannot tell the file format: pass ?format=csv|jsonl, a .csv/.jsonl file name or a "
        "text/csv / application/x-ndjson content type"
    )


async def _spool_upload(
    request: Request, path: Path, explicit: ImportFormat | None
) -> tuple[ImportFormat, str]:
    try:
        form = await request.form(max_files=1, max_fields=10)
    except MultipartParseError as exc:
        # Starlette only converts its own multipart errors to 400; python-multipart's escape it.
        raise ApiProblem(400, f"malformed multipart body: {exc}", slug="malformed-body") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationError("the multipart body needs a file part named 'file'")
        fmt = _format_for(explicit, upload.filename, _media_type(upload.content_type))
        with path.open("wb") as out:
            while chunk := await upload.read(_CHUNK):
                out.write(chunk)
    finally:
        await form.close()
    return fmt, _recorded_name(upload.filename, fmt)


async def _spool_body(
    request: Request, path: Path, explicit: ImportFormat | None
) -> tuple[ImportFormat, str]:
    fmt = _format_for(explicit, None, _media_type(request.headers.get("content-type")))
    with path.open("wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
    return fmt, _recorded_name(None, fmt)


@router.post(
    "/imports",
    summary="Import a catalog file (multipart `file` part or raw body)",
    responses=problem_responses(413),
    openapi_extra=_OPENAPI,
)
async def import_catalog_file(
    request: Request,
    tenant: TenantDep,
    container: ContainerDep,
    fmt: Annotated[
        ImportFormat | None, Query(alias="format", description="File format; inferred when omitted.")
    ] = None,
) -> ImportSummaryOut:
    """Runs the import now and answers its summary (created/updated/unchanged/rejected counts...)."""
    with tempfile.TemporaryDirectory(prefix="tradelane-import-") as tmp:
        path = Path(tmp) / "upload"
        if _media_type(request.headers.get("content-type")) == "multipart/form-data":
            fmt_used, name = await _spool_upload(request, path, fmt)
        else:
            fmt_used, name = await _spool_body(request, path, fmt)
        summary = await run_in_threadpool(
            lambda: import_catalog(
                container.engine,
                tenant_id=tenant.id,
                path=path,
                fmt=fmt_used.value,
                now=container.now(),
                filename=name,
            )
        )
    with transaction(container.engine) as conn:  # SKUs that just appeared release the orders waiting for them
        release_resolved_orders(conn, tenant_id=tenant.id, now=container.now())
    return ImportSummaryOut.model_validate(summary.as_dict())
