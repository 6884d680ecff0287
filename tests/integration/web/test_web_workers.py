"""The Overview page shows the live workers and how long the oldest due job has waited."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from webtest_support import login

from tradelane.persistence.tables import jobs
from tradelane.sync import liveness


def test_overview_shows_live_workers_and_a_stalled_queue(client, shops, container, now):
    with container.engine.begin() as conn:  # the tenant's queued job has been due for 7 minutes
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == shops.acme.queued_job_id)
            .values(run_at=now - timedelta(minutes=7))
        )
    login(client, shops.acme.token)
    text = client.get("/dashboard").text
    assert "Live workers" in text
    assert "no live worker while 1 job due" in text and "oldest due job waiting 7m 0s" in text

    with container.engine.begin() as conn:
        liveness.beat(conn, liveness.WorkerBeat("host-a:4242", "host-a", 4242, now, 20.0), now=now)
    text = client.get("/dashboard").text
    assert "no live worker" not in text
    assert "host-a:4242" in text and "oldest due job waiting 7m 0s" in text
