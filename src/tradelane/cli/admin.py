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


#: How ``keys rotate`` names what it re-encrypted, per table of ``key_check.ENCRYPTED_COLUMNS``: (what,
#: rows). A table missing here is still counted, by its name.
_ROTATED = {
    "channels": ("credentials", "channel(s)"),
    "merchant_systems": ("credentials", "merchant system(s)"),
    "notification_settings": ("webhook secrets", "notification setting(s)"),
}


def rotation_summary(counts: dict[str, int]) -> str:
    """The line ``keys rotate`` ends with: how many rows of each table (every table of ``counts``, in
    its order, zeros included) had a value re-encrypted, e.g. ``re-encrypted credentials of 2
    channel(s) and 1 merchant system(s); webhook secrets of 1 notification setting(s)``."""
    groups: dict[str, list[str]] = {}
    for table, n in counts.items():
        what, rows = _ROTATED.get(table, ("encrypted values", f"{table} row(s)"))
        groups.setdefault(what, []).append(f"{n} {rows}")
    said = [
        f"{what} of " + (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])
        for what, parts in groups.items()
    ]
    return "re-encrypted " + "; ".join(said)


@keys_app.command("rotate")
def keys_rotate(
    as_json: bool = typer.Option(False, "--json", help="Rows re-encrypted per table, as JSON."),
) -> None:
    """Re-encrypt every stored credential (channels, merchant systems, notification webhook secrets)
    under the first configured key; says how many rows of each were re-encrypted.

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
    if as_json:
        print_json(counts)
    else:
        console.print(rotation_summary(counts), highlight=False, soft_wrap=True)
