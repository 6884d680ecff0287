"""Operator walk fixes, through the command line (same process, real database) and the API:

* `jobs show` and the API's job detail of a job that succeeded at once do not read as contradictory
  (``attempts: 1`` with an empty, failures-only ``history``): the succeeded attempt, as the job row
  tells it, is ``current_attempt``;
* `offers list` and `jobs list`/`jobs dead` cut long errors in their table, mark the cut ("…"), say
  how many were cut and how to see them whole (``--full``, ``--json``), and ``--full`` shows them whole.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from tradelane.bootstrap import build
from tradelane.cli import build_app
from tradelane.config import Settings
from tradelane.persistence.tables import offer_bindings, products
from tradelane.security.crypto import generate_key
from tradelane.sync import jobs as jobstore
from tradelane.web.app import create_app

#: A marketplace error longer than a table cell shows, with words easy to find in a wrapped table.
LONG_ERROR = (
    "2034|The price of the offer is lower than the minimum price allowed for this category (12.00 EUR); "
    "2041|The product reference EAN 4006381333931 is unknown in the operator catalog; END-OF-REASON"
)


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return run


def _claim(engine, kind: str, now: datetime) -> jobstore.ClaimedJob:
    with engine.begin() as conn:
        [claimed] = jobstore.claim(conn, worker="w-polish", now=now, lease_seconds=30, kinds=[kind])
    return claimed


def _succeeded_at_once(engine, tenant_id: int, now: datetime, done_at: datetime) -> int:
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant_id, "test.ok", {"n": 1}), now=now).job_id
    claimed = _claim(engine, "test.ok", now)
    with engine.begin() as conn:
        assert jobstore.complete(conn, claimed, now=done_at, result={"ok": True})
    return job_id


def _succeeded_second_time(engine, tenant_id: int, now: datetime) -> int:
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant_id, "test.flaky", {}), now=now).job_id
    first = _claim(engine, "test.flaky", now)
    with engine.begin() as conn:
        assert jobstore.retry_later(conn, first, now=now + timedelta(seconds=1), delay=0, error="HTTP 503")
    second = _claim(engine, "test.flaky", now + timedelta(seconds=2))
    with engine.begin() as conn:
        assert jobstore.complete(conn, second, now=now + timedelta(seconds=3), result={})
    return job_id


def test_jobs_show_gives_the_attempt_that_succeeded_at_once(cli, engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    done_at = now + timedelta(seconds=5)
    job_id = _succeeded_at_once(engine, tenant.id, now, done_at)

    detail = json.loads(cli("jobs", "show", str(job_id), "--tenant", "acme"))
    assert (detail["state"], detail["attempts"], detail["history"]) == ("succeeded", 1, [])
    current = detail["current_attempt"]
    assert current is not None, "attempts: 1 with no attempt shown anywhere"
    assert (current["attempt"], current["outcome"], current["error"]) == (1, "succeeded", None)
    assert (
        datetime.fromisoformat(current["finished_at"])
        == done_at
        == datetime.fromisoformat(detail["finished_at"])
    )
    assert detail["replayed_attempts"] == 0


def test_jobs_show_of_a_retried_job_has_the_failure_in_history_and_the_success_apart(cli, engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    job_id = _succeeded_second_time(engine, tenant.id, now)

    detail = json.loads(cli("jobs", "show", str(job_id), "--tenant", "acme"))
    assert detail["attempts"] == 2
    assert [(h["attempt"], h["outcome"], h["error"]) for h in detail["history"]] == [(1, "retry", "HTTP 503")]
    assert (detail["current_attempt"]["attempt"], detail["current_attempt"]["outcome"]) == (2, "succeeded")


def test_jobs_show_of_a_queued_job_has_no_attempt(cli, engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "test.ok", {}), now=now).job_id
    detail = json.loads(cli("jobs", "show", str(job_id), "--tenant", "acme"))
    assert (detail["attempts"], detail["history"], detail["current_attempt"]) == (0, [], None)


def test_the_api_job_detail_gives_the_attempt_that_succeeded_at_once(db_url, engine, now):
    tenant, token = make_tenant(engine, "acme", now)
    done_at = now + timedelta(seconds=5)
    job_id = _succeeded_at_once(engine, tenant.id, now, done_at)
    retried = _succeeded_second_time(engine, tenant.id, now)
    container = build(Settings(database_url=db_url, secret_keys=generate_key()), configure_logs=False)
    try:
        with TestClient(create_app(container)) as client:
            auth = {"Authorization": f"Bearer {token}"}
            body = client.get(f"/api/v1/jobs/{job_id}", headers=auth).json()
            again = client.get(f"/api/v1/jobs/{retried}", headers=auth).json()
    finally:
        container.close()
    assert (body["attempts"], body["history"], body["replayed_attempts"]) == (1, [], 0)
    current = body["current_attempt"]
    assert (current["attempt"], current["outcome"], current["worker"]) == (1, "succeeded", None)
    assert datetime.fromisoformat(current["finished_at"].replace("Z", "+00:00")) == done_at
    assert [h["outcome"] for h in again["history"]] == ["retry"]
    assert (again["current_attempt"]["attempt"], again["current_attempt"]["outcome"]) == (2, "succeeded")


# --- long errors in tables ----------------------------------------------------------------------


def _squeezed(text: str) -> str:
    """``text`` without whitespace: a narrow column may wrap inside a word (a long id or code)."""
    return "".join(text.split())


def _error_cells(table: str) -> list[str]:
    """The last column of each row of a rich table, its wrapped lines joined with spaces."""
    rows: list[list[str]] = []
    for line in table.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells[0]:
            rows.append([])
        if rows and cells[-1]:
            rows[-1].append(cells[-1])
    return [" ".join(parts) for parts in rows]


@pytest.fixture
def offers_with_errors(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.begin() as conn:
        for sku, error in (("SKU-LONG", LONG_ERROR), ("SKU-SHORT", "price too low"), ("SKU-OK", None)):
            product_id = conn.execute(
                sa.insert(products)
                .values(
                    tenant_id=tenant.id, sku=sku, title=sku, price=Decimal("9.90"), currency="EUR",
                    quantity=3, labels=[], attributes={}, content_hash=sku, created_at=now, updated_at=now,
                )
                .returning(products.c.id)
            ).scalar_one()  # fmt: skip
            conn.execute(
                sa.insert(offer_bindings).values(
                    tenant_id=tenant.id,
                    channel_id=channel.id,
                    product_id=product_id,
                    status="error" if error else "published",
                    last_error=error,
                )
            )
    return tenant


def test_offers_list_says_an_error_is_cut_and_full_shows_it_whole(cli, offers_with_errors):
    table = cli("offers", "list", "--tenant", "acme")
    cells = _error_cells(table)
    assert len(cells) == 3
    assert cells[0].endswith("…") and "END-OF-REASON" not in cells[0]
    assert cells[0].replace(" ", "").rstrip("…") == LONG_ERROR[:80].replace(" ", "").rstrip()
    assert cells[1:] == ["price too low", ""]  # not cut: no mark
    flat = " ".join(table.split())
    assert "1 error(s) cut at 80 characters" in flat and "--full shows them whole, as does --json" in flat

    full = cli("offers", "list", "--tenant", "acme", "--full")
    assert _squeezed(_error_cells(full)[0]) == _squeezed(LONG_ERROR)
    assert "cut at" not in full and "…" not in full

    listed = json.loads(cli("offers", "list", "--tenant", "acme", "--json"))
    assert [o["last_error"] for o in listed] == [LONG_ERROR, "price too low", None]


def test_offers_list_without_a_long_error_says_nothing_about_cuts(cli, offers_with_errors, engine):
    with engine.begin() as conn:
        conn.execute(sa.update(offer_bindings).values(last_error="short"))
    table = cli("offers", "list", "--tenant", "acme")
    assert "cut at" not in table and "…" not in table


def test_jobs_lists_say_an_error_is_cut_and_full_shows_it_whole(cli, engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    several_lines = "first line of the reason\nTraceback: second line"
    for kind, error in (("test.long", LONG_ERROR), ("test.lines", several_lines)):
        with engine.begin() as conn:
            jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, kind, {}), now=now)
        claimed = _claim(engine, kind, now)
        with engine.begin() as conn:
            jobstore.bury(conn, claimed, now=now, error=error, kind=jobstore.ErrorKind.PERMANENT)

    for command in (("jobs", "dead"), ("jobs", "list")):
        table = cli(*command, "--tenant", "acme")
        cells = _error_cells(table)  # newest first
        assert cells[0] == "first line of the reason…"
        assert cells[1].endswith("…") and "END-OF-REASON" not in cells[1]
        assert "2 error(s) cut at 80 characters" in " ".join(table.split())
        full = _error_cells(cli(*command, "--tenant", "acme", "--full"))
        assert _squeezed(full[0]) == _squeezed(several_lines)
        assert _squeezed(full[1]) == _squeezed(LONG_ERROR)
