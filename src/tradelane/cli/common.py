"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import typer
from rich.console import Console

from tradelane.bootstrap import Container, build
from tradelane.domain.errors import TradelaneError
from tradelane.persistence.migrate import DatabaseUnavailable, require_head

console = Console(stderr=True)


#: How long a long-running process waits between tries while the store cannot be reached.
DATABASE_WAIT_FIRST, DATABASE_WAIT_CAP = 0.5, 30.0


@contextmanager
def container(*, require_schema: bool = True, wait_for_database: bool = False) -> Iterator[Container]:
    """Build the application for one command; errors we raise on purpose become clean exits.

    A store the configured keys cannot decrypt stops every command here, before it does anything.
    So does a store whose schema is not at head (never migrated, older, or newer), with one line
    saying to run ``tradelane db upgrade``; only the ``db`` commands pass ``require_schema=False``.
    A store that cannot be reached is one line too — or, with ``wait_for_database`` (``worker``), a
    wait with backoff until it answers (a worker started before its database, or during a restart).
    """
    app = _open(require_schema=require_schema, wait_for_database=wait_for_database)
    try:
        yield app
    except TradelaneError as exc:
        fail(str(exc))
    finally:
        app.close()


def _open(*, require_schema: bool, wait_for_database: bool) -> Container:
    delay = DATABASE_WAIT_FIRST
    while True:
        app: Container | None = None
        try:
            app = build()
            if require_schema:
                require_head(app.engine)
            return app
        except DatabaseUnavailable as exc:
            if app is not None:
                app.close()
            if not wait_for_database:
                fail(str(exc))
            console.print(
                f"[yellow]waiting for the database:[/] {exc} (next try in {delay:g} s)",
                highlight=False,
                soft_wrap=True,
            )
            time.sleep(delay)
            delay = min(delay * 2, DATABASE_WAIT_CAP)
        except TradelaneError as exc:
            if app is not None:
                app.close()
            fail(str(exc))


def fail(message: str, code: int = 1) -> NoReturn:
    # soft_wrap: one line however narrow the terminal (or none, under a supervisor), so logs grep well.
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False, indent=None)


def print_json(value: Any) -> None:
    sys.stdout.write(dumps(value) + "\n")
    sys.stdout.flush()


#: How many characters of an error a list's table shows (``--full`` shows it whole).
ERROR_CELL_CHARS = 80


def error_cell(text: str | None, *, full: bool = False) -> tuple[str, bool]:
    """An error as a table cell, and whether it was cut: whole with ``full``; else its first line, at
    most :data:`ERROR_CELL_CHARS` characters, ending in "…" when anything was left out (the rest of
    the line or further lines)."""
    if not text or not text.strip():
        return "", False
    if full:
        return text.strip(), False
    whole = text.strip()
    shown = whole.splitlines()[0][:ERROR_CELL_CHARS].rstrip()
    if shown == whole:
        return shown, False
    return shown + "…", True


def cut_errors_note(cut: int) -> str | None:
    """The line under a table whose ``cut`` errors were shortened by :func:`error_cell` (None: none)."""
    if not cut:
        return None
    return (
        f"{cut} error(s) cut at {ERROR_CELL_CHARS} characters or their first line (…): "
        "--full shows them whole, as does --json"
    )
