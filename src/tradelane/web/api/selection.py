"""A channel's product selection: read it, preview a change, change it (audited as ``api:<tenant>``).

A product is selected when it has ANY of the selection's labels and satisfies ALL of its attribute
conditions; an empty selection (or ``all: true``) offers every product of the tenant. See
services/selection.py for what listing, updating and delisting mean.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from tradelane.domain.errors import ValidationError
from tradelane.domain.selection import ALL, MAX_TERMS, MAX_TEXT, Selection, selection
from tradelane.persistence.db import read_only, transaction
from tradelane.services import channels as channel_service
from tradelane.services import selection as selection_service
from tradelane.web.api.common import API_PREFIX, PRINTABLE, ChannelName
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/channels", tags=["channels"])

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=PRINTABLE)]


class Condition(BaseModel):
    """The product's attribute ``attribute`` equals ``value`` (a list attribute: one of its items does)."""

    model_config = ConfigDict(extra="forbid")

    attribute: Text
    value: Text


class SelectionIn(BaseModel):
    """A selection: ANY of ``labels`` and ALL of ``where``; ``all: true`` (or both empty) offers every
    product. ``reason`` is kept in the channel's history (PUT only)."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    labels: list[Text] = Field(default_factory=list, max_length=MAX_TERMS)
    where: list[Condition] = Field(default_factory=list, max_length=MAX_TERMS)
    reason: str | None = Field(default=None, max_length=2000)

    def to_selection(self) -> Selection:
        if self.all and (self.labels or self.where):
            raise ValidationError("all: true selects every product: give no labels or conditions with it")
        if self.all:
            return ALL
        return selection(self.labels, [(c.attribute, c.value) for c in self.where])


class SelectionOut(BaseModel):
    all: bool = Field(description="True: every product of the tenant (no rule).")
    labels: list[str]
    where: list[Condition]
    description: str = Field(description="The rule in words, e.g. `label summer and color=red`.")


class GroupOut(BaseModel):
    count: int
    sample: list[str] = Field(description="The first SKUs (alphabetical), at most 10.")


class PreviewOut(BaseModel):
    """What the selection lists (newly selected), updates (still selected) and delists (offered, no
    longer selected: deleted from the marketplace when the reconciler is on, else left there and no
    longer updated); ``never_sent``: those of ``delisted`` never sent to the marketplace (nothing there:
    only unbound); ``left_on_marketplace``: not selected but still on the marketplace afterwards."""

    selection: SelectionOut
    reconciler: bool
    delist_action: str = Field(description="`delete` (reconciler on) or `leave` (reconciler off).")
    listed: GroupOut
    updated: GroupOut
    delisted: GroupOut
    never_sent: GroupOut = Field(
        description="Of `delisted`, the offers never sent: nothing is on the marketplace, only unbound."
    )
    left_on_marketplace: GroupOut


class SelectionStateOut(BaseModel):
    selection: SelectionOut
    selected_count: int = Field(description="Products the channel offers and keeps updated.")


def _selection_out(chosen: Selection) -> SelectionOut:
    return SelectionOut(
        all=chosen.is_all,
        labels=list(chosen.labels),
        where=[Condition(attribute=name, value=value) for name, value in chosen.where],
        description=chosen.describe(),
    )


def _group(group: selection_service.Group) -> GroupOut:
    return GroupOut(count=group.count, sample=list(group.sample))


def _preview_out(shown: selection_service.SelectionPreview) -> PreviewOut:
    return PreviewOut(
        selection=_selection_out(shown.selection),
        reconciler=shown.reconciler,
        delist_action=shown.delist_action,
        listed=_group(shown.listed),
        updated=_group(shown.updated),
        delisted=_group(shown.delisted),
        never_sent=_group(shown.never_sent),
        left_on_marketplace=_group(shown.left_on_marketplace),
    )


@router.get("/{name}/selection", summary="The channel's product selection", responses=problem_responses(404))
def get_selection(name: ChannelName, tenant: TenantDep, container: ContainerDep) -> SelectionStateOut:
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        chosen = selection_service.get_selection(conn, channel.id)
        count = selection_service.selected_count(conn, channel.id)
    return SelectionStateOut(selection=_selection_out(chosen), selected_count=count)


@router.post(
    "/{name}/selection/preview",
    summary="Preview a selection (the current one without a body): counts and samples, nothing changes",
    responses=problem_responses(404),
)
def preview_selection(
    name: ChannelName,
    tenant: TenantDep,
    container: ContainerDep,
    body: Annotated[SelectionIn | None, Body()] = None,
) -> PreviewOut:
    proposed = body.to_selection() if body is not None else None
    with read_only(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        shown = selection_service.preview(conn, channel, proposed)
    return _preview_out(shown)


@router.put(
    "/{name}/selection",
    summary="Change the channel's selection: applied at once (next offers sync lists/delists), audited",
    responses=problem_responses(404),
)
def put_selection(
    name: ChannelName, body: SelectionIn, tenant: TenantDep, container: ContainerDep
) -> PreviewOut:
    proposed = body.to_selection()
    with transaction(container.engine) as conn:
        channel = channel_service.get_channel(conn, tenant.id, name)
        applied = selection_service.set_selection(
            conn, channel, proposed, actor=f"api:{tenant.name}", now=container.now(), reason=body.reason
        )
    return _preview_out(applied)
