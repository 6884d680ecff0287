"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API answers is a problem document ``{type, title, status, detail, errors?}``:

* request validation failures → 422 with ``errors`` (location, message, type per field; the rejected
  input is never echoed);
* :class:`NotFoundError` → 404, :class:`ConflictError` → 409, tradelane's :class:`ValidationError` → 422,
  :class:`PermanentError` (a remote system refused) → 502, :class:`RetryableError` → 503 with
  ``Retry-After`` when known;
* HTTP errors (unknown route, wrong method, 401, 413...) keep their status;
* anything unexpected → 500 without internals (see :mod:`tradelane.web.middleware`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from tradelane.domain.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    RetryableError,
    ValidationError,
)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:tradelane:problem:"

#: JSON Schema of a problem document, published as ``components.schemas.Problem`` in the OpenAPI.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "URI reference identifying the problem type."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_PREFIX + slug


class ApiProblem(StarletteHTTPException):
    """An HTTP error with a specific problem ``type`` (raise it from routes and dependencies)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers) if headers else None)
        self.problem_type = problem_type(slug) if slug else "about:blank"
        self.title = title


class PayloadTooLarge(ApiProblem):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes", slug="payload-too-large")


class ProblemResponse(JSONResponse):
    """``application/problem+json``, rendered as pure ASCII (non-ASCII escaped as ``\\uXXXX``).

    Problem details often echo client input (names, references); ASCII bytes cannot be mis-decoded by a
    client that guesses the charset of a ``+json`` type (which carries none)."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def problem_response(
    status: int,
    *,
    detail: str | None = None,
    title: str | None = None,
    type_: str = "about:blank",
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> ProblemResponse:
    """A problem document response. ``title`` defaults to the HTTP reason phrase."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _phrase(status),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = list(errors)
    if request_id:
        body["request_id"] = request_id
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    result = []
    for err in exc.errors():
        loc = [part if isinstance(part, int) else str(part) for part in err.get("loc", ())]
        result.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    return result


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiProblem):
        return problem_response(
            exc.status_code,
            detail=str(exc.detail),
            title=exc.title,
            type_=exc.problem_type,
            headers=exc.headers,
            request_id=_request_id(request),
        )
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == _phrase(exc.status_code):
        detail = None  # Starlette's default detail repeats the title
    return problem_response(
        exc.status_code, detail=detail, headers=exc.headers, request_id=_request_id(request)
    )


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        422,
        title="Request validation failed",
        detail="the request does not match the API schema; see errors",
        type_=problem_type("validation-error"),
        errors=_field_errors(exc),
        request_id=_request_id(request),
    )


def _simple(status: int, slug: str) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        return problem_response(
            status, detail=str(exc), type_=problem_type(slug), request_id=_request_id(request)
        )

    return handler


async def _on_permanent(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PermanentError)
    return problem_response(
        502,
        title="Upstream system refused the request",
        detail=exc.reason,
        type_=problem_type("upstream-refused"),
        request_id=_request_id(request),
    )


async def _on_retryable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RetryableError)
    headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))} if exc.retry_after else None
    return problem_response(
        503,
        title="Temporarily unavailable",
        detail=exc.reason,
        type_=problem_type("temporarily-unavailable"),
        headers=headers,
        request_id=_request_id(request),
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn errors into problem documents."""
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(NotFoundError, _simple(404, "not-found"))
    app.add_exception_handler(ConflictError, _simple(409, "conflict"))
    app.add_exception_handler(ValidationError, _simple(422, "invalid-input"))
    app.add_exception_handler(PermanentError, _on_permanent)
    app.add_exception_handler(RetryableError, _on_retryable)


def problem_ref() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Problem"}


def problem_responses(*statuses: int | str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem documents for ``statuses``."""
    return {
        status: {
            "description": _phrase(status) if isinstance(status, int) else "Error",
            "content": {PROBLEM_JSON: {"schema": problem_ref()}},
        }
        for status in statuses
    }
