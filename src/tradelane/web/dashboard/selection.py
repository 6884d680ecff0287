"""A channel's product selection (``/dashboard/channels/{name}/selection``): the current selection and
how many products it offers, a form to propose another (labels: any of; ``attribute=value`` conditions:
all of; or every product), its preview — what would be listed, updated and delisted, with counts and
the first SKUs — and "Apply" (``services.selection.set_selection``, audited as ``dashboard:<tenant>``,
as ``PUT /api/v1/channels/{name}/selection`` and ``tradelane channel select``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.domain.selection import ALL, Selection, selection
from tradelane.persistence.db import read_only, transaction
from tradelane.services import channels as channel_service
from tradelane.services import selection as selection_service
from tradelane.web.dashboard.rendering import PREFIX, page_url, redirect, render
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/channels", include_in_schema=False)


def _lines(text: str) -> list[str]:
    """One item per line (labels may hold commas and spaces); blank lines ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _proposed(labels: str, where: str, every: str) -> Selection:
    if every:
        return ALL
    return selection(_lines(labels), _lines(where))


def _url(name: str) -> str:
    return f"{PREFIX}/channels/{quote(name, safe='')}/selection"


@router.get("/{name}/selection")
def selection_page(
    request: Request,
    session: SessionDep,
    name: str,
    labels: Annotated[str, Query(max_length=20_000)] = "",
    where: Annotated[str, Query(max_length=20_000)] = "",
    every: Annotated[str, Query(alias="all", max_length=10)] = "",
    preview: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """The page; with ``preview=1`` the form's selection (``labels``, ``where``: one per line; ``all``)
    is previewed, else the current one."""
    container = container_of(request)
    error: str | None = None
    proposed: Selection | None = None
    if preview:
        try:
            proposed = _proposed(labels, where, every)
        except ValidationError as exc:
            error = str(exc)
    try:
        with read_only(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            current = selection_service.get_selection(conn, channel.id)
            count = selection_service.selected_count(conn, channel.id)
            shown = selection_service.preview(conn, channel, proposed or current)
    except NotFoundError as exc:
        return redirect(request, f"{PREFIX}/channels", str(exc), level="error")
    chosen = proposed or current
    form = {
        "labels": labels if preview else "\n".join(current.labels),
        "where": where if preview else "\n".join(f"{k}={v}" for k, v in current.where),
        "all": bool(preview and every),  # never pre-checked: it would override the labels typed in
    }
    return render(
        request,
        "dashboard/selection.html",
        {
            "page": "channels",
            "channel": channel,
            "current": current,
            "selected_count": count,
            "proposed": proposed,
            "preview": shown,
            "error": error,
            "form": form,
            "apply": {
                "labels": "\n".join(chosen.labels),
                "where": "\n".join(f"{k}={v}" for k, v in chosen.where),
                "all": "1" if chosen.is_all else "",
            },
            "page_url": _url(channel.name),
        },
        session=session,
    )


@router.post("/{name}/selection")
def apply_selection(
    request: Request,
    session: ActionDep,
    name: str,
    labels: Annotated[str, Form(max_length=20_000)] = "",
    where: Annotated[str, Form(max_length=20_000)] = "",
    every: Annotated[str, Form(alias="all", max_length=10)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """ "Apply": store the selection and apply it to the channel's offers, audited."""
    container = container_of(request)
    back = _url(name)
    try:
        chosen = _proposed(labels, where, every)
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            applied = selection_service.set_selection(
                conn,
                channel,
                chosen,
                actor=f"dashboard:{session.tenant.name}",
                now=container.now(),
                reason=reason.strip() or None,
            )
    except (ValidationError, NotFoundError) as exc:
        return redirect(request, back, str(exc), level="error")
    counts = applied.counts()
    message = (
        f"{name}: {chosen.describe()} applied — {counts['listed']} listed, {counts['updated']} updated, "
        f"{counts['delisted']} delisted."
    )
    return redirect(request, page_url(back, {}), message)
