"""The queries of the job pages and of the monitoring (readyz, /metrics' due-job gauges, the watchdog,
the Overview's workers card, ``jobs list``/``jobs dead``) read a tenant's backlog, dead letters or
cancelled jobs, never the whole job history.

Revision 0011 dropped ``ix_jobs_ready`` (state, run_at, priority); these queries now rely on the
partial indexes (``ix_jobs_claim_order``, ``ix_jobs_tenant_ready``, ``ix_jobs_lease``, ``ix_jobs_dead``,
``ix_jobs_cancelled``) and on :func:`tradelane.services.job_queries.list_jobs` reading a few-jobs state
before sorting it. The PostgreSQL test counts the job rows each statement reads (``EXPLAIN ANALYZE``)
on 200,000 jobs, most of them succeeded, with the backlog and the dead letters in one tenant's oldest
rows: the shape on which the planner walks the whole history newest-first hoping to fill a page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from helpers import make_channel, make_tenant
from tradelane.persistence.tables import jobs
from tradelane.services import job_queries
from tradelane.sync import liveness

JOBS = 200_000
#: Among the first (oldest) ids, one job in 20 is queued, one in 20 dead, one in 20 cancelled, one in 200
#: running (all the busy tenant's); every other job succeeded. So many that the planner expects a page
#: of them early in a newest-first walk of any tenant's jobs, and so old that such a walk reads them last.
OLD = 40_000


def _job(tenant_id: int, state: str, n: int, now: datetime, **extra: Any) -> dict[str, Any]:
    at = now - timedelta(minutes=n)
    finished = None if state in {"queued", "running"} else at
    return {
        "tenant_id": tenant_id,
        "kind": "system.noop",
        "payload": {},
        "state": state,
        "attempts": 1,
        "max_attempts": 8,
        "run_at": at,
        "created_at": at,
        "updated_at": at,
        "finished_at": finished,
        **extra,
    }


def test_list_jobs_pages_each_state_newest_first_with_the_filters(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    other, _ = make_tenant(engine, "other", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    states = ["queued", "running", "dead", "cancelled", "succeeded"]
    rows = [
        _job(tenant.id, states[n % 5], n, now, kind="a" if n % 2 else "b", channel_id=channel.id)
        for n in range(40)
    ]
    rows += [_job(other.id, state, 0, now, channel_id=None) for state in states]
    with engine.begin() as conn:
        conn.execute(sa.insert(jobs), rows)
    with engine.connect() as conn:
        mine = {r.id: r for r in conn.execute(sa.select(jobs).where(jobs.c.tenant_id == tenant.id)).all()}
        for state in states:
            expected = sorted((i for i, r in mine.items() if r.state == state), reverse=True)
            page = job_queries.list_jobs(conn, tenant.id, state=state, limit=3, offset=2)
            assert [v.id for v in page] == expected[2:5], state
            assert {v.state for v in page} == {state} and {v.channel for v in page} == {"shop"}
            kind_a = job_queries.list_jobs(conn, tenant.id, state=state, kind="a", channel="shop")
            assert [v.id for v in kind_a] == [i for i in expected if mine[i].kind == "a"], state
            assert job_queries.list_jobs(conn, tenant.id, state=state, channel="elsewhere") == []
        everything = job_queries.list_jobs(conn, tenant.id, limit=100)
        assert [v.id for v in everything] == sorted(mine, reverse=True)


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows of ``jobs`` a plan read from the table (returned or filtered out), over all its loops."""
    total = 0
    if plan.get("Relation Name") == "jobs":
        loops = int(plan.get("Actual Loops", 1))
        per_loop = (
            plan.get("Actual Rows", 0)
            + plan.get("Rows Removed by Filter", 0)
            + plan.get("Rows Removed by Index Recheck", 0)
        )
        total += int(per_loop * loops)
    for child in plan.get("Plans", []):
        total += _rows_read(child)
    return total


@pytest.fixture
def history(engine: Engine, now: datetime) -> Iterator[tuple[int, int]]:
    """200,000 jobs of two tenants: ``busy`` (every 2nd job) holds the backlog, dead letters and
    cancelled jobs among its oldest ids; ``quiet`` (the others) only succeeded ones. Yields both ids;
    the rows are deleted and the table vacuumed afterwards (the session's database is shared)."""
    busy, _ = make_tenant(engine, "busy", now)
    quiet, _ = make_tenant(engine, "quiet", now)
    fill = sa.text(
        """
        INSERT INTO jobs (tenant_id, kind, payload, state, priority, attempts, max_attempts,
                          replayed_attempts, run_at, created_at, updated_at, finished_at,
                          lease_expires_at)
        SELECT CASE WHEN g % 2 = 0 THEN :busy ELSE :quiet END, 'system.noop', '{}'::jsonb, s.state,
               100, 1, 8, 0, :now - make_interval(secs => :n - g), :now - make_interval(secs => :n - g),
               :now, CASE WHEN s.state IN ('queued', 'running') THEN NULL ELSE :now END,
               CASE WHEN s.state = 'running' THEN :now - interval '1 minute' END
        FROM generate_series(1, :n) AS g,
        LATERAL (SELECT CASE
            WHEN g > :old OR g % 2 = 1 THEN 'succeeded'
            WHEN g % 20 = 0 THEN 'queued' WHEN g % 20 = 2 THEN 'dead' WHEN g % 20 = 4 THEN 'cancelled'
            WHEN g % 200 = 6 THEN 'running'
            ELSE 'succeeded' END AS state) AS s
        """
    )
    with engine.begin() as conn:
        conn.execute(fill, {"busy": busy.id, "quiet": quiet.id, "now": now, "n": JOBS, "old": OLD})
    autocommit = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        # The shape under test, not an earlier test's: a test that queued 100,000 jobs and deleted them
        # leaves the partial indexes that many pages long (VACUUM frees pages, it does not give them
        # back), and a planner costing such an index scan may prefer a parallel scan of the table.
        autocommit.exec_driver_sql("REINDEX TABLE jobs")
        autocommit.exec_driver_sql("VACUUM ANALYZE jobs")
        yield busy.id, quiet.id
    finally:
        autocommit.exec_driver_sql("DELETE FROM jobs")
        autocommit.exec_driver_sql("VACUUM ANALYZE jobs")
        autocommit.close()


@pytest.mark.pg_only
def test_the_monitoring_queries_read_the_backlog_not_the_history(
    engine: Engine, now: datetime, history: tuple[int, int]
) -> None:
    busy, quiet = history
    calls: dict[str, Callable[[Connection], object]] = {
        "queue_health": lambda c: liveness.queue_health(c, now=now),
        "queue_health_of_a_tenant": lambda c: liveness.queue_health(c, now=now, tenant_id=quiet),
        "watchdog_tenants_due": lambda c: liveness._tenants_with_due_jobs(c, now),
    }
    for tenant in (busy, quiet):
        for state in sorted(job_queries.FEW_STATES):
            calls[f"list_{state}_{tenant}"] = lambda c, t=tenant, s=state: job_queries.list_jobs(
                c, t, state=s, limit=51
            )
        calls[f"list_dead_page_3_{tenant}"] = lambda c, t=tenant: job_queries.list_jobs(
            c, t, state="dead", limit=51, offset=102
        )
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if not statement.startswith("EXPLAIN") and " jobs" in statement:
            statements.append((statement, params))

    # What the busy tenant holds besides succeeded jobs: 2,000 queued, dead and cancelled each, 200 running.
    backlog = 3 * (OLD // 20) + OLD // 200
    read: dict[str, int] = {}
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.connect() as conn:
            for label, call in calls.items():
                statements.clear()
                call(conn)
                assert statements, label
                for number, (statement, params) in enumerate(list(statements)):
                    [[plan]] = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params
                    ).one()
                    read[f"{label}#{number}"] = _rows_read(plan["Plan"])
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    too_many = {label: rows for label, rows in read.items() if rows > backlog}
    assert not too_many, f"read more job rows than the backlog ({backlog}): {too_many}"
