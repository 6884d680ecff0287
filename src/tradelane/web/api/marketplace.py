"""Channel set-up and operations, offers and SKU mappings — the API side of what the CLI and the
dashboard offer (`channel add mirakl|check|sync|state`, `offers list|republish`, `sku-map add`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

from tradelane.connectors.mirakl.connector import add_channel, update_channel
from tradelane.connectors.mirakl.settings import CONNECTOR as MIRAKL
from tradelane.connectors.registry import (
    CONNECTORS,
    check_channel,
    connector_names,
    get_connector,
    update_settings,
)
from tradelane.domain.channels import Flow, LifecycleState
from tradelane.domain.errors import ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.sku_mappings import put_sku_mapping
from tradelane.services import channels as channel_service
from tradelane.services import offers as offer_service
from tradelane.services.order_health import retry_quarantined_for_skus
from tradelane.web.api.common import API_PREFIX, PRINTABLE, ChannelName, Limit, Offset
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=API_PREFIX, tags=["marketplace"])

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]


def _registered_connector(name: str) -> str:
    if name not in CONNECTORS:
        raise ValueError(f"unknown connector {name!r} (known: {', '.join(connector_names())})")
    return name


#: A connector of the registry (connectors/registry.py).
ConnectorName = Annotated[
    str,
    AfterValidator(_registered_connector),
    Field(json_schema_extra=lambda schema: schema.update(enum=list(connector_names()))),
]


class MiraklChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connector: ConnectorName
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
    hostname: Annotated[str, Field(min_length=1, max_length=300, pattern=PRINTABLE)]
    shop_id: Annotated[str | None, Field(default=None, pattern=r"^[0-9]{1,19}$")] = None
    api_key: Annotated[str, Field(min_length=1, max_length=500, pattern=PRINTABLE)]
    options: dict[str, Any] = Field(default_factory=dict, description="Further Mirakl settings.")
    staging_api_key: Annotated[str | None, Field(default=None, max_length=500, pattern=PRINTABLE)] = None


def _not_mirakl(name: str) -> str:
    if name == MIRAKL:
        raise ValueError("a Mirakl channel is added with hostname, api_key, shop_id, options")
    return name


class ConnectorChannelIn(BaseModel):
    """A channel of any connector but Mirakl: its settings and credentials as the connector's spec
    defines them (validated by the connector before anything is stored; credentials stored encrypted).
    E.g. Amazon: settings ``seller_id``, ``marketplace_id``, ``region`` (and optional ``endpoint``,
    ``token_endpoint``, options such as ``rate_limits``), credentials ``client_id``, ``client_secret``,
    ``refresh_token``."""

    model_config = ConfigDict(extra="forbid")

    connector: Annotated[ConnectorName, AfterValidator(_not_mirakl)]
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
    settings: dict[str, Any] = Field(description="The connector's settings (validated by the connector).")
    credentials: dict[str, Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        description="The connector's credentials by name (its spec's credential keys)."
    )


def _channel_kind(body: Any) -> str:
    connector = body.get("connector") if isinstance(body, dict) else getattr(body, "connector", None)
    return "mirakl" if connector == MIRAKL else "other"


#: ``POST /channels``'s body: Mirakl's own fields, or any other connector's settings and credentials.
ChannelIn = Annotated[
    Annotated[MiraklChannelIn, Tag("mirakl")] | Annotated[ConnectorChannelIn, Tag("other")],
    Discriminator(_channel_kind),
]


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
    run_at: datetime | None = Field(default=None, description="When the job is due (now, or a hold).")
    held_until: datetime | None = Field(
        default=None, description="Set when a rate limit (e.g. the marketplace's Retry-After) holds the job."
    )
    paused: bool = Field(default=False, description="The flow is paused: the job waits for a resume.")
    message: str = ""


class ChannelUpdateIn(BaseModel):
    """What to change on a channel; omitted fields are kept. ``options`` applies to a channel of any
    connector (its settings, validated by the connector), ``credentials`` to any but Mirakl; the other
    fields are Mirakl's."""

    model_config = ConfigDict(extra="forbid")

    api_key: Annotated[str | None, Field(default=None, min_length=1, max_length=500, pattern=PRINTABLE)] = (
        None
    )
    hostname: Annotated[str | None, Field(default=None, min_length=1, max_length=300, pattern=PRINTABLE)] = (
        None
    )
    shop_id: Annotated[str | None, Field(default=None, pattern=r"^[0-9]{0,19}$")] = None
    staging_api_key: Annotated[str | None, Field(default=None, max_length=500, pattern=PRINTABLE)] = None
    options: dict[str, Any] | None = Field(
        default=None, description="Settings to change (any connector; validated by the channel's connector)."
    )
    credentials: dict[str, Annotated[str, Field(min_length=1, max_length=2000)]] | None = Field(
        default=None,
        description="Credentials to replace, by name (not Mirakl's, whose keys are `api_key` and "
        "`staging_api_key`): e.g. Amazon's `refresh_token`, `client_secret`, `client_id`.",
    )


class ChannelUpdated(BaseModel):
    name: str
    check: CheckOut
    resumed_flows: list[Flow]
    replayed_jobs: list[int]
    alert_resolved: bool


class ChannelRemoved(BaseModel):
    name: str
    archived_as: str
    orders_kept: int
    offer_bindings_deleted: int
    jobs_cancelled: int
    note: str = (
        "Orders and their history are kept, read-only, for audit. Listings on the marketplace are NOT "
        "deleted."
    )


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
    selection_state: str = Field(
        default="selected",
        description="`selected`; `delisting` (no longer selected, its deletion on its way: reconciler on); "
        "`left` (no longer selected, left on the marketplace and never updated: reconciler off).",
    )


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
def create_channel(
    body: Annotated[ChannelIn, Body()], tenant: TenantDep, container: ContainerDep
) -> ChannelCreated:
    """A Mirakl channel from its host, shop and keys; any other connector's from ``settings`` and
    ``credentials``, validated by that connector (unknown credential names refused; nothing is called
    remotely — ``/channels/{name}/check`` does)."""
    with transaction(container.engine) as conn:
        if isinstance(body, MiraklChannelIn):
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
        else:
            spec = get_connector(body.connector)
            unknown = sorted(set(body.credentials) - set(spec.credential_keys))
            if unknown:
                known = ", ".join(spec.credential_keys) or "none"
                raise ValidationError(f"credentials: {spec.title} takes {known}, not {', '.join(unknown)}")
            credentials = {k: v.strip() for k, v in body.credentials.items()}
            settings = spec.validate_settings(body.settings, credentials)
            channel = channel_service.create_channel(
                conn,
                tenant_id=tenant.id,
                name=body.name,
                connector=spec.name,
                settings=settings,
                credentials=credentials,
                keyring=container.keyring,
                now=container.now(),
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
        result = check_channel(conn, channel, container.keyring, staging=staging)
    return CheckOut(ok=result.ok, problem=result.problem, message=result.message)


@router.post(
    "/channels/{name}/sync", status_code=202, summary="Run a flow now", responses=problem_responses(404)
)
def sync(name: ChannelName, body: SyncIn, tenant: TenantDep, container: ContainerDep) -> JobQueued:
    """Enqueue the flow, or bring its pending job forward (out of a retry backoff too, never ahead of a
    rate-limit hold such as the marketplace's Retry-After: ``held_until`` then says until when)."""
    kind = channel_service.manual_job_kind(body.flow, full=body.full)
    if kind not in container.registry.kinds():
        raise ValidationError(f"flow {body.flow.value} has nothing to run on demand")
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        run = channel_service.run_flow_now(conn, channel, body.flow, full=body.full, now=container.now())
    return JobQueued(
        job_id=run.job_id,
        kind=run.kind,
        created=run.created,
        run_at=run.run_at,
        held_until=run.held_until,
        paused=run.paused,
        message=run.message(),
    )


@router.patch(
    "/channels/{name}",
    summary="Change a channel's settings (or a Mirakl channel's keys and host), then check them",
    responses=problem_responses(404, 422),
)
def update(
    name: ChannelName, body: ChannelUpdateIn, tenant: TenantDep, container: ContainerDep
) -> ChannelUpdated:
    """The change is stored, then checked like ``/check``. When the check passes, flows paused because
    the credentials were rejected resume, the jobs that died of it are re-queued and the alert is
    resolved; when it fails, ``check.ok`` is false and the flows stay as they are."""
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        if channel.connector == MIRAKL:
            if body.credentials is not None:
                raise ValidationError("credentials: a Mirakl channel's keys are api_key and staging_api_key")
            channel = update_channel(
                conn,
                channel,
                keyring=container.keyring,
                api_key=body.api_key,
                hostname=body.hostname,
                shop_id=body.shop_id,
                staging_api_key=body.staging_api_key,
                options=body.options,
            )
        else:
            mirakl_fields = sorted(body.model_fields_set - {"options", "credentials"})
            if mirakl_fields:
                used = ", ".join(mirakl_fields)
                raise ValidationError(
                    f"{used}: Mirakl's; channel {name} uses connector {channel.connector!r}"
                )
            channel = update_settings(
                conn, channel, body.options or {}, container.keyring, credentials=body.credentials
            )
    with read_only(container.engine) as conn:
        result = check_channel(conn, channel, container.keyring)
    fixed = channel_service.CredentialsFixed([], [], False)
    if result.ok:
        with transaction(container.engine) as conn:
            fixed = channel_service.credentials_accepted(
                conn, channel, actor=f"api:{tenant.name}", now=container.now()
            )
    return ChannelUpdated(
        name=channel.name,
        check=CheckOut(ok=result.ok, problem=result.problem, message=result.message),
        resumed_flows=fixed.resumed,
        replayed_jobs=fixed.replayed_jobs,
        alert_resolved=fixed.alert_resolved,
    )


@router.delete(
    "/channels/{name}",
    summary="Remove a channel: orders kept for audit, offer bindings deleted, marketplace listings untouched",
    responses=problem_responses(404, 422),
)
def remove(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    reason: Annotated[
        str | None,
        Query(
            max_length=2000, description="Why (recorded in the channel's history; required when it is live)"
        ),
    ] = None,
) -> ChannelRemoved:
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        done = channel_service.remove_channel(
            conn, channel, actor=f"api:{tenant.name}", now=container.now(), reason=reason
        )
    return ChannelRemoved(
        name=done.channel,
        archived_as=done.archived_as,
        orders_kept=done.orders_kept,
        offer_bindings_deleted=done.offer_bindings_deleted,
        jobs_cancelled=done.jobs_cancelled,
    )


@router.put("/channels/{name}/state", summary="Set the lifecycle state", responses=problem_responses(404))
def set_state(name: ChannelName, body: StateIn, tenant: TenantDep, container: ContainerDep) -> ChannelCreated:
    """Routed through the lifecycle service, audited: testing checks the credentials first (as
    ``POST .../activate``), live is ``POST .../promote``."""
    from tradelane.services import channel_lifecycle

    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        checked = (
            check_channel(conn, channel, container.keyring) if body.state is LifecycleState.TESTING else None
        )
    with transaction(container.engine) as conn:
        channel_lifecycle.set_state(
            conn, channel, body.state, actor=f"api:{tenant.name}", now=container.now(), checked=checked
        )
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
