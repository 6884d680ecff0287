"""Secrets on the command line without leaving them in ``ps`` or the shell history.

Every secret option (``--api-key``, ``--secret``, ``--access-token``...) is optional and, in order:

1. taken from its environment variable (named in the option's help; Typer reads it);
2. read as one line from standard input with ``--<option>-stdin`` or the value ``-`` (several secrets
   read from stdin come one line each, in the order the options are listed in the help);
3. asked for at a hidden prompt when none of the above gave it;
4. given on the command line as a value — works, but the value is visible to other users in ``ps``
   and stays in the shell history.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from tradelane.cli.common import fail


def secret_option(flag: str, envvar: str, what: str, *, asked: str = "when absent") -> Any:
    """An optional secret option reading ``envvar`` too; its help names the variable and the safer ways
    (``asked`` says when the command prompts for it)."""
    return typer.Option(
        None,
        flag,
        envvar=envvar,
        show_envvar=False,
        show_default=False,
        help=(
            f"{what}. Better kept off the command line (ps, shell history): set {envvar}, or use "
            f"{flag}-stdin (or {flag} -) to read one line from stdin; asked for (hidden) {asked}."
        ),
    )


def stdin_option(flag: str, what: str) -> Any:
    return typer.Option(False, f"{flag}-stdin", help=f"Read {what} from one line of standard input.")


def resolve_secret(
    value: str | None, from_stdin: bool, *, flag: str, what: str, required: bool = True
) -> str | None:
    """The secret from stdin (``from_stdin`` or ``value == "-"``), the option/environment, or a hidden
    prompt (only when ``required``). Blank secrets are refused with a message naming the option."""
    if from_stdin or value == "-":
        line = sys.stdin.readline()
        value = line.rstrip("\r\n")
        if not value.strip():
            fail(f"{flag}: no {what} on standard input (expected one line)")
        return value.strip()
    if value is not None:
        if not value.strip():
            fail(f"{flag}: the {what} is empty")
        return value.strip()
    if not required:
        return None
    entered = str(typer.prompt(what[:1].upper() + what[1:], hide_input=True, err=True))
    if not entered.strip():
        fail(f"{flag}: the {what} is empty")
    return entered.strip()


def required_secret(value: str | None, from_stdin: bool, *, flag: str, what: str) -> str:
    """:func:`resolve_secret` for a secret that must be given (prompted for when absent)."""
    secret = resolve_secret(value, from_stdin, flag=flag, what=what, required=True)
    if secret is None:  # unreachable: a required secret is prompted for
        fail(f"{flag}: the {what} is required")
    return secret
