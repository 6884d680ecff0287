"""The job page's attempt count, last attempt and history agree: a succeeded job (no history row) is not
"never attempted", a queued one is "not yet attempted", a replayed one says so."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from webtest_support import login

from tradelane.services.job_queries import get_job
from tradelane.sync import jobs as jobstore


def _page(client, job_id: int) -> str:
    answer = client.get(f"/dashboard/jobs/{job_id}")
    assert answer.status_code == 200
    return html.unescape(answer.text)


def _last_attempt(page: str) -> str:
    found = re.search(r"<dd data-last-attempt>(.*?)</dd>", page, re.S)
    assert found is not None
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def _detail(container, tenant_id: int, job_id: int):
    with container.engine.connect() as conn:
        return get_job(conn, tenant_id, job_id)


def _enqueue_and_claim(container, tenant_id: int, kind: str, now):
    with container.engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant_id, kind, {}), now=now).job_id
    with container.engine.begin() as conn:
        [claimed] = jobstore.claim(conn, worker="w-page", now=now, lease_seconds=30, kinds=[kind])
    return job_id, claimed


def test_a_queued_job_is_not_yet_attempted_everywhere(client, shops, container):
    login(client, shops.acme.token)
    job_id = shops.acme.queued_job_id
    detail = _detail(container, shops.acme.tenant_id, job_id)
    assert detail.job.attempts == 0 and detail.timeline == [] and detail.last_attempt_at is None
    page = _page(client, job_id)
    assert _last_attempt(page) == "not yet attempted"
    assert "Not yet attempted." in page


def test_a_job_that_succeeded_at_once_shows_its_attempt(client, shops, container, now):
    login(client, shops.acme.token)
    done_at = now + timedelta(seconds=5)
    job_id, claimed = _enqueue_and_claim(container, shops.acme.tenant_id, "test.ok", now)
    running = _detail(container, shops.acme.tenant_id, job_id)
    assert [(a.attempt, a.outcome, a.worker) for a in running.timeline] == [(1, "running", "w-page")]
    assert _last_attempt(_page(client, job_id)) == "#1 in progress on w-page"
    with container.engine.begin() as conn:
        assert jobstore.complete(conn, claimed, now=done_at, result={"ok": True})

    detail = _detail(container, shops.acme.tenant_id, job_id)
    assert detail.job.attempts == 1 and detail.attempts == []  # a success writes no history row...
    assert [(a.attempt, a.outcome, a.finished_at) for a in detail.timeline] == [(1, "succeeded", done_at)]
    assert detail.last_attempt_at == done_at  # ...the job row dates it
    assert detail.as_dict()["last_attempt_at"] == done_at
    page = _page(client, job_id)
    assert "Never attempted" not in page and "Not yet attempted" not in page
    assert _last_attempt(page) == f"#1 succeeded {done_at:%Y-%m-%d %H:%M:%S} UTC"


def test_a_failed_then_replayed_job_counts_again_from_zero_and_says_so(client, shops, container, now):
    login(client, shops.acme.token)
    job_id = shops.acme.dead_job_id  # buried on its first attempt
    dead = _detail(container, shops.acme.tenant_id, job_id)
    assert [(a.attempt, a.outcome) for a in dead.timeline] == [(1, "dead")]
    assert dead.last_attempt_at == dead.attempts[0].finished_at
    with container.engine.begin() as conn:
        jobstore.replay(conn, shops.acme.tenant_id, [job_id], now=now + timedelta(minutes=1))
    detail = _detail(container, shops.acme.tenant_id, job_id)
    assert (detail.job.attempts, detail.replayed_attempts, detail.last_attempt) == (0, 1, None)
    page = _page(client, job_id)
    assert _last_attempt(page) == "not yet attempted since the replay"
    assert "since the last replay (1 before it)" in page
    assert "ACME marketplace said no" in page  # the earlier attempt stays in the history


def test_the_api_gives_the_last_attempt_time(client, shops, container, now):
    job_id, claimed = _enqueue_and_claim(container, shops.acme.tenant_id, "test.retry", now)
    with container.engine.begin() as conn:
        jobstore.retry_later(conn, claimed, now=now + timedelta(seconds=2), delay=60, error="503")
    auth = {"Authorization": f"Bearer {shops.acme.token}"}
    body = client.get(f"/api/v1/jobs/{job_id}", headers=auth).json()
    assert body["attempts"] == 1 and [h["outcome"] for h in body["history"]] == ["retry"]
    assert body["last_attempt_at"].startswith(f"{now + timedelta(seconds=2):%Y-%m-%dT%H:%M:%S}")
