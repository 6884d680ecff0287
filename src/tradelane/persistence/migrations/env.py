"""Alembic environment: runs against the connection handed in by :mod:`tradelane.persistence.migrate`."""

from __future__ import annotations

from alembic import context

from tradelane.persistence.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def run() -> None:
    if connection is None:
        raise RuntimeError("run migrations through `tradelane db upgrade`")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
