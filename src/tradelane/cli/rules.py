"""`tradelane rules ...`: order attribute rules (per channel) and publishing rules (per merchant system).

Rules are data: ``add-*`` validate and store one rule, ``list`` shows them, ``delete`` removes one and
``preview`` shows what the rules do to a stored order (``--order REF``) or a sample order (``--sample
FILE``, JSON; ``-`` for stdin) without changing anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
from rich.table import Table

from tradelane.cli.common import console, container, fail, print_json
from tradelane.domain.rules import Operator, RuleKind
from tradelane.persistence.tables import order_rules
from tradelane.services import rules as rule_service
from tradelane.services.channels import get_channel
from tradelane.services.rules import RulesPreview, StoredRule
from tradelane.services.tenants import get_tenant

rules_app = typer.Typer(help="Order rules: attributes per channel, publishing per merchant system.")

TenantOpt = typer.Option(..., "--tenant", "-t", help="Tenant name.")
JsonOpt = typer.Option(False, "--json", help="Print JSON on stdout.")
PositionOpt = typer.Option(None, "--position", min=0, help="Evaluation order (default: after the others).")

_DECISIONS = {"true": True, "false": False, "next": None}


def rule_as_dict(rule: StoredRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "kind": rule.kind.value,
        "channel": rule.channel,
        "merchant_system": rule.merchant_system,
        "position": rule.position,
        "enabled": rule.enabled,
        "definition": rule.definition,
        "summary": rule.summary,
        "created_at": rule.created_at,
    }


def preview_as_dict(preview: RulesPreview) -> dict[str, Any]:
    return {
        "origin_channel": preview.origin_channel,
        "merchant_system": preview.merchant_system,
        "attributes": preview.attributes,
        "steps": [
            {
                "rule_id": s.rule_id,
                "attribute": s.attribute,
                "applied": s.applied,
                "value": s.value,
                "note": s.note,
            }
            for s in preview.steps
        ],
        "decisions": [
            {"channel": d.channel, "publish": d.publish, "reason": d.reason} for d in preview.decisions
        ],
    }


def _decision(value: str, option: str) -> bool | None:
    try:
        return _DECISIONS[value.strip().lower()]
    except KeyError:
        fail(f"{option} must be true, false or next (ask the next rule), not {value!r}")


def _added(rule: StoredRule, as_json: bool) -> None:
    if as_json:
        print_json(rule_as_dict(rule))
    else:
        typer.echo(f"rule #{rule.id} added: {rule.summary}")


@rules_app.command("add-attribute")
def add_attribute(
    tenant: str = TenantOpt,
    channel: str = typer.Option(..., "--channel", "-c", help="Channel whose orders get the attribute."),
    attribute: str = typer.Option(..., "--attribute", "-a", help="Attribute name, e.g. tags."),
    value: str | None = typer.Option(None, "--value", help="Constant value."),
    source: str | None = typer.Option(
        None, "--from", help="Order field to copy, e.g. shipping_address.country or customer_message."
    ),
    mode: str | None = typer.Option(
        None, "--mode", help="set or append (comma list, no duplicates); default append for tags, else set."
    ),
    position: int | None = PositionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Give every order of a channel an attribute: a constant (--value) or an order field (--from)."""
    if (value is None) == (source is None):
        fail("give exactly one of --value (a constant) or --from (an order field)")
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        rule = rule_service.add_attribute_rule(
            conn,
            tenant_id=tenant_id,
            channel_id=get_channel(conn, tenant_id, channel).id,
            attribute=attribute,
            value=value,
            source=source,
            mode=mode,
            position=position,
            now=app.now(),
        )
    _added(rule, as_json)


@rules_app.command("add-publish")
def add_publish(
    tenant: str = TenantOpt,
    merchant: str | None = typer.Option(
        None, "--merchant", "-m", help="Merchant system whose updates the rule filters (default: any)."
    ),
    channel: str | None = typer.Option(
        None, "--channel", "-c", help="Only for updates going to this channel (default: every channel)."
    ),
    field: str = typer.Option(..., "--field", "-f", help="Order field, e.g. attributes.tags."),
    contains: str | None = typer.Option(None, "--contains", help="Condition: contains this text."),
    not_contains: str | None = typer.Option(None, "--not-contains", help="Condition: lacks this text."),
    has_item: str | None = typer.Option(None, "--has-item", help="Condition: comma list has this item."),
    equals: str | None = typer.Option(None, "--equals", help="Condition: equals this text."),
    not_equals: str | None = typer.Option(None, "--not-equals", help="Condition: differs from this text."),
    exists: bool = typer.Option(False, "--exists", help="Condition: the field is set."),
    not_exists: bool = typer.Option(False, "--not-exists", help="Condition: the field is not set."),
    then: str = typer.Option("true", "--then", help="Publish when the condition holds: true, false, next."),
    otherwise: str = typer.Option("false", "--otherwise", help="Publish otherwise: true, false, next."),
    position: int | None = PositionOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Decide whether updates from a merchant system are pushed to a channel, from an order condition."""
    chosen: list[tuple[Operator, str | None]] = [
        (op, text)
        for op, text in (
            (Operator.CONTAINS_TEXT, contains),
            (Operator.NOT_CONTAINS_TEXT, not_contains),
            (Operator.HAS_ITEM, has_item),
            (Operator.EQUALS, equals),
            (Operator.NOT_EQUALS, not_equals),
        )
        if text is not None
    ]
    chosen += [
        (op, None) for op, flag in ((Operator.EXISTS, exists), (Operator.NOT_EXISTS, not_exists)) if flag
    ]
    if len(chosen) != 1:
        fail(
            "give exactly one condition: --contains, --not-contains, --has-item, --equals, --not-equals, "
            "--exists or --not-exists"
        )
    [(op, text)] = chosen
    then_decision, otherwise_decision = _decision(then, "--then"), _decision(otherwise, "--otherwise")
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        rule = rule_service.add_publish_rule(
            conn,
            tenant_id=tenant_id,
            merchant_system_id=(
                rule_service.merchant_system_id_by_name(conn, tenant_id, merchant) if merchant else None
            ),
            channel_id=get_channel(conn, tenant_id, channel).id if channel else None,
            field=field,
            op=op.value,
            value=text,
            then=then_decision,
            otherwise=otherwise_decision,
            position=position,
            now=app.now(),
        )
    _added(rule, as_json)


@rules_app.command("list")
def list_rules(
    tenant: str = TenantOpt,
    kind: RuleKind | None = typer.Option(None, "--kind", help="Only attribute or publish rules."),
    as_json: bool = JsonOpt,
) -> None:
    """The tenant's rules in evaluation order (attribute rules first)."""
    with container() as app, app.engine.connect() as conn:
        rules = rule_service.list_rules(conn, get_tenant(conn, tenant).id, kind=kind)
    if as_json:
        print_json([rule_as_dict(r) for r in rules])
        return
    table = Table("id", "kind", "channel", "merchant", "position", "enabled", "rule")
    for r in rules:
        publish = r.kind is RuleKind.PUBLISH
        table.add_row(
            str(r.id),
            r.kind.value,
            r.channel or ("(all)" if publish else ""),
            r.merchant_system or ("(any)" if publish else ""),
            str(r.position),
            "yes" if r.enabled else "no",
            r.summary,
        )
    console.print(table)


@rules_app.command("delete")
def delete_rule(
    rule_id: int = typer.Argument(..., help="Rule id (see rules list)."),
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Tenant name (checked when given)."),
) -> None:
    """Delete one rule."""
    with container() as app, app.engine.begin() as conn:
        if tenant is not None:
            tenant_id = get_tenant(conn, tenant).id
        else:
            owner = conn.execute(
                sa.select(order_rules.c.tenant_id).where(order_rules.c.id == rule_id)
            ).scalar()
            if owner is None:
                fail(f"no rule {rule_id}")
            tenant_id = int(owner)
        rule = rule_service.delete_rule(conn, tenant_id, rule_id)
    typer.echo(f"rule #{rule.id} deleted: {rule.summary}")


def _read_sample(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        sample = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"cannot read the sample order {path!r}: {exc}")
    if not isinstance(sample, dict):
        fail("the sample order must be a JSON object")
    return sample


def _print_preview(preview: RulesPreview) -> None:
    source = preview.merchant_system or "any merchant system"
    typer.echo(f"origin channel: {preview.origin_channel or '(unknown)'}; updates from {source}")
    typer.echo("attribute rules:")
    for step in preview.steps:
        if step.applied:
            typer.echo(f"  rule #{step.rule_id}: {step.note} -> {step.attribute} = {step.value}")
        else:
            typer.echo(f"  rule #{step.rule_id}: {step.note}")
    if not preview.steps:
        typer.echo("  (none)")
    typer.echo("attributes after rules:")
    for name, value in sorted(preview.attributes.items()):
        typer.echo(f"  {name} = {value}")
    if not preview.attributes:
        typer.echo("  (none)")
    typer.echo("publish decisions:")
    for decision in preview.decisions:
        verdict = "publish" if decision.publish else "do not publish"
        typer.echo(f"  {decision.channel}: {verdict} ({decision.reason})")


@rules_app.command("preview")
def preview(
    tenant: str = TenantOpt,
    order: str | None = typer.Option(None, "--order", "-o", help="Order REF: id or CHANNEL:MARKETPLACE_ID."),
    sample: str | None = typer.Option(None, "--sample", help="Sample order JSON file ('-' = stdin)."),
    merchant: str | None = typer.Option(None, "--merchant", "-m", help="Updates from this merchant system."),
    as_json: bool = JsonOpt,
) -> None:
    """Show the attributes an order gets and, per channel, whether an update would be published."""
    if (order is None) == (sample is None):
        fail("give exactly one of --order REF or --sample FILE")
    sample_order = _read_sample(sample) if sample is not None else None
    with container() as app, app.engine.connect() as conn:
        tenant_id = get_tenant(conn, tenant).id
        merchant_id = rule_service.merchant_system_id_by_name(conn, tenant_id, merchant) if merchant else None
        if sample_order is not None:
            result = rule_service.preview_sample(
                conn, tenant_id=tenant_id, order=sample_order, merchant_system_id=merchant_id
            )
        else:
            assert order is not None
            result = rule_service.preview_order(
                conn,
                tenant_id=tenant_id,
                order_id=rule_service.resolve_order(conn, tenant_id, order),
                merchant_system_id=merchant_id,
            )
    if as_json:
        print_json(preview_as_dict(result))
    else:
        _print_preview(result)
