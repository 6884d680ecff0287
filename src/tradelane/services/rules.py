"""Order rules: storage in ``order_rules`` and their application to orders.

Every query is scoped by ``tenant_id``: a rule of one tenant never applies to, nor is visible from,
another tenant. Definitions are validated by :mod:`tradelane.domain.rules` and stored normalised (JSON in
``order_rules.definition``); the scope lives in the columns:

* ``attribute`` rules: ``channel_id`` set (the order's origin channel), ``merchant_system_id`` NULL;
* ``publish`` rules: ``merchant_system_id`` set, or NULL for "updates from any merchant system";
  ``channel_id`` set to limit the rule to updates going to that channel, NULL for every channel.

Rules of one kind are ordered by ``position`` then id; a new rule goes last (position max + 10) unless a
position is given. Disabled rules, and stored definitions that no longer validate, are ignored when
rules are applied (a warning is logged) — applying rules never fails because of a rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from tradelane.domain import rules as domain
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.domain.rule_fields import CONTROL_CHARS
from tradelane.domain.rules import (
    AttributeOutcome,
    AttributeRule,
    AttributeStep,
    PublishRule,
    RuleKind,
    decide_publish,
    parse_rule,
)
from tradelane.persistence.tables import channels, merchant_systems, order_rules, orders
from tradelane.services.orders import get_order, resolve_order_ref

log = structlog.get_logger(__name__)

POSITION_STEP = 10
MAX_POSITION = 1_000_000
MAX_DB_ID = 2**63 - 1
MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class StoredRule:
    """One stored rule with the names of its channel and merchant system (None when not scoped)."""

    id: int
    kind: RuleKind
    channel_id: int | None
    channel: str | None
    merchant_system_id: int | None
    merchant_system: str | None
    position: int
    enabled: bool
    definition: dict[str, Any]
    created_at: datetime

    def parsed(self) -> AttributeRule | PublishRule:
        """The domain rule (raises ValidationError if the stored definition no longer validates)."""
        return parse_rule(self.kind, self.definition, rule_id=self.id)

    @property
    def summary(self) -> str:
        try:
            return self.parsed().describe()
        except ValidationError as exc:
            return f"invalid definition: {exc}"


@dataclass(frozen=True, slots=True)
class ChannelDecision:
    channel_id: int
    channel: str
    publish: bool
    reason: str


@dataclass(frozen=True, slots=True)
class RulesPreview:
    """The attributes an order gets from its origin channel's rules, and whether an update from
    ``merchant_system`` (None = any) would be published to each of the tenant's channels."""

    origin_channel_id: int | None
    origin_channel: str | None
    merchant_system_id: int | None
    merchant_system: str | None
    attributes: dict[str, str]
    steps: tuple[AttributeStep, ...]
    decisions: tuple[ChannelDecision, ...]


# --- lookups ------------------------------------------------------------------------------------


def _rules_select() -> sa.Select[Any]:
    return (
        sa.select(
            order_rules,
            channels.c.name.label("channel_name"),
            merchant_systems.c.name.label("merchant_name"),
        )
        .outerjoin(channels, channels.c.id == order_rules.c.channel_id)
        .outerjoin(merchant_systems, merchant_systems.c.id == order_rules.c.merchant_system_id)
    )


def _stored(row: Any) -> StoredRule:
    return StoredRule(
        id=row.id,
        kind=RuleKind(row.kind),
        channel_id=row.channel_id,
        channel=row.channel_name,
        merchant_system_id=row.merchant_system_id,
        merchant_system=row.merchant_name,
        position=row.position,
        enabled=row.enabled,
        definition=dict(row.definition),
        created_at=row.created_at,
    )


def _channel_name(conn: Connection, tenant_id: int, channel_id: int) -> str | None:
    name: str | None = conn.execute(
        sa.select(channels.c.name).where(channels.c.tenant_id == tenant_id, channels.c.id == channel_id)
    ).scalar()
    return name


def _merchant_name(conn: Connection, tenant_id: int, merchant_system_id: int) -> str | None:
    name: str | None = conn.execute(
        sa.select(merchant_systems.c.name).where(
            merchant_systems.c.tenant_id == tenant_id, merchant_systems.c.id == merchant_system_id
        )
    ).scalar()
    return name


def resolve_order(conn: Connection, tenant_id: int, ref: str) -> int:
    """:func:`resolve_order_ref` (tradelane's id, ``CHANNEL:ID`` or the bare marketplace order id), which
    answers NotFoundError — never a database error — for refs that cannot be an id (non-ASCII digits,
    beyond BIGINT, control characters)."""
    return resolve_order_ref(conn, tenant_id, ref)


def _usable_name(value: Any) -> str | None:
    """A name that can be looked up (the database refuses control characters such as NUL)."""
    if isinstance(value, str) and 0 < len(value) <= MAX_NAME and not CONTROL_CHARS.search(value):
        return value
    return None


def merchant_system_id_by_name(conn: Connection, tenant_id: int, name: str) -> int:
    """The id of the tenant's merchant system called ``name`` (NotFoundError otherwise)."""
    found = conn.execute(
        sa.select(merchant_systems.c.id).where(
            merchant_systems.c.tenant_id == tenant_id, merchant_systems.c.name == name
        )
    ).scalar()
    if found is None:
        raise NotFoundError(f"no merchant system named {name!r}")
    return int(found)


# --- storage ------------------------------------------------------------------------------------


def add_rule(
    conn: Connection,
    *,
    tenant_id: int,
    kind: RuleKind | str,
    definition: Mapping[str, Any],
    now: datetime,
    channel_id: int | None = None,
    merchant_system_id: int | None = None,
    position: int | None = None,
    enabled: bool = True,
) -> StoredRule:
    """Validate and store one rule (see the module docstring for scopes and positions).

    Raises ValidationError for a bad definition or scope, NotFoundError when the channel or merchant
    system is not the tenant's."""
    rule = parse_rule(kind, definition)
    kind = RuleKind(kind)
    if kind is RuleKind.ATTRIBUTE:
        if channel_id is None:
            raise ValidationError("an attribute rule belongs to a channel: name the channel")
        if merchant_system_id is not None:
            raise ValidationError("attribute rules are per channel, not per merchant system")
    if channel_id is not None and _channel_name(conn, tenant_id, channel_id) is None:
        raise NotFoundError(f"no channel {channel_id}")
    if merchant_system_id is not None and _merchant_name(conn, tenant_id, merchant_system_id) is None:
        raise NotFoundError(f"no merchant system {merchant_system_id}")
    if position is None:
        highest = conn.execute(
            sa.select(sa.func.max(order_rules.c.position)).where(
                order_rules.c.tenant_id == tenant_id, order_rules.c.kind == kind.value
            )
        ).scalar()
        position = min((highest or 0) + POSITION_STEP, MAX_POSITION)
    if not 0 <= position <= MAX_POSITION:
        raise ValidationError(f"position must be between 0 and {MAX_POSITION}")
    rule_id = conn.execute(
        sa.insert(order_rules)
        .values(
            tenant_id=tenant_id,
            kind=kind.value,
            channel_id=channel_id,
            merchant_system_id=merchant_system_id,
            position=position,
            definition=rule.to_definition(),
            enabled=enabled,
            created_at=now,
        )
        .returning(order_rules.c.id)
    ).scalar_one()
    return get_rule(conn, tenant_id, rule_id)


def add_attribute_rule(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int,
    attribute: str,
    now: datetime,
    value: str | None = None,
    source: str | None = None,
    mode: str | None = None,
    position: int | None = None,
) -> StoredRule:
    """Add an attribute rule: ``attribute`` gets the constant ``value`` or the order field ``source``."""
    definition: dict[str, Any] = {"attribute": attribute, "value": value, "from": source, "mode": mode}
    return add_rule(
        conn,
        tenant_id=tenant_id,
        kind=RuleKind.ATTRIBUTE,
        definition={k: v for k, v in definition.items() if v is not None},
        channel_id=channel_id,
        position=position,
        now=now,
    )


def add_publish_rule(
    conn: Connection,
    *,
    tenant_id: int,
    merchant_system_id: int | None,
    field: str,
    op: str,
    now: datetime,
    value: str | None = None,
    then: bool | None = True,
    otherwise: bool | None = False,
    channel_id: int | None = None,
    position: int | None = None,
) -> StoredRule:
    """Add a publishing rule: when ``field op value`` holds, publish = ``then``, else ``otherwise``."""
    condition: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        condition["value"] = value
    return add_rule(
        conn,
        tenant_id=tenant_id,
        kind=RuleKind.PUBLISH,
        definition={"condition": condition, "then": then, "otherwise": otherwise},
        merchant_system_id=merchant_system_id,
        channel_id=channel_id,
        position=position,
        now=now,
    )


def get_rule(conn: Connection, tenant_id: int, rule_id: int) -> StoredRule:
    row = conn.execute(
        _rules_select().where(order_rules.c.tenant_id == tenant_id, order_rules.c.id == rule_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no rule {rule_id}")
    return _stored(row)


def list_rules(
    conn: Connection,
    tenant_id: int,
    *,
    kind: RuleKind | None = None,
    channel_id: int | None = None,
    merchant_system_id: int | None = None,
) -> list[StoredRule]:
    """The tenant's rules, attribute rules first, each kind by position then id."""
    stmt = _rules_select().where(order_rules.c.tenant_id == tenant_id)
    if kind is not None:
        stmt = stmt.where(order_rules.c.kind == kind.value)
    if channel_id is not None:
        stmt = stmt.where(order_rules.c.channel_id == channel_id)
    if merchant_system_id is not None:
        stmt = stmt.where(order_rules.c.merchant_system_id == merchant_system_id)
    stmt = stmt.order_by(order_rules.c.kind, order_rules.c.position, order_rules.c.id)
    return [_stored(row) for row in conn.execute(stmt)]


def delete_rule(conn: Connection, tenant_id: int, rule_id: int) -> StoredRule:
    """Delete one rule of the tenant and return it (NotFoundError if it is not the tenant's)."""
    rule = get_rule(conn, tenant_id, rule_id)
    conn.execute(
        sa.delete(order_rules).where(order_rules.c.tenant_id == tenant_id, order_rules.c.id == rule_id)
    )
    return rule


# --- application --------------------------------------------------------------------------------


def _valid(rules: list[StoredRule]) -> list[AttributeRule | PublishRule]:
    result: list[AttributeRule | PublishRule] = []
    for rule in rules:
        try:
            result.append(rule.parsed())
        except ValidationError as exc:
            log.warning("order_rule.invalid_definition_ignored", rule_id=rule.id, error=str(exc))
    return result


def _attribute_rules(conn: Connection, tenant_id: int, channel_id: int) -> list[AttributeRule]:
    stored = [
        r for r in list_rules(conn, tenant_id, kind=RuleKind.ATTRIBUTE, channel_id=channel_id) if r.enabled
    ]
    return [r for r in _valid(stored) if isinstance(r, AttributeRule)]


def _publish_rules(
    conn: Connection, tenant_id: int, merchant_system_id: int | None, channel_id: int
) -> list[PublishRule]:
    stored = [
        r
        for r in list_rules(conn, tenant_id, kind=RuleKind.PUBLISH)
        if r.enabled
        and r.channel_id in (None, channel_id)
        and (merchant_system_id is None or r.merchant_system_id in (None, merchant_system_id))
    ]
    return [r for r in _valid(stored) if isinstance(r, PublishRule)]


def _attribute_outcome(
    conn: Connection, tenant_id: int, channel_id: int, order: Mapping[str, Any]
) -> AttributeOutcome:
    return domain.apply_attribute_rules(_attribute_rules(conn, tenant_id, channel_id), order)


def apply_attribute_rules(
    conn: Connection, *, tenant_id: int, channel_id: int, order: Mapping[str, Any]
) -> dict[str, str]:
    """The order's attributes after the enabled attribute rules of ``channel_id`` (the order's origin
    channel), in position order. Pure reads: nothing is stored. Idempotent (appending twice adds
    nothing), so it may be applied to attributes that already went through the rules."""
    return _attribute_outcome(conn, tenant_id, channel_id, order).attributes


@dataclass(frozen=True, slots=True)
class _Origin:
    channel_id: int | None
    third_party_managed: bool


def _origin(conn: Connection, tenant_id: int, order: Mapping[str, Any], *, by_id: bool) -> _Origin:
    """Where the order came from. With ``by_id`` and an integer ``order["id"]``: that stored order of
    the tenant (unknown if it is not the tenant's). Otherwise the tenant's channel named
    ``order["channel"]``; else unknown."""
    tpm = order.get("third_party_managed") is True
    order_id = order.get("id")
    if by_id and isinstance(order_id, int) and not isinstance(order_id, bool):
        if not 0 < order_id <= MAX_DB_ID:
            return _Origin(None, tpm)
        row = conn.execute(
            sa.select(orders.c.channel_id, orders.c.third_party_managed).where(
                orders.c.tenant_id == tenant_id, orders.c.id == order_id
            )
        ).first()
        if row is None:  # not one of the tenant's orders: never trust its other fields
            return _Origin(None, tpm)
        return _Origin(row.channel_id, bool(row.third_party_managed))
    name = _usable_name(order.get("channel"))
    if name is not None:
        found = conn.execute(
            sa.select(channels.c.id).where(channels.c.tenant_id == tenant_id, channels.c.name == name)
        ).scalar()
        if found is not None:
            return _Origin(int(found), tpm)
    return _Origin(None, tpm)


def _decide(
    conn: Connection,
    *,
    tenant_id: int,
    merchant_system_id: int | None,
    channel_id: int,
    order: Mapping[str, Any],
    origin: _Origin,
    attributes: dict[str, str] | None,
) -> tuple[bool, str]:
    target = _channel_name(conn, tenant_id, channel_id) or f"#{channel_id}"
    if origin.channel_id is None:
        return False, f"channel {target} never had this order (its origin channel is unknown)"
    if origin.channel_id != channel_id:
        source = _channel_name(conn, tenant_id, origin.channel_id) or f"#{origin.channel_id}"
        return False, f"channel {target} never had this order (it came from {source})"
    if origin.third_party_managed:
        return False, f"the order is third-party managed: no update is ever sent to channel {target}"
    if attributes is None:
        attributes = apply_attribute_rules(
            conn, tenant_id=tenant_id, channel_id=origin.channel_id, order=order
        )
    effective = {**order, "attributes": attributes}
    decision = decide_publish(_publish_rules(conn, tenant_id, merchant_system_id, channel_id), effective)
    return decision.publish, decision.reason


def should_publish(
    conn: Connection,
    *,
    tenant_id: int,
    merchant_system_id: int | None,
    channel_id: int,
    order: Mapping[str, Any],
) -> tuple[bool, str]:
    """Whether an update of ``order`` from ``merchant_system_id`` may be pushed to ``channel_id``, and why.

    1. Never to a channel the order did not come from: ``(False, "channel X never had this order ...")``
       (origin = the tenant's stored order ``order["id"]``; without an id, the tenant's channel named
       ``order["channel"]``; an unknown origin refuses too). Never for a third-party-managed order.
    2. Otherwise the enabled publishing rules of that merchant system (and those for any merchant
       system), limited to ``channel_id`` or to every channel, are evaluated in position order against
       the order with its origin channel's attribute rules applied; the first that decides wins and the
       reason names it (``"rule #7 (attributes.tags contains_text 'X') matched: publish"``).
       ``merchant_system_id=None`` (source not identified) considers every publishing rule of the tenant.
    3. No rule decides: ``(True, "no publishing rule decided: publish by default")``.
    """
    origin = _origin(conn, tenant_id, order, by_id=True)
    return _decide(
        conn,
        tenant_id=tenant_id,
        merchant_system_id=merchant_system_id,
        channel_id=channel_id,
        order=order,
        origin=origin,
        attributes=None,
    )


# --- preview ------------------------------------------------------------------------------------


def _preview(
    conn: Connection,
    tenant_id: int,
    order: Mapping[str, Any],
    origin: _Origin,
    merchant_system_id: int | None,
) -> RulesPreview:
    merchant = None
    if merchant_system_id is not None:
        merchant = _merchant_name(conn, tenant_id, merchant_system_id)
        if merchant is None:
            raise NotFoundError(f"no merchant system {merchant_system_id}")
    if origin.channel_id is not None:
        outcome = _attribute_outcome(conn, tenant_id, origin.channel_id, order)
    else:
        outcome = domain.apply_attribute_rules([], order)
    decisions = []
    tenant_channels = conn.execute(
        sa.select(channels.c.id, channels.c.name)
        .where(channels.c.tenant_id == tenant_id)
        .order_by(channels.c.name)
    ).all()
    for channel in tenant_channels:
        publish, reason = _decide(
            conn,
            tenant_id=tenant_id,
            merchant_system_id=merchant_system_id,
            channel_id=channel.id,
            order=order,
            origin=origin,
            attributes=outcome.attributes,
        )
        decisions.append(ChannelDecision(channel.id, channel.name, publish, reason))
    origin_name = _channel_name(conn, tenant_id, origin.channel_id) if origin.channel_id else None
    return RulesPreview(
        origin_channel_id=origin.channel_id,
        origin_channel=origin_name,
        merchant_system_id=merchant_system_id,
        merchant_system=merchant,
        attributes=outcome.attributes,
        steps=outcome.steps,
        decisions=tuple(decisions),
    )


def preview_order(
    conn: Connection, *, tenant_id: int, order_id: int, merchant_system_id: int | None = None
) -> RulesPreview:
    """Rules applied to one stored order of the tenant, without side effects."""
    order = get_order(conn, tenant_id, order_id)
    return _preview(conn, tenant_id, order, _origin(conn, tenant_id, order, by_id=True), merchant_system_id)


def preview_sample(
    conn: Connection,
    *,
    tenant_id: int,
    order: Mapping[str, Any],
    merchant_system_id: int | None = None,
) -> RulesPreview:
    """Rules applied to a sample order (the shape of the order read model), without side effects.

    The sample's ``channel`` (a channel name of the tenant) is its origin; its ``id``, if any, is not
    looked up."""
    name = order.get("channel")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("a sample order needs 'channel': the name of the channel it came from")
    origin = _origin(conn, tenant_id, order, by_id=False)
    if origin.channel_id is None:
        raise ValidationError(f"the sample order's channel {name!r} is not one of the tenant's channels")
    return _preview(conn, tenant_id, order, origin, merchant_system_id)
