"""`tradelane channel reconcile` (the reconciler's dry run, and enabling it by confirming one) and
`tradelane channel id-match` (the unique-ID match of the marketplace's listings with the catalog).

Both read the marketplace through a job run here, in this process (the channel's durable budget
applies, as for any worker), then print what was stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import typer
from rich.table import Table

from tradelane.bootstrap import Container
from tradelane.cli.channels import TenantOpt, channel_app, resolve_channel
from tradelane.cli.common import console, container, fail, print_json
from tradelane.persistence.tables import jobs
from tradelane.services import audit, id_match, id_match_conflicts, reconciler

#: SKUs shown per group in the table output (``--json`` gives them all).
SAMPLE = 10


def run_job_here(app: Container, job_id: int, timeout_seconds: float = 600.0) -> dict[str, Any]:
    """Run ready jobs in this process until job ``job_id`` is finished; its result, or exit 2 with the
    job's error (a skipped job — e.g. a disabled channel — is an error here too). While the job waits
    (the channel's rate budget, a retry's backoff) it says so, with why and until when, once per wait."""
    from tradelane.sync.worker import Worker, WorkerConfig

    s = app.settings
    config = WorkerConfig(
        batch_size=s.worker_batch_size,
        lease_seconds=s.worker_lease_seconds,
        backoff_base=s.job_backoff_base_seconds,
        backoff_cap=s.job_backoff_cap_seconds,
        schedule=False,
    )
    worker = Worker(app.engine, app.registry, app.now, config, services=dict(app.extras))
    deadline = time.monotonic() + timeout_seconds
    told: str | None = None
    while True:
        with app.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs.c.state, jobs.c.last_error, jobs.c.result, jobs.c.run_at).where(
                    jobs.c.id == job_id
                )
            ).one()
        if row.state not in ("queued", "running"):
            break
        if row.state == "queued" and row.last_error and row.run_at > app.now():
            why = row.last_error.strip().splitlines()[0]
            notice = (
                f"job {job_id} waits ({why}); it runs again at {row.run_at:%H:%M:%S} UTC — stopping now "
                "leaves it to a worker"
            )
            if notice != told:
                console.print(notice, highlight=False, soft_wrap=True)
                told = notice
        if time.monotonic() > deadline:
            fail(f"job {job_id} is still {row.state} after {timeout_seconds:g}s; a worker will finish it")
        if worker.run_once() == 0:
            time.sleep(0.2)
    if row.state != "succeeded":
        first_line = (row.last_error or "").strip().splitlines()[:1]
        fail(f"job {job_id} {row.state}: {first_line[0] if first_line else 'no error recorded'}", code=2)
    result = dict(row.result or {})
    if "skipped" in result:
        fail(f"job {job_id} did nothing: {result['skipped']}", code=2)
    return result


def _print_report(report: reconciler.Report) -> None:
    counts = report.counts()
    console.print(
        f"reconciler {report.kind.replace('_', ' ')} report [bold]{report.id}[/] "
        f"({report.created_at:%Y-%m-%d %H:%M} UTC): {counts['listed']} listed, {counts['selected']} selected",
        highlight=False,
    )
    table = Table("group", "count", "what happens", f"SKUs (first {SAMPLE})")
    removal = "removed by the reconciler" if report.can_delete else "reported only: cannot be removed"
    table.add_row(
        "selected, not listed",
        str(counts["not_listed"]),
        "listed by the Listings flow",
        ", ".join(report.not_listed[:SAMPLE]),
    )
    table.add_row(
        "listed, not selected", str(counts["not_selected"]), removal, ", ".join(report.not_selected[:SAMPLE])
    )
    kept = "removed too (included)" if report.include_unmanaged and report.can_delete else "kept"
    table.add_row(
        "listed, unknown to tradelane", str(counts["unmanaged"]), kept, ", ".join(report.unmanaged[:SAMPLE])
    )
    console.print(table)
    console.print(f"would remove {counts['to_remove']} listing(s)", highlight=False)
    if report.warning:
        console.print(f"[bold yellow]warning:[/] {report.warning}", highlight=False, soft_wrap=True)
    if report.hint:
        console.print(f"[yellow]note:[/] {report.hint}", highlight=False, soft_wrap=True)
    if report.confirmed_at is not None:
        console.print(
            f"confirmed by {report.confirmed_by} at {report.confirmed_at:%Y-%m-%d %H:%M} UTC", highlight=False
        )


@channel_app.command("reconcile")
def channel_reconcile(
    name: str,
    tenant: str | None = TenantOpt,
    include_unmanaged: bool = typer.Option(
        False,
        "--include-unmanaged",
        help="Also remove listings whose SKU tradelane does not know (default: keep them, with a warning).",
    ),
    enable: int | None = typer.Option(
        None,
        "--enable",
        metavar="REPORT_ID",
        help="Switch the Reconciler flow on, confirming this dry-run report.",
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why (required to enable on a live channel)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dry run of the reconciler of channel NAME: what the marketplace lists against what tradelane
    manages — selected but not listed, listed but not selected (removed once the reconciler is on, where
    the connector can remove offers), and listings tradelane does not know (kept, with the oversell
    warning). Nothing is changed. Prints the report id; `--enable REPORT_ID` then switches the
    reconciler on, confirming that report (at most 24 h old)."""
    with container() as app:
        with app.engine.connect() as conn:
            channel = resolve_channel(conn, name, tenant)
        if enable is not None:
            with app.engine.begin() as conn:
                report = reconciler.enable_reconciler(
                    conn, channel, enable, actor=audit.cli_actor(), now=app.now(), reason=reason
                )
            if as_json:
                print_json({"enabled": True, "report": report.as_json()})
                return
            console.print(
                f"[green]OK[/] reconciler of {channel.name} switched on, confirming dry run {report.id}: "
                f"it removes {len(report.to_remove)} listing(s) now and whatever is not selected on each run",
                highlight=False,
            )
            return
        with app.engine.begin() as conn:
            job_id = reconciler.queue_dry_run(
                conn, channel, actor=audit.cli_actor(), now=app.now(), include_unmanaged=include_unmanaged
            )
        result = run_job_here(app, job_id)
        with app.engine.connect() as conn:
            report = reconciler.get_report(conn, channel, int(result["report_id"]))
    if as_json:
        print_json(report.as_json())
        return
    _print_report(report)
    console.print(
        f"nothing was changed. To switch the reconciler on with this report: "
        f"tradelane channel reconcile {channel.name} --enable {report.id}",
        highlight=False,
        soft_wrap=True,
    )


@channel_app.command("id-match")
def channel_id_match(
    name: str,
    tenant: str | None = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    csv_file: Path | None = typer.Option(None, "--csv", help="Also write every row to this CSV file."),
    accept: list[str] = typer.Option(
        [],
        "--accept",
        metavar="SKU",
        help="Accept ours for this SKU's conflict of the latest match (repeatable): its offer is sent "
        "and may overwrite the marketplace's listing. Needs --reason; runs no new match.",
    ),
    accept_all: bool = typer.Option(
        False, "--accept-all", help="Accept ours for every unresolved conflict of the latest match."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why ours wins (required to accept)."),
) -> None:
    """Unique-ID match of channel NAME: read the marketplace's listings and compare them with the
    catalog on the unique ID (SKU, else product id / GTIN) and the grouping key (parent SKU): matched,
    only ours (selected, not listed), only theirs (listed, unknown), same ID with conflicting grouping.
    A conflict holds its SKU's offer back (never sent: it would overwrite their listing) and blocks
    go-live until a later match no longer shows it (fix the catalog's parent SKU and run again: the
    offers are released) or ours is accepted (`--accept SKU` / `--accept-all` with `--reason`,
    audited). Reading is read-only."""
    if accept and accept_all:
        fail("give either --accept SKU or --accept-all, not both")
    with container() as app:
        with app.engine.connect() as conn:
            channel = resolve_channel(conn, name, tenant)
        if accept or accept_all:
            with app.engine.begin() as conn:
                done = id_match_conflicts.accept(
                    conn,
                    channel,
                    skus=None if accept_all else accept,
                    actor=audit.cli_actor(),
                    now=app.now(),
                    reason=reason,
                )
                left = id_match.unresolved_conflicts(conn, channel.id)
            if as_json:
                print_json({"accepted": [c.as_json() for c in done], "unresolved": left})
                return
            for c in done:
                console.print(
                    f"[green]OK[/] accepted ours for {c.sku} on {channel.name} (ours "
                    f"{c.our_group or '(no parent)'} vs theirs {c.their_group}): its offer is sent by "
                    "the next sync and may overwrite the marketplace's listing",
                    highlight=False,
                    soft_wrap=True,
                )
            console.print(f"{left} conflict(s) left unresolved", highlight=False)
            return
        with app.engine.begin() as conn:
            job_id = id_match.queue_run(conn, channel, actor=audit.cli_actor(), now=app.now())
        result = run_job_here(app, job_id)
        with app.engine.connect() as conn:
            run = id_match.get_run(conn, channel, int(result["run_id"]))
            rows = id_match.run_rows(conn, run.id)
            found = id_match_conflicts.conflicts(conn, channel.id)
    if csv_file is not None:
        csv_file.write_text(id_match.to_csv(rows), encoding="utf-8")
    accepted = {c.sku: c for c in found if c.accepted}
    unresolved = [c for c in found if not c.accepted]
    if as_json:
        print_json(
            {
                **run.as_json(),
                "rows": [r.as_json() for r in rows],
                "conflicts": [c.as_json() for c in found],
                "unresolved": len(unresolved),
                "released": result.get("released", []),
            }
        )
        return
    counts = run.counts()
    console.print(
        f"ID match {run.id} of {channel.name}: {counts['listed']} listed — {counts['matched']} matched, "
        f"{counts['conflict']} conflict(s), {counts['only_theirs']} only theirs, "
        f"{counts['only_ours']} only ours",
        highlight=False,
    )
    table = Table("category", "our SKU", "their SKU", "matched by", "our group", "their group")
    for r in rows:
        ours = r.category == id_match.CONFLICT and r.sku in accepted
        table.add_row(
            f"{r.category} (accepted)" if ours else r.category,
            r.sku or "",
            r.their_sku or "",
            r.matched_by or "",
            r.our_group or "",
            r.their_group or "",
        )
    console.print(table)
    for c in accepted.values():
        console.print(
            f"accepted ours for {c.sku} ({c.accepted_by}: {c.reason}): sent, may overwrite their listing",
            highlight=False,
            soft_wrap=True,
        )
    if result.get("released"):
        console.print(
            f"released (conflict resolved, sent by the next sync): {', '.join(result['released'])}",
            highlight=False,
            soft_wrap=True,
        )
    if unresolved:
        console.print(
            f"[bold yellow]go-live is blocked[/] while {len(unresolved)} conflict(s) remain unresolved (same "
            "ID, conflicting grouping); their offers are not sent. Fix the parent SKU and run again, or "
            f"accept ours: tradelane channel id-match {channel.name} --accept SKU|--accept-all --reason ...",
            highlight=False,
            soft_wrap=True,
        )
    if csv_file is not None:
        console.print(f"wrote {len(rows)} row(s) to {csv_file}", highlight=False)
