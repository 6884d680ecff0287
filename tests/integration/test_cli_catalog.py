"""`tradelane catalog import` through Typer (same process, real database)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from tradelane.cli import build_app
from tradelane.persistence.tables import catalog_imports, products
from tradelane.security.crypto import generate_key
from tradelane.services.tenants import create_tenant


@pytest.fixture
def cli(db_url, engine, now, monkeypatch, tmp_path) -> Callable[..., Result]:
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    with engine.begin() as conn:
        create_tenant(conn, "acme", now=now)
    runner = CliRunner()
    app = build_app()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return invoke


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,title,price,currency,quantity\nA,Alpha,1.50,EUR,3\nB,Beta,1.50,,3\nC,Gamma,2,EUR,x\n",
        encoding="utf-8",
    )
    return path


def test_json_output_is_one_object_with_the_summary(cli, tmp_path, engine):
    path = _file(tmp_path)
    result = cli("catalog", "import", str(path), "--tenant", "acme", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    out = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert {k: out[k] for k in ("created", "updated", "unchanged", "rejected")} == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 2,
    }
    assert out["errors"] == [
        {"line": 3, "sku": "B", "error": "price without currency"},
        {"line": 4, "sku": "C", "error": "quantity is not an integer: 'x'"},
    ]
    again = json.loads(cli("catalog", "import", str(path), "--tenant", "acme", "--json").stdout)
    assert (again["created"], again["unchanged"], again["rejected"]) == (0, 1, 2)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(catalog_imports)).scalar_one() == 2


def test_human_output_lists_rejected_lines(cli, tmp_path):
    result = cli("catalog", "import", str(_file(tmp_path)), "--tenant", "acme")
    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.stdout.splitlines()
    assert lines[0] == "created 1, updated 0, unchanged 0, rejected 2"
    assert lines[1:] == [
        "line 3 (sku 'B'): price without currency",
        "line 4 (sku 'C'): quantity is not an integer: 'x'",
    ]


def test_format_option_and_refusals_exit_non_zero(cli, tmp_path, engine):
    feed = tmp_path / "feed.txt"
    feed.write_text('{"sku": "J", "quantity": 1}\n', encoding="utf-8")
    refused = cli("catalog", "import", str(feed), "--tenant", "acme", "--json")
    assert refused.exit_code == 1 and refused.stdout == ""
    assert "cannot tell the format" in refused.stderr
    ok = cli("catalog", "import", str(feed), "--tenant", "acme", "--format", "jsonl", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["created"] == 1

    unknown = cli("catalog", "import", str(_file(tmp_path)), "--tenant", "nobody", "--json")
    assert unknown.exit_code == 1 and "no tenant named 'nobody'" in unknown.stderr

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"sku,title\nA,Caf\xe9\n")
    result = cli("catalog", "import", str(bad), "--tenant", "acme")
    assert result.exit_code == 1 and "line 2: not valid UTF-8" in result.stderr
    missing = cli("catalog", "import", str(tmp_path / "missing.csv"), "--tenant", "acme")
    assert missing.exit_code != 0
    with engine.connect() as conn:
        assert [r.sku for r in conn.execute(sa.select(products.c.sku))] == ["J"]
