"""The cutover page (``/dashboard/channels/{name}/cutover``): every step with its state and message,
live while the cutover waits or reverts (the page reloads itself, a meta refresh; ``live=0`` stops it);
``.../cutover/steps`` serves the steps alone as a fragment; Plan (the dry
run, read-only), Run (start or resume; the previous integrator's confirmation is a checkbox) and Revert
buttons. Actions are audited as ``dashboard:<tenant>``; while a step waits the engine's
``cutover.advance`` job keeps looking (see :mod:`tradelane.services.cutover_jobs`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from tradelane.domain.errors import TradelaneError
from tradelane.persistence.db import read_only
from tradelane.services import channels as channel_service
from tradelane.services import cutover, cutover_jobs
from tradelane.web.dashboard.rendering import PREFIX, redirect, render
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/channels", include_in_schema=False)

#: Seconds between two reloads of the page while the cutover moves.
REFRESH_SECONDS = 5


def _url(name: str) -> str:
    return f"{PREFIX}/channels/{quote(name, safe='')}/cutover"


def _deps(request: Request, tenant_name: str) -> cutover.Deps:
    container = container_of(request)
    return cutover.Deps(
        engine=container.engine,
        clock=container.now,
        keyring=container.keyring,
        actor=f"dashboard:{tenant_name}",
    )


def _context(request: Request, session: Any, name: str) -> dict[str, Any]:
    container = container_of(request)
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, session.tenant.id, name)
        found = cutover.current(conn, channel.id)
    moving = (
        found is not None
        and found.status in (cutover.WAITING, cutover.ACTIVE, cutover.REVERTING)
        and not (found.step == 1 and found.confirmed_at is None)  # waits for a person, not a worker
    )
    return {
        "page": "channels",
        "channel": channel,
        "cutover": None if found is None else found.as_json(),
        "refresh": REFRESH_SECONDS if moving else None,
        "page_url": _url(channel.name),
        "steps_url": f"{_url(channel.name)}/steps",
    }


@router.get("/{name}/cutover")
def cutover_page(
    request: Request,
    session: SessionDep,
    name: str,
    plan: Annotated[str, Query(max_length=10)] = "",
    live: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The page; with ``plan=1`` the dry run against the account (read-only) is shown too. While the
    cutover moves the page reloads itself (meta refresh) unless ``live=0`` (or a plan is shown)."""
    try:
        context = _context(request, session, name)
        planned = cutover.plan(_deps(request, session.tenant.name), context["channel"]) if plan else None
    except TradelaneError as exc:
        return redirect(request, f"{PREFIX}/channels", str(exc), level="error")
    paused = live == "0" or planned is not None
    if paused:
        context = {**context, "refresh": None, "live_paused": context["refresh"] is not None}
    return render(
        request, "dashboard/cutover.html", {"live_paused": False, **context, "plan": planned}, session=session
    )


@router.get("/{name}/cutover/steps")
def cutover_steps(request: Request, session: SessionDep, name: str) -> Response:
    """The steps alone, as a fragment (for polling clients)."""
    try:
        context = _context(request, session, name)
    except TradelaneError as exc:
        return redirect(request, f"{PREFIX}/channels", str(exc), level="error")
    return render(request, "dashboard/_cutover_steps.html", context, session=session)


@router.post("/{name}/cutover/run")
def run_cutover(
    request: Request,
    session: ActionDep,
    name: str,
    previous_integrator_disabled: Annotated[str, Form(max_length=10)] = "",
    date: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Run / resume: one ``advance`` now; the engine's job keeps looking while a step waits."""
    back = _url(name)
    container = container_of(request)
    try:
        scheduled = datetime.fromisoformat(date) if date.strip() else None
        if scheduled is not None and scheduled.tzinfo is None:
            return redirect(
                request, back, "the date needs a timezone (e.g. 2026-12-07T06:00+01:00)", level="error"
            )
        with read_only(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
        found = cutover.advance(
            _deps(request, session.tenant.name),
            channel,
            previous_integrator_disabled=bool(previous_integrator_disabled),
            scheduled_at=scheduled,
        )
        with container.engine.begin() as conn:
            cutover_jobs.follow(conn, found, now=container.now())
    except ValueError as exc:
        return redirect(request, back, f"date: {exc}", level="error")
    except TradelaneError as exc:
        return redirect(request, back, str(exc), level="error")
    level = "error" if found.status == cutover.STOPPED else "ok"
    return redirect(
        request, back, f"cutover {found.status} at step {found.step}: {found.message}", level=level
    )


@router.post("/{name}/cutover/revert")
def revert_cutover(
    request: Request,
    session: ActionDep,
    name: str,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    back = _url(name)
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
        found = cutover.revert(_deps(request, session.tenant.name), channel, reason=reason.strip() or None)
        with container.engine.begin() as conn:
            cutover_jobs.follow(conn, found, now=container.now())
    except TradelaneError as exc:
        return redirect(request, back, str(exc), level="error")
    return redirect(request, back, found.message or f"cutover {found.status}")
