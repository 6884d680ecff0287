"""`tradelane jobs ...`: the queue and its dead letters."""

from __future__ import annotations

import typer
from rich.table import Table

from tradelane.cli.common import console, container, cut_errors_note, dumps, error_cell, fail, print_json
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.services.job_queries import get_job, list_jobs
from tradelane.services.orders import enum_value
from tradelane.services.tenants import get_tenant
from tradelane.sync import jobs as jobstore

jobs_app = typer.Typer(help="Jobs, dead letters and replays.", no_args_is_help=True)

TenantOpt = typer.Option(..., "--tenant", "-t", help="Tenant name.")


FullOpt = typer.Option(
    False, "--full", help="Show each last error whole (the table cuts them at 80 characters)."
)


def _print_table(rows: list[dict[str, object]], *, full: bool) -> None:
    """The jobs as a table; errors cut by :func:`error_cell` unless ``full``, and a line saying so."""
    table = Table("id", "kind", "state", "channel", "attempts", "run at")
    table.add_column("last error", overflow="fold")
    cut = 0
    for r in rows:
        error, was_cut = error_cell(str(r["last_error"]) if r["last_error"] else None, full=full)
        cut += was_cut
        table.add_row(
            str(r["id"]),
            str(r["kind"]),
            str(r["state"]),
            str(r["channel"] or ""),
            f"{r['attempts']}/{r['max_attempts']}",
            str(r["run_at"]),
            error,
        )
    console.print(table)
    if note := cut_errors_note(cut):
        console.print(note, highlight=False, soft_wrap=True)


@jobs_app.command("list")
def jobs_list(
    tenant: str = TenantOpt,
    state: str | None = typer.Option(
        None, "--state", help="Only jobs in this state: " + ", ".join(s.value for s in jobstore.JobState)
    ),
    kind: str | None = typer.Option(None, "--kind"),
    channel: str | None = typer.Option(None, "--channel"),
    limit: int = typer.Option(50, "--limit"),
    full: bool = FullOpt,
    as_json: bool = typer.Option(False, "--json", help="Every field, errors whole."),
) -> None:
    """List jobs, newest first; last errors cut to their first line and 80 characters unless --full or
    --json (`jobs show ID` gives one job whole). An unknown --state is a usage error (exit 2) listing
    the valid ones."""
    try:
        wanted = enum_value(jobstore.JobState, state, "job state")
    except ValidationError as exc:
        fail(f"--state: {exc}", code=2)
    with container() as app, app.engine.connect() as conn:
        tenant_id = get_tenant(conn, tenant).id
        rows = [
            j.as_dict()
            for j in list_jobs(conn, tenant_id, state=wanted, kind=kind, channel=channel, limit=limit)
        ]
    if as_json:
        print_json(rows)
    else:
        _print_table(rows, full=full)


@jobs_app.command("dead")
def jobs_dead(
    tenant: str = TenantOpt,
    limit: int = typer.Option(100, "--limit"),
    full: bool = FullOpt,
    as_json: bool = typer.Option(False, "--json", help="Every field, errors whole."),
) -> None:
    """List dead letters (jobs that failed permanently or ran out of attempts); errors cut as in
    `jobs list` unless --full or --json."""
    with container() as app, app.engine.connect() as conn:
        tenant_id = get_tenant(conn, tenant).id
        rows = [
            j.as_dict() for j in list_jobs(conn, tenant_id, state=jobstore.JobState.DEAD.value, limit=limit)
        ]
    if as_json:
        print_json(rows)
    else:
        _print_table(rows, full=full)
        console.print(f"{len(rows)} dead letter(s)")


@jobs_app.command("show")
def jobs_show(job_id: int, tenant: str = TenantOpt) -> None:
    """Print one job as JSON: payload, result, last error (whole) and its attempts. ``history`` records
    failed, retried and lost attempts only (a success writes no history row); the attempt the job row
    itself describes — the one that succeeded, or the running one — is ``current_attempt``, so a job
    that succeeded at once shows ``attempts: 1``, ``history: []`` and that attempt there."""
    with container() as app, app.engine.connect() as conn:
        detail = get_job(conn, get_tenant(conn, tenant).id, job_id)
    typer.echo(dumps(detail.as_dict()))


@jobs_app.command("replay")
def jobs_replay(
    job_id: int | None = typer.Argument(None, help="Dead job to replay."),
    tenant: str = TenantOpt,
    replay_all: bool = typer.Option(False, "--all", help="Replay every dead letter of the tenant."),
) -> None:
    """Put dead letters back in the queue with a fresh attempt budget."""
    if (job_id is None) == (not replay_all):
        fail("give exactly one of JOB_ID or --all")
    why = ""
    with container() as app, app.engine.begin() as conn:
        tenant_id = get_tenant(conn, tenant).id
        ids = jobstore.replay(conn, tenant_id, None if replay_all else [job_id or 0], now=app.now())
        if job_id is not None and not ids:
            try:
                view = get_job(conn, tenant_id, job_id).job
            except NotFoundError:
                view = None
            # A dead job superseded by one doing the same work in flight was cancelled: say why.
            if view is not None and view.state == "cancelled" and view.last_error:
                why = f" ({view.last_error})"
    if job_id is not None and not ids:
        fail(f"job {job_id} is not a dead letter of tenant {tenant!r}{why}")
    console.print(f"replayed {len(ids)} job(s): {', '.join(map(str, ids))}")


@jobs_app.command("enqueue")
def jobs_enqueue(
    kind: str,
    tenant: str = TenantOpt,
    payload: str = typer.Option("{}", "--payload", help="JSON object."),
    key: str | None = typer.Option(None, "--idempotency-key"),
) -> None:
    """Enqueue a job by kind (e.g. `system.noop` to check the pipeline end to end)."""
    import json

    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        fail(f"--payload is not JSON: {exc}")
    if not isinstance(data, dict):
        fail("--payload must be a JSON object")
    with container() as app, app.engine.begin() as conn:
        if kind not in app.registry.kinds():
            fail(f"unknown job kind {kind!r}; known: {', '.join(app.registry.kinds())}")
        tenant_id = get_tenant(conn, tenant).id
        result = jobstore.enqueue(
            conn,
            jobstore.JobSpec(tenant_id=tenant_id, kind=kind, payload=data, idempotency_key=key),
            now=app.now(),
        )
    typer.echo(str(result.job_id))
