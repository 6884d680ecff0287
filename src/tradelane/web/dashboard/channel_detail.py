"""One channel's page (``/dashboard/channels/{name}``): its lifecycle Setup -> Testing -> Live with the
"Save and activate" and "Promote" buttons (and the override with a reason), the testing period's
change, its flow switches, its communication frequency and its history (CSV too). Every change goes through
``services.channel_lifecycle``, audited with actor ``dashboard:<tenant name>``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tradelane.connectors.registry import check_channel
from tradelane.domain.channels import Flow
from tradelane.domain.errors import NotFoundError, TradelaneError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import audit
from tradelane.services import channel_lifecycle as lifecycle_service
from tradelane.services import channels as channel_service
from tradelane.services.communication import communication_frequency
from tradelane.web.dashboard.rendering import PREFIX, redirect, render, with_security_headers
from tradelane.web.dashboard.session import ActionDep, DashboardSession, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/channels", include_in_schema=False)

#: The flows in the order an operator switches them on during Testing, with their dashboard names.
FLOW_NAMES: dict[Flow, str] = {
    Flow.OFFERS: "Listings",
    Flow.ORDERS: "Orders",
    Flow.FULFILLMENTS: "Fulfillments",
    Flow.RECONCILER: "Reconciler",
}


def _page(name: str) -> str:
    return f"{PREFIX}/channels/{quote(name, safe='')}"


def _actor(session: DashboardSession) -> str:
    return f"dashboard:{session.tenant.name}"


@router.get("/{name}")
def channel_page(request: Request, name: str, session: SessionDep) -> Response:
    container = container_of(request)
    with read_only(container.engine) as conn:
        try:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
        except NotFoundError as exc:
            return redirect(request, f"{PREFIX}/channels", f"{exc}.", level="error")
        context = {
            "page": "channels",
            "channel": channel,
            "lifecycle": lifecycle_service.lifecycle(conn, channel),
            "blockers": lifecycle_service.go_live_blockers(conn, channel),
            "alert": lifecycle_service.go_live_alert(conn, channel),
            "flows": {s.flow: s for s in channel_service.flow_statuses(conn, channel.id)},
            "flow_names": FLOW_NAMES,
            "frequency": communication_frequency(
                conn, channel, worker_poll_seconds=container.settings.worker_poll_seconds
            ),
            "events": list(reversed(audit.history(conn, channel.id, limit=200))),
            "page_url": _page(channel.name),
        }
    return render(request, "dashboard/channel.html", context, session=session)


@router.get("/{name}/history.csv")
def history_csv(request: Request, name: str, session: SessionDep) -> Response:
    container = container_of(request)
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, session.tenant.id, name)
        events = audit.history(conn, channel.id, limit=None)
    response = Response(
        audit.to_csv(events),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{channel.id}-history.csv"'},
    )
    return with_security_headers(response)


@router.post("/{name}/activate")
def activate(
    request: Request,
    name: str,
    session: ActionDep,
    testing_days: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """ "Save and activate": the credentials check, then Setup -> Testing."""
    container = container_of(request)
    try:
        days = int(testing_days) if testing_days.strip() else None
    except ValueError:
        return redirect(request, _page(name), "The testing period is a number of days.", level="error")
    try:
        with read_only(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            checked = check_channel(conn, channel, container.keyring)
        with transaction(container.engine) as conn:
            view = lifecycle_service.activate(
                conn,
                channel,
                checked=checked,
                actor=_actor(session),
                now=container.now(),
                testing_days=days,
                reason=reason.strip() or None,
            )
    except TradelaneError as exc:
        return redirect(request, _page(name), str(exc), level="error")
    return redirect(request, _page(name), f"{name}: testing for {view.testing_days} days — {checked.message}")


@router.post("/{name}/testing-period")
def testing_period(
    request: Request,
    name: str,
    session: ActionDep,
    testing_days: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Change the testing period of a channel in Testing (a reason is required)."""
    container = container_of(request)
    try:
        days = int(testing_days)
    except ValueError:
        return redirect(request, _page(name), "The testing period is a number of days.", level="error")
    now = container.now()
    try:
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            view = lifecycle_service.set_testing_period(
                conn, channel, days, actor=_actor(session), now=now, reason=reason.strip() or None
            )
    except TradelaneError as exc:
        return redirect(request, _page(name), str(exc), level="error")
    message = f"{name}: testing for {view.testing_days} days"
    if view.testing_ends_at is not None and view.testing_ends_at <= now:
        message += " — already over: it goes live at the engine's next check (unless go-live is blocked)"
    return redirect(request, _page(name), message + ".")


@router.post("/{name}/promote")
def promote(
    request: Request,
    name: str,
    session: ActionDep,
    reason: Annotated[str, Form()] = "",
    override_reason: Annotated[str, Form()] = "",
) -> Response:
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            lifecycle_service.promote(
                conn,
                channel,
                actor=_actor(session),
                now=container.now(),
                reason=reason.strip() or None,
                override_reason=override_reason.strip() or None,
            )
    except TradelaneError as exc:
        return redirect(request, _page(name), str(exc), level="error")
    return redirect(request, _page(name), f"{name} is live.")


@router.post("/{name}/flow")
def switch_flow(
    request: Request,
    name: str,
    session: ActionDep,
    flow: Annotated[str, Form()] = "",
    enabled: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    if flow not in {f.value for f in Flow} or enabled not in {"on", "off"}:
        return redirect(request, _page(name), "Unknown flow or switch.", level="error")
    container = container_of(request)
    try:
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            change = lifecycle_service.set_flow(
                conn,
                channel,
                Flow(flow),
                enabled == "on",
                actor=_actor(session),
                reason=reason.strip() or None,
                now=container.now(),
            )
    except TradelaneError as exc:
        return redirect(request, _page(name), str(exc), level="error")
    label = FLOW_NAMES[Flow(flow)]
    done = f"{label} switched {enabled}" if change.changed else f"{label} already {enabled}"
    return redirect(request, _page(name), f"{name}: {done}.")
