"""Jobs: enqueue (idempotent by unique index), claim (SKIP LOCKED), finish, retry, dead-letter, replay.

Contracts:

* :func:`enqueue` never checks-then-inserts. ``idempotency_key`` (unique per tenant, forever) makes the
  same logical work one job; ``dedupe_key`` (unique among *queued* jobs) coalesces repeated triggers into
  the one pending job; ``exclusive_key`` (unique among *queued or running* jobs) keeps a second copy of
  work from starting while the first is still in flight (e.g. one delivery of an order at a time: a
  re-poll that sees the order while its delivery runs gets that job back, it does not queue another).
  A conflicting enqueue returns the existing job's id with ``created=False``.
* :func:`claim` hands each ready job to exactly one worker: on PostgreSQL via ``FOR UPDATE SKIP LOCKED``;
  on SQLite the single ``UPDATE ... RETURNING`` runs under the database write lock. A claim sets a lease;
  a running job whose lease expired (its worker died) is claimable again.
* Every state change after a claim is *fenced* by the lease token: a worker that lost its lease can no
  longer complete, fail or extend the job.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from tradelane.persistence.db import insert_ignore, is_postgres, json_dumps
from tradelane.persistence.tables import channel_flows, job_attempts, jobs


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


class ErrorKind(StrEnum):
    RETRYABLE = "retryable"
    #: Queued again because of a rate limit (the remote's Retry-After or our budget): a manual run
    #: does not bring such a job forward.
    THROTTLED = "throttled"
    #: Dead-lettered because the remote rejected the credentials (re-queued once they are fixed).
    AUTH = "auth"
    PERMANENT = "permanent"
    EXHAUSTED = "exhausted"
    CRASH = "crash"


@dataclass(frozen=True, slots=True)
class JobSpec:
    tenant_id: int
    kind: str
    payload: dict[str, Any]
    channel_id: int | None = None
    flow: str | None = None
    idempotency_key: str | None = None
    dedupe_key: str | None = None
    run_at: datetime | None = None
    priority: int = 100
    #: At most one queued-or-running job per key, enforced by a unique partial index.
    exclusive_key: str | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: int
    created: bool


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    tenant_id: int
    channel_id: int | None
    flow: str | None
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lease_token: str
    dedupe_key: str | None = None
    worker: str = ""
    claimed_at: datetime | None = None
    #: Attempts made before the job's last replay; history row numbers are this plus ``attempts``.
    replayed_attempts: int = 0

    @property
    def attempt_number(self) -> int:
        """This attempt's number in the job's history (keeps counting across replays)."""
        return self.replayed_attempts + self.attempts


DEFAULT_MAX_ATTEMPTS = 8


def enqueue(
    conn: Connection, spec: JobSpec, *, now: datetime, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> EnqueueResult:
    """Insert a job unless its idempotency or dedupe key already holds one (see module docstring)."""
    values = _job_values(spec, now, max_attempts)
    # Parameters bound at execution: the statement itself is built once (see ``insert_ignore``).
    stmt = insert_ignore(conn, jobs).returning(jobs.c.id)
    job_id = conn.execute(stmt, values).scalar()
    if job_id is not None:
        return EnqueueResult(job_id, True)
    existing = None
    if spec.idempotency_key is not None:
        existing = conn.execute(
            sa.select(jobs.c.id).where(
                jobs.c.tenant_id == spec.tenant_id, jobs.c.idempotency_key == spec.idempotency_key
            )
        ).scalar()
    if existing is None and spec.exclusive_key is not None:
        existing = _in_flight(conn, spec.exclusive_key)
    if existing is None and spec.dedupe_key is not None:
        existing = conn.execute(
            sa.select(jobs.c.id).where(
                jobs.c.dedupe_key == spec.dedupe_key, jobs.c.state == JobState.QUEUED.value
            )
        ).scalar()
    if existing is not None and spec.run_at is not None:
        # A coalesced trigger may ask for a pending job to run sooner, never later.
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == existing, jobs.c.state == JobState.QUEUED.value, jobs.c.run_at > spec.run_at)
            .values(run_at=spec.run_at, updated_at=now)
        )
    if existing is None:
        # The conflicting row vanished between our insert and select (claimed and finished): retry once.
        job_id = conn.execute(stmt, values).scalar()
        if job_id is None:
            raise RuntimeError(f"enqueue conflict for {spec.kind} could not be resolved")
        return EnqueueResult(job_id, True)
    return EnqueueResult(existing, False)


def job_row(spec: JobSpec, now: datetime, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> dict[str, Any]:
    """The ``jobs`` row :func:`enqueue` inserts for ``spec`` (column name to value), for writers that
    insert it themselves in one statement (see :mod:`tradelane.web.api.pg_intake`)."""
    return _job_values(spec, now, max_attempts)


def _job_values(spec: JobSpec, now: datetime, max_attempts: int) -> dict[str, Any]:
    return {
        "tenant_id": spec.tenant_id,
        "channel_id": spec.channel_id,
        "flow": spec.flow,
        "kind": spec.kind,
        "payload": spec.payload,
        "idempotency_key": spec.idempotency_key,
        "dedupe_key": spec.dedupe_key,
        "exclusive_key": spec.exclusive_key,
        "state": JobState.QUEUED.value,
        "priority": spec.priority,
        "attempts": 0,
        "max_attempts": spec.max_attempts or max_attempts,
        "run_at": spec.run_at or now,
        "created_at": now,
        "updated_at": now,
    }


def _spec_keys(
    tenant_id: int, kind: str, idem: str | None, dedupe: str | None, excl: str | None
) -> tuple[Any, ...]:
    return (tenant_id, kind, idem, dedupe, excl)


def enqueue_many(
    conn: Connection,
    specs: Sequence[JobSpec],
    *,
    now: datetime,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> list[EnqueueResult]:
    """:func:`enqueue` for many jobs at once, same contract; results in the order of ``specs``.

    The jobs carrying a key go in one multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING``
    (matched back to their specs by kind and keys); each one it did not insert (its key already held,
    or held by an earlier spec of the same call) then goes through :func:`enqueue`, which returns the
    job holding the key and applies an earlier ``run_at``. Jobs without any key are plain inserts."""
    results: list[EnqueueResult | None] = [None] * len(specs)
    waiting: dict[tuple[Any, ...], list[int]] = {}
    rows: list[dict[str, Any]] = []
    for position, spec in enumerate(specs):
        if spec.idempotency_key is None and spec.dedupe_key is None and spec.exclusive_key is None:
            results[position] = enqueue(conn, spec, now=now, max_attempts=max_attempts)
            continue
        keys = _spec_keys(
            spec.tenant_id, spec.kind, spec.idempotency_key, spec.dedupe_key, spec.exclusive_key
        )
        waiting.setdefault(keys, []).append(position)
        rows.append(_job_values(spec, now, max_attempts))
    if rows:
        stmt = insert_ignore(conn, jobs).returning(
            jobs.c.id,
            jobs.c.tenant_id,
            jobs.c.kind,
            jobs.c.idempotency_key,
            jobs.c.dedupe_key,
            jobs.c.exclusive_key,
        )
        for row in conn.execute(stmt, rows):
            keys = _spec_keys(row.tenant_id, row.kind, row.idempotency_key, row.dedupe_key, row.exclusive_key)
            # Specs with the very same keys conflict with each other: only the first can be inserted.
            results[waiting[keys][0]] = EnqueueResult(row.id, True)
    for position, spec in enumerate(specs):
        if results[position] is None:
            results[position] = enqueue(conn, spec, now=now, max_attempts=max_attempts)
    return [r for r in results if r is not None]


def _in_flight(conn: Connection, exclusive_key: str) -> int | None:
    """The queued-or-running job holding ``exclusive_key``, if any."""
    in_flight = sa.select(jobs.c.id).where(
        jobs.c.exclusive_key == exclusive_key,
        jobs.c.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]),
    )
    return conn.execute(in_flight).scalar()


def _ready_condition(now: Any, table: Any = jobs) -> sa.ColumnElement[bool]:
    """Ready at ``now`` (a datetime or a bound parameter for one), for ``table`` (jobs or an alias)."""
    queued_ready = sa.and_(table.c.state == JobState.QUEUED.value, table.c.run_at <= now)
    lease_lost = sa.and_(table.c.state == JobState.RUNNING.value, table.c.lease_expires_at < now)
    paused = (
        sa.select(channel_flows.c.channel_id)
        .where(
            channel_flows.c.channel_id == table.c.channel_id,
            channel_flows.c.flow == table.c.flow,
            channel_flows.c.paused.is_(True),
        )
        .exists()
    )
    return sa.and_(sa.or_(queued_ready, lease_lost), ~paused)


def _claimable(now: Any, table: Any = jobs, kinds: Any = None) -> sa.ColumnElement[bool]:
    """What a claim reads: :func:`_ready_condition`, of ``kinds`` if given, and ``state IN ('queued',
    'running')`` spelt with literal values, the predicate of the claim's partial indexes: SQLite uses a
    partial index only when the query states its predicate so (it infers it neither from the ready
    condition nor from bound parameters), and otherwise sorts every job of the backlog on each claim."""
    in_queue = table.c.state.in_([sa.literal_column("'queued'"), sa.literal_column("'running'")])
    cond = sa.and_(in_queue, _ready_condition(now, table))
    return cond if kinds is None else sa.and_(cond, table.c.kind.in_(kinds))


def ready_condition(now: datetime) -> sa.ColumnElement[bool]:
    """Jobs a worker would claim at ``now``: queued and due, or running with an expired lease; not paused."""
    return _ready_condition(now)


_PICK_COLUMNS = (
    jobs.c.id,
    jobs.c.tenant_id,
    jobs.c.channel_id,
    jobs.c.priority,
    jobs.c.run_at,
    jobs.c.state,
    jobs.c.lease_owner,
    jobs.c.attempts,
    jobs.c.replayed_attempts,
    jobs.c.updated_at,
)


def _group(table: Any = jobs) -> sa.ColumnElement[Any]:
    """The fair claim's group of a ``table`` (jobs or an alias) row within its tenant: its channel, 0 for
    a job of no channel; spelt as the expression of ``ix_jobs_group_ready`` so that index serves it."""
    return sa.func.coalesce(table.c.channel_id, sa.literal_column("0"))


def _pick(conn: Connection, *, now: datetime, limit: int, kinds: list[str] | None) -> list[Any]:
    """Lock and choose up to ``limit`` ready jobs: priority first, then round-robin across the
    (tenant, channel) groups with work at that priority (a tenant's jobs of no channel are one group).

    Small reads, each ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (so concurrent workers take different
    rows), all served by the partial indexes ``ix_jobs_claim_order`` and ``ix_jobs_group_ready``
    without reading anyone's whole backlog:

    1. in one statement, the first ``limit`` ready jobs in (priority, run_at, id) order, and the *head*
       of every group with ready work (its first job in that order; one or two index probes per such
       group, see :func:`_group_heads`), the ``limit`` most urgent of them: the ``G`` groups with work
       (more than ``limit`` busy groups take turns by their heads' age);
    2. when ``G > 1``, the first ``ceil(limit / G)`` ready jobs of each of those groups (one statement).

    Every group's candidates are then a prefix of its own queue, so each job's rank among its group's
    jobs of its priority is known; the batch is the first ``limit`` candidates by (priority, rank,
    run_at, id). A backlog of any size in one group (a tenant, or one channel of a tenant) therefore
    does not keep another group's job of the same or a more urgent priority out of the next claim
    (each group with work gets its fair share of the batch, the rest is filled in queue order); a less
    urgent job still waits behind the more urgent ones of every group."""
    postgres = is_postgres(conn)
    params: dict[str, Any] = {"b_now": now, "b_limit": limit}
    if kinds:
        params["b_kinds"] = kinds
    candidates: dict[int, Any] = {}
    active: list[tuple[int, int]] = []
    for r in conn.execute(_pick_statement(postgres, bool(kinds)), params):
        if r.head:
            active.append((r.tenant_id, r.channel_id or 0))
        candidates.setdefault(r.id, r)
    if not candidates:
        return []
    share = -(-limit // max(1, len(active)))
    if len(active) > 1 and share > 1:
        ready = _claimable(now, kinds=kinds or None)
        per_group = []
        for tenant_id, group in active:
            stmt = sa.select(*_PICK_COLUMNS).where(ready, jobs.c.tenant_id == tenant_id, _group() == group)
            stmt = stmt.order_by(jobs.c.priority, jobs.c.run_at, jobs.c.id).limit(share)
            per_group.append((stmt.with_for_update(skip_locked=True) if postgres else stmt).subquery())
        for r in conn.execute(sa.union_all(*(sa.select(sub) for sub in per_group))):
            candidates.setdefault(r.id, r)
    rank: dict[int, int] = {}
    seen: dict[tuple[int, int, int], int] = {}
    for r in sorted(candidates.values(), key=lambda r: (r.priority, r.run_at, r.id)):
        key = (r.tenant_id, r.channel_id or 0, r.priority)
        seen[key] = rank[r.id] = seen.get(key, 0) + 1
    chosen = sorted(candidates.values(), key=lambda r: (r.priority, rank[r.id], r.run_at, r.id))
    return chosen[:limit]


_PICK_STATEMENTS: dict[tuple[bool, bool], Any] = {}


def _pick_statement(postgres: bool, with_kinds: bool) -> Any:
    """The queue's first ``b_limit`` ready jobs (``head`` 0) and the groups' heads (``head`` 1), in one
    statement built once per (dialect, kind filter); parameters ``b_now``, ``b_limit``, ``b_kinds``."""
    key = (postgres, with_kinds)
    stmt = _PICK_STATEMENTS.get(key)
    if stmt is not None:
        return stmt
    now = sa.bindparam("b_now", type_=jobs.c.run_at.type)
    limit = sa.bindparam("b_limit", type_=sa.Integer())
    kinds: Any = sa.bindparam("b_kinds", expanding=True) if with_kinds else None
    ready = _claimable(now, kinds=kinds)
    order = (jobs.c.priority, jobs.c.run_at, jobs.c.id)
    top = sa.select(*_PICK_COLUMNS, sa.literal(0).label("head")).where(ready).order_by(*order).limit(limit)
    heads = (
        sa.select(*_PICK_COLUMNS, sa.literal(1).label("head"))
        .where(jobs.c.id.in_(sa.select(_group_heads(now, kinds, postgres).c.id)), ready)
        .order_by(*order)
        .limit(limit)
    )
    if postgres:
        top = top.with_for_update(skip_locked=True)
        heads = heads.with_for_update(skip_locked=True)
    stmt = sa.union_all(sa.select(top.subquery()), sa.select(heads.subquery()))
    _PICK_STATEMENTS[key] = stmt
    return stmt


def _group_heads(now: Any, kinds: Any, postgres: bool) -> Any:
    """A recursive CTE (id, tenant_id, grp) of every (tenant, channel) group's first ready job
    (priority, run_at, id), group by group in (tenant_id, grp) order, ``grp`` being :func:`_group`: a
    loose index scan of ``ix_jobs_group_ready``. From a group, the next one is the tenant's next group
    (``tenant_id = t AND grp > g``) or, when the tenant has no further group with ready work, the next
    tenant's first (``tenant_id > t``): one or two index probes per group with ready work (the ranges
    keep the planner on that index, whatever the statistics say about a group's share of the queue).

    On PostgreSQL each step reads the next head from a ``LATERAL`` (the first row of the two probes
    in turn), joining nothing: with a join on ``id = coalesce(probe, probe)`` the planner may hash the
    whole jobs table (seen on 100,000 jobs of which few were ready). SQLite has no ``LATERAL`` and no
    hash join: it looks the head up by its id."""

    def first_ready(name: str, *conditions: Any) -> Any:
        j = jobs.alias(name)
        cond = _claimable(now, j, kinds)
        return (
            sa.select(j.c.id, j.c.tenant_id, _group(j).label("grp"))
            .where(cond, *(condition(j) for condition in conditions))
            .order_by(j.c.tenant_id, _group(j), j.c.priority, j.c.run_at, j.c.id)
            .limit(1)
        )

    def its_id(probe: Any) -> Any:
        return probe.with_only_columns(probe.selected_columns.id).scalar_subquery()

    first = jobs.alias("first_head")
    heads = (
        sa.select(first.c.id, first.c.tenant_id, _group(first).label("grp"))
        .where(first.c.id == its_id(first_ready("nxt")))
        .cte("group_heads", recursive=True)
    )
    same_tenant = first_ready(
        "nxt_group", lambda j: j.c.tenant_id == heads.c.tenant_id, lambda j: _group(j) > heads.c.grp
    ).correlate(heads)
    next_tenant = first_ready("nxt_tenant", lambda j: j.c.tenant_id > heads.c.tenant_id).correlate(heads)
    if postgres:
        step = sa.union_all(same_tenant, next_tenant).limit(1).lateral("next_head")
        return heads.union_all(
            sa.select(step.c.id, step.c.tenant_id, step.c.grp).select_from(heads.join(step, sa.true()))
        )
    n = jobs.alias("next_head")
    next_id = sa.func.coalesce(its_id(same_tenant), its_id(next_tenant))
    return heads.union_all(
        sa.select(n.c.id, n.c.tenant_id, _group(n)).select_from(heads.join(n, n.c.id == next_id))
    )


def claim(
    conn: Connection,
    *,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int = 10,
    kinds: list[str] | None = None,
) -> list[ClaimedJob]:
    """Lease up to ``limit`` ready jobs to ``worker``, in the order they should run (see :func:`_pick`:
    priority first, then fairly across (tenant, channel) groups). Call inside a short transaction of its
    own.

    A claimed job whose previous lease had expired (its worker vanished) gets the history row of that
    lost attempt here, in the same transaction. Lost attempts of jobs that are not claimed (paused
    flows, other kinds) are written by :func:`record_lost_attempts` (the worker's periodic upkeep)."""
    picked = _pick(conn, now=now, limit=limit, kinds=kinds)
    if not picked:
        return []
    lost = [r for r in picked if r.state == JobState.RUNNING.value]
    if lost:
        _insert_lost_attempts(
            conn,
            [
                {
                    "job_id": r.id,
                    "attempt": r.replayed_attempts + r.attempts,
                    "worker": r.lease_owner or "unknown",
                    "started_at": r.updated_at,
                    "finished_at": now,
                    "outcome": "lease_expired",
                    "error": _LOST_REASON,
                }
                for r in lost
            ],
        )
    token = str(uuid.uuid4())
    rows = conn.execute(
        _CLAIM,
        {
            "b_ids": [r.id for r in picked],
            "b_worker": worker,
            "b_token": token,
            "b_expires": now + timedelta(seconds=lease_seconds),
            "b_now": now,
        },
    ).all()
    position = {r.id: index for index, r in enumerate(picked)}
    return [
        ClaimedJob(
            r.id,
            r.tenant_id,
            r.channel_id,
            r.flow,
            r.kind,
            dict(r.payload),
            r.attempts,
            r.max_attempts,
            token,
            r.dedupe_key,
            worker,
            now,
            r.replayed_attempts,
        )
        for r in sorted(rows, key=lambda r: position[r.id])
    ]


def _pg_ready(alias: str) -> str:
    """:func:`_ready_condition` as SQL text for the jobs row ``alias`` (bound parameter ``:b_now``)."""
    return (
        f"(({alias}.state = 'queued' AND {alias}.run_at <= :b_now)"
        f" OR ({alias}.state = 'running' AND {alias}.lease_expires_at < :b_now))"
        f" AND NOT EXISTS (SELECT 1 FROM channel_flows cf WHERE cf.channel_id = {alias}.channel_id"
        f" AND cf.flow = {alias}.flow AND cf.paused IS true)"
    )


_PICK_COLS = (
    "id, tenant_id, channel_id, priority, run_at, state, lease_owner, attempts, replayed_attempts, updated_at"
)
_ORDER = "priority, run_at, id"


def _pg_group(alias: str) -> str:
    """:func:`_group` as SQL text for the jobs row ``alias`` (the expression of ``ix_jobs_group_ready``)."""
    return f"coalesce({alias}.channel_id, 0)"


_GROUP_ORDER = f"nxt.tenant_id, {_pg_group('nxt')}, nxt.priority, nxt.run_at, nxt.id"
_NOT_ACKED = "id <> ALL(CAST(:b_ack_ids AS BIGINT[]))"

# PostgreSQL: the previous batch's acknowledgement and the next claim, in ONE statement (one round trip
# on an autocommit connection instead of four: BEGIN, ack, pick, claim, COMMIT). It does exactly what
# :func:`complete_many` then :func:`claim` do, the fair pick of :func:`_pick` included:
#
# * ``acked``: the fenced ``UPDATE ... FROM unnest(ids, results)`` of :func:`complete_many`;
# * ``top``/``group_heads``/``heads``/``fair``: the queue's first ``b_limit`` ready jobs, every
#   (tenant, channel) group's head (the recursive loose index scan of :func:`_group_heads`), and, when
#   several groups have work, each one's first ``ceil(b_limit / G)`` ready jobs (a LATERAL probe per
#   group); every read ``FOR UPDATE SKIP LOCKED``, none of them taking a job being acknowledged here;
# * ``chosen``: candidates ranked within their group and priority, the first ``b_limit`` by (priority,
#   rank, run_at, id) with their position (RETURNING does not keep an order);
# * ``lost``: the history rows of lost attempts of jobs taken over (values read before the update);
# * ``claimed``: the claim's write; the rows come back in claim order, the acknowledged ids in the
#   first row only (an array of hundreds of ids repeated on every row cost more than the claim).
#
# All of its parts see one snapshot; the acknowledged ids are excluded from the pick, so no row is
# written twice by the statement.
_ACK_AND_CLAIM_PG_SQL = f"""
WITH RECURSIVE
acked AS (
  UPDATE jobs SET state = 'succeeded', result = v.result, lease_owner = NULL, lease_token = NULL,
    lease_expires_at = NULL, finished_at = :b_now, updated_at = :b_now, last_error = NULL, error_kind = NULL
  FROM unnest(
    CAST(:b_ack_ids AS BIGINT[]),
    ARRAY(SELECT NULLIF(r.e, 'null') FROM jsonb_array_elements(CAST(:b_ack_results AS JSONB))
          WITH ORDINALITY AS r(e, n) ORDER BY r.n)
  ) AS v(id, result)
  WHERE jobs.id = v.id AND jobs.id = ANY(CAST(:b_ack_ids AS BIGINT[]))
    AND jobs.lease_token = :b_ack_token AND jobs.state = 'running'
  RETURNING jobs.id
),
group_heads(id, tenant_id, grp) AS (
  SELECT f.id, f.tenant_id, {_pg_group("f")} FROM jobs AS f
  WHERE f.id = (SELECT nxt.id FROM jobs AS nxt WHERE {_pg_ready("nxt")} ORDER BY {_GROUP_ORDER} LIMIT 1)
  UNION ALL
  SELECT n.id, n.tenant_id, n.grp FROM group_heads CROSS JOIN LATERAL (
    (SELECT nxt.id, nxt.tenant_id, {_pg_group("nxt")} AS grp FROM jobs AS nxt
     WHERE {_pg_ready("nxt")} AND nxt.tenant_id = group_heads.tenant_id
       AND {_pg_group("nxt")} > group_heads.grp
     ORDER BY {_GROUP_ORDER} LIMIT 1)
    UNION ALL
    (SELECT nxt.id, nxt.tenant_id, {_pg_group("nxt")} AS grp FROM jobs AS nxt
     WHERE {_pg_ready("nxt")} AND nxt.tenant_id > group_heads.tenant_id
     ORDER BY {_GROUP_ORDER} LIMIT 1)
    LIMIT 1
  ) AS n
),
top AS (
  SELECT {_PICK_COLS} FROM jobs WHERE {_pg_ready("jobs")} AND {_NOT_ACKED}
  ORDER BY {_ORDER} LIMIT :b_limit FOR UPDATE SKIP LOCKED
),
heads AS (
  SELECT {_PICK_COLS} FROM jobs
  WHERE jobs.id IN (SELECT group_heads.id FROM group_heads) AND {_pg_ready("jobs")} AND {_NOT_ACKED}
  ORDER BY {_ORDER} LIMIT :b_limit FOR UPDATE SKIP LOCKED
),
share AS (
  SELECT CASE WHEN count(*) > 1 THEN (CAST(:b_limit AS INTEGER) + count(*) - 1) / count(*) ELSE 0 END AS n
  FROM heads
),
fair AS (
  SELECT t.* FROM heads CROSS JOIN share CROSS JOIN LATERAL (
    SELECT {_PICK_COLS} FROM jobs
    WHERE {_pg_ready("jobs")} AND {_NOT_ACKED} AND jobs.tenant_id = heads.tenant_id
      AND {_pg_group("jobs")} = {_pg_group("heads")}
    ORDER BY {_ORDER} LIMIT share.n FOR UPDATE SKIP LOCKED
  ) AS t
  WHERE share.n > 1
  LIMIT 2 * CAST(:b_limit AS INTEGER)
),
candidates AS (SELECT * FROM top UNION SELECT * FROM heads UNION SELECT * FROM fair),
ranked AS (
  SELECT candidates.*,
    row_number() OVER (PARTITION BY tenant_id, channel_id, priority ORDER BY {_ORDER}) AS rank
  FROM candidates
),
chosen AS (
  SELECT ranked.*, row_number() OVER (ORDER BY priority, rank, run_at, id) AS pos FROM ranked
  ORDER BY priority, rank, run_at, id LIMIT :b_limit
),
lost AS (
  INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome, error)
  SELECT id, replayed_attempts + attempts, coalesce(lease_owner, 'unknown'), updated_at, :b_now,
         'lease_expired', :b_lost_reason
  FROM chosen WHERE state = 'running'
  ON CONFLICT DO NOTHING
),
claimed AS (
  UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, lease_owner = :b_worker,
    lease_token = :b_token, lease_expires_at = :b_expires, updated_at = :b_now
  WHERE jobs.id = ANY(ARRAY(SELECT chosen.id FROM chosen))
  RETURNING jobs.id, jobs.tenant_id, jobs.channel_id, jobs.flow, jobs.kind, jobs.payload, jobs.attempts,
    jobs.max_attempts, jobs.dedupe_key, jobs.replayed_attempts
)
SELECT CASE WHEN coalesce(chosen.pos, 1) = 1 THEN (SELECT array_agg(acked.id) FROM acked) END AS acked_ids,
  claimed.id, claimed.tenant_id, claimed.channel_id, claimed.flow, claimed.kind, claimed.payload,
  claimed.attempts, claimed.max_attempts, claimed.dedupe_key, claimed.replayed_attempts
FROM (SELECT 1) AS one LEFT JOIN (claimed JOIN chosen USING (id)) ON true
ORDER BY chosen.pos
"""
# Run with the driver's own parameter style (``exec_driver_sql``: no compilation per call) and read as
# the driver's tuples (no result-row objects for the hundreds of rows of a claim).
_ACK_AND_CLAIM_PG = re.sub(r"(?<![:\w]):(b_\w+)", r"%(\1)s", _ACK_AND_CLAIM_PG_SQL)


def ack_and_claim(
    conn: Connection,
    done: list[tuple[ClaimedJob, dict[str, Any] | None]],
    *,
    worker: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
) -> tuple[set[int], list[ClaimedJob]]:
    """:func:`complete_many` of ``done`` then :func:`claim` of up to ``limit`` jobs, with the same
    contracts (fenced acknowledgement; priority, then fairly across (tenant, channel) groups; lost
    attempts' history), returning (ids acknowledged, jobs claimed). On PostgreSQL in one statement, so
    it is atomic even on an autocommit connection; elsewhere the two calls in ``conn``'s transaction."""
    if not is_postgres(conn):
        acked = complete_many(conn, done, now=now)
        return acked, claim(conn, worker=worker, now=now, lease_seconds=lease_seconds, limit=limit)
    tokens = {job.lease_token for job, _ in done}
    if len(tokens) > 1:
        raise ValueError("ack_and_claim acknowledges the jobs of one claim (one lease token)")
    if now.tzinfo is None:
        raise ValueError("naive datetime refused: pass a timezone-aware value")
    token = str(uuid.uuid4())
    # Both sent as one text each (an array literal, a JSON array): far cheaper to encode than lists.
    result = conn.exec_driver_sql(
        _ACK_AND_CLAIM_PG,
        {
            "b_ack_ids": "{" + ",".join(str(job.id) for job, _ in done) + "}",
            "b_ack_results": json_dumps([result for _, result in done]),
            "b_ack_token": tokens.pop() if tokens else None,
            "b_now": now,
            "b_limit": limit,
            "b_lost_reason": _LOST_REASON,
            "b_worker": worker,
            "b_token": token,
            "b_expires": now + timedelta(seconds=lease_seconds),
        },
    )
    rows = result.cursor.fetchall()  # type: ignore[union-attr]
    result.close()
    acked = {int(i) for i in rows[0][0] or ()}
    claimed = [
        ClaimedJob(
            ident, tenant, channel, flow, kind, payload, attempts, most, token, dedupe, worker, now, replayed
        )
        for _, ident, tenant, channel, flow, kind, payload, attempts, most, dedupe, replayed in rows
        if ident is not None
    ]
    return acked, claimed


# The claim's write, built once: the picked rows are locked by this transaction (PostgreSQL) or the
# database write lock (SQLite), so they are still ready.
_CLAIM = (
    sa.update(jobs)
    .where(jobs.c.id.in_(sa.bindparam("b_ids", expanding=True)))
    .values(
        state=JobState.RUNNING.value,
        attempts=jobs.c.attempts + 1,
        lease_owner=sa.bindparam("b_worker"),
        lease_token=sa.bindparam("b_token"),
        lease_expires_at=sa.bindparam("b_expires", type_=jobs.c.lease_expires_at.type),
        updated_at=sa.bindparam("b_now", type_=jobs.c.updated_at.type),
    )
    .returning(
        jobs.c.id,
        jobs.c.tenant_id,
        jobs.c.channel_id,
        jobs.c.flow,
        jobs.c.kind,
        jobs.c.payload,
        jobs.c.attempts,
        jobs.c.max_attempts,
        jobs.c.dedupe_key,
        jobs.c.replayed_attempts,
    )
)

_LOST_REASON = "the worker stopped renewing its lease (killed or hung)"


def _insert_lost_attempts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if is_postgres(conn):
        conn.execute(postgresql.insert(job_attempts).on_conflict_do_nothing(), rows)
    else:
        conn.execute(sa.insert(job_attempts).prefix_with("OR IGNORE"), rows)


def record_lost_attempts(conn: Connection, *, now: datetime) -> None:
    """Write a history row for every attempt whose worker vanished (lease expired); once per attempt."""
    _record_lost_attempts(conn, now)


def _record_lost_attempts(conn: Connection, now: datetime) -> None:
    lost = sa.select(
        jobs.c.id,
        jobs.c.replayed_attempts + jobs.c.attempts,
        sa.func.coalesce(jobs.c.lease_owner, "unknown"),
        jobs.c.updated_at,
        sa.literal(now, type_=job_attempts.c.finished_at.type),
        sa.literal("lease_expired"),
        sa.literal(_LOST_REASON),
    ).where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < now)
    columns = ["job_id", "attempt", "worker", "started_at", "finished_at", "outcome", "error"]
    if is_postgres(conn):
        stmt: Any = postgresql.insert(job_attempts).from_select(columns, lost).on_conflict_do_nothing()
    else:
        stmt = sa.insert(job_attempts).prefix_with("OR IGNORE").from_select(columns, lost)
    conn.execute(stmt)


def _fenced(job: ClaimedJob) -> sa.ColumnElement[bool]:
    return sa.and_(
        jobs.c.id == job.id, jobs.c.lease_token == job.lease_token, jobs.c.state == JobState.RUNNING.value
    )


def _close_attempt(conn: Connection, job: ClaimedJob, now: datetime, outcome: str, error: str | None) -> None:
    """History of unsuccessful attempts (a success is the job row itself: state, attempts, finished_at)."""
    conn.execute(
        sa.insert(job_attempts).values(
            job_id=job.id,
            attempt=job.attempt_number,
            worker=job.worker,
            started_at=job.claimed_at or now,
            finished_at=now,
            outcome=outcome,
            error=error,
        )
    )


def holds_lease(conn: Connection, job: ClaimedJob) -> bool:
    return conn.execute(sa.select(jobs.c.id).where(_fenced(job))).first() is not None


def extend_lease(conn: Connection, job: ClaimedJob, *, now: datetime, lease_seconds: float) -> bool:
    """Push the lease forward; False means the lease was lost (another worker may own the job now)."""
    result = conn.execute(
        sa.update(jobs)
        .where(_fenced(job))
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
    )
    return result.rowcount == 1


class LeaseExtension(NamedTuple):
    """What one heartbeat did to a claim's jobs: ``extended`` (their lease pushed forward) and ``busy``
    (still this claim's, but locked by another transaction at that instant: left for the next beat)."""

    extended: set[int]
    busy: set[int]


def extend_leases(
    conn: Connection, held: list[ClaimedJob], *, now: datetime, lease_seconds: float
) -> LeaseExtension:
    """Push forward the lease of every job in ``held`` in one statement (a worker's whole claimed batch).

    All of ``held`` must come from one claim (they share its lease token). A job in neither set of the
    result is lost to this worker and must not be started.

    On PostgreSQL the statement locks its rows in id order and skips those it cannot lock at once
    (``ORDER BY id FOR UPDATE SKIP LOCKED`` in a subquery), so a heartbeat never waits on a row lock
    and takes part in no deadlock. Without it, it deadlocked (a) with a loop releasing the same jobs
    one by one in another order, and (b) three ways: an orders poll inserting jobs waited on the
    heartbeat's update, which waited on a handler's transaction holding its own job row (the fenced
    ``ctx.transaction()``), which waited on the order row the poll had just written. A row skipped
    that way is almost always locked by its own handler's transaction: it is reported ``busy`` (a plain
    read, which takes no lock, says it is still ours) and extended by a later beat; its lease holds
    meanwhile, since a beat comes every third of the lease. A job not started yet whose lease could
    not be extended in time is not started (the worker's margin), as when a beat fails."""
    if not held:
        return LeaseExtension(set(), set())
    tokens = {job.lease_token for job in held}
    if len(tokens) != 1:
        raise ValueError("extend_leases takes the jobs of one claim (one lease token)")
    ids = [job.id for job in held]
    ours = sa.and_(
        jobs.c.id.in_(ids), jobs.c.lease_token == tokens.pop(), jobs.c.state == JobState.RUNNING.value
    )
    lockable = sa.select(jobs.c.id).where(ours).order_by(jobs.c.id).with_for_update(skip_locked=True)
    rows = conn.execute(
        sa.update(jobs)
        .where(jobs.c.id.in_(lockable), ours)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        .returning(jobs.c.id)
    )
    extended = {int(r.id) for r in rows}
    busy: set[int] = set()
    if len(extended) < len(ids):
        busy = {int(i) for i in conn.execute(sa.select(jobs.c.id).where(ours)).scalars()} - extended
    return LeaseExtension(extended, busy)


def complete(
    conn: Connection, job: ClaimedJob, *, now: datetime, result: dict[str, Any] | None = None
) -> bool:
    """Mark succeeded. Returns False (and changes nothing) if this worker no longer holds the lease."""
    done = conn.execute(
        _COMPLETE, {"b_id": job.id, "b_token": job.lease_token, "b_result": result, "b_now": now}
    )
    return done.rowcount == 1


def complete_many(
    conn: Connection, done: list[tuple[ClaimedJob, dict[str, Any] | None]], *, now: datetime
) -> set[int]:
    """Mark succeeded every job of ``done`` (job, result) whose lease this worker still holds, whatever
    their number in one statement on PostgreSQL (``UPDATE ... FROM unnest(ids, results)``, fenced by
    the lease token), in two on SQLite (a fenced read under the write lock, then one ``executemany``).
    Returns the ids completed; a job missing from it was lost (its lease expired and another worker
    may own it) and nothing of it was changed.

    All of ``done`` must come from one claim (they share its lease token)."""
    if not done:
        return set()
    tokens = {job.lease_token for job, _ in done}
    if len(tokens) != 1:
        raise ValueError("complete_many takes the jobs of one claim (one lease token)")
    token = tokens.pop()
    if is_postgres(conn):  # one statement: the per-job results travel as two arrays
        rows = conn.execute(
            _COMPLETE_MANY_PG,
            {
                "b_ids": [job.id for job, _ in done],
                "b_results": [None if result is None else json_dumps(result) for _, result in done],
                "b_token": token,
                "b_now": now,
            },
        )
        return {int(r.id) for r in rows}
    held = {int(r.id) for r in conn.execute(_HELD, {"b_ids": [job.id for job, _ in done], "b_token": token})}
    params = [
        {"b_id": job.id, "b_token": token, "b_result": result, "b_now": now}
        for job, result in done
        if job.id in held
    ]
    if params:
        conn.execute(_COMPLETE, params)
    return held


_COMPLETE_MANY_PG = sa.text(
    "UPDATE jobs SET state = 'succeeded', result = v.result, lease_owner = NULL, lease_token = NULL,"
    " lease_expires_at = NULL, finished_at = :b_now, updated_at = :b_now, last_error = NULL,"
    " error_kind = NULL"
    " FROM unnest(CAST(:b_ids AS BIGINT[]), CAST(:b_results AS JSONB[])) AS v(id, result)"
    " WHERE jobs.id = v.id AND jobs.lease_token = :b_token AND jobs.state = 'running'"
    " RETURNING jobs.id"
).bindparams(sa.bindparam("b_now", type_=jobs.c.finished_at.type))

_HELD = sa.select(jobs.c.id).where(
    jobs.c.id.in_(sa.bindparam("b_ids", expanding=True)),
    jobs.c.lease_token == sa.bindparam("b_token"),
    jobs.c.state == JobState.RUNNING.value,
)


# The hot path's statement, built once (completing is the one write every job makes).
_COMPLETE = (
    sa.update(jobs)
    .where(
        jobs.c.id == sa.bindparam("b_id"),
        jobs.c.lease_token == sa.bindparam("b_token"),
        jobs.c.state == JobState.RUNNING.value,
    )
    .values(
        state=JobState.SUCCEEDED.value,
        result=sa.bindparam("b_result", type_=jobs.c.result.type),
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
        finished_at=sa.bindparam("b_now", type_=jobs.c.finished_at.type),
        updated_at=sa.bindparam("b_now", type_=jobs.c.updated_at.type),
        last_error=None,
        error_kind=None,
    )
)


def retry_later(
    conn: Connection,
    job: ClaimedJob,
    *,
    now: datetime,
    delay: float,
    error: str,
    count_attempt: bool = True,
) -> bool:
    """Put the job back in the queue to run after ``delay`` seconds.

    If a newer job with the same ``dedupe_key`` is already pending, this one is folded into it (the
    pending job is pushed back to this job's retry time, so a ``Retry-After`` is still honoured)."""
    run_at = now + timedelta(seconds=delay)
    extra: dict[str, Any] = {} if count_attempt else {"attempts": jobs.c.attempts - 1}
    done = _requeue(
        conn,
        job,
        now,
        run_at=run_at,
        **extra,
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
        last_error=error,
        error_kind=(ErrorKind.RETRYABLE if count_attempt else ErrorKind.THROTTLED).value,
        updated_at=now,
    )
    if done:
        if count_attempt:  # a throttled run is not an attempt: no history row (last_error shows it)
            _close_attempt(conn, job, now, "retry", error)
        return True
    return False


def release(conn: Connection, job: ClaimedJob, *, now: datetime) -> bool:
    """Give a claimed-but-unstarted job back (graceful shutdown): the attempt does not count."""
    done = _requeue(
        conn,
        job,
        now,
        attempts=jobs.c.attempts - 1,
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
        updated_at=now,
    )
    return done


def _requeue(conn: Connection, job: ClaimedJob, now: datetime, **values: Any) -> bool:
    """Fenced move back to ``queued``, coalescing into an already pending job with the same dedupe key."""
    try:
        with conn.begin_nested():
            done = conn.execute(
                sa.update(jobs).where(_fenced(job)).values(state=JobState.QUEUED.value, **values)
            )
        return done.rowcount == 1
    except sa.exc.IntegrityError:
        pass
    pending = conn.execute(
        sa.select(jobs.c.id, jobs.c.run_at).where(
            jobs.c.dedupe_key == job.dedupe_key, jobs.c.state == JobState.QUEUED.value
        )
    ).one()
    run_at = values.get("run_at")
    if isinstance(run_at, datetime) and run_at > pending.run_at:
        conn.execute(sa.update(jobs).where(jobs.c.id == pending.id).values(run_at=run_at, updated_at=now))
    done = conn.execute(
        sa.update(jobs)
        .where(_fenced(job))
        .values(
            state=JobState.CANCELLED.value,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
            last_error=f"coalesced into pending job {pending.id}",
            finished_at=now,
            updated_at=now,
        )
    )
    return done.rowcount == 1


def bury(conn: Connection, job: ClaimedJob, *, now: datetime, error: str, kind: ErrorKind) -> bool:
    """Move the job to the dead-letter list with its reason; its payload stays for replay."""
    done = conn.execute(
        sa.update(jobs)
        .where(_fenced(job))
        .values(
            state=JobState.DEAD.value,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
            last_error=error,
            error_kind=kind.value,
            finished_at=now,
            updated_at=now,
        )
    )
    if done.rowcount == 1:
        _close_attempt(conn, job, now, "dead", error)
        return True
    return False


def replay(conn: Connection, tenant_id: int, job_ids: list[int] | None, *, now: datetime) -> list[int]:
    """Re-queue dead jobs (all of the tenant's when ``job_ids`` is None) with a fresh attempt budget.

    History (attempts, last error) is kept. A dead job whose ``exclusive_key`` is held by another job in
    flight (e.g. a newer delivery of the same order) is not re-queued beside it: it is cancelled as
    superseded, with that job's id in its ``last_error``. Returns the ids actually re-queued."""
    cond = sa.and_(jobs.c.tenant_id == tenant_id, jobs.c.state == JobState.DEAD.value)
    if job_ids is not None:
        cond = sa.and_(cond, jobs.c.id.in_(job_ids))
    ids = [r.id for r in conn.execute(sa.select(jobs.c.id).where(cond).order_by(jobs.c.id))]
    replayed: list[int] = []
    for job_id in ids:
        values: dict[str, Any] = {
            "state": JobState.QUEUED.value,
            "replayed_attempts": jobs.c.replayed_attempts + jobs.c.attempts,  # history numbering goes on
            "attempts": 0,
            "run_at": now,
            "finished_at": None,
            "updated_at": now,
        }
        try:
            with conn.begin_nested():
                conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(**values))
        except sa.exc.IntegrityError:
            if _supersede(conn, job_id, now):
                continue
            # Another job with this dedupe key is pending; the replay runs beside it, uncoalesced.
            conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(dedupe_key=None, **values))
        replayed.append(job_id)
    return replayed


def _supersede(conn: Connection, job_id: int, now: datetime) -> bool:
    """Cancel dead job ``job_id`` if another job holding its ``exclusive_key`` is in flight."""
    key = conn.execute(sa.select(jobs.c.exclusive_key).where(jobs.c.id == job_id)).scalar()
    holder = None if key is None else _in_flight(conn, key)
    if holder is None:
        return False
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.DEAD.value)
        .values(
            state=JobState.CANCELLED.value,
            last_error=f"superseded: job {holder} doing the same work ({key}) is already in flight",
            finished_at=now,
            updated_at=now,
        )
    )
    return True


def recover_expired(conn: Connection, *, now: datetime) -> int:
    """Expired leases of jobs that used up their attempts go to dead letters (worker crashed each time)."""
    rows = conn.execute(
        sa.update(jobs)
        .where(
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.lease_expires_at < now,
            jobs.c.attempts >= jobs.c.max_attempts,
        )
        .values(
            state=JobState.DEAD.value,
            last_error="worker lost the job (crash or kill) on every attempt",
            error_kind=ErrorKind.CRASH.value,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return rows.rowcount
