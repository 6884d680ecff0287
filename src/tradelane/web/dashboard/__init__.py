"""The server-rendered dashboard (``/dashboard``): Jinja2 pages over the same services as the API and
the CLI, scoped to the tenant whose API token was used to log in (see :mod:`.session`).

:func:`install_dashboard` mounts it on an app: the pages, ``/static`` (CSS and the small script, shipped
as package data) and ``/`` redirecting to the dashboard.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, cast

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tradelane.web.dashboard import channel_detail, channels, health, jobs, login, offers, orders, overview
from tradelane.web.dashboard import cutover as cutover_pages
from tradelane.web.dashboard import id_match as id_match_pages
from tradelane.web.dashboard import notifications as notification_pages
from tradelane.web.dashboard import reconcile as reconcile_pages
from tradelane.web.dashboard import selection as selection_pages
from tradelane.web.dashboard import test_orders as test_order_pages
from tradelane.web.dashboard.rendering import build_environment

STATIC_PATH = "/static"


def install_dashboard(app: FastAPI) -> None:
    """Mount the dashboard's routes, static files and error handlers on ``app`` (whose
    ``state.container`` is the :class:`~tradelane.bootstrap.Container`)."""
    app.state.dashboard_templates = build_environment()
    for module in (login, overview, channels, channel_detail, offers, orders, test_order_pages, health, jobs):
        app.include_router(module.router)
    app.include_router(selection_pages.router)  # /dashboard/channels/{name}/selection
    app.include_router(cutover_pages.router)  # /dashboard/channels/{name}/cutover
    app.include_router(reconcile_pages.router)  # /dashboard/channels/{name}/reconcile
    app.include_router(id_match_pages.router)  # /dashboard/channels/{name}/id-match
    app.include_router(notification_pages.router)  # /dashboard/notifications
    for exc_class, handler in login.HANDLERS.items():
        app.add_exception_handler(exc_class, cast(Any, handler))
    app.mount(STATIC_PATH, StaticFiles(directory=str(files("tradelane.web") / "static")), name="static")
