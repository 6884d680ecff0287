"""`tradelane channel ...`: list, pause/resume flows, trigger a flow now."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import typer
from rich.table import Table
from sqlalchemy.engine import Connection

from tradelane.cli.common import console, container, fail, print_json
from tradelane.domain.channels import Flow, LifecycleState, parse_flow
from tradelane.persistence.tables import channels, tenants
from tradelane.services.channels import (
    Channel,
    flow_statuses,
    get_channel,
    list_channels,
    set_lifecycle,
    set_paused,
)
from tradelane.services.tenants import get_tenant
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.scheduler import FLOW_JOB_KINDS

channel_app = typer.Typer(help="Marketplace channels.", no_args_is_help=True)

TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant name (needed when NAME is not unique).")


def resolve_channel(conn: Connection, name: str, tenant: str | None) -> Channel:
    """A channel by name; the tenant may be omitted when only one tenant has a channel of that name."""
    if tenant is not None:
        return get_channel(conn, get_tenant(conn, tenant).id, name)
    rows = conn.execute(
        sa.select(channels.c.tenant_id, tenants.c.name)
        .join(tenants, tenants.c.id == channels.c.tenant_id)
        .where(channels.c.name == name)
    ).all()
    if not rows:
        fail(f"no channel named {name!r}")
    if len(rows) > 1:
        owners = ", ".join(sorted(r.name for r in rows))
        fail(f"several tenants have a channel named {name!r} ({owners}): pass --tenant")
    return get_channel(conn, rows[0].tenant_id, name)


def _flows(values: list[str] | None) -> list[Flow] | None:
    if not values:
        return None
    try:
        return [parse_flow(v) for v in values]
    except ValueError as exc:
        fail(str(exc))


@channel_app.command("list")
def channel_list(
    tenant: str = typer.Option(..., "--tenant", "-t"), as_json: bool = typer.Option(False, "--json")
) -> None:
    with container() as app, app.engine.connect() as conn:
        tenant_id = get_tenant(conn, tenant).id
        result: list[dict[str, Any]] = []
        for ch in list_channels(conn, tenant_id):
            flows = flow_statuses(conn, ch.id)
            result.append(
                {
                    "id": ch.id,
                    "name": ch.name,
                    "connector": ch.connector,
                    "lifecycle_state": ch.lifecycle_state,
                    "flows": {
                        f.flow.value: {
                            "enabled": f.enabled,
                            "paused": f.paused,
                            "frequency_seconds": f.frequency_seconds,
                            "last_success_at": f.last_success_at,
                            "last_error": f.last_error,
                        }
                        for f in flows
                    },
                }
            )
    if as_json:
        print_json(result)
        return
    table = Table("channel", "connector", "state", "flows")
    for item in result:
        flows_text = ", ".join(
            f"{name}{' (paused)' if f['paused'] else ''}{'' if f['enabled'] else ' (off)'}"
            for name, f in item["flows"].items()
        )
        table.add_row(item["name"], item["connector"], item["lifecycle_state"], flows_text)
    console.print(table)


def _pause(name: str, tenant: str | None, flow: list[str] | None, paused: bool) -> None:
    with container() as app, app.engine.begin() as conn:
        channel = resolve_channel(conn, name, tenant)
        changed = set_paused(conn, channel, _flows(flow), paused)
    verb = "paused" if paused else "resumed"
    console.print(f"{channel.name}: {verb} {', '.join(f.value for f in changed)}")


@channel_app.command("pause")
def channel_pause(
    name: str,
    tenant: str | None = TenantOpt,
    flow: list[str] = typer.Option(
        None, "--flow", "-f", help="Flow to pause (repeatable); all when omitted."
    ),
) -> None:
    """Stop workers from taking this channel's jobs of the given flows (queued work is kept)."""
    _pause(name, tenant, flow, True)


@channel_app.command("resume")
def channel_resume(
    name: str,
    tenant: str | None = TenantOpt,
    flow: list[str] = typer.Option(
        None, "--flow", "-f", help="Flow to resume (repeatable); all when omitted."
    ),
) -> None:
    _pause(name, tenant, flow, False)


@channel_app.command("state")
def channel_state(
    name: str,
    state: str = typer.Argument(..., help="setup | testing | live | disabled"),
    tenant: str | None = TenantOpt,
) -> None:
    """Set the channel's lifecycle state (in testing, flows use the staging/test account)."""
    try:
        target = LifecycleState(state)
    except ValueError:
        fail(f"unknown state {state!r} (setup, testing, live, disabled)")
    with container() as app, app.engine.begin() as conn:
        channel = resolve_channel(conn, name, tenant)
        set_lifecycle(conn, channel, target)
    console.print(f"{channel.name}: {target.value}")


@channel_app.command("sync")
def channel_sync(
    name: str,
    tenant: str | None = TenantOpt,
    flow: str = typer.Option(..., "--flow", "-f", help="offers | orders | reconciler | fulfillments"),
    full: bool = typer.Option(False, "--full", help="Full sync instead of a delta (offers)."),
) -> None:
    """Enqueue FLOW of channel NAME now; `tradelane worker --burst` then does the work."""
    try:
        selected = parse_flow(flow)
    except ValueError as exc:
        fail(str(exc))
    kind = "offers.full" if full and selected is Flow.OFFERS else FLOW_JOB_KINDS[selected.value]
    with container() as app, app.engine.begin() as conn:
        channel = resolve_channel(conn, name, tenant)
        if kind not in app.registry.kinds():
            fail(f"connector {channel.connector!r} has no {kind} job")
        result = enqueue(
            conn,
            JobSpec(
                tenant_id=channel.tenant_id,
                kind=kind,
                payload={"manual": True},
                channel_id=channel.id,
                flow=selected.value,
                dedupe_key=f"{kind}:{channel.id}",
            ),
            now=app.now(),
        )
    state = "queued" if result.created else "already pending"
    console.print(f"{channel.name}: {kind} job {result.job_id} {state}")
