"""The reconciler (dry runs, their reports, enabling by confirming one) and the unique-ID match of a
channel. Reading the marketplace is a job (the channel's budget applies): ``POST`` queues it and answers
202 with the job id; the job's result names the stored report / run, and the ``latest`` routes show it.
An ID match conflict holds its SKU's offer back until resolved; ``POST .../id-match/accept`` accepts ours
for some or all of them. Enabling and accepting are audited with actor ``api:<tenant name>``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import id_match, id_match_conflicts, reconciler
from tradelane.services.channels import get_channel
from tradelane.web.api.common import API_PREFIX, ChannelName
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/channels", tags=["reconciler"])


def _actor(tenant: Any) -> str:
    return f"api:{tenant.name}"


class Queued(BaseModel):
    job_id: int = Field(description="The job reading the marketplace; its result names the report / run.")


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_unmanaged: bool = Field(
        default=False,
        description="Also remove listings whose SKU tradelane does not know (default: keep them).",
    )


class EnableRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report_id: int = Field(description="The dry-run report the operator reviewed (at most 24 h old).")
    reason: str | None = Field(default=None, max_length=2000, description="Why (required on a live channel).")


class ReportOut(BaseModel):
    id: int
    kind: str = Field(description="dry_run or run")
    created_at: str
    actor: str
    can_delete: bool
    include_unmanaged: bool
    counts: dict[str, int]
    not_listed: list[str] = Field(
        description="Selected, not on the marketplace (the Listings flow lists them)."
    )
    not_selected: list[str] = Field(
        description="Listed, in the catalog, not selected: removed by the reconciler."
    )
    unmanaged: list[str] = Field(
        description="Listed under an SKU the catalog does not know: kept unless included."
    )
    to_remove: list[str]
    removals: list[dict[str, Any]]
    warning: str | None = Field(description="The oversell warning, while unmanaged listings are kept.")
    hint: str | None = Field(
        description="Why nothing can be removed, where the connector cannot delete offers."
    )
    confirmed_at: str | None
    confirmed_by: str | None


class MatchRowOut(BaseModel):
    category: str = Field(description="matched | conflict | only_theirs | only_ours")
    sku: str | None
    their_sku: str | None
    matched_by: str | None
    gtin: str | None
    their_product_id: str | None
    our_group: str | None
    their_group: str | None


class ConflictOut(BaseModel):
    sku: str = Field(description="Our SKU, whose offer is held back while the conflict is unresolved.")
    their_sku: str | None
    our_group: str | None
    their_group: str | None
    accepted: bool = Field(description="The operator accepted ours: the offer is sent, go-live not blocked.")
    accepted_by: str | None
    accepted_at: str | None
    reason: str | None


class MatchRunOut(BaseModel):
    id: int
    created_at: str
    actor: str
    counts: dict[str, int]
    unresolved: int = Field(description="Conflicts not accepted: they block go-live and hold their offers.")
    conflicts: list[ConflictOut]
    rows: list[MatchRowOut]


class AcceptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skus: list[str] | None = Field(
        default=None, min_length=1, description="Accept ours for these SKUs' conflicts (or give all)."
    )
    all: bool = Field(default=False, description="Accept ours for every unresolved conflict.")
    reason: str = Field(min_length=1, max_length=2000, description="Why ours may overwrite their listing.")


class AcceptOut(BaseModel):
    accepted: list[ConflictOut]
    unresolved: int = Field(description="Conflicts still unresolved after this acceptance.")


def _report_out(report: reconciler.Report) -> ReportOut:
    data = report.as_json()
    data.pop("channel_id")
    return ReportOut(**data)


@router.post(
    "/{name}/reconcile",
    status_code=202,
    summary="Queue a reconciler dry run (nothing is changed)",
    responses=problem_responses(404),
)
def queue_dry_run(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    body: Annotated[DryRunRequest | None, Body()] = None,
) -> Queued:
    with transaction(container.engine) as conn:
        channel = get_channel(conn, tenant.id, name)
        job_id = reconciler.queue_dry_run(
            conn,
            channel,
            actor=_actor(tenant),
            now=container.now(),
            include_unmanaged=body.include_unmanaged if body is not None else False,
        )
    return Queued(job_id=job_id)


@router.get(
    "/{name}/reconcile/reports/latest",
    summary="The channel's newest reconciler report",
    responses=problem_responses(404),
)
def latest_report(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    kind: Annotated[str | None, Query(pattern="^(dry_run|run)$")] = None,
) -> ReportOut:
    with read_only(container.engine) as conn:
        channel = get_channel(conn, tenant.id, name)
        report = reconciler.latest_report(conn, channel.id, kind=kind)
    if report is None:
        raise NotFoundError(f"{channel.name} has no reconciler report yet: queue a dry run")
    return _report_out(report)


@router.get(
    "/{name}/reconcile/reports/{report_id}", summary="One reconciler report", responses=problem_responses(404)
)
def get_report(name: ChannelName, report_id: int, tenant: TenantDep, container: ContainerDep) -> ReportOut:
    with read_only(container.engine) as conn:
        channel = get_channel(conn, tenant.id, name)
        report = reconciler.get_report(conn, channel, report_id)
    return _report_out(report)


@router.post(
    "/{name}/reconcile/enable",
    summary="Switch the Reconciler flow on, confirming a dry-run report",
    responses=problem_responses(404),
)
def enable(name: ChannelName, body: EnableRequest, tenant: TenantDep, container: ContainerDep) -> ReportOut:
    with transaction(container.engine) as conn:
        channel = get_channel(conn, tenant.id, name)
        report = reconciler.enable_reconciler(
            conn, channel, body.report_id, actor=_actor(tenant), now=container.now(), reason=body.reason
        )
    return _report_out(report)


@router.post(
    "/{name}/id-match",
    status_code=202,
    summary="Queue a unique-ID match (read-only)",
    responses=problem_responses(404),
)
def queue_id_match(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> Queued:
    with transaction(container.engine) as conn:
        channel = get_channel(conn, tenant.id, name)
        job_id = id_match.queue_run(conn, channel, actor=_actor(tenant), now=container.now())
    return Queued(job_id=job_id)


def _latest_run(
    container: ContainerDep, tenant_id: int, name: str
) -> tuple[id_match.MatchRun, list[id_match.MatchRow]]:
    with read_only(container.engine) as conn:
        channel = get_channel(conn, tenant_id, name)
        run = id_match.latest_run(conn, channel.id)
        if run is None:
            raise NotFoundError(f"{channel.name} has no unique-ID match yet: queue one")
        return run, id_match.run_rows(conn, run.id)


@router.get(
    "/{name}/id-match",
    summary="The channel's latest unique-ID match, every row",
    responses=problem_responses(404),
)
def latest_id_match(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> MatchRunOut:
    run, rows = _latest_run(container, tenant.id, name)
    with read_only(container.engine) as conn:
        found = id_match_conflicts.conflicts(conn, run.channel_id)
    data = run.as_json()
    return MatchRunOut(
        id=run.id,
        created_at=data["created_at"],
        actor=run.actor,
        counts=run.counts(),
        unresolved=sum(1 for c in found if not c.accepted),
        conflicts=[ConflictOut(**c.as_json()) for c in found],
        rows=[MatchRowOut(**r.as_json()) for r in rows],
    )


@router.post(
    "/{name}/id-match/accept",
    summary="Accept ours for ID match conflicts (their offers are sent and may overwrite the listing)",
    responses=problem_responses(404),
)
def accept_conflicts(
    name: ChannelName, body: AcceptRequest, tenant: TenantDep, container: ContainerDep
) -> AcceptOut:
    if body.all == (body.skus is not None):
        raise ValidationError("give either skus or all: true")
    with transaction(container.engine) as conn:
        channel = get_channel(conn, tenant.id, name)
        accepted = id_match_conflicts.accept(
            conn,
            channel,
            skus=None if body.all else body.skus,
            actor=_actor(tenant),
            now=container.now(),
            reason=body.reason,
        )
        left = id_match.unresolved_conflicts(conn, channel.id)
    return AcceptOut(accepted=[ConflictOut(**c.as_json()) for c in accepted], unresolved=left)


@router.get(
    "/{name}/id-match.csv",
    summary="The latest unique-ID match as CSV",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(404)},
    response_class=Response,
)
def id_match_csv(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> Response:
    run, rows = _latest_run(container, tenant.id, name)
    return Response(
        id_match.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}-id-match-{run.id}.csv"'},
    )
