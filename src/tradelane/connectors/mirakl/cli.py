"""Mirakl's commands: `tradelane channel add mirakl`, `tradelane channel update` (Mirakl's credentials
and hosts, any connector's settings) and `tradelane sandbox mirakl`. Attached to the CLI's groups when
imported (named by the connector's ``SPEC.cli``)."""

from __future__ import annotations

import json
from typing import Any

import typer

from tradelane.cli.channels import TenantOpt, add_app, channel_app, report_check, resolve_channel
from tradelane.cli.common import console, container, fail
from tradelane.cli.sandbox import sandbox_app
from tradelane.cli.secrets import required_secret, resolve_secret, secret_option, stdin_option
from tradelane.connectors.mirakl.connector import add_channel, update_channel
from tradelane.connectors.mirakl.settings import CONNECTOR
from tradelane.connectors.registry import check_channel, update_settings
from tradelane.domain.errors import ValidationError
from tradelane.services.tenants import get_tenant

#: Environment variables holding the Mirakl API keys (named in the options' help).
API_KEY_ENV = "TRADELANE_MIRAKL_API_KEY"
STAGING_API_KEY_ENV = "TRADELANE_MIRAKL_STAGING_API_KEY"
API_KEY_OPT = secret_option(
    "--api-key",
    API_KEY_ENV,
    "Mirakl shop API key",
    asked="when absent (by `update`: when nothing else is given)",
)
API_KEY_STDIN_OPT = stdin_option("--api-key", "the Mirakl API key")
STAGING_KEY_OPT = secret_option(
    "--staging-api-key",
    STAGING_API_KEY_ENV,
    "API key of the staging/test shop",
    asked="when absent and `add` is given --staging-hostname",
)
STAGING_KEY_STDIN_OPT = stdin_option("--staging-api-key", "the staging API key")


@add_app.command("mirakl")
def add_mirakl(
    tenant: str = typer.Option(..., "--tenant", "-t"),
    name: str = typer.Option(..., "--name"),
    hostname: str = typer.Option(
        ..., "--hostname", help="Shop API host, e.g. shop.mirakl.net (or http://127.0.0.1:8765)"
    ),
    shop_id: str | None = typer.Option(None, "--shop-id"),
    api_key: str | None = API_KEY_OPT,
    api_key_stdin: bool = API_KEY_STDIN_OPT,
    options: str = typer.Option("{}", "--options", help="JSON object of further Mirakl settings."),
    staging_hostname: str | None = typer.Option(None, "--staging-hostname"),
    staging_shop_id: str | None = typer.Option(None, "--staging-shop-id"),
    staging_api_key: str | None = STAGING_KEY_OPT,
    staging_api_key_stdin: bool = STAGING_KEY_STDIN_OPT,
) -> None:
    """Add a Mirakl shop as channel NAME (credentials are stored encrypted)."""
    extra = _options(options)
    key = required_secret(api_key, api_key_stdin, flag="--api-key", what="Mirakl API key")
    staging_api_key = resolve_secret(
        staging_api_key,
        staging_api_key_stdin,
        flag="--staging-api-key",
        what="Mirakl staging API key",
        required=bool(staging_hostname),
    )
    if staging_hostname:
        extra["staging_hostname"] = staging_hostname
        extra["staging_shop_id"] = staging_shop_id
    with container() as app, app.engine.begin() as conn:
        channel = add_channel(
            conn,
            tenant_id=get_tenant(conn, tenant).id,
            name=name,
            hostname=hostname,
            shop_id=shop_id,
            api_key=key,
            keyring=app.keyring,
            now=app.now(),
            options=extra,
            staging_api_key=staging_api_key,
        )
    console.print(
        f"channel [bold]{channel.name}[/] added (mirakl, id {channel.id}); "
        f"run `tradelane channel check {name}`"
    )


def _options(text: str) -> dict[str, Any]:
    try:
        extra = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--options is not JSON: {exc}")
    if not isinstance(extra, dict):
        fail("--options must be a JSON object")
    return extra


@channel_app.command("update")
def channel_update(
    name: str,
    tenant: str | None = TenantOpt,
    api_key: str | None = API_KEY_OPT,
    api_key_stdin: bool = API_KEY_STDIN_OPT,
    hostname: str | None = typer.Option(None, "--hostname", help="New shop API host (Mirakl)."),
    shop_id: str | None = typer.Option(None, "--shop-id", help="New shop id ('' for none; Mirakl)."),
    staging_api_key: str | None = STAGING_KEY_OPT,
    staging_api_key_stdin: bool = STAGING_KEY_STDIN_OPT,
    options: str | None = typer.Option(
        None, "--options", help="JSON object of the channel's settings to change (any connector)."
    ),
    credential: list[str] = typer.Option(
        None,
        "--credential",
        help=(
            "A credential of the channel's connector to replace (repeatable; not Mirakl's: use --api-key), "
            "e.g. Amazon's refresh_token, client_secret, client_id. Each is asked for (hidden), or read "
            "one line each from stdin with --credentials-stdin."
        ),
    ),
    credentials_stdin: bool = typer.Option(
        False, "--credentials-stdin", help="Read the --credential values from stdin, one line each."
    ),
) -> None:
    """Fix a channel's credentials or settings, then check them like `channel check`.

    Only what is given changes. --options changes the settings of a channel of any connector and
    --credential its credentials (checked by its connector before anything is stored); --api-key,
    --staging-api-key, --hostname and --shop-id are Mirakl's (with no option at all, a Mirakl channel's
    API key is asked for). When the check
    passes, the flows paused because the marketplace rejected the credentials resume, the jobs that
    died of it run again and the channel's credentials alert is resolved (flows an operator paused stay
    paused). When it fails, the change is kept, the problem is printed and the flows stay as they are
    (exit 2)."""
    with container() as app:
        with app.engine.connect() as conn:
            connector = resolve_channel(conn, name, tenant).connector
        mirakl_only = {
            "--api-key": api_key is not None or api_key_stdin,
            "--hostname": hostname is not None,
            "--shop-id": shop_id is not None,
            "--staging-api-key": staging_api_key is not None or staging_api_key_stdin,
        }
        secrets: dict[str, str] = {}
        if connector != CONNECTOR:
            given = [flag for flag, used in mirakl_only.items() if used]
            if given:
                fail(f"{', '.join(given)}: Mirakl's; channel {name} uses connector {connector!r}")
            if options is None and not credential:
                fail(
                    f"nothing to change: give --options or --credential (channel {name} uses connector "
                    f"{connector!r})"
                )
            for key in credential or []:
                value = resolve_secret(
                    None, credentials_stdin, flag=f"--credential {key}", what=key.replace("_", " ")
                )
                secrets[key] = value or ""
        elif credential:
            fail("--credential: a Mirakl channel's keys are changed with --api-key / --staging-api-key")
        nothing_else = connector == CONNECTOR and not any(mirakl_only.values()) and options is None
        api_key = resolve_secret(
            api_key, api_key_stdin, flag="--api-key", what="Mirakl API key", required=nothing_else
        )
        staging_api_key = resolve_secret(
            staging_api_key,
            staging_api_key_stdin,
            flag="--staging-api-key",
            what="Mirakl staging API key",
            required=False,
        )
        extra = _options(options) if options is not None else None
        with app.engine.begin() as conn:
            channel = resolve_channel(conn, name, tenant)
            if channel.connector == CONNECTOR:
                channel = update_channel(
                    conn,
                    channel,
                    keyring=app.keyring,
                    api_key=api_key,
                    hostname=hostname,
                    shop_id=shop_id,
                    staging_api_key=staging_api_key,
                    options=extra,
                )
            else:
                try:
                    channel = update_settings(conn, channel, extra or {}, app.keyring, credentials=secrets)
                except ValidationError as exc:
                    fail(f"{channel.name}: nothing changed — {exc}")
        with app.engine.connect() as conn:
            result = check_channel(conn, channel, app.keyring)
        report_check(app, channel, result)


@sandbox_app.command("mirakl")
def sandbox_mirakl(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8765, help="TCP port."),
    seed: int = typer.Option(0, help="Seed of generated ids, keys and catalog (same seed, same world)."),
    products: int = typer.Option(20, help="Number of generated catalog products."),
    rate_limits: bool = typer.Option(
        True, "--rate-limits/--no-rate-limits", help="Apply Mirakl's published per-operation budgets."
    ),
    frozen_clock: bool = typer.Option(
        False, "--frozen-clock", help="Freeze the clock (move it with /_sandbox/clock) instead of wall time."
    ),
    offer_fields: list[str] = typer.Option(
        [],
        "--offer-field",
        help=(
            "An offer custom field the operator defines (repeatable), e.g. parent-sku for a variant "
            "group: OF24 offer_additional_fields and OF01 columns of this code are stored and listed by "
            "OF21. Codes not declared are not stored."
        ),
    ),
) -> None:
    """Serve a Mirakl seller-API sandbox; prints each shop's id and (sandbox-only) API key, and the offer
    custom fields it keeps (--offer-field)."""
    from tradelane.connectors.mirakl.sandbox.config import SandboxConfig
    from tradelane.connectors.mirakl.sandbox.server import serve
    from tradelane.connectors.mirakl.sandbox.state import SandboxState

    codes = [code.strip() for code in offer_fields]
    if any(not code for code in codes):
        fail("--offer-field needs a field code, e.g. --offer-field parent-sku")
    state = SandboxState(
        seed,
        products=products,
        config=SandboxConfig(offer_fields=frozenset(codes)),
        rate_limits=None if rate_limits else {},
        follow_wall_time=not frozen_clock,
    )
    for shop in state.shops.values():
        typer.echo(f"shop {shop.shop_id} ({shop.name}, {shop.currency}): Authorization: {shop.api_key}")
    if codes:
        typer.echo(f"offer custom fields: {', '.join(sorted(set(codes)))} (stored and listed by OF21)")
    else:
        typer.echo("offer custom fields: none (offer_additional_fields are not stored; see --offer-field)")
    typer.echo(f"seller API at http://{host}:{port}/api, controls at http://{host}:{port}/_sandbox")
    serve(host, port, seed, state=state)
