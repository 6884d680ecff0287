"""Operator read model of a tenant's channels: per-flow status with the *observed* communication
frequency, and the rate-limit budget left in each of the channel's buckets.

* Observed frequency of a flow: the median gap between the starts (``created_at``) of the last
  :data:`OBSERVED_RUNS` finished runs of the flow's periodic job kind
  (:data:`~tradelane.sync.scheduler.FLOW_JOB_KINDS`, e.g. ``orders.poll``) on the channel — or of any of
  the flow's jobs when that kind never ran (event-driven flows). None when fewer than two runs finished.
  Alongside: how many of the flow's jobs finished in the last 24 hours (and how many of them died), and
  the last success, taken from the flow's status row or, when later, from its last succeeded job.
* Budget of a bucket: the tokens stored in ``rate_buckets`` refilled up to ``now`` at the bucket's rate
  (exactly as :func:`tradelane.sync.ratelimit.take` would see them, a Retry-After hold's remaining
  seconds included: a held bucket shows the tokens it will have then), capped at the burst. The limit of a
  bucket is connector knowledge, so the caller passes ``limit_for(channel, bucket)``; with no known
  limit the stored token count is shown as is.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.persistence.tables import jobs, rate_buckets
from tradelane.services.channels import Channel, FlowStatus, flow_statuses, list_channels
from tradelane.sync.jobs import JobState
from tradelane.sync.ratelimit import RateLimit
from tradelane.sync.scheduler import FLOW_JOB_KINDS

#: Finished runs of a flow used to estimate its observed period.
OBSERVED_RUNS = 20

LimitResolver = Callable[[Channel, str], RateLimit | None]


@dataclass(frozen=True, slots=True)
class FlowInsight:
    status: FlowStatus
    observed_period_seconds: float | None
    runs_last_24h: int
    failures_last_24h: int
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class BudgetView:
    bucket: str
    tokens: float
    capacity: float | None
    limit: RateLimit | None
    updated_at: datetime
    #: Seconds left of a marketplace's Retry-After hold (the bucket is stamped that far ahead).
    held_for: float = 0.0

    @property
    def seconds_to_next_token(self) -> float:
        """0 when a call may go now, else how long until the next token (a hold included)."""
        if self.limit is None or (self.tokens >= 1.0 and not self.held_for):
            return self.held_for
        return self.held_for + max(0.0, 1.0 - self.tokens) / self.limit.rate


@dataclass(frozen=True, slots=True)
class ChannelInsight:
    channel: Channel
    flows: list[FlowInsight]
    budgets: list[BudgetView]


def _period(conn: Connection, finished: sa.ColumnElement[bool]) -> float | None:
    starts = sorted(
        conn.execute(
            sa.select(jobs.c.created_at)
            .where(finished)
            .order_by(jobs.c.finished_at.desc())
            .limit(OBSERVED_RUNS)
        ).scalars()
    )
    # Jobs started in the same instant belong to one run (e.g. a poll and the acceptances it queued).
    gaps = [gap for a, b in itertools.pairwise(starts) if (gap := (b - a).total_seconds()) > 0]
    return statistics.median(gaps) if gaps else None


def _flow_insight(conn: Connection, channel_id: int, status: FlowStatus, *, now: datetime) -> FlowInsight:
    flow = status.flow.value
    finished = sa.and_(
        jobs.c.channel_id == channel_id,
        jobs.c.flow == flow,
        jobs.c.state.in_([JobState.SUCCEEDED.value, JobState.DEAD.value]),
    )
    periodic = FLOW_JOB_KINDS.get(flow)
    period = _period(conn, sa.and_(finished, jobs.c.kind == periodic)) if periodic else None
    if period is None:
        period = _period(conn, finished)
    row = conn.execute(
        sa.select(
            sa.func.count().label("runs"),
            sa.func.sum(sa.case((jobs.c.state == JobState.DEAD.value, 1), else_=0)).label("dead"),
        ).where(finished, jobs.c.finished_at >= now - timedelta(hours=24))
    ).one()
    last_job = conn.execute(
        sa.select(sa.func.max(jobs.c.finished_at)).where(finished, jobs.c.state == JobState.SUCCEEDED.value)
    ).scalar()
    known = [t for t in (status.last_success_at, last_job) if t is not None]
    return FlowInsight(status, period, int(row.runs or 0), int(row.dead or 0), max(known) if known else None)


def budgets(
    conn: Connection, channel: Channel, *, now: datetime, limit_for: LimitResolver
) -> list[BudgetView]:
    """The channel's rate buckets with the tokens available at ``now``."""
    views: list[BudgetView] = []
    for row in conn.execute(
        sa.select(rate_buckets).where(rate_buckets.c.channel_id == channel.id).order_by(rate_buckets.c.bucket)
    ):
        limit = limit_for(channel, row.bucket)
        tokens = float(row.tokens)
        capacity: float | None = None
        if limit is not None:
            capacity = float(limit.burst)
            elapsed = max(0.0, (now - row.updated_at).total_seconds())
            tokens = min(capacity, tokens + elapsed * limit.rate)
        held_for = max(0.0, (row.updated_at - now).total_seconds())
        views.append(BudgetView(row.bucket, tokens, capacity, limit, row.updated_at, held_for))
    return views


def channel_insights(
    conn: Connection, tenant_id: int, *, now: datetime, limit_for: LimitResolver
) -> list[ChannelInsight]:
    """Every channel of the tenant (by name) with its flows and budgets."""
    result: list[ChannelInsight] = []
    for channel in list_channels(conn, tenant_id):
        flows = [
            _flow_insight(conn, channel.id, status, now=now) for status in flow_statuses(conn, channel.id)
        ]
        result.append(ChannelInsight(channel, flows, budgets(conn, channel, now=now, limit_for=limit_for)))
    return result
