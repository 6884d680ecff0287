"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import typer
from rich.console import Console

from tradelane.bootstrap import Container, build
from tradelane.domain.errors import TradelaneError
from tradelane.persistence.migrate import require_head

console = Console(stderr=True)


@contextmanager
def container(*, require_schema: bool = True) -> Iterator[Container]:
    """Build the application for one command; errors we raise on purpose become clean exits.

    A store the configured keys cannot decrypt stops every command here, before it does anything.
    So does a store whose schema is not at head (never migrated, older, or newer), with one line
    saying to run ``tradelane db upgrade``; only the ``db`` commands pass ``require_schema=False``.
    """
    try:
        app = build()
    except TradelaneError as exc:
        fail(str(exc))
    try:
        if require_schema:
            require_head(app.engine)
        yield app
    except TradelaneError as exc:
        fail(str(exc))
    finally:
        app.close()


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
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
