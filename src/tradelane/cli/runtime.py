"""Long-running processes: `tradelane worker` and `tradelane serve`."""

from __future__ import annotations

import typer

from tradelane.cli.common import console, container
from tradelane.logging import get_logger


def register(app: typer.Typer) -> None:
    from tradelane.cli.demo import demo

    app.command("worker")(worker)
    app.command("serve")(serve)
    app.command("demo")(demo)


def worker(
    burst: bool = typer.Option(False, "--burst", help="Exit once nothing is ready."),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Do not enqueue periodic flows."),
) -> None:
    """Run jobs. Several workers may share one PostgreSQL store.

    A worker started while its database cannot be reached waits for it (backoff up to 30 s); once
    running, it survives dropped connections."""
    from tradelane.sync.worker import Worker, WorkerConfig

    with container(wait_for_database=True) as app:
        get_logger("tradelane.worker").info("settings.resolved", **app.setup)
        s = app.settings
        config = WorkerConfig(
            batch_size=batch_size or s.worker_batch_size,
            lease_seconds=s.worker_lease_seconds,
            poll_seconds=s.worker_poll_seconds,
            backoff_base=s.job_backoff_base_seconds,
            backoff_cap=s.job_backoff_cap_seconds,
            schedule=not no_schedule,
        )
        w = Worker(app.engine, app.registry, app.now, config, services=app.extras)
        w.install_signal_handlers()
        stats = w.run(burst=burst)
    console.print(
        f"worker done: {stats.succeeded} succeeded, {stats.retried} retried, {stats.dead} dead, "
        f"{stats.released} released"
    )


def serve(
    host: str | None = typer.Option(None, "--host"),
    port: int | None = typer.Option(None, "--port"),
    workers: int | None = typer.Option(
        None,
        "--workers",
        envvar="TRADELANE_API_WORKERS",
        min=1,
        help="Server processes sharing the port. Default: one per CPU (at most 4) on PostgreSQL, "
        "1 on SQLite.",
    ),
    http: str = typer.Option(
        "httptools",
        "--http",
        help="HTTP/1.1 parser: httptools (C) or h11 (pure Python, the fallback when httptools is missing).",
    ),
    loop: str = typer.Option(
        "uvloop",
        "--loop",
        help="Event loop: uvloop or asyncio (the fallback when uvloop is missing).",
    ),
) -> None:
    """Serve the REST API (and dashboard) with uvicorn."""
    from tradelane.web.app import default_workers, server_io
    from tradelane.web.app import serve as run_server

    try:
        io = server_io(http, loop)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for reason in io.fallbacks:
        console.print(f"[yellow]{reason}[/yellow]")
    with container() as app:
        count = workers or default_workers(app.engine)
        get_logger("tradelane.serve").info(
            "settings.resolved", workers=count, http=io.http, loop=io.loop, **app.setup
        )
        run_server(app, host or app.settings.api_host, port or app.settings.api_port, workers=count, io=io)
