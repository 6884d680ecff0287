"""Channels: lifecycle, flows (on/off, paused, last success, configured and observed frequency),
rate-limit budgets, the credentials alert, the secondary feeds never read and why; pause/resume one
flow (``services.channels.set_paused``, as ``POST /api/v1/channels/{name}/pause|resume`` and
``tradelane channel pause|resume``) and run one now (``services.channels.run_flow_now``, as
``tradelane channel sync``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tradelane.connectors.registry import CONNECTORS
from tradelane.domain.channels import Flow
from tradelane.domain.errors import NotFoundError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import channel_lifecycle
from tradelane.services import channels as channel_service
from tradelane.services.channel_insights import channel_insights
from tradelane.services.feeds import unread_feeds
from tradelane.sync.scheduler import FLOW_JOB_KINDS
from tradelane.web.dashboard.limits import bucket_limit
from tradelane.web.dashboard.rendering import PREFIX, redirect, render
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/channels", include_in_schema=False)
PAGE = f"{PREFIX}/channels"


@router.get("")
def channels_page(request: Request, session: SessionDep) -> Response:
    container = container_of(request)
    with read_only(container.engine) as conn:
        insights = channel_insights(conn, session.tenant.id, now=container.now(), limit_for=bucket_limit)
        alerts = {ins.channel.id: channel_service.credentials_alert(conn, ins.channel) for ins in insights}
    unread = {
        ins.channel.id: unread_feeds(CONNECTORS[ins.channel.connector], ins.channel.settings)
        for ins in insights
        if ins.channel.connector in CONNECTORS
    }
    runnable = {flow for flow, kind in FLOW_JOB_KINDS.items() if kind in container.registry.kinds()}
    return render(
        request,
        "dashboard/channels.html",
        {"page": "channels", "insights": insights, "alerts": alerts, "runnable": runnable, "unread": unread},
        session=session,
    )


@router.post("/run")
def run_flow(
    request: Request,
    session: ActionDep,
    channel: Annotated[str, Form()] = "",
    flow: Annotated[str, Form()] = "",
) -> Response:
    """ "Run now": the flow's job is due now (also out of a retry backoff; a rate-limit hold stays)."""
    if flow not in {f.value for f in Flow}:
        return redirect(request, PAGE, "Unknown flow.", level="error")
    container = container_of(request)
    if channel_service.manual_job_kind(Flow(flow), full=False) not in container.registry.kinds():
        return redirect(request, PAGE, f"{flow} has nothing to run on demand.", level="error")
    try:
        with transaction(container.engine) as conn:
            found = channel_service.get_channel(conn, session.tenant.id, channel)
            run = channel_service.run_flow_now(conn, found, Flow(flow), full=False, now=container.now())
    except NotFoundError as exc:
        return redirect(request, PAGE, str(exc), level="error")
    return redirect(request, PAGE, f"{channel}: {run.message()}.")


@router.post("/flows")
def set_flow_paused(
    request: Request,
    session: ActionDep,
    channel: Annotated[str, Form()] = "",
    flow: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "",
) -> Response:
    if action not in {"pause", "resume"} or flow not in {f.value for f in Flow}:
        return redirect(request, PAGE, "Unknown flow or action.", level="error")
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            found = channel_service.get_channel(conn, session.tenant.id, channel)
            channel_lifecycle.pause(
                conn,
                found,
                [Flow(flow)],
                action == "pause",
                actor=f"dashboard:{session.tenant.name}",
                now=container.now(),
            )
    except NotFoundError as exc:
        return redirect(request, PAGE, str(exc), level="error")
    verb = "paused" if action == "pause" else "resumed"
    return redirect(request, PAGE, f"{channel}: {flow} {verb}.")
