"""Notifications of the tenant: where they go, a test send, and the recent ones with their status.

* ``GET /api/v1/notifications/settings`` — the SMTP server (no credentials) and every scope's settings
  (tenant-wide, then per channel). The webhook secret is write-only: only ``webhook_secret_set`` shows.
* ``PATCH /api/v1/notifications/settings`` — change one scope (``channel`` null: tenant-wide); fields
  left out stay as they are: ``emails`` replaces the recipients (``[]`` removes them), ``webhook_url``
  sets the webhook (``""`` removes it with its secret), ``webhook_secret`` replaces the secret (a new
  webhook needs one). A scope left empty is removed (``removed: true``). A channel's change is audited.
* ``POST /api/v1/notifications/test`` — send a test notification now; answers what happened to each
  destination (200 even when one failed: the outcome is the answer).
* ``GET /api/v1/notifications`` — recent notifications, newest first, each destination's status.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tradelane.persistence.db import read_only, transaction
from tradelane.services import notification_settings as destinations
from tradelane.services import notifications
from tradelane.services.channels import get_channel
from tradelane.web.api.common import API_PREFIX, MAX_PAGE_SIZE, PRINTABLE
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/notifications", tags=["notifications"])

ChannelName = Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]


class DestinationsOut(BaseModel):
    channel: str | None = Field(description="Null: the tenant-wide settings.")
    emails: list[str]
    webhook_url: str | None
    webhook_secret_set: bool = Field(description="Whether a signing secret is stored (it is never shown).")
    updated_at: str


class SettingsOut(BaseModel):
    smtp: str = Field(description="The SMTP server notifications are mailed through (no credentials).")
    destinations: list[DestinationsOut]


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ChannelName | None = Field(default=None, description="Null: the tenant-wide settings.")
    emails: list[Annotated[str, Field(min_length=3, max_length=254, pattern=PRINTABLE)]] | None = Field(
        default=None, max_length=destinations.MAX_RECIPIENTS, description="Replaces the recipients."
    )
    webhook_url: Annotated[str, Field(max_length=1000, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = Field(
        default=None, description='http(s) URL receiving a signed POST per notification; "" removes it.'
    )
    webhook_secret: SecretStr | None = Field(
        default=None, max_length=500, description="Signing secret (X-Tradelane-Signature); write-only."
    )


class SettingsChanged(BaseModel):
    removed: bool = Field(description="True: the scope has no destination left and was removed.")
    settings: DestinationsOut | None


class TestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ChannelName | None = Field(default=None, description="Also the channel's own destinations.")


class DeliveryOut(BaseModel):
    kind: str = Field(description="email or webhook.")
    destination: str
    status: str = Field(description="pending, retrying, sent or failed.")
    attempts: int
    last_error: str | None
    sent_at: str | None


class NotificationOut(BaseModel):
    id: int
    channel: str | None
    event: str
    subject: str
    body: str
    details: dict[str, Any]
    status: str = Field(description="queued, retrying, sent or failed.")
    job_id: int | None
    created_at: str
    deliveries: list[DeliveryOut]


class NotificationList(BaseModel):
    items: list[NotificationOut] = Field(description="Newest first.")


def _destinations_out(d: destinations.Destinations) -> DestinationsOut:
    return DestinationsOut.model_validate(d.as_json())


def _notification_out(n: notifications.Notification) -> NotificationOut:
    return NotificationOut.model_validate(n.as_json())


def _transport(container: Any) -> notifications.Transport:
    transport = container.extras.get(notifications.TRANSPORT)
    if not isinstance(transport, notifications.Transport):
        raise RuntimeError("no notification transport wired (bootstrap.build)")
    return transport


@router.get("/settings", summary="Where the tenant's notifications go")
def get_settings(tenant: TenantDep, container: ContainerDep) -> SettingsOut:
    with read_only(container.engine) as conn:
        scopes = destinations.show(conn, tenant.id)
    return SettingsOut(
        smtp=_transport(container).smtp.describe(), destinations=[_destinations_out(d) for d in scopes]
    )


@router.patch(
    "/settings",
    summary="Change the tenant-wide or one channel's notification settings",
    responses=problem_responses(404),
)
def patch_settings(body: SettingsIn, tenant: TenantDep, container: ContainerDep) -> SettingsChanged:
    with transaction(container.engine) as conn:
        channel_id = get_channel(conn, tenant.id, body.channel).id if body.channel is not None else None
        result = destinations.configure(
            conn,
            container.keyring,
            tenant_id=tenant.id,
            channel_id=channel_id,
            emails=body.emails,
            webhook_url=body.webhook_url,
            webhook_secret=body.webhook_secret.get_secret_value()
            if body.webhook_secret is not None
            else None,
            actor=f"api:{tenant.name}",
            now=container.now(),
        )
    return SettingsChanged(
        removed=result is None, settings=_destinations_out(result) if result is not None else None
    )


@router.post(
    "/test",
    summary="Send a test notification now and say what happened to each destination",
    responses=problem_responses(404),
)
def send_test(body: TestIn, tenant: TenantDep, container: ContainerDep) -> NotificationOut:
    with read_only(container.engine) as conn:
        channel_id = get_channel(conn, tenant.id, body.channel).id if body.channel is not None else None
    note = notifications.send_test(
        container.engine,
        _transport(container),
        tenant_id=tenant.id,
        channel_id=channel_id,
        now=container.now(),
    )
    return _notification_out(note)


@router.get(
    "", summary="Recent notifications with each destination's status", responses=problem_responses(404)
)
def list_notifications(
    tenant: TenantDep,
    container: ContainerDep,
    channel: Annotated[
        str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE, description="Only this channel's.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="How many, newest first.")] = 50,
) -> NotificationList:
    with read_only(container.engine) as conn:
        channel_id = get_channel(conn, tenant.id, channel).id if channel is not None else None
        notes = notifications.recent(conn, tenant.id, limit=limit, channel_id=channel_id)
    return NotificationList(items=[_notification_out(n) for n in notes])
