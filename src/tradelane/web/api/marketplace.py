"""Channel set-up and operations, offers and SKU mappings — the API side of what the CLI and the
dashboard offer (`channel add mirakl|check|sync|state`, `offers list|republish`, `sku-map add`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from tradelane.connectors.mirakl.connector import add_channel, check_channel
from tradelane.domain.channels import Flow, LifecycleState
from tradelane.domain.errors import ValidationError
from tradelane.merchant.skus import put_sku_mapping
from tradelane.persistence.db import read_only, transaction
from tradelane.services import channels as channel_service
from tradelane.services import offers as offer_service
from tradelane.services.order_health import retry_quarantined_for_skus
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.scheduler import FLOW_JOB_KINDS
from tradelane.web.api.common import API_PREFIX, PRINTABLE, ChannelName, Limit, Offset
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=API_PREFIX, tags=["marketplace"])

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]


class MiraklChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connector: Literal["mirakl"]
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
    hostname: Annotated[str, Field(min_length=1, max_length=300, pattern=PRINTABLE)]
    shop_id: Annotated[str | None, Field(default=None, pattern=r"^[0-9]{1,19}$")] = None
    api_key: Annotated[str, Field(min_length=1, max_length=500, pattern=PRINTABLE)]
    options: dict[str, Any] = Field(default_factory=dict, description="Further Mirakl settings.")
    staging_api_key: Annotated[str | None, Field(default=None, max_length=500, pattern=PRINTABLE)] = None


class ChannelCreated(BaseModel):
    id: int
    name: str
    connector: str
    lifecycle_state: str


class CheckOut(BaseModel):
    ok: bool
    problem: str | None
    message: str


class SyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow: Flow
    full: bool = False


class JobQueued(BaseModel):
    job_id: int
    kind: str
    created: bool


class StateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: LifecycleState


class OfferOut(BaseModel):
    id: int
    channel: str
    sku: str
    title: str | None
    price: Decimal | None
    currency: str | None
    quantity: int
    status: str
    dirty: bool
    dirty_since: datetime | None
    last_error: str | None
    last_request: str | None
    last_response: str | None
    last_synced_at: datetime | None
    import_ref: str | None


class OfferList(BaseModel):
    items: list[OfferOut]


class RepublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
    skus: list[Text] | None = Field(default=None, min_length=1, max_length=10_000)
    failed: bool = Field(default=False, description="Every offer in error or blocked (when no skus).")


class Republished(BaseModel):
    queued: int


class SkuMappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marketplace_sku: Text
    merchant_sku: Text
    channel: Annotated[str | None, Field(default=None, min_length=1, max_length=100, pattern=PRINTABLE)] = (
        None
    )
    merchant_only: bool = Field(
        default=False,
        description="`merchant_sku` must be a catalog SKU of the tenant (else 422); true confirms that it "
        "exists only in the merchant system and is stored with the mapping.",
    )


class SkuMappingOut(BaseModel):
    marketplace_sku: str
    merchant_sku: str
    channel: str | None
    merchant_only: bool
    released_orders: int


@router.post(
    "/channels", status_code=201, summary="Add a marketplace channel", responses=problem_responses(409)
)
def create_channel(body: MiraklChannelIn, tenant: TenantDep, container: ContainerDep) -> ChannelCreated:
    with transaction(container.engine) as conn:
        channel = add_channel(
            conn,
            tenant_id=tenant.id,
            name=body.name,
            hostname=body.hostname,
            shop_id=body.shop_id,
            api_key=body.api_key,
            keyring=container.keyring,
            now=container.now(),
            options=body.options,
            staging_api_key=body.staging_api_key,
        )
    return ChannelCreated(
        id=channel.id, name=channel.name, connector=channel.connector, lifecycle_state=channel.lifecycle_state
    )


@router.post(
    "/channels/{name}/check",
    summary="Call the marketplace with the channel's credentials; say precisely what is wrong",
    responses=problem_responses(404),
)
def check(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    staging: Annotated[bool, Query(description="Check the staging/test account.")] = False,
) -> CheckOut:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        if channel.connector != "mirakl":
            raise ValidationError(f"connector {channel.connector!r} has no check")
        result = check_channel(conn, channel, container.keyring, staging=staging)
    return CheckOut(
        ok=result.ok, problem=result.problem.value if result.problem else None, message=result.message
    )


@router.post(
    "/channels/{name}/sync", status_code=202, summary="Run a flow now", responses=problem_responses(404)
)
def sync(name: ChannelName, body: SyncIn, tenant: TenantDep, container: ContainerDep) -> JobQueued:
    kind = "offers.full" if body.full and body.flow is Flow.OFFERS else FLOW_JOB_KINDS[body.flow.value]
    if kind not in container.registry.kinds():
        raise ValidationError(f"flow {body.flow.value} has nothing to run on demand")
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        result = enqueue(
            conn,
            JobSpec(
                tenant.id,
                kind,
                {"manual": True},
                channel_id=channel.id,
                flow=body.flow.value,
                dedupe_key=f"{kind}:{channel.id}",
            ),
            now=container.now(),
        )
    return JobQueued(job_id=result.job_id, kind=kind, created=result.created)


@router.put("/channels/{name}/state", summary="Set the lifecycle state", responses=problem_responses(404))
def set_state(name: ChannelName, body: StateIn, tenant: TenantDep, container: ContainerDep) -> ChannelCreated:
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        channel_service.set_lifecycle(conn, channel, body.state)
    return ChannelCreated(
        id=channel.id, name=channel.name, connector=channel.connector, lifecycle_state=body.state
    )


@router.get(
    "/offers",
    summary="Offers per channel with their marketplace status and last errors",
    responses=problem_responses(404),
)
def list_offers(
    tenant: TenantDep,
    container: ContainerDep,
    limit: Limit = 50,
    offset: Offset = 0,
    channel: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)] = None,
    status: Annotated[offer_service.OfferStatus | None, Query()] = None,
    sku: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
) -> OfferList:
    with read_only(container.engine) as conn:
        rows = offer_service.list_offers(
            conn,
            tenant.id,
            channel=channel,
            status=status.value if status else None,
            sku=sku,
            limit=limit,
            offset=offset,
        )
    return OfferList(items=[OfferOut.model_validate(r) for r in rows])


@router.post(
    "/offers/republish", status_code=202, summary="Send offers again", responses=problem_responses(404)
)
def republish(body: RepublishIn, tenant: TenantDep, container: ContainerDep) -> Republished:
    if body.skus is None and not body.failed:
        raise ValidationError("give skus or failed=true")
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, body.channel)
        count = offer_service.republish(
            conn, tenant.id, channel.id, skus=body.skus, failed_only=True, now=container.now()
        )
    return Republished(queued=count)


@router.post(
    "/sku-mappings",
    status_code=201,
    summary="Map a marketplace SKU to a merchant SKU (and retry the orders it unblocks)",
    responses=problem_responses(404),
)
def map_sku(body: SkuMappingIn, tenant: TenantDep, container: ContainerDep) -> SkuMappingOut:
    now = container.now()
    with transaction(container.engine) as conn:
        channel_id = None
        if body.channel is not None:
            channel_id = channel_service.get_channel(conn, tenant.id, body.channel).id
        put_sku_mapping(
            conn,
            tenant_id=tenant.id,
            channel_id=channel_id,
            marketplace_sku=body.marketplace_sku,
            merchant_sku=body.merchant_sku,
            merchant_only=body.merchant_only,
            now=now,
        )
        released = retry_quarantined_for_skus(conn, tenant_id=tenant.id, skus=[body.marketplace_sku], now=now)
    return SkuMappingOut(
        marketplace_sku=body.marketplace_sku,
        merchant_sku=body.merchant_sku,
        channel=body.channel,
        merchant_only=body.merchant_only,
        released_orders=released,
    )
