"""Overview: business health of the logged-in tenant, with hourly charts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tradelane.persistence.db import read_only
from tradelane.services.overview import business_overview
from tradelane.web.dashboard.charts import stacked_bars
from tradelane.web.dashboard.rendering import PREFIX, render
from tradelane.web.dashboard.session import SessionDep, container_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("")
def overview_page(request: Request, session: SessionDep) -> Response:
    container = container_of(request)
    with read_only(container.engine) as conn:
        view = business_overview(conn, session.tenant.id, now=container.now())
    charts = {}
    if view.orders_per_hour is not None:
        charts["orders"] = stacked_bars(view.orders_per_hour.starts, view.orders_per_hour.values)
    if view.jobs_per_hour is not None:
        charts["jobs"] = stacked_bars(view.jobs_per_hour.starts, view.jobs_per_hour.values)
    return render(
        request,
        "dashboard/overview.html",
        {"page": "overview", "view": view, "charts": charts},
        session=session,
    )
