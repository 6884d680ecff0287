"""Shared fixtures. The backend is chosen by ``TRADELANE_TEST_DB`` (``sqlite``, the default, or
``postgres``); ``make test`` runs the whole suite once for each.

* SQLite: the schema is migrated once into a template file, copied per test (fast and isolated).
* PostgreSQL: one fresh database per run (named after the pid and a random suffix, dropped at the end),
  migrated once, truncated after each test. Unreachable PostgreSQL is a hard failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradelane.persistence import migrate
from tradelane.persistence.db import make_engine, normalize_url
from tradelane.persistence.tables import metadata

BACKEND = os.environ.get("TRADELANE_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("TRADELANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_report_header(config: pytest.Config) -> str:
    return f"tradelane test backend: {BACKEND}"


#: Test folders and files (under tests/) of pure code, in-process marketplace sandboxes, the label
#: renderer and command-line checks: their tests that do not ask for the test database
#: (``db_url``/``engine``) are ``sqlite_only`` (nothing there depends on the store, so running them
#: again on PostgreSQL proves nothing more). Their tests that use the test database run on both.
STORE_AGNOSTIC_FOLDERS = (
    "unit",
    "contract/amazon_sandbox",
    "contract/mirakl_sandbox",
    "integration/amazon/test_amazon_sandbox_connector.py",
    "integration/test_labels.py",
    "integration/test_serve_workers.py",
)
_TESTS_ROOT = Path(__file__).resolve().parent


def _store_agnostic(item: pytest.Item) -> bool:
    if "_template" in getattr(item, "fixturenames", ()) or item.get_closest_marker("pg_only"):
        return False
    path = Path(str(item.path)).resolve()
    return any(path.is_relative_to(_TESTS_ROOT / folder) for folder in STORE_AGNOSTIC_FOLDERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``pg_only`` tests need PostgreSQL semantics: skipped (with the reason) on the SQLite run.
    ``sqlite_only`` tests prove nothing store-specific (no database, or a store-agnostic matrix whose
    store code runs on both stores elsewhere): they run in the SQLite half, skipped on the PostgreSQL run.
    Every test still runs in one of the two halves of ``make test``."""
    for item in items:
        if item.get_closest_marker("sqlite_only") is None and _store_agnostic(item):
            item.add_marker(pytest.mark.sqlite_only(reason="no database involved"))
        if item.get_closest_marker("sqlite_only") and item.get_closest_marker("pg_only"):
            raise pytest.UsageError(f"{item.nodeid} is both pg_only and sqlite_only: it would never run")
        if BACKEND == "postgres":
            marker = item.get_closest_marker("sqlite_only")
            if marker is not None:
                why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "store-agnostic")
                item.add_marker(pytest.mark.skip(reason=f"sqlite_only: runs in the SQLite half ({why})"))
        elif item.get_closest_marker("pg_only") is not None:
            item.add_marker(
                pytest.mark.skip(reason="pg_only: runs in the PostgreSQL half (TRADELANE_TEST_DB=postgres)")
            )


@pytest.fixture(scope="session")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The migrated database the tests start from: a file path (SQLite) or a URL (PostgreSQL)."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        con = sqlite3.connect(path)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        yield str(path)
        return
    if BACKEND != "postgres":
        raise pytest.UsageError(f"TRADELANE_TEST_DB must be sqlite or postgres, not {BACKEND!r}")
    admin = sa.create_engine(normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = f"tradelane_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment failure
        pytest.exit(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}", returncode=3)
    url = (
        sa.engine.make_url(normalize_url(PG_ADMIN_URL))
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def db_url(_template: str, tmp_path: Path) -> Iterator[str]:
    """A URL to a freshly migrated, empty database for this test."""
    if BACKEND == "sqlite":
        target = tmp_path / "tradelane.db"
        shutil.copyfile(_template, target)
        yield f"sqlite:///{target}"
        return
    yield _template
    # DELETE is much cheaper than TRUNCATE for the few rows a test leaves (TRUNCATE rewrites every
    # table's files); children first, in one round trip.
    statements = "; ".join(f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables))
    with _cleaner(_template).begin() as conn:
        conn.exec_driver_sql(statements)


_CLEANERS: dict[str, Engine] = {}


def _cleaner(url: str) -> Engine:
    if url not in _CLEANERS:
        _CLEANERS[url] = make_engine(url, poolclass=sa.pool.NullPool)
    return _CLEANERS[url]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
