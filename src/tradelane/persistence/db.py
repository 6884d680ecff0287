"""Engine construction and dialect helpers.

SQLite is opened in WAL mode with a busy timeout and foreign keys on; write transactions on SQLite
use ``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade. PostgreSQL URLs are routed
to psycopg 3.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.visitors import _TraverseInternalsType

#: PostgreSQL connections per engine (per process), all kept open once opened.
POOL_SIZE = 15


def normalize_url(url: str) -> str:
    """Map ``postgresql://``/``postgres://`` onto the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact: money never goes through float
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value: Any) -> str:
    """JSON for JSON columns: Decimals as exact strings, datetimes in ISO 8601."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; creates the SQLite file's folder if needed."""
    url = normalize_url(url)
    kwargs.setdefault("json_serializer", json_dumps)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        # Up to POOL_SIZE connections, all of them kept: an "overflow" connection is closed when it is
        # returned, so under a burst every request beyond the pool paid for a new PostgreSQL backend
        # (the signed webhook's profile at 200 req/s). Threads beyond it wait for a connection.
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", 0)
    return sa.create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, issue BEGIN (pysqlite's implicit transactions are off).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up-front: no SQLITE_BUSY on a read->write upgrade.
        # Read-only work opts out with ``execution_options(read_only=True)`` (see ``read_only``).
        if conn.get_execution_options().get("read_only"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_sqlite(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


def is_postgres(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


class _PgDoNothing(postgresql.dml.OnConflictDoNothing):
    """A target-less ``ON CONFLICT DO NOTHING``: always the same text, so its cache key is constant."""

    _traverse_internals: _TraverseInternalsType = []


class _SqliteDoNothing(sqlite.dml.OnConflictDoNothing):
    """A target-less ``ON CONFLICT DO NOTHING``: always the same text, so its cache key is constant."""

    _traverse_internals: _TraverseInternalsType = []


def _share_returning(stmt: Any) -> None:
    # Plain attributes, outside the cache key. Copies made by ``.values()`` and the like carry them
    # too, but they are not their own owner, so they never use the shared statements.
    stmt.__dict__["_shared_owner"] = stmt
    stmt.__dict__["_shared_returning"] = {}


def _shared_returning(stmt: Any, cols: tuple[Any, ...], kw: dict[str, Any], build: Any) -> Any:
    """``stmt.returning(*cols)``, the same object every time for the statement built by
    :func:`insert_ignore` itself and the same columns. A statement built per call costs SQLAlchemy a
    result-metadata adaptation on every execution, even though its compiled form is cached, so
    ``insert_ignore(conn, t).returning(t.c.id)`` in a hot path paid for it on each call. Anything else
    (a copy with values, keyword options) is built as usual."""
    if kw or stmt.__dict__.get("_shared_owner") is not stmt:
        return build(*cols, **kw)
    shared: dict[tuple[Any, ...], Any] = stmt.__dict__["_shared_returning"]
    try:
        found = shared.get(cols)
    except TypeError:  # an unhashable argument
        return build(*cols)
    if found is None:
        found = shared.setdefault(cols, build(*cols))
    return found


class _PgInsertIgnore(postgresql.Insert):
    """``postgresql.insert(table).on_conflict_do_nothing()`` that SQLAlchemy can cache.

    SQLAlchemy 2.0's dialect inserts declare ``inherit_cache = False`` (no cache key), so every execution
    compiled the statement from scratch. The standard insert's cache key covers everything this class
    adds (the conflict clause is part of it, as ``_post_values_clause``)."""

    inherit_cache = True

    def __init__(self, table: sa.Table) -> None:
        super().__init__(table)
        self._post_values_clause = _PgDoNothing()
        _share_returning(self)

    def returning(self, *cols: Any, **kw: Any) -> Any:
        return _shared_returning(self, cols, kw, super().returning)


class _SqliteInsertIgnore(sqlite.Insert):
    """``sqlite.insert(table).on_conflict_do_nothing()`` that SQLAlchemy can cache (see
    :class:`_PgInsertIgnore`). Not ``INSERT OR IGNORE``: that would also swallow NOT NULL and CHECK
    violations, where ``ON CONFLICT`` only covers uniqueness."""

    inherit_cache = True

    def __init__(self, table: sa.Table) -> None:
        super().__init__(table)
        self._post_values_clause = _SqliteDoNothing()
        _share_returning(self)

    def returning(self, *cols: Any, **kw: Any) -> Any:
        return _shared_returning(self, cols, kw, super().returning)


@functools.lru_cache(maxsize=256)
def _insert_ignore(dialect_name: str, table: sa.Table) -> Any:
    if dialect_name == "postgresql":
        return _PgInsertIgnore(table)
    return _SqliteInsertIgnore(table)


def insert_ignore(conn: Connection, table: sa.Table) -> Any:
    """An ``INSERT ... ON CONFLICT DO NOTHING`` (no conflict target) for the connection's dialect.

    The statement is built once per dialect and table and has a cache key, so SQLAlchemy compiles it
    once per distinct shape (``.values(...)`` keys, ``.returning(...)``) and reuses it afterwards.
    Statements are immutable (``.values()``/``.returning()`` return copies), so sharing it is safe.
    Cheapest form: ``conn.execute(insert_ignore(conn, t).returning(...), {"col": value, ...})`` —
    the parameters bind at execution, and ``.returning(...)`` of this shared statement is itself shared
    (one object per column list), so nothing is built per call."""
    return _insert_ignore(conn.dialect.name, table)


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; on SQLite it does not take the write lock."""
    with engine.connect().execution_options(read_only=True) as conn:
        yield conn


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside one transaction: committed on success, rolled back on error."""
    with engine.begin() as conn:
        yield conn
