"""Notifications: where the tenant's notifications go, the SMTP server, and the recent notifications with
each destination's status and last error; a button sends a test notification now
(:func:`tradelane.services.notifications.send_test`, as ``tradelane notify test``). Settings are changed
with ``tradelane notify set`` or the API; the webhook secret is never shown."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tradelane.domain.errors import ValidationError
from tradelane.persistence.db import read_only
from tradelane.services import notification_settings as destinations
from tradelane.services import notifications
from tradelane.web.dashboard.rendering import PREFIX, redirect, render
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/notifications", include_in_schema=False)
PAGE = f"{PREFIX}/notifications"
PAGE_SIZE = 50


@router.get("")
def notifications_page(request: Request, session: SessionDep) -> Response:
    container = container_of(request)
    transport = container.extras.get(notifications.TRANSPORT)
    with read_only(container.engine) as conn:
        scopes = destinations.show(conn, session.tenant.id)
        recent = notifications.recent(conn, session.tenant.id, limit=PAGE_SIZE)
    return render(
        request,
        "dashboard/notifications.html",
        {
            "page": "notifications",
            "scopes": scopes,
            "notes": recent,
            "smtp": transport.smtp.describe() if isinstance(transport, notifications.Transport) else None,
        },
        session=session,
    )


@router.post("/test")
def send_test(request: Request, session: ActionDep) -> Response:
    container = container_of(request)
    transport = container.extras.get(notifications.TRANSPORT)
    if not isinstance(transport, notifications.Transport):
        return redirect(request, PAGE, "No notification transport is wired.", level="error")
    try:
        note = notifications.send_test(
            container.engine, transport, tenant_id=session.tenant.id, channel_id=None, now=container.now()
        )
    except ValidationError as exc:
        return redirect(request, PAGE, str(exc), level="error")
    failed = [d for d in note.deliveries if d.status != "sent"]
    if failed:
        why = "; ".join(f"{d.destination}: {d.last_error}" for d in failed)
        return redirect(request, PAGE, f"Test notification not delivered everywhere: {why}", level="error")
    return redirect(request, PAGE, f"Test notification sent to {len(note.deliveries)} destination(s).")
