"""Channels of the tenant: list, detail with per-flow status, pause/resume flows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from tradelane.domain.channels import Flow
from tradelane.persistence.db import read_only, transaction
from tradelane.services import channel_lifecycle
from tradelane.services import channels as channel_service
from tradelane.services.channels import Channel, FlowStatus
from tradelane.services.tenants import Tenant
from tradelane.web.api.common import API_PREFIX, ChannelName
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/channels", tags=["channels"])


class ChannelOut(BaseModel):
    id: int
    name: str
    connector: str
    lifecycle_state: str


class FlowOut(BaseModel):
    flow: Flow
    enabled: bool
    paused: bool
    frequency_seconds: int | None
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    pause_reason: str | None = Field(
        default=None, description="Why it is paused: null (an operator) or `auth` (credentials rejected)."
    )


class ChannelDetailOut(ChannelOut):
    flows: list[FlowOut]
    alert: str | None = Field(default=None, description="The open credentials alert, if any.")


class ChannelList(BaseModel):
    items: list[ChannelOut]


class FlowSelection(BaseModel):
    """Which flows to pause or resume; all of them when ``flows`` is omitted or null."""

    model_config = ConfigDict(extra="forbid")

    flows: list[Flow] | None = Field(default=None, min_length=1)


def _out(channel: Channel) -> ChannelOut:
    return ChannelOut(
        id=channel.id, name=channel.name, connector=channel.connector, lifecycle_state=channel.lifecycle_state
    )


def _flow_out(status: FlowStatus) -> FlowOut:
    return FlowOut(
        flow=status.flow,
        enabled=status.enabled,
        paused=status.paused,
        frequency_seconds=status.frequency_seconds,
        next_run_at=status.next_run_at,
        last_run_at=status.last_run_at,
        last_success_at=status.last_success_at,
        last_error=status.last_error,
        pause_reason=status.pause_reason,
    )


def _detail(channel: Channel, flows: list[FlowStatus], alert: str | None = None) -> ChannelDetailOut:
    return ChannelDetailOut(**_out(channel).model_dump(), flows=[_flow_out(f) for f in flows], alert=alert)


@router.get("", summary="List the tenant's channels (by name)")
def list_channels(tenant: TenantDep, container: ContainerDep) -> ChannelList:
    with read_only(container.engine) as conn:
        rows = channel_service.list_channels(conn, tenant.id)
    return ChannelList(items=[_out(c) for c in rows])


@router.get("/{name}", summary="One channel with the status of each flow", responses=problem_responses(404))
def get_channel(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> ChannelDetailOut:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        flows = channel_service.flow_statuses(conn, channel.id)
        alert = channel_service.credentials_alert(conn, channel)
    return _detail(channel, flows, alert)


def _set_paused(
    container: ContainerDep, tenant: Tenant, name: str, selection: FlowSelection | None, paused: bool
) -> ChannelDetailOut:
    flows = None
    if selection is not None and selection.flows is not None:
        flows = list(dict.fromkeys(selection.flows))
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        channel_lifecycle.pause(conn, channel, flows, paused, actor=f"api:{tenant.name}", now=container.now())
        statuses = channel_service.flow_statuses(conn, channel.id)
    return _detail(channel, statuses)


@router.post(
    "/{name}/pause",
    summary="Pause flows (all when none are named); queued jobs wait until resumed",
    responses=problem_responses(404),
)
def pause_channel(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    selection: Annotated[FlowSelection | None, Body()] = None,
) -> ChannelDetailOut:
    return _set_paused(container, tenant, name, selection, True)


@router.post(
    "/{name}/resume", summary="Resume flows (all when none are named)", responses=problem_responses(404)
)
def resume_channel(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    selection: Annotated[FlowSelection | None, Body()] = None,
) -> ChannelDetailOut:
    return _set_paused(container, tenant, name, selection, False)
