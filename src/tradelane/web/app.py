"""The API application: :func:`create_app` builds it from a :class:`Container`; :func:`serve` runs it.

Layout: ``/healthz``, ``/readyz``, ``/metrics`` (operations, no auth), ``/api/v1/...`` (bearer token of one
tenant), ``/openapi.json`` and ``/docs`` (Swagger UI, its assets served locally). Errors are problem
documents (:mod:`tradelane.web.problems`).
Nothing happens at import time; each app has its own metrics registry, so several apps can live in one
process.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from sqlalchemy.engine import Engine
from uvicorn.supervisors import Multiprocess

from tradelane import __version__
from tradelane.bootstrap import Container, build
from tradelane.config import Settings
from tradelane.logging import get_logger
from tradelane.persistence.db import is_sqlite
from tradelane.web import ops
from tradelane.web.api import include_api
from tradelane.web.api.common import API_PREFIX
from tradelane.web.api.pg_intake import PgIntake
from tradelane.web.api.webhook_lane import WebhookLane
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
    # PostgreSQL: the signed merchant webhook stores in one statement on the event loop (pg_intake).
    app.state.pg_intake = intake = PgIntake.for_engine(container.engine)
    if intake is not None:
        app.router.on_startup.append(intake.open)
        app.router.on_shutdown.append(intake.close)
    install_problem_handlers(app)
    app.include_router(ops.router, responses=problem_responses(500))
    include_api(app)
    install_dashboard(app)
    # Added last = outermost: the request context wraps the body limit and everything else; the
    # webhook lane is innermost, so both apply to it.
    app.add_middleware(WebhookLane, api=app)
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


#: HTTP/1.1 parsers uvicorn offers, fastest first: ``httptools`` (C, llhttp) or ``h11`` (pure Python).
HTTP_PARSERS = ("httptools", "h11")
#: Event loops: ``uvloop`` (libuv) or the standard library's ``asyncio``.
EVENT_LOOPS = ("uvloop", "asyncio")
#: The package each fast choice needs, and what it falls back to without it.
_FALLBACKS = {"httptools": "h11", "uvloop": "asyncio"}


@dataclass(frozen=True)
class ServerIO:
    """The HTTP parser and event loop the API server runs with (uvicorn's ``http`` and ``loop``), and
    why a requested one was replaced (one human sentence per fallback; empty when none was)."""

    http: str = "httptools"
    loop: str = "uvloop"
    fallbacks: tuple[str, ...] = field(default=())


def server_io(http: str = "httptools", loop: str = "uvloop") -> ServerIO:
    """``http`` and ``loop`` as requested when their packages can be imported; otherwise the pure-Python
    parser (``h11``) or the standard event loop (``asyncio``), each with a sentence saying so. Raises
    :class:`ValueError` for a name that is neither choice. Nothing is imported: only looked up."""
    if http not in HTTP_PARSERS:
        raise ValueError(f"http must be one of {', '.join(HTTP_PARSERS)}, not {http!r}")
    if loop not in EVENT_LOOPS:
        raise ValueError(f"loop must be one of {', '.join(EVENT_LOOPS)}, not {loop!r}")
    chosen, fallbacks = [], []
    for name in (http, loop):
        if name in _FALLBACKS and importlib.util.find_spec(name) is None:
            fallbacks.append(
                f"{name} is not installed: using {_FALLBACKS[name]} instead (slower; "
                f"'pip install {name}' or 'make venv' restores it)"
            )
            name = _FALLBACKS[name]
        chosen.append(name)
    return ServerIO(chosen[0], chosen[1], tuple(fallbacks))


def make_server(
    container: Container,
    host: str | None = None,
    port: int | None = None,
    *,
    io: ServerIO | None = None,
    own_process: bool = False,
) -> uvicorn.Server:
    """A uvicorn server for the API (defaults: ``settings.api_host``/``api_port``, :func:`server_io`'s
    parser and loop); ``run()`` blocks, and setting ``should_exit`` stops it gracefully.

    ``own_process``: the server is what this process is for (``tradelane serve``), so its startup runs
    :func:`settle_server_process`; not for a server beside other work (the demo, an embedding program).

    Access logs come from the app (structured, with request id and tenant), so uvicorn's are off."""
    io = io or server_io()
    app = create_app(container)
    if own_process:
        app.router.on_startup.append(functools.partial(settle_server_process, container.engine))
    config = uvicorn.Config(
        app,
        host=host or container.settings.api_host,
        port=container.settings.api_port if port is None else port,
        http=io.http,
        loop=io.loop,
        access_log=False,
        log_config=None,
    )
    return uvicorn.Server(config)


#: Upper bound of the default number of server processes (each keeps up to ``POOL_SIZE`` connections).
MAX_DEFAULT_WORKERS = 4


def default_workers(engine: Engine, cpu_count: int | None = None) -> int:
    """How many server processes ``tradelane serve`` starts when not told: one per CPU this process may
    run on (at most :data:`MAX_DEFAULT_WORKERS`) on PostgreSQL; one on SQLite, where every write holds
    the single database lock, so more processes add contention rather than throughput."""
    if is_sqlite(engine):
        return 1
    if cpu_count is None:
        cpu_count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpu_count, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class WorkerApp:
    """The app factory each server process of ``serve(..., workers=N)`` calls (uvicorn spawns the
    processes and pickles this): it builds its own :class:`Container` from ``settings`` — engines and
    pools are never shared across processes — and closes it when the process stops."""

    settings: Settings

    def __call__(self) -> FastAPI:
        container = build(self.settings)
        app = create_app(container)
        app.router.on_startup.append(functools.partial(settle_server_process, container.engine))
        app.router.on_shutdown.append(container.close)
        return app


#: Pooled connections a server process opens before it takes its first request.
WARM_CONNECTIONS = 4


def settle_server_process(engine: Engine, connections: int = WARM_CONNECTIONS) -> None:
    """Run once by each process of ``tradelane serve`` before it serves (an app startup handler, see
    :class:`WorkerApp` and ``make_server(own_process=True)``): open ``connections`` pooled connections,
    so that the first burst of requests does not queue behind new PostgreSQL backends, then move every
    object allocated so far (modules, the app, its routes and schemas: most of the heap) out of the
    cyclic garbage collector's view with :func:`gc.freeze`. Without that, each full collection walks
    the whole startup heap: a 50-80 ms pause of every request in flight (measured on a 2-core box),
    several times a minute under load. A database that cannot be reached yet is logged, not raised:
    requests open connections as they need them."""
    held = []
    try:
        for _ in range(connections):
            held.append(engine.connect())
    except sa.exc.DBAPIError as exc:
        get_logger("tradelane.serve").warning("serve.warm_up_failed", error=str(exc.orig))
    finally:
        for conn in held:
            conn.close()
    gc.collect()
    gc.freeze()


def serve(
    container: Container,
    host: str | None = None,
    port: int | None = None,
    *,
    workers: int = 1,
    io: ServerIO | None = None,
) -> None:
    """Run the API until interrupted (SIGINT/SIGTERM stop it gracefully), with the worker watchdog
    beside it (raises the "no live worker while jobs are due" alert; see :mod:`tradelane.sync.watchdog`).

    ``workers`` > 1: that many server processes share the listening socket (the API is stateless: every
    request's state is in the database), each with its own container built from ``container.settings``;
    this process supervises them (a dead one is replaced) and runs the one watchdog.

    ``io``: the HTTP parser and event loop (default :func:`server_io`: httptools and uvloop, or their
    fallbacks, each logged as a ``serve.fallback`` warning)."""
    from tradelane.sync.watchdog import WorkerWatchdog

    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    io = io or server_io()
    for reason in io.fallbacks:
        get_logger("tradelane.serve").warning("serve.fallback", reason=reason)
    watchdog = WorkerWatchdog(container.engine, container.now)
    watchdog.start()
    try:
        if workers == 1:
            make_server(container, host, port, io=io, own_process=True).run()
            return
        config = uvicorn.Config(
            WorkerApp(container.settings),
            factory=True,
            host=host or container.settings.api_host,
            port=container.settings.api_port if port is None else port,
            workers=workers,
            http=io.http,
            loop=io.loop,
            access_log=False,
            log_config=None,
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        watchdog.stop()
