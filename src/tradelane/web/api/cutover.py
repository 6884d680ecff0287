"""The cutover of a live marketplace account, over the API (see :mod:`tradelane.services.cutover`):
plan (dry run), run (start or resume; one ``advance`` now, then the engine's ``cutover.advance`` job
keeps looking while a step waits), status, revert, and the audit log (JSON or CSV). Actions are
audited as ``api:<tenant>``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.db import read_only
from tradelane.services import audit, cutover, cutover_jobs
from tradelane.services import channels as channel_service
from tradelane.web.api.common import API_PREFIX, ChannelName
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/channels", tags=["cutover"])


class RunIn(BaseModel):
    """``previous_integrator_disabled``: the operator confirms step 1 (without it the cutover waits
    there); ``date``: when to start (with a zone; default now), only when the cutover is created."""

    model_config = ConfigDict(extra="forbid")

    previous_integrator_disabled: bool = False
    date: datetime | None = None
    holiday_days: int = Field(default=cutover.DEFAULT_HOLIDAY_DAYS, ge=1, le=365)


class RevertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


def _deps(container: Any, tenant_name: str) -> cutover.Deps:
    return cutover.Deps(
        engine=container.engine, clock=container.now, keyring=container.keyring, actor=f"api:{tenant_name}"
    )


@router.post(
    "/{name}/cutover/plan",
    summary="Dry run of the cutover (counts; nothing written)",
    responses=problem_responses(404, 502, 503),
)
def plan_cutover(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> dict[str, Any]:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
    return cutover.plan(_deps(container, tenant.name), channel)


@router.post(
    "/{name}/cutover/run",
    summary="Start or resume the channel's cutover",
    responses=problem_responses(404, 409, 502, 503),
)
def run_cutover(
    name: ChannelName, tenant: TenantDep, container: ContainerDep, body: Annotated[RunIn, Body()]
) -> dict[str, Any]:
    """Takes the cutover as far as it goes now and answers its status; while a step waits the
    engine's ``cutover.advance`` job looks again (a worker must run)."""
    if body.date is not None and body.date.tzinfo is None:
        raise ValidationError("date needs a timezone")
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
    found = cutover.advance(
        _deps(container, tenant.name),
        channel,
        previous_integrator_disabled=body.previous_integrator_disabled,
        scheduled_at=body.date,
        holiday_days=body.holiday_days,
    )
    with container.engine.begin() as conn:
        cutover_jobs.follow(conn, found, now=container.now())
    return found.as_json()


@router.get(
    "/{name}/cutover",
    summary="The cutover's current step and every step's state",
    responses=problem_responses(404),
)
def cutover_status(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> dict[str, Any]:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        found = cutover.current(conn, channel.id)
    if found is None:
        raise NotFoundError(f"channel {name} has no cutover")
    return found.as_json()


@router.post(
    "/{name}/cutover/revert",
    summary="Restore the account as the cutover found it (resumable)",
    responses=problem_responses(404, 409, 502, 503),
)
def revert_cutover(
    name: ChannelName, tenant: TenantDep, container: ContainerDep, body: Annotated[RevertIn, Body()]
) -> dict[str, Any]:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
    found = cutover.revert(_deps(container, tenant.name), channel, reason=body.reason)
    with container.engine.begin() as conn:
        cutover_jobs.follow(conn, found, now=container.now())
    return found.as_json()


@router.get(
    "/{name}/cutover/log",
    summary="The cutover's audit log, oldest first (JSON, or CSV with ?format=csv)",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(404)},
    response_model=None,
)
def cutover_log(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Response | list[dict[str, Any]]:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        events = cutover.log(conn, channel.id)
    if format == "csv":
        return Response(
            audit.to_csv(events),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{channel.name}-cutover.csv"'},
        )
    return [e.as_json() for e in events]
