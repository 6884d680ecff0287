"""A channel's lifecycle (Setup -> Testing -> Live), flow switches, audit history and communication
frequency — the API side of `tradelane channel activate|promote|flow|history|frequency`. Every change is
audited with actor ``api:<tenant name>``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tradelane.connectors.registry import check_channel
from tradelane.domain.channels import parse_flow
from tradelane.domain.errors import ValidationError
from tradelane.domain.lifecycle import MAX_TESTING_DAYS
from tradelane.persistence.db import read_only, transaction
from tradelane.services import audit
from tradelane.services import channel_lifecycle as lifecycle_service
from tradelane.services import channels as channel_service
from tradelane.services.communication import communication_frequency
from tradelane.web.api.common import API_PREFIX, PRINTABLE, ChannelName
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=API_PREFIX, tags=["lifecycle"])

Reason = Annotated[str | None, Field(default=None, max_length=1000, pattern=PRINTABLE)]


class LifecycleOut(BaseModel):
    name: str
    state: str
    testing_days: int
    testing_started_at: datetime | None
    testing_ends_at: datetime | None
    live_at: datetime | None
    go_live_blockers: list[str]
    alert: str | None = Field(description="The open go-live alert (automatic promotion or blocked), if any.")
    flows: dict[str, bool] = Field(description="Flow -> switched on.")


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    testing_days: Annotated[int | None, Field(default=None, ge=1, le=MAX_TESTING_DAYS)] = None
    reason: Reason = None


class TestingPeriodIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    testing_days: Annotated[int, Field(ge=1, le=MAX_TESTING_DAYS)]
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=PRINTABLE)] = Field(
        description="Why (required: the period decides when the channel goes live)."
    )


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = None
    override_reason: Reason = Field(default=None, description="Go live despite the blockers (audited).")


class FlowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    reason: Reason = None


class FlowOut(BaseModel):
    flow: str
    enabled: bool
    changed: bool


def _actor(tenant: Any) -> str:
    return f"api:{tenant.name}"


def _lifecycle_out(conn: Any, channel: channel_service.Channel) -> LifecycleOut:
    view = lifecycle_service.lifecycle(conn, channel)
    alert = lifecycle_service.go_live_alert(conn, channel)
    return LifecycleOut(
        name=channel.name,
        state=view.state.value,
        testing_days=view.testing_days,
        testing_started_at=view.testing_started_at,
        testing_ends_at=view.testing_ends_at,
        live_at=view.live_at,
        go_live_blockers=lifecycle_service.go_live_blockers(conn, channel),
        alert=alert[1] if alert else None,
        flows={s.flow.value: s.enabled for s in channel_service.flow_statuses(conn, channel.id)},
    )


@router.get(
    "/channels/{name}/lifecycle",
    summary="The channel's lifecycle, blockers and flows",
    responses=problem_responses(404),
)
def get_lifecycle(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> LifecycleOut:
    with read_only(container.engine) as conn:
        return _lifecycle_out(conn, channel_service.get_channel(conn, tenant.id, name))


@router.post(
    "/channels/{name}/activate",
    summary='"Save and activate": check the credentials, then Setup -> Testing',
    responses=problem_responses(404, 409),
)
def activate(name: ChannelName, body: ActivateIn, tenant: TenantDep, container: ContainerDep) -> LifecycleOut:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        checked = check_channel(conn, channel, container.keyring)
    with transaction(container.engine) as conn:
        lifecycle_service.activate(
            conn,
            channel,
            checked=checked,
            actor=_actor(tenant),
            now=container.now(),
            testing_days=body.testing_days,
            reason=body.reason,
        )
        return _lifecycle_out(conn, channel)


@router.put(
    "/channels/{name}/testing-period",
    summary="Change the testing period of a channel in testing (its end counted from its start; a period "
    "already over is promoted at the engine's next check, blockers apply)",
    responses=problem_responses(404, 409),
)
def put_testing_period(
    name: ChannelName, body: TestingPeriodIn, tenant: TenantDep, container: ContainerDep
) -> LifecycleOut:
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        lifecycle_service.set_testing_period(
            conn, channel, body.testing_days, actor=_actor(tenant), now=container.now(), reason=body.reason
        )
        return _lifecycle_out(conn, channel)


@router.post(
    "/channels/{name}/promote",
    summary="Testing -> Live (409 while go-live blockers exist, unless overridden with a reason)",
    responses=problem_responses(404, 409),
)
def promote(name: ChannelName, body: PromoteIn, tenant: TenantDep, container: ContainerDep) -> LifecycleOut:
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        lifecycle_service.promote(
            conn,
            channel,
            actor=_actor(tenant),
            now=container.now(),
            reason=body.reason,
            override_reason=body.override_reason,
        )
        return _lifecycle_out(conn, channel)


@router.put(
    "/channels/{name}/flows/{flow}",
    summary="Switch one flow on or off (the reconciler is switched on through its dry run)",
    responses=problem_responses(404),
)
def put_flow(
    name: ChannelName, flow: str, body: FlowIn, tenant: TenantDep, container: ContainerDep
) -> FlowOut:
    try:
        target = parse_flow(flow)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        change = lifecycle_service.set_flow(
            conn, channel, target, body.enabled, actor=_actor(tenant), reason=body.reason, now=container.now()
        )
    return FlowOut(flow=change.flow.value, enabled=change.enabled, changed=change.changed)


@router.get(
    "/channels/{name}/history",
    summary="The channel's audit trail, oldest first (JSON, or CSV with ?format=csv)",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(404)},
)
def history(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        events = audit.history(conn, channel.id, limit=None)
    if format == "csv":
        return Response(
            audit.to_csv(events),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{channel.name}-history.csv"'},
        )
    return [e.as_json() for e in events]


@router.get(
    "/channels/{name}/frequency",
    summary="Communication frequency: full sync, stock change, orders (recomputed now)",
    responses=problem_responses(404),
)
def frequency(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> dict[str, Any]:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        figures = communication_frequency(
            conn, channel, worker_poll_seconds=container.settings.worker_poll_seconds
        )
        return {"channel": channel.name, **figures.as_json()}
