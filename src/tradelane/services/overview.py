"""Business-health read model of one tenant (the dashboard's Overview page).

Everything here is a read, scoped to one tenant, computed at ``now`` (passed in):

* acceptance backlog: orders still ``WAITING_ACCEPTANCE`` that tradelane has not accepted yet, how many
  are past their acceptance deadline, and the soonest deadline still ahead;
* stock freshness per channel: the age of the oldest unsynced change, i.e. ``now - min(dirty_since)``
  over the channel's dirty offer bindings (no dirty binding = fresh);
* offer rejection rate per channel: ``error / (published + error)`` (None when nothing was judged yet);
* job counts by state (dead letters included), quarantined orders, open alerts;
* workers: the live workers (all of the install's, they serve every tenant) and this tenant's due jobs
  with the oldest one's wait; ``stalled`` when jobs are due and no worker is live;
* hourly series over the last ``hours`` hours: orders placed (marketplace creation time) and jobs
  finished, split into succeeded and dead. Buckets are computed in SQL with one ``CASE`` per hour, so
  the same query runs on SQLite and PostgreSQL and reads each row once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.orders import MerchantStatus, OrderState
from tradelane.persistence.tables import alerts, channels, jobs, offer_bindings, order_quarantine, orders
from tradelane.services.job_queries import count_by_state
from tradelane.services.offers import OfferStatus
from tradelane.sync.jobs import JobState
from tradelane.sync.liveness import QueueHealth, queue_health

#: Open alerts listed on the overview (the count is always exact).
ALERTS_SHOWN = 10


@dataclass(frozen=True, slots=True)
class AcceptanceBacklog:
    """Orders waiting for tradelane's acceptance."""

    waiting: int
    overdue: int
    soonest_deadline: datetime | None
    soonest_seconds_left: int | None


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    channel_id: int
    channel: str
    lifecycle_state: str
    dirty_offers: int
    oldest_unsynced_since: datetime | None
    stock_age_seconds: int | None
    published: int
    rejected: int

    @property
    def rejection_rate(self) -> float | None:
        """``rejected / (published + rejected)``, None before any offer was judged."""
        judged = self.published + self.rejected
        return self.rejected / judged if judged else None


@dataclass(frozen=True, slots=True)
class HourlySeries:
    """Counts per hour; ``starts[i]`` is the beginning of bucket ``i`` (oldest first)."""

    starts: list[datetime]
    values: dict[str, list[int]]

    def total(self, name: str) -> int:
        return sum(self.values[name])


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    backlog: AcceptanceBacklog
    channels: list[ChannelHealth]
    jobs_by_state: dict[str, int]
    quarantined: int
    open_alerts: int
    latest_alerts: list[dict[str, Any]] = field(default_factory=list)
    orders_per_hour: HourlySeries | None = None
    jobs_per_hour: HourlySeries | None = None
    workers: QueueHealth | None = None

    @property
    def dead_letters(self) -> int:
        return self.jobs_by_state.get(JobState.DEAD.value, 0)

    @property
    def rejection_rate(self) -> float | None:
        published = sum(c.published for c in self.channels)
        rejected = sum(c.rejected for c in self.channels)
        return rejected / (published + rejected) if published + rejected else None


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def acceptance_backlog(conn: Connection, tenant_id: int, *, now: datetime) -> AcceptanceBacklog:
    waiting = sa.and_(
        orders.c.tenant_id == tenant_id,
        orders.c.state == OrderState.AWAITING_ACCEPTANCE.value,
        orders.c.accepted_at.is_(None),
    )
    row = conn.execute(
        sa.select(
            sa.func.count().label("waiting"),
            sa.func.sum(
                sa.case((orders.c.acceptance_deadline < now, 1), else_=0),
            ).label("overdue"),
        ).where(waiting)
    ).one()
    soonest = conn.execute(
        sa.select(sa.func.min(orders.c.acceptance_deadline)).where(
            waiting, orders.c.acceptance_deadline >= now
        )
    ).scalar()
    return AcceptanceBacklog(
        waiting=int(row.waiting or 0),
        overdue=int(row.overdue or 0),
        soonest_deadline=soonest,
        soonest_seconds_left=None if soonest is None else _seconds(soonest - now),
    )


def channel_health(conn: Connection, tenant_id: int, *, now: datetime) -> list[ChannelHealth]:
    """Stock freshness and offer outcomes of each of the tenant's channels (by name)."""
    ob = offer_bindings
    dirty = {
        r.channel_id: (int(r.n), r.oldest)
        for r in conn.execute(
            sa.select(
                ob.c.channel_id, sa.func.count().label("n"), sa.func.min(ob.c.dirty_since).label("oldest")
            )
            .where(ob.c.tenant_id == tenant_id, ob.c.dirty.is_(True))
            .group_by(ob.c.channel_id)
        )
    }
    outcomes: dict[tuple[int, str], int] = {
        (r.channel_id, r.status): int(r.n)
        for r in conn.execute(
            sa.select(ob.c.channel_id, ob.c.status, sa.func.count().label("n"))
            .where(
                ob.c.tenant_id == tenant_id,
                ob.c.status.in_([OfferStatus.PUBLISHED.value, OfferStatus.ERROR.value]),
            )
            .group_by(ob.c.channel_id, ob.c.status)
        )
    }
    result: list[ChannelHealth] = []
    for ch in conn.execute(
        sa.select(channels.c.id, channels.c.name, channels.c.lifecycle_state)
        .where(channels.c.tenant_id == tenant_id, channels.c.removed_at.is_(None))
        .order_by(channels.c.name)
    ):
        count, oldest = dirty.get(ch.id, (0, None))
        result.append(
            ChannelHealth(
                channel_id=ch.id,
                channel=ch.name,
                lifecycle_state=ch.lifecycle_state,
                dirty_offers=count,
                oldest_unsynced_since=oldest,
                stock_age_seconds=None if oldest is None else max(0, _seconds(now - oldest)),
                published=outcomes.get((ch.id, OfferStatus.PUBLISHED.value), 0),
                rejected=outcomes.get((ch.id, OfferStatus.ERROR.value), 0),
            )
        )
    return result


def hour_starts(now: datetime, hours: int) -> list[datetime]:
    """Starts of the ``hours`` whole-hour buckets ending with the current (partial) hour."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def _bucket_columns(column: sa.ColumnElement[Any], starts: Sequence[datetime]) -> list[sa.Label[Any]]:
    ends = [*starts[1:], starts[-1] + timedelta(hours=1)]
    return [
        sa.func.sum(sa.case((sa.and_(column >= start, column < end), 1), else_=0)).label(f"b{i}")
        for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


def _counts(row: Any, n: int) -> list[int]:
    return [int(getattr(row, f"b{i}") or 0) for i in range(n)]


def orders_per_hour(conn: Connection, tenant_id: int, *, now: datetime, hours: int = 24) -> HourlySeries:
    """Orders placed on the marketplaces per hour (by the marketplace's creation time); test orders
    (``orders create-test``) are left out: no customer placed them."""
    starts = hour_starts(now, hours)
    row = conn.execute(
        sa.select(*_bucket_columns(orders.c.marketplace_created_at, starts)).where(
            orders.c.tenant_id == tenant_id,
            orders.c.marketplace_created_at >= starts[0],
            orders.c.is_test.is_(False),
        )
    ).one()
    return HourlySeries(starts, {"orders": _counts(row, hours)})


def jobs_per_hour(conn: Connection, tenant_id: int, *, now: datetime, hours: int = 24) -> HourlySeries:
    """Jobs finished per hour: ``succeeded`` and ``dead`` (dead letters)."""
    starts = hour_starts(now, hours)
    values: dict[str, list[int]] = {}
    for state in (JobState.SUCCEEDED, JobState.DEAD):
        row = conn.execute(
            sa.select(*_bucket_columns(jobs.c.finished_at, starts)).where(
                jobs.c.tenant_id == tenant_id, jobs.c.state == state.value, jobs.c.finished_at >= starts[0]
            )
        ).one()
        values[state.value] = _counts(row, hours)
    return HourlySeries(starts, values)


def business_overview(conn: Connection, tenant_id: int, *, now: datetime, hours: int = 24) -> Overview:
    """Everything the Overview page shows (see the module docstring)."""
    quarantined = conn.execute(
        sa.select(sa.func.count())
        .select_from(order_quarantine.join(orders, orders.c.id == order_quarantine.c.order_id))
        .where(
            order_quarantine.c.tenant_id == tenant_id,
            orders.c.merchant_status == MerchantStatus.QUARANTINED.value,
        )
    ).scalar_one()
    open_alerts = sa.and_(alerts.c.tenant_id == tenant_id, alerts.c.resolved_at.is_(None))
    alert_count = conn.execute(sa.select(sa.func.count()).select_from(alerts).where(open_alerts)).scalar_one()
    latest = [
        dict(r._mapping)
        for r in conn.execute(
            sa.select(alerts.c.id, alerts.c.kind, alerts.c.severity, alerts.c.message, alerts.c.created_at)
            .where(open_alerts)
            .order_by(alerts.c.id.desc())
            .limit(ALERTS_SHOWN)
        )
    ]
    return Overview(
        now=now,
        backlog=acceptance_backlog(conn, tenant_id, now=now),
        channels=channel_health(conn, tenant_id, now=now),
        jobs_by_state=count_by_state(conn, tenant_id),
        quarantined=int(quarantined),
        open_alerts=int(alert_count),
        latest_alerts=latest,
        orders_per_hour=orders_per_hour(conn, tenant_id, now=now, hours=hours),
        jobs_per_hour=jobs_per_hour(conn, tenant_id, now=now, hours=hours),
        workers=queue_health(conn, now=now, tenant_id=tenant_id),
    )
