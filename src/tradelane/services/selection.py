"""A channel's product selection: read it, preview a change, apply it, keep it true as the catalog changes.

The rule itself (labels and attribute conditions, and what "selected" means) is
:mod:`tradelane.domain.selection`. A channel without a stored rule offers **every product** of its
tenant, as every channel did before selections existed.

What a selection does to the channel's offers (``offer_bindings``), as :func:`preview` counts it and
:func:`set_selection` / :func:`reselect_products` apply it:

* **listed** — selected and not offered yet (no binding, or a binding no longer selected): bound (or
  re-selected) *dirty*, so the next ``offers.delta`` sends the offer;
* **updated** — selected and already offered: nothing changes, the offer keeps receiving price and
  stock updates;
* **delisted** — offered and no longer selected. What happens depends on the channel's **reconciler**
  flow (``channel_flows`` row ``reconciler``, enabled or not) at that moment:

  - on: the binding becomes ``delisting`` and dirty; the next delta sends the offer as a deletion
    (``OfferUpdate.delete``) and the binding is removed once the marketplace accepted it (a rejected
    deletion stays visible as an offer in error);
  - off: the binding becomes ``left`` — the offer is **left on the marketplace as it is and never
    updated again** (offers list: "not selected — left on the marketplace"); selecting the product
    again resumes its updates;
  - a binding never sent at all (nothing on the marketplace) is simply removed, either way.

  Known limit: a never-sent offer that a delta is submitting at that very instant is unbound anyway and
  stays on the marketplace unmanaged (the reconciler's unique-ID match shows it).

Products already ``delisting`` or ``left`` that the new rule does not select are left as they are.
Every change made through :func:`set_selection` is audited (``selection.set``) in its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.channels import Flow
from tradelane.domain.selection import ALL, Selection, from_json
from tradelane.persistence.tables import channel_flows, channel_selections, channels, offer_bindings, products
from tradelane.services import audit
from tradelane.services.channels import Channel
from tradelane.services.offers import DELISTING, LEFT, SELECTED
from tradelane.services.outbox import schedule_deltas

#: SKUs shown per group of a preview.
SAMPLE_SIZE = 10
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Group:
    """How many products fall in one group of a preview, and the first SKUs (alphabetical)."""

    count: int
    sample: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "sample": list(self.sample)}


@dataclass(frozen=True, slots=True)
class SelectionPreview:
    """What applying ``selection`` to the channel does (see the module): ``listed``, ``updated``,
    ``delisted``; ``delist_action`` is ``"delete"`` (reconciler on) or ``"leave"`` (off), and applies to
    the delisted offers that were sent: ``never_sent`` are those of ``delisted`` never sent to the
    marketplace (nothing there: they are only unbound, either way). ``left_on_marketplace``: products
    that will be not selected but still on the marketplace, unmanaged (reconciler off), after the
    change."""

    selection: Selection
    reconciler: bool
    listed: Group
    updated: Group
    delisted: Group
    never_sent: Group
    left_on_marketplace: Group

    @property
    def delist_action(self) -> str:
        return "delete" if self.reconciler else "leave"

    def counts(self) -> dict[str, int]:
        return {
            "listed": self.listed.count,
            "updated": self.updated.count,
            "delisted": self.delisted.count,
            "left_on_marketplace": self.left_on_marketplace.count,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "selection": selection_json(self.selection),
            "reconciler": self.reconciler,
            "delist_action": self.delist_action,
            "listed": self.listed.as_json(),
            "updated": self.updated.as_json(),
            "delisted": self.delisted.as_json(),
            "never_sent": self.never_sent.as_json(),
            "left_on_marketplace": self.left_on_marketplace.as_json(),
        }


def selection_json(selection: Selection) -> dict[str, Any]:
    """The selection as interfaces show it: ``all``, ``labels``, ``where`` and a readable ``description``."""
    return {"all": selection.is_all, **selection.as_json(), "description": selection.describe()}


@dataclass(slots=True)
class _Plan:
    """The binding changes of a selection over some products (ids; SKUs for the preview's samples)."""

    bind: list[int] = field(default_factory=list)  # product ids without a binding, now selected
    reselect: list[int] = field(default_factory=list)  # binding ids delisting/left, now selected
    keep: list[int] = field(default_factory=list)  # binding ids selected, still selected
    unbind: list[int] = field(default_factory=list)  # binding ids selected, never sent, not selected
    deselect: list[int] = field(default_factory=list)  # binding ids selected and sent, not selected
    still_left: list[int] = field(default_factory=list)  # binding ids left, still not selected
    skus: dict[str, list[str]] = field(default_factory=dict)

    def add(self, group: str, key: int, sku: str) -> None:
        getattr(self, group).append(key)
        self.skus.setdefault(group, []).append(sku)

    def group(self, *names: str) -> Group:
        skus = sorted(sku for name in names for sku in self.skus.get(name, ()))
        return Group(len(skus), tuple(skus[:SAMPLE_SIZE]))


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def get_selection(conn: Connection, channel_id: int) -> Selection:
    """The channel's selection (:data:`~tradelane.domain.selection.ALL` when none is stored)."""
    rule = conn.execute(
        sa.select(channel_selections.c.rule).where(channel_selections.c.channel_id == channel_id)
    ).scalar()
    return from_json(rule)


def reconciler_enabled(conn: Connection, channel_id: int) -> bool:
    """True when the channel's reconciler flow is switched on (no flow row: off)."""
    enabled = conn.execute(
        sa.select(channel_flows.c.enabled).where(
            channel_flows.c.channel_id == channel_id, channel_flows.c.flow == Flow.RECONCILER.value
        )
    ).scalar()
    return bool(enabled)


def selected_count(conn: Connection, channel_id: int) -> int:
    """How many products the channel offers and keeps updated (its selected bindings): one indexed count."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(offer_bindings)
            .where(offer_bindings.c.channel_id == channel_id, offer_bindings.c.selection_state == SELECTED)
        ).scalar_one()
    )


def _plan(selection: Selection, facts: Iterable[Any], bindings: dict[int, Any]) -> _Plan:
    """The changes for products ``facts`` (id, sku, labels, attributes) given their current
    ``bindings`` (product id → row with id, selection_state, synced_seq)."""
    plan = _Plan()
    for product_id, sku, labels, attributes in facts:
        binding = bindings.get(product_id)
        chosen = selection.matches(labels, attributes)
        if binding is None:
            if chosen:
                plan.add("bind", product_id, sku)
        elif chosen:
            plan.add("keep" if binding.selection_state == SELECTED else "reselect", binding.id, sku)
        elif binding.selection_state == SELECTED:
            plan.add("unbind" if binding.synced_seq == 0 else "deselect", binding.id, sku)
        elif binding.selection_state == LEFT:
            plan.add("still_left", binding.id, sku)
    return plan


def _product_facts(conn: Connection, tenant_id: int, product_ids: Sequence[int] | None) -> list[Any]:
    columns = (products.c.id, products.c.sku, products.c.labels, products.c.attributes)
    if product_ids is None:
        return list(conn.execute(sa.select(*columns).where(products.c.tenant_id == tenant_id)).tuples())
    facts: list[Any] = []
    for chunk in _chunks(list(product_ids)):
        stmt = sa.select(*columns).where(products.c.tenant_id == tenant_id, products.c.id.in_(chunk))
        facts.extend(conn.execute(stmt).tuples())
    return facts


def _bindings(conn: Connection, channel_id: int, product_ids: Sequence[int] | None) -> dict[int, Any]:
    columns = (
        offer_bindings.c.product_id,
        offer_bindings.c.id,
        offer_bindings.c.selection_state,
        offer_bindings.c.synced_seq,
    )
    base = sa.select(*columns).where(offer_bindings.c.channel_id == channel_id)
    if product_ids is None:
        return {r.product_id: r for r in conn.execute(base)}
    found: dict[int, Any] = {}
    for chunk in _chunks(list(product_ids)):
        found.update(
            (r.product_id, r) for r in conn.execute(base.where(offer_bindings.c.product_id.in_(chunk)))
        )
    return found


def _preview_of(selection: Selection, reconciler: bool, plan: _Plan) -> SelectionPreview:
    return SelectionPreview(
        selection=selection,
        reconciler=reconciler,
        listed=plan.group("bind", "reselect"),
        updated=plan.group("keep"),
        delisted=plan.group("unbind", "deselect"),
        never_sent=plan.group("unbind"),
        left_on_marketplace=plan.group("still_left") if reconciler else plan.group("still_left", "deselect"),
    )


def preview(conn: Connection, channel: Channel, selection: Selection | None = None) -> SelectionPreview:
    """What applying ``selection`` (default: the channel's current one) would list, update and delist,
    with counts and samples, before anything is sent (reads only)."""
    chosen = get_selection(conn, channel.id) if selection is None else selection
    plan = _plan(chosen, _product_facts(conn, channel.tenant_id, None), _bindings(conn, channel.id, None))
    return _preview_of(chosen, reconciler_enabled(conn, channel.id), plan)


def _apply(
    conn: Connection, channel_id: int, tenant_id: int, plan: _Plan, *, reconciler: bool, now: datetime
) -> None:
    """Write ``plan``'s binding changes (see the module) and schedule the channel's delta if needed."""
    if plan.bind:
        conn.execute(
            sa.insert(offer_bindings),
            [
                {
                    "tenant_id": tenant_id,
                    "channel_id": channel_id,
                    "product_id": pid,
                    "dirty": True,
                    "dirty_since": now,
                }
                for pid in plan.bind
            ],
        )
    dirty_again = {
        "dirty": True,
        "change_seq": offer_bindings.c.change_seq + 1,
        "dirty_since": sa.func.coalesce(offer_bindings.c.dirty_since, now),
    }
    changes: list[tuple[list[int], dict[str, Any]]] = [
        (plan.reselect, {**dirty_again, "selection_state": SELECTED}),
        (
            plan.deselect,
            {**dirty_again, "selection_state": DELISTING}
            if reconciler
            else {"selection_state": LEFT, "dirty": False, "dirty_since": None},
        ),
    ]
    for ids, values in changes:
        for chunk in _chunks(ids):
            conn.execute(sa.update(offer_bindings).where(offer_bindings.c.id.in_(chunk)).values(**values))
    for chunk in _chunks(plan.unbind):
        conn.execute(sa.delete(offer_bindings).where(offer_bindings.c.id.in_(chunk)))
    if plan.bind or plan.reselect or (plan.deselect and reconciler):
        schedule_deltas(conn, tenant_id, {channel_id}, now=now)


def set_selection(
    conn: Connection,
    channel: Channel,
    selection: Selection,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> SelectionPreview:
    """Store ``selection`` as the channel's (``ALL``: remove the rule), apply it to the offers (see the
    module) and record ``selection.set`` with the rule and the counts, all in ``conn``'s transaction.
    Returns what was applied (the same figures :func:`preview` gave for it)."""
    reconciler = reconciler_enabled(conn, channel.id)
    plan = _plan(selection, _product_facts(conn, channel.tenant_id, None), _bindings(conn, channel.id, None))
    conn.execute(sa.delete(channel_selections).where(channel_selections.c.channel_id == channel.id))
    if not selection.is_all:
        conn.execute(
            sa.insert(channel_selections).values(
                channel_id=channel.id, tenant_id=channel.tenant_id, rule=selection.as_json(), updated_at=now
            )
        )
    _apply(conn, channel.id, channel.tenant_id, plan, reconciler=reconciler, now=now)
    result = _preview_of(selection, reconciler, plan)
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action="selection.set",
        now=now,
        reason=reason,
        details={
            "selection": selection_json(selection),
            "delist_action": result.delist_action,
            **result.counts(),
        },
    )
    return result


def reselect_products(
    conn: Connection, tenant_id: int, product_ids: Sequence[int], *, now: datetime
) -> set[int]:
    """Bring the bindings of these (changed) products in line with every selection rule of the tenant's
    channels, set-wise: a product that gained a selected label or attribute is listed, one that lost it
    is delisted (see the module). Channels without a rule (every product) are not looked at: when the
    tenant has none this is one indexed query. Returns the ids of the channels whose bindings changed."""
    if not product_ids:
        return set()
    rules = conn.execute(
        sa.select(channel_selections.c.channel_id, channel_selections.c.rule)
        .join(channels, channels.c.id == channel_selections.c.channel_id)
        .where(channel_selections.c.tenant_id == tenant_id, channels.c.removed_at.is_(None))
    ).all()
    if not rules:
        return set()
    facts = _product_facts(conn, tenant_id, product_ids)
    changed: set[int] = set()
    for channel_id, rule in rules:
        plan = _plan(from_json(rule), facts, _bindings(conn, channel_id, product_ids))
        if plan.bind or plan.reselect or plan.unbind or plan.deselect:
            reconciler = reconciler_enabled(conn, channel_id)
            _apply(conn, channel_id, tenant_id, plan, reconciler=reconciler, now=now)
            changed.add(channel_id)
    return changed


__all__ = [
    "ALL",
    "Group",
    "SelectionPreview",
    "get_selection",
    "preview",
    "reconciler_enabled",
    "reselect_products",
    "selected_count",
    "selection_json",
    "set_selection",
]
