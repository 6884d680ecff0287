"""`tradelane db ...`, `tradelane tenant ...`, `tradelane keys ...`."""

from __future__ import annotations

import sqlalchemy as sa
import typer

from tradelane.cli.common import console, container, fail, print_json
from tradelane.persistence import migrate
from tradelane.security.crypto import CredentialError, generate_key
from tradelane.services.tenants import create_tenant, list_tenants

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (merchant clients).", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for channel credentials.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    with container(require_schema=False) as app:
        migrate.upgrade(app.engine, revision)
        console.print(f"database at revision [bold]{migrate.current(app.engine)}[/]")


@db_app.command("current")
def db_current() -> None:
    with container(require_schema=False) as app:
        typer.echo(migrate.current(app.engine) or "(empty)")


@tenant_app.command("create")
def tenant_create(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Create tenant NAME and print its API token (shown once; only its hash is stored)."""
    with container() as app, app.engine.begin() as conn:
        tenant, token = create_tenant(conn, name, now=app.now())
    if as_json:
        print_json({"id": tenant.id, "name": tenant.name, "token": token})
    else:
        console.print(f"tenant [bold]{tenant.name}[/] created (id {tenant.id})")
        console.print("API token (store it now, it is not shown again):")
        typer.echo(token)


@tenant_app.command("list")
def tenant_list(as_json: bool = typer.Option(False, "--json")) -> None:
    with container() as app, app.engine.connect() as conn:
        rows = list_tenants(conn)
    if as_json:
        print_json([{"id": t.id, "name": t.name} for t in rows])
    else:
        for t in rows:
            typer.echo(f"{t.id}\t{t.name}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key. Put it first in TRADELANE_SECRET_KEYS, then run `keys rotate`."""
    typer.echo(generate_key())


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored credential (channels and merchant systems) under the first configured key.

    All or nothing: one credential no configured key decrypts changes nothing and names the row.
    """
    from tradelane.services.key_check import ENCRYPTED_COLUMNS

    counts: dict[str, int] = {}
    with container() as app, app.engine.begin() as conn:
        for table, columns in ENCRYPTED_COLUMNS:
            rows = conn.execute(sa.select(table.c.id, *(table.c[c] for c in columns))).all()
            count = 0
            for row in rows:
                values = {}
                for column in columns:
                    token = row._mapping[column]
                    if token is None:
                        continue
                    try:
                        values[column] = app.keyring.rotate(token)
                    except CredentialError as exc:
                        fail(f"{table.name}.{column} (id {row.id}): {exc}; nothing was changed")
                if values:
                    conn.execute(sa.update(table).where(table.c.id == row.id).values(**values))
                    count += 1
            counts[table.name] = count
    console.print(
        f"re-encrypted credentials of {counts.get('channels', 0)} channel(s) and "
        f"{counts.get('merchant_systems', 0)} merchant system(s)"
    )
