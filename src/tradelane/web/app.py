"""The API application: :func:`create_app` builds it from a :class:`Container`; :func:`serve` runs it.

Layout: ``/healthz``, ``/readyz``, ``/metrics`` (operations, no auth), ``/api/v1/...`` (bearer token of one
tenant), ``/openapi.json`` and ``/docs`` (Swagger UI, its assets served locally). Errors are problem
documents (:mod:`tradelane.web.problems`).
Nothing happens at import time; each app has its own metrics registry, so several apps can live in one
process.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from tradelane import __version__
from tradelane.bootstrap import Container
from tradelane.web import ops
from tradelane.web.api import include_api
from tradelane.web.api.common import API_PREFIX
from tradelane.web.dashboard import install_dashboard
from tradelane.web.metrics import ApiMetrics
from tradelane.web.middleware import BodyLimitMiddleware, RequestContextMiddleware
from tradelane.web.problems import (
    PROBLEM_JSON,
    PROBLEM_SCHEMA,
    install_problem_handlers,
    problem_ref,
    problem_responses,
)

#: Default cap on request bodies (webhooks, JSON bodies).
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024
#: Default cap on catalog file uploads.
DEFAULT_MAX_IMPORT_BYTES = 200 * 1024 * 1024

IMPORTS_PATH = f"{API_PREFIX}/catalog/imports"
#: Where the Swagger UI assets (JS, CSS, favicon) of ``/docs`` are served from.
DOCS_ASSETS_PATH = "/docs/assets"


#: Order updates carry labels: a 10 MiB PDF is ~13.4 MiB as base64 JSON.
ORDERS_PATH = f"{API_PREFIX}/orders"
LABEL_BODY_BYTES = 16 * 1024 * 1024


def create_app(
    container: Container,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_import_bytes: int = DEFAULT_MAX_IMPORT_BYTES,
) -> FastAPI:
    """A FastAPI app serving ``container``'s database. The caller keeps ownership of ``container``."""
    # /docs is Swagger UI served from this app (assets shipped by the fastapi-offline package under
    # DOCS_ASSETS_PATH): self-hosted installs are often offline, and a CDN would leave /docs blank.
    app = FastAPIOffline(
        title="tradelane",
        version=__version__,
        summary="Marketplace integration hub: tenant-scoped REST API.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        static_url=DOCS_ASSETS_PATH,
    )
    app.state.container = container
    app.state.metrics = ApiMetrics(container.engine, container.now)
    app.state.schema_heads = ops.head_revisions()
    install_problem_handlers(app)
    app.include_router(ops.router, responses=problem_responses(500))
    include_api(app)
    install_dashboard(app)
    # Added last = outermost: the request context wraps the body limit and everything else.
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=max_body_bytes,
        limits={IMPORTS_PATH: max_import_bytes, ORDERS_PATH: LABEL_BODY_BYTES},
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the ``Problem`` schema published and every 422 documented as a problem."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {
                    "description": "Unprocessable Content",
                    "content": {PROBLEM_JSON: {"schema": problem_ref()}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def make_server(container: Container, host: str | None = None, port: int | None = None) -> uvicorn.Server:
    """A uvicorn server for the API (defaults: ``settings.api_host``/``api_port``); ``run()`` blocks, and
    setting ``should_exit`` stops it gracefully.

    Access logs come from the app (structured, with request id and tenant), so uvicorn's are off."""
    config = uvicorn.Config(
        create_app(container),
        host=host or container.settings.api_host,
        port=container.settings.api_port if port is None else port,
        access_log=False,
        log_config=None,
    )
    return uvicorn.Server(config)


def serve(container: Container, host: str | None = None, port: int | None = None) -> None:
    """Run the API until interrupted (SIGINT/SIGTERM stop it gracefully), with the worker watchdog
    beside it (raises the "no live worker while jobs are due" alert; see :mod:`tradelane.sync.watchdog`)."""
    from tradelane.sync.watchdog import WorkerWatchdog

    watchdog = WorkerWatchdog(container.engine, container.now)
    watchdog.start()
    try:
        make_server(container, host, port).run()
    finally:
        watchdog.stop()
