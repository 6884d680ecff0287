"""The unique-ID match: the marketplace's existing listings against the catalog, before go-live.

Each listing is matched to a catalog product on the unique ID — its SKU first, else its product id
(Mirakl's product reference, e.g. an EAN) equal to a product's GTIN — and the match is checked on the
grouping key: the catalog's ``parent_sku`` against the listing's variant group (``ListedOffer.group_key``:
the Mirakl offer field mapped to ``:parent_sku``, Amazon's variation parent SKU). Categories:

* ``matched`` — same ID, and the grouping agrees (or the listing carries no grouping to compare);
* ``conflict`` — same ID, conflicting grouping (the listing has a group that differs from our
  ``parent_sku``, ours absent included). Until resolved — a later run without it, or the operator
  accepting ours — it holds the SKU's offer back (never sent: it would overwrite their listing) and
  blocks go-live (:func:`unresolved_conflicts`; see :mod:`tradelane.services.id_match_conflicts`; an
  override of go-live with a reason is the lifecycle's);
* ``only_theirs`` — a listing no catalog product matches;
* ``only_ours`` — a product selected for the channel that no listing matches.

A run (job :data:`RUN`, queued by :func:`queue_run`) reads every listing through the port and stores
the run and one row per item (``id_match_runs`` / ``id_match_rows``), then releases the offers held by
conflicts the run no longer shows; :func:`to_csv` exports one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import ListedOffer
from tradelane.domain.errors import NotFoundError
from tradelane.persistence.tables import id_match_rows, id_match_runs
from tradelane.services import audit, id_match_conflicts
from tradelane.services.channels import Channel
from tradelane.services.connector_session import ConnectorSession
from tradelane.services.listings import CatalogSide, catalog_side, read_listings
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue

RUN = "idmatch.run"
MATCHED, ONLY_THEIRS, ONLY_OURS = "matched", "only_theirs", "only_ours"
CONFLICT = id_match_conflicts.CONFLICT
CATEGORIES = (CONFLICT, ONLY_THEIRS, ONLY_OURS, MATCHED)
CSV_COLUMNS = (
    "category",
    "sku",
    "their_sku",
    "matched_by",
    "gtin",
    "their_product_id",
    "our_group",
    "their_group",
)

SessionOpener = Callable[[JobContext, Channel], ConnectorSession]


@dataclass(frozen=True, slots=True)
class MatchRow:
    category: str
    sku: str | None = None
    their_sku: str | None = None
    matched_by: str | None = None
    gtin: str | None = None
    their_product_id: str | None = None
    our_group: str | None = None
    their_group: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CSV_COLUMNS}


def match(listed: Iterable[ListedOffer], side: CatalogSide) -> list[MatchRow]:
    """Every listing and every selected product, categorised (pure); conflicts first, then by SKU."""
    by_gtin: dict[str, list[str]] = {}
    for item in side.items.values():
        if item.gtin:
            by_gtin.setdefault(item.gtin, []).append(item.sku)
    rows: list[MatchRow] = []
    matched_ours: set[str] = set()
    for offer in listed:
        sku, matched_by = None, None
        if offer.sku in side.items:
            sku, matched_by = offer.sku, "sku"
        elif offer.product_id and len(by_gtin.get(offer.product_id, ())) == 1:
            sku, matched_by = by_gtin[offer.product_id][0], "product_id"
        if sku is None:
            rows.append(
                MatchRow(
                    ONLY_THEIRS,
                    their_sku=offer.sku,
                    their_product_id=offer.product_id,
                    their_group=offer.group_key,
                )
            )
            continue
        item = side.items[sku]
        matched_ours.add(sku)
        conflicting = offer.group_key is not None and offer.group_key != item.parent_sku
        rows.append(
            MatchRow(
                CONFLICT if conflicting else MATCHED,
                sku=sku,
                their_sku=offer.sku,
                matched_by=matched_by,
                gtin=item.gtin,
                their_product_id=offer.product_id,
                our_group=item.parent_sku,
                their_group=offer.group_key,
            )
        )
    for sku in sorted(side.selected - matched_ours):
        item = side.items[sku]
        rows.append(MatchRow(ONLY_OURS, sku=sku, gtin=item.gtin, our_group=item.parent_sku))
    order = {c: i for i, c in enumerate(CATEGORIES)}
    rows.sort(key=lambda r: (order[r.category], r.sku or r.their_sku or ""))
    return rows


@dataclass(frozen=True, slots=True)
class MatchRun:
    id: int
    channel_id: int
    created_at: datetime
    actor: str
    listed_count: int
    matched: int
    only_ours: int
    only_theirs: int
    conflicts: int

    def counts(self) -> dict[str, int]:
        return {
            "listed": self.listed_count,
            MATCHED: self.matched,
            CONFLICT: self.conflicts,
            ONLY_THEIRS: self.only_theirs,
            ONLY_OURS: self.only_ours,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "counts": self.counts(),
        }


def _run(row: Any) -> MatchRun:
    return MatchRun(
        row.id,
        row.channel_id,
        row.created_at,
        row.actor,
        row.listed_count,
        row.matched,
        row.only_ours,
        row.only_theirs,
        row.conflicts,
    )


def store_run(
    conn: Connection,
    channel: Channel,
    listed_count: int,
    rows: Sequence[MatchRow],
    *,
    actor: str,
    now: datetime,
) -> MatchRun:
    """Store one run and its rows; returns the run."""

    def count(category: str) -> int:
        return sum(1 for r in rows if r.category == category)

    run_id = conn.execute(
        sa.insert(id_match_runs)
        .values(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            created_at=now,
            actor=actor,
            listed_count=listed_count,
            matched=count(MATCHED),
            only_ours=count(ONLY_OURS),
            only_theirs=count(ONLY_THEIRS),
            conflicts=count(CONFLICT),
        )
        .returning(id_match_runs.c.id)
    ).scalar_one()
    for start in range(0, len(rows), 1000):
        conn.execute(
            sa.insert(id_match_rows), [{"run_id": run_id, **r.as_json()} for r in rows[start : start + 1000]]
        )
    return get_run(conn, channel, int(run_id))


def get_run(conn: Connection, channel: Channel, run_id: int) -> MatchRun:
    row = conn.execute(
        sa.select(id_match_runs).where(id_match_runs.c.id == run_id, id_match_runs.c.channel_id == channel.id)
    ).first()
    if row is None:
        raise NotFoundError(f"{channel.name} has no ID match run {run_id}")
    return _run(row)


def latest_run(conn: Connection, channel_id: int) -> MatchRun | None:
    """The channel's newest ID match run, or None when it was never run."""
    row = conn.execute(
        sa.select(id_match_runs)
        .where(id_match_runs.c.channel_id == channel_id)
        .order_by(id_match_runs.c.id.desc())
        .limit(1)
    ).first()
    return _run(row) if row is not None else None


def unresolved_conflicts(conn: Connection, channel_id: int) -> int:
    """Conflicts (same ID, conflicting grouping) of the channel's latest run that the operator did not
    accept (``id_match_conflicts.accept``); 0 when never run."""
    return len(id_match_conflicts.unresolved(conn, channel_id))


def run_rows(conn: Connection, run_id: int, *, category: str | None = None) -> list[MatchRow]:
    """The rows of run ``run_id`` (of ``category``, when given), conflicts first."""
    stmt = sa.select(*(id_match_rows.c[name] for name in CSV_COLUMNS)).where(id_match_rows.c.run_id == run_id)
    if category is not None:
        stmt = stmt.where(id_match_rows.c.category == category)
    rows = [MatchRow(**r._mapping) for r in conn.execute(stmt.order_by(id_match_rows.c.id))]
    return rows


def to_csv(rows: Iterable[MatchRow]) -> str:
    """One line per row, header :data:`CSV_COLUMNS`; empty cells for absent values."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(["" if v is None else v for v in (getattr(r, name) for name in CSV_COLUMNS)])
    return out.getvalue()


def queue_run(conn: Connection, channel: Channel, *, actor: str, now: datetime) -> int:
    """Queue an ID match of ``channel`` (job :data:`RUN`); returns the job id (its result: ``run_id``)."""
    return enqueue(
        conn,
        JobSpec(tenant_id=channel.tenant_id, kind=RUN, payload={"actor": actor}, channel_id=channel.id),
        now=now,
    ).job_id


def run_job(ctx: JobContext, channel: Channel, sessions: SessionOpener) -> dict[str, Any]:
    """Job :data:`RUN`: read every listing, match them with the catalog, store the run (read-only on
    the marketplace); offers held by conflicts this run no longer shows are dirty again (result
    ``released``: their SKUs)."""
    actor = str(ctx.job.payload.get("actor") or audit.SYSTEM)
    with sessions(ctx, channel) as session:
        listed = read_listings(session.connector, channel, "the unique-ID match")
        now = ctx.now()
        with ctx.transaction() as conn:
            rows = match(listed, catalog_side(conn, channel))
            session.record(conn, f"idmatch:{channel.id}", now=now)
            run = store_run(conn, channel, len(listed), rows, actor=actor, now=now)
            released = id_match_conflicts.release(conn, channel, now=now)
            result = {"run_id": run.id, **run.counts(), "released": released}
            ctx.complete_in(conn, result)
    return result
