"""A job handler plugin for process-level tests (loaded through TRADELANE_PLUGINS).

``probe.effect`` sleeps ``payload["sleep"]`` seconds, then writes one row to ``probe_effects`` and
completes the job in the same fenced transaction.
"""

from __future__ import annotations

import os
import time

import sqlalchemy as sa

from tradelane.sync.context import JobContext
from tradelane.sync.registry import JobRegistry

PROBE_DDL = "CREATE TABLE probe_effects (job_id BIGINT NOT NULL, worker VARCHAR(50) NOT NULL)"


def effect(ctx: JobContext) -> None:
    time.sleep(float(ctx.job.payload.get("sleep", 0)))
    with ctx.transaction() as conn:
        conn.execute(
            sa.text("INSERT INTO probe_effects (job_id, worker) VALUES (:job, :worker)"),
            {"job": ctx.job.id, "worker": str(os.getpid())},
        )
        ctx.complete_in(conn)


def register(registry: JobRegistry) -> None:
    registry.register("probe.effect", effect)
