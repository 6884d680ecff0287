"""Order rules of the tenant: list, create, read, delete, and preview against an order.

* ``attribute`` rules (per channel) give orders an attribute: a constant ``value`` or a value copied
  ``from`` an order field (``shipping_address.country``, ``customer_message``, ``attributes.x``...).
* ``publish`` rules (per merchant system, or any when ``merchant_system`` is null; per target channel,
  or every channel when ``channel`` is null) decide from a condition whether an update from the merchant
  system is pushed to a channel. Whatever the rules say, an update only ever goes to the order's
  origin channel.

``POST /api/v1/rules/preview`` runs the rules against a stored order (``order_ref``) or a sample order
(``order``) and changes nothing. Other tenants' rules, channels, merchant systems and orders answer 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from tradelane.domain.rules import AttributeMode, Operator, RuleKind
from tradelane.persistence.db import read_only, transaction
from tradelane.services import rules as rule_service
from tradelane.services.channels import get_channel
from tradelane.services.rules import RulesPreview, StoredRule
from tradelane.web.api.common import API_PREFIX, MAX_DB_ID, PRINTABLE
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/rules", tags=["rules"])

RuleId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="Rule id.")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=PRINTABLE)]
Text = Annotated[str, Field(min_length=1, max_length=500, pattern=PRINTABLE)]
FieldPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=PRINTABLE,
        description="Dotted order field path: a top-level field (customer_message, marketplace_order_id, "
        "channel...), attributes.<name>, shipping_address.<field>, billing_address.<field>, "
        "lines.<n>.<field> or lines.*.<field>.",
        examples=["attributes.tags", "shipping_address.country"],
    ),
]
Position = Annotated[
    int | None,
    Field(ge=0, le=rule_service.MAX_POSITION, description="Evaluation order; default: after the others."),
]


class AttributeDefinition(BaseModel):
    """Exactly one of ``value`` and ``from``. ``mode`` defaults to ``append`` for ``tags``, else ``set``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    attribute: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")]
    value: Text | None = Field(default=None, description="Constant value.")
    from_: FieldPath | None = Field(default=None, alias="from", description="Order field to copy.")
    mode: AttributeMode | None = None

    def as_definition(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionIn(BaseModel):
    """``value`` is required by every operator except ``exists`` and ``not_exists``."""

    model_config = ConfigDict(extra="forbid")

    field: FieldPath
    op: Operator
    value: Text | None = None


class PublishDefinition(BaseModel):
    """When the condition holds, publish = ``then``, else ``otherwise``; null = ask the next rule."""

    model_config = ConfigDict(extra="forbid")

    condition: ConditionIn
    then: StrictBool | None = True
    otherwise: StrictBool | None = False

    def as_definition(self) -> dict[str, Any]:
        return {
            "condition": self.condition.model_dump(exclude_none=True, mode="json"),
            "then": self.then,
            "otherwise": self.otherwise,
        }


class AttributeRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["attribute"]
    channel: Name = Field(description="The channel whose orders get the attribute.")
    position: Position = None
    enabled: StrictBool = True
    definition: AttributeDefinition


class PublishRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["publish"]
    merchant_system: Name | None = Field(default=None, description="Null: updates from any merchant system.")
    channel: Name | None = Field(default=None, description="Null: updates to every channel.")
    position: Position = None
    enabled: StrictBool = True
    definition: PublishDefinition


RuleIn = Annotated[AttributeRuleIn | PublishRuleIn, Field(discriminator="kind")]


class RuleOut(BaseModel):
    id: int
    kind: RuleKind
    channel: str | None
    merchant_system: str | None
    position: int
    enabled: bool
    definition: dict[str, Any] = Field(description="The normalised definition, as stored.")
    summary: str = Field(description="The rule in words.")
    created_at: datetime


class RuleList(BaseModel):
    items: list[RuleOut] = Field(description="Attribute rules first, each kind in evaluation order.")


class PreviewIn(BaseModel):
    """Exactly one of ``order`` (a sample order shaped like the order read model; its ``channel`` is
    the name of its origin channel) and ``order_ref`` (an order id or ``CHANNEL:MARKETPLACE_ORDER_ID``)."""

    model_config = ConfigDict(extra="forbid")

    order: dict[str, Any] | None = Field(
        default=None,
        examples=[{"channel": "shop-fr", "attributes": {}, "shipping_address": {"country": "FR"}}],
    )
    order_ref: Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)] | None = None
    merchant_system: Name | None = Field(default=None, description="Null: updates from any merchant system.")

    @model_validator(mode="after")
    def _one_source(self) -> PreviewIn:
        if (self.order is None) == (self.order_ref is None):
            raise ValueError("give exactly one of 'order' (a sample order) and 'order_ref'")
        return self


class StepOut(BaseModel):
    rule_id: int | None
    attribute: str
    applied: bool
    value: str | None
    note: str


class DecisionOut(BaseModel):
    channel: str
    publish: bool
    reason: str


class PreviewOut(BaseModel):
    origin_channel: str | None
    merchant_system: str | None
    attributes: dict[str, str] = Field(description="The order's attributes after the attribute rules.")
    steps: list[StepOut] = Field(description="What each attribute rule did, in order.")
    decisions: list[DecisionOut] = Field(description="Per channel: would an update be published, and why.")


def _out(rule: StoredRule) -> RuleOut:
    return RuleOut(
        id=rule.id,
        kind=rule.kind,
        channel=rule.channel,
        merchant_system=rule.merchant_system,
        position=rule.position,
        enabled=rule.enabled,
        definition=rule.definition,
        summary=rule.summary,
        created_at=rule.created_at,
    )


def _preview_out(preview: RulesPreview) -> PreviewOut:
    return PreviewOut(
        origin_channel=preview.origin_channel,
        merchant_system=preview.merchant_system,
        attributes=preview.attributes,
        steps=[
            StepOut(rule_id=s.rule_id, attribute=s.attribute, applied=s.applied, value=s.value, note=s.note)
            for s in preview.steps
        ],
        decisions=[
            DecisionOut(channel=d.channel, publish=d.publish, reason=d.reason) for d in preview.decisions
        ],
    )


@router.get("", summary="List the tenant's rules in evaluation order", responses=problem_responses(404))
def list_rules(
    tenant: TenantDep,
    container: ContainerDep,
    kind: Annotated[RuleKind | None, Query(description="Only rules of this kind.")] = None,
    channel: Annotated[
        str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE, description="Only this channel's.")
    ] = None,
) -> RuleList:
    with read_only(container.engine) as conn:
        channel_id = get_channel(conn, tenant.id, channel).id if channel is not None else None
        rules = rule_service.list_rules(conn, tenant.id, kind=kind, channel_id=channel_id)
    return RuleList(items=[_out(r) for r in rules])


@router.post(
    "",
    status_code=201,
    summary="Create a rule (validated; 422 says what is wrong)",
    responses=problem_responses(404),
)
def create_rule(rule: RuleIn, tenant: TenantDep, container: ContainerDep) -> RuleOut:
    with transaction(container.engine) as conn:
        channel_id = get_channel(conn, tenant.id, rule.channel).id if rule.channel is not None else None
        if isinstance(rule, AttributeRuleIn):
            stored = rule_service.add_rule(
                conn,
                tenant_id=tenant.id,
                kind=RuleKind.ATTRIBUTE,
                definition=rule.definition.as_definition(),
                channel_id=channel_id,
                position=rule.position,
                enabled=rule.enabled,
                now=container.now(),
            )
        else:
            merchant_id = (
                rule_service.merchant_system_id_by_name(conn, tenant.id, rule.merchant_system)
                if rule.merchant_system is not None
                else None
            )
            stored = rule_service.add_rule(
                conn,
                tenant_id=tenant.id,
                kind=RuleKind.PUBLISH,
                definition=rule.definition.as_definition(),
                channel_id=channel_id,
                merchant_system_id=merchant_id,
                position=rule.position,
                enabled=rule.enabled,
                now=container.now(),
            )
    return _out(stored)


@router.post(
    "/preview",
    summary="Run the rules against a stored or sample order (no side effects)",
    responses=problem_responses(404, 409),
)
def preview_rules(body: PreviewIn, tenant: TenantDep, container: ContainerDep) -> PreviewOut:
    with read_only(container.engine) as conn:
        merchant_id = (
            rule_service.merchant_system_id_by_name(conn, tenant.id, body.merchant_system)
            if body.merchant_system is not None
            else None
        )
        if body.order is not None:
            preview = rule_service.preview_sample(
                conn, tenant_id=tenant.id, order=body.order, merchant_system_id=merchant_id
            )
        else:
            assert body.order_ref is not None
            preview = rule_service.preview_order(
                conn,
                tenant_id=tenant.id,
                order_id=rule_service.resolve_order(conn, tenant.id, body.order_ref),
                merchant_system_id=merchant_id,
            )
    return _preview_out(preview)


@router.get("/{rule_id}", summary="One rule", responses=problem_responses(404))
def get_rule(rule_id: RuleId, tenant: TenantDep, container: ContainerDep) -> RuleOut:
    with read_only(container.engine) as conn:
        return _out(rule_service.get_rule(conn, tenant.id, rule_id))


@router.delete(
    "/{rule_id}",
    status_code=204,
    response_class=Response,
    summary="Delete one rule",
    responses=problem_responses(404),
)
def delete_rule(rule_id: RuleId, tenant: TenantDep, container: ContainerDep) -> Response:
    with transaction(container.engine) as conn:
        rule_service.delete_rule(conn, tenant.id, rule_id)
    return Response(status_code=204)
