"""Alembic environment: runs against the connection handed in by :mod:`tradelane.persistence.migrate`.

SQLite: a ``batch_alter_table`` that changes a table's columns copies the table and drops the original.
The store's connections enforce foreign keys (``persistence.db``), and with enforcement on, dropping a
parent table (``channels``, ``orders``, ``products``, ``tenants``...) deletes every row referencing it
(ON DELETE CASCADE). So the migrations run with enforcement off, as SQLite's own procedure for schema
changes prescribes; each revision checks every reference (``PRAGMA foreign_key_check``) before its
transaction commits, and fails (rolled back) on a dangling one. Enforcement is back on afterwards, also
on failure. Enforcement can only be switched outside a transaction: one the connection handed in has
begun is committed first (as Alembic does with the first revision, SQLite having no transactional DDL).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy.engine import Connection

from tradelane.persistence.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def _set_foreign_keys(conn: Connection, enforced: bool) -> None:
    # On the DBAPI connection: through SQLAlchemy the PRAGMA would begin a transaction, and inside one
    # SQLite ignores it.
    conn.connection.dbapi_connection.execute(f"PRAGMA foreign_keys={'ON' if enforced else 'OFF'}")  # type: ignore[union-attr]


def _check_references(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """``on_version_apply``: inside the revision's transaction, before it commits."""
    conn = ctx.connection
    assert conn is not None
    dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if dangling:
        sample = ", ".join(f"{r[0]} row {r[1]} -> {r[2]}" for r in dangling[:5])
        direction = "upgrade to" if step.is_upgrade else "downgrade of"
        raise RuntimeError(
            f"migration ({direction} {step.up_revision_id}) leaves {len(dangling)} row(s) "
            f"referencing a missing row ({sample}); rolled back"
        )


def run() -> None:
    if connection is None:
        raise RuntimeError("run migrations through `tradelane db upgrade`")
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        if connection.in_transaction():
            # Alembic commits it with the first revision anyway (SQLite has no transactional DDL).
            connection.commit()
        _set_foreign_keys(connection, False)
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
            compare_type=True,
            on_version_apply=_check_references if sqlite else None,
        )
        with context.begin_transaction():
            context.run_migrations()
    except BaseException:
        if sqlite and connection.in_transaction():
            connection.rollback()
        raise
    else:
        if sqlite and connection.in_transaction():
            connection.commit()
    finally:
        if sqlite:
            _set_foreign_keys(connection, True)


run()
