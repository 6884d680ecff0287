"""Unique-ID match conflicts hold offers back until they are resolved (issue 11).

A *conflict* is a row of the channel's latest ID match run (:mod:`tradelane.services.id_match`) where a
listing on the marketplace has our SKU (or GTIN) but another grouping (its variant group / variation
parent differs from our ``parent_sku``). Sending our offer would overwrite that listing — an Amazon
full-feed UPDATE replaces the same-SKU listing and drops the other integrator's variation parent — so,
while the conflict is *unresolved*:

* the SKU's offer is not sent, neither by a delta nor by a full sync: it is blocked with the reason
  :func:`hold_reason` (the offer publisher asks :func:`held_offers`), visible like any blocked offer;
* go-live is blocked (``id_match.unresolved_conflicts``, read by the lifecycle).

A conflict is resolved

* by a new ID match run in which the SKU is no longer in conflict (the catalog or the listing was
  fixed): the run calls :func:`release`, and the offers it had held are dirty again (the next delta
  sends them);
* by the operator accepting ours (:func:`accept`, one SKU or every unresolved conflict, with a reason,
  audited ``idmatch.accept``): the offer is then sent, and may overwrite theirs. An acceptance is of
  the conflict as it was (our group vs theirs): it keeps applying to later runs showing the same
  conflict, not to a changed one.

Pure of connectors: only the store (tables ``id_match_runs`` / ``id_match_rows`` /
``id_match_acceptances``, ``offer_bindings``) and the audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.tables import (
    id_match_acceptances,
    id_match_rows,
    id_match_runs,
    offer_bindings,
    products,
)
from tradelane.services import audit
from tradelane.services.channels import Channel
from tradelane.services.offers import LEFT, OfferStatus
from tradelane.services.outbox import schedule_deltas

#: The category of a conflicting row (``id_match.CONFLICT`` is this value).
CONFLICT = "conflict"
#: The audited action of an acceptance.
ACCEPT = "idmatch.accept"
#: How every hold reason starts (an offer blocked with it is released once its conflict is resolved).
HOLD_PREFIX = "grouping conflict with the listing on "


@dataclass(frozen=True, slots=True)
class Conflict:
    """One conflict of the latest run, with its acceptance when the operator accepted ours."""

    run_id: int
    sku: str
    their_sku: str | None
    our_group: str | None
    their_group: str | None
    accepted_by: str | None = None
    accepted_at: datetime | None = None
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.accepted_by is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "their_sku": self.their_sku,
            "our_group": self.our_group,
            "their_group": self.their_group,
            "accepted": self.accepted,
            "accepted_by": self.accepted_by,
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
            "reason": self.reason,
        }


def conflicts(conn: Connection, channel_id: int) -> list[Conflict]:
    """Every conflict of the channel's latest ID match run (by SKU), each with its acceptance when one
    of the same groups exists; empty when the channel was never matched."""
    latest = (
        sa.select(sa.func.max(id_match_runs.c.id))
        .where(id_match_runs.c.channel_id == channel_id)
        .scalar_subquery()
    )
    acc = id_match_acceptances
    rows = conn.execute(
        sa.select(
            id_match_rows.c.run_id,
            id_match_rows.c.sku,
            id_match_rows.c.their_sku,
            id_match_rows.c.our_group,
            id_match_rows.c.their_group,
            acc.c.accepted_by,
            acc.c.accepted_at,
            acc.c.reason,
        )
        .select_from(
            id_match_rows.outerjoin(
                acc,
                sa.and_(
                    acc.c.channel_id == channel_id,
                    acc.c.sku == id_match_rows.c.sku,
                    acc.c.our_group.is_not_distinct_from(id_match_rows.c.our_group),
                    acc.c.their_group.is_not_distinct_from(id_match_rows.c.their_group),
                ),
            )
        )
        .where(
            id_match_rows.c.run_id == latest,
            id_match_rows.c.category == CONFLICT,
            id_match_rows.c.sku.is_not(None),
        )
        .order_by(id_match_rows.c.sku, id_match_rows.c.id)
    ).all()
    return [Conflict(**r._mapping) for r in rows]


def unresolved(conn: Connection, channel_id: int) -> list[Conflict]:
    """The conflicts of the latest run the operator did not accept."""
    return [c for c in conflicts(conn, channel_id) if not c.accepted]


def hold_reason(channel: Channel, conflict: Conflict) -> str:
    """Why the offer of ``conflict.sku`` is not sent (starts with :data:`HOLD_PREFIX`)."""
    return (
        f"{HOLD_PREFIX}{channel.name}: ours {conflict.our_group or '(no parent)'} vs theirs "
        f"{conflict.their_group}; resolve it or accept ours: `tradelane channel id-match {channel.name} "
        f"--accept {conflict.sku}|--accept-all --reason ...`"
    )


def held_offers(conn: Connection, channel: Channel) -> dict[str, str]:
    """SKU → hold reason of every offer of ``channel`` its unresolved conflicts keep from being sent."""
    held: dict[str, str] = {}
    for conflict in unresolved(conn, channel.id):
        held.setdefault(conflict.sku, hold_reason(channel, conflict))
    return held


def accept(
    conn: Connection,
    channel: Channel,
    *,
    skus: Sequence[str] | None,
    actor: str,
    now: datetime,
    reason: str | None,
) -> list[Conflict]:
    """Accept ours for the unresolved conflicts of ``skus`` (None: every unresolved one) of the
    channel's latest run: their offers are sent by the next delta and may overwrite the marketplace's
    listing. Audited (:data:`ACCEPT`, with the run and each conflict). Returns the conflicts accepted.

    :class:`ValidationError` without a reason, for an SKU without an unresolved conflict, or when
    nothing is left to accept; :class:`NotFoundError` when the channel was never matched."""
    if not (reason and reason.strip()):
        raise ValidationError(
            f"accepting our listing over the marketplace's on {channel.name} needs a reason (--reason): "
            "it may overwrite another integrator's listing"
        )
    if not conn.execute(
        sa.select(id_match_runs.c.id).where(id_match_runs.c.channel_id == channel.id).limit(1)
    ).first():
        raise NotFoundError(f"{channel.name} has no unique-ID match yet: run `tradelane channel id-match`")
    open_ = {c.sku: c for c in unresolved(conn, channel.id)}
    if skus is None:
        chosen = list(open_.values())
        if not chosen:
            raise ValidationError(f"{channel.name} has no unresolved ID match conflict to accept")
    else:
        wanted = list(dict.fromkeys(skus))
        unknown = [s for s in wanted if s not in open_]
        if unknown or not wanted:
            raise ValidationError(
                f"no unresolved ID match conflict on {channel.name} for {', '.join(unknown) or 'no SKU'}"
                + (f" (unresolved: {', '.join(sorted(open_))})" if open_ else " (none is unresolved)")
            )
        chosen = [open_[s] for s in wanted]
    text = reason.strip()
    conn.execute(
        sa.delete(id_match_acceptances).where(
            id_match_acceptances.c.channel_id == channel.id,
            id_match_acceptances.c.sku.in_([c.sku for c in chosen]),
        )
    )
    conn.execute(
        sa.insert(id_match_acceptances),
        [
            {
                "tenant_id": channel.tenant_id,
                "channel_id": channel.id,
                "sku": c.sku,
                "our_group": c.our_group,
                "their_group": c.their_group,
                "run_id": c.run_id,
                "accepted_at": now,
                "accepted_by": actor,
                "reason": text,
            }
            for c in chosen
        ],
    )
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action=ACCEPT,
        now=now,
        reason=text,
        details={
            "run_id": chosen[0].run_id,
            "all": skus is None,
            "conflicts": [
                {"sku": c.sku, "our_group": c.our_group, "their_group": c.their_group} for c in chosen
            ],
        },
    )
    release(conn, channel, now=now)
    accepted = {c.sku: c for c in conflicts(conn, channel.id)}
    return [accepted[c.sku] for c in chosen]


def release(conn: Connection, channel: Channel, *, now: datetime) -> list[str]:
    """Offers of ``channel`` blocked by a conflict (reason :data:`HOLD_PREFIX`) that no unresolved
    conflict holds any more are dirty again, and a delta is scheduled. Returns their SKUs."""
    held = held_offers(conn, channel)
    rows = conn.execute(
        sa.select(offer_bindings.c.id, products.c.sku)
        .join(products, products.c.id == offer_bindings.c.product_id)
        .where(
            offer_bindings.c.channel_id == channel.id,
            offer_bindings.c.status == OfferStatus.BLOCKED.value,
            offer_bindings.c.selection_state != LEFT,
            offer_bindings.c.last_error.startswith(HOLD_PREFIX, autoescape=True),
        )
    ).all()
    freed = [r for r in rows if r.sku not in held]
    ids = [r.id for r in freed]
    for start in range(0, len(ids), 500):
        conn.execute(
            sa.update(offer_bindings)
            .where(offer_bindings.c.id.in_(ids[start : start + 500]))
            .values(
                dirty=True,
                change_seq=offer_bindings.c.change_seq + 1,
                dirty_since=now,
                status=OfferStatus.PENDING.value,
            )
        )
    if ids:
        schedule_deltas(conn, channel.tenant_id, {channel.id}, now=now)
    return sorted(r.sku for r in freed)
