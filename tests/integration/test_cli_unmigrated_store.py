"""Commands run against a store that was never migrated, or is behind (or ahead of) this code's
migrations, stop with one line saying what to do — never a ``no such table`` traceback — while
``tradelane db upgrade`` itself still works on such a store."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tradelane.cli import build_app
from tradelane.persistence import migrate
from tradelane.persistence.db import make_engine
from tradelane.security.crypto import generate_key

HEAD = ", ".join(sorted(migrate.head_revisions()))


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """A CLI runner on ``tmp_path/store.db`` (SQLite: the file is created but never migrated)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("TRADELANE_DATABASE_URL", url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str):
        return runner.invoke(app, list(args))

    run.url = url  # type: ignore[attr-defined]
    return run


def _one_line_error(result) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "no such table" not in result.output
    text = " ".join(result.output.split())  # Rich may wrap the line to the terminal width
    assert text.startswith("error: the database at sqlite:///"), text
    return text


@pytest.mark.parametrize(
    "args",
    [
        ("tenant", "list"),
        ("tenant", "create", "acme"),
        ("jobs", "dead", "--tenant", "acme"),
        ("orders", "list", "--tenant", "acme", "--json"),
        ("worker", "--burst"),
        ("serve", "--port", "0"),
    ],
)
def test_never_migrated_store_says_run_db_upgrade(cli, args):
    text = _one_line_error(cli(*args))
    assert "has no tradelane schema: run `tradelane db upgrade`" in text


def test_out_of_date_store_names_both_revisions(cli):
    engine = make_engine(cli.url)
    migrate.upgrade(engine, "0001")
    engine.dispose()
    old = migrate.schema_status(make_engine(cli.url)).current
    assert old is not None and old not in migrate.head_revisions()
    text = _one_line_error(cli("tenant", "list"))
    assert f"is at revision {old}, head is {HEAD}: run `tradelane db upgrade`" in text


def test_store_from_a_newer_tradelane_is_not_told_to_upgrade(cli):
    engine = make_engine(cli.url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    engine.dispose()
    text = _one_line_error(cli("tenant", "list"))
    assert "is at revision f00dfeed, which this tradelane does not know" in text


def test_db_upgrade_works_on_a_never_migrated_store_and_commands_then_run(cli):
    assert cli("db", "current").stdout.strip() == "(empty)"
    upgraded = cli("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert cli("db", "current").stdout.strip() == HEAD
    created = cli("tenant", "create", "acme", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["token"].startswith("tl_")


def test_password_is_hidden_in_the_message():
    engine = make_engine("postgresql://tl:s3cr3t-pw@127.0.0.1:1/none", pool_pre_ping=False)
    with pytest.raises(migrate.DatabaseUnavailable) as info:
        migrate.require_head(engine)
    engine.dispose()
    message = str(info.value)
    assert "s3cr3t-pw" not in message and "***" in message
    assert message.startswith("cannot open the database at postgresql+psycopg://tl:***@127.0.0.1:1/none: ")
