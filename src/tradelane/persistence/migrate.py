"""Programmatic Alembic: ``upgrade`` and ``revision`` without an alembic.ini on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from tradelane.domain.errors import TradelaneError

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent)."""
    cfg = _config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the difference to the tables module."""
    cfg = _config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)


class DatabaseUnavailable(TradelaneError):
    """The store could not be reached (down, refusing connections, wrong address). A one-line message
    for the operator; a long-running process may wait and try again."""


def unavailable(engine: Engine, exc: sa.exc.DBAPIError) -> DatabaseUnavailable:
    """:class:`DatabaseUnavailable` for a driver error met while opening ``engine`` (password hidden)."""
    text = str(exc.orig).strip()
    reason = text.splitlines()[0] if text else type(exc.orig).__name__
    where = engine.url.render_as_string(hide_password=True)
    return DatabaseUnavailable(f"cannot open the database at {where}: {reason}")


class SchemaNotReady(TradelaneError):
    """The store cannot be used by this code: no schema, an older one, one from a newer tradelane, or
    no connection at all. The message is one line meant for the operator."""


@dataclass(frozen=True)
class SchemaStatus:
    """Where a store's schema stands against the migrations shipped with this code."""

    current: str | None  # ``None``: never migrated
    heads: frozenset[str]
    known: bool  # ``current`` is one of this code's revisions

    @property
    def at_head(self) -> bool:
        return self.current in self.heads


def head_revisions() -> frozenset[str]:
    """The Alembic head revision(s) shipped with this code."""
    return frozenset(ScriptDirectory.from_config(_config()).get_heads())


def schema_status(engine: Engine) -> SchemaStatus:
    """Read the store's revision (one read-only query); connection errors propagate."""
    script = ScriptDirectory.from_config(_config())
    current = _read_revision(engine)
    known = current is not None and any(rev.revision == current for rev in script.walk_revisions())
    return SchemaStatus(current=current, heads=frozenset(script.get_heads()), known=known)


def _read_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    # A read-only connection so that on SQLite the write lock is never taken for this check.
    with engine.connect().execution_options(read_only=True) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_head(engine: Engine) -> None:
    """Return if the store's schema is at head, else raise :class:`SchemaNotReady` saying what to do.

    Meant to run once when a process starts (every CLI command but ``db ...``, ``serve``, ``worker``),
    so that a store that was never migrated gives one clear line instead of a ``no such table``
    traceback in the middle of a command. The URL in messages has its password hidden.
    """
    where = f"the database at {engine.url.render_as_string(hide_password=True)}"
    try:
        status = schema_status(engine)
    except sa.exc.DBAPIError as exc:
        raise unavailable(engine, exc) from None
    if status.at_head:
        return
    head = ", ".join(sorted(status.heads))
    if status.current is None:
        raise SchemaNotReady(f"{where} has no tradelane schema: run `tradelane db upgrade`")
    if not status.known:
        raise SchemaNotReady(
            f"{where} is at revision {status.current}, which this tradelane does not know (its head is "
            f"{head}): it was migrated by a newer tradelane; run that version"
        )
    raise SchemaNotReady(
        f"{where} is at revision {status.current}, head is {head}: run `tradelane db upgrade`"
    )
