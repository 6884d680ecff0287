"""`tradelane channel select|preview` through Typer: the preview before anything changes, confirmation,
--json, --all, refusals, and the audited change."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from tradelane.cli import build_app
from tradelane.persistence.tables import channel_flows, channel_selections, offer_bindings, products
from tradelane.security.crypto import generate_key
from tradelane.services import audit
from tradelane.services.catalog_import import import_catalog

CSV = """sku,title,price,currency,quantity,labels,attr:color
A-1,One,10,EUR,1,summer,red
A-2,Two,10,EUR,1,summer;sale,blue
A-3,Three,10,EUR,1,winter,red
A-4,Four,10,EUR,1,,red
"""


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    return run


@pytest.fixture
def shop(engine, tmp_path: Path) -> int:
    now = datetime.now(UTC)
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    path = tmp_path / "catalog.csv"
    path.write_text(CSV)
    import_catalog(engine, tenant_id=tenant.id, path=path, now=now)
    return channel.id


def _bound(engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(products.c.sku).join(offer_bindings, offer_bindings.c.product_id == products.c.id)
            ).scalars()
        )


def test_preview_of_the_current_and_of_a_proposed_selection(cli, engine, shop) -> None:
    current = json.loads(cli("channel", "preview", "shop", "--tenant", "acme", "--json"))
    assert current["selection"] == {"all": True, "labels": [], "where": [], "description": "all products"}
    assert current["updated"] == {"count": 4, "sample": ["A-1", "A-2", "A-3", "A-4"]}
    proposed = json.loads(
        cli("channel", "preview", "shop", "-t", "acme", "--label", "summer", "--where", "color=red", "--json")
    )
    assert proposed["selection"]["description"] == "label summer and color=red"
    assert (proposed["updated"]["count"], proposed["delisted"]["count"]) == (1, 3)
    assert proposed["delisted"]["sample"] == ["A-2", "A-3", "A-4"]
    text = " ".join(cli("channel", "preview", "shop", "-t", "acme", "-l", "winter").split())
    assert "preview (nothing sent)" in text and "A-3" in text
    assert _bound(engine) == {"A-1", "A-2", "A-3", "A-4"}  # previews change nothing


def test_a_never_sent_offer_is_not_said_to_be_left_on_the_marketplace(cli, engine, shop) -> None:
    """A-1 was sent, A-2..A-4 never were (a channel in Setup, say): de-selecting them leaves only A-1 on
    the marketplace; the others are only unbound, and the preview says so."""
    with engine.begin() as conn:
        sent = sa.select(products.c.id).where(products.c.sku == "A-1").scalar_subquery()
        conn.execute(
            sa.update(offer_bindings).where(offer_bindings.c.product_id == sent).values(synced_seq=1)
        )
    shown = json.loads(cli("channel", "preview", "shop", "-t", "acme", "-l", "nothing", "--json"))
    assert shown["delisted"] == {"count": 4, "sample": ["A-1", "A-2", "A-3", "A-4"]}
    assert shown["never_sent"] == {"count": 3, "sample": ["A-2", "A-3", "A-4"]}
    assert shown["left_on_marketplace"] == {"count": 1, "sample": ["A-1"]}
    lines = cli("channel", "preview", "shop", "-t", "acme", "-l", "nothing").splitlines()
    row = " ".join(next(line for line in lines if "of which never sent" in line).split())
    assert "│ 3 │ A-2, A-3, A-4" in row


def test_select_asks_then_applies_and_records_it(cli, engine, shop) -> None:
    refused = cli("channel", "select", "shop", "-t", "acme", "-l", "summer", input="n\n", code=1)
    assert "not confirmed" in refused
    assert _bound(engine) == {"A-1", "A-2", "A-3", "A-4"}
    out = cli("channel", "select", "shop", "-t", "acme", "-l", "summer", "-l", "winter", input="y\n")
    assert "applied" in out
    assert _bound(engine) == {"A-1", "A-2", "A-3"}  # never sent: A-4 simply unbound
    applied = json.loads(
        cli("channel", "select", "shop", "-t", "acme", "--all", "--yes", "--reason", "back", "--json")
    )
    assert applied["listed"] == {"count": 1, "sample": ["A-4"]}
    assert _bound(engine) == {"A-1", "A-2", "A-3", "A-4"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(channel_selections)).scalar_one() == 0
        events = audit.history(conn, shop, prefix="selection.")
    assert [e.details["selection"]["description"] for e in events] == [
        "labels summer or winter",
        "all products",
    ]
    assert events[0].actor.startswith("cli:") and events[1].reason == "back"


def test_refusals(cli, shop) -> None:
    assert "give --label" in cli("channel", "select", "shop", "-t", "acme", "--yes", code=1)
    assert "--all selects every product" in cli(
        "channel", "select", "shop", "-t", "acme", "--all", "-l", "x", "--yes", code=1
    )
    assert "attribute=value" in cli("channel", "select", "shop", "-t", "acme", "-w", "color", "--yes", code=1)
    assert "no channel named" in cli("channel", "preview", "nope", "-t", "acme", code=1)


def test_offers_left_on_the_marketplace_are_shown_as_such(cli, engine, shop) -> None:
    with engine.begin() as conn:  # every offer was published; the reconciler is off
        conn.execute(sa.update(offer_bindings).values(synced_seq=1, dirty=False, status="published"))
        conn.execute(
            sa.update(channel_flows)
            .where(channel_flows.c.channel_id == shop, channel_flows.c.flow == "reconciler")
            .values(enabled=False)
        )
    preview = json.loads(cli("channel", "preview", "shop", "-t", "acme", "-l", "winter", "--json"))
    assert preview["delist_action"] == "leave" and preview["delisted"]["count"] == 3
    cli("channel", "select", "shop", "-t", "acme", "-l", "winter", "--yes")
    assert _bound(engine) == {"A-1", "A-2", "A-3", "A-4"}  # kept, marked not selected
    listed = " ".join(cli("offers", "list", "--tenant", "acme").split())
    assert listed.count("not selected — left on the") == 3  # (the table wraps the rest)
    rows = json.loads(cli("offers", "list", "--tenant", "acme", "--json"))
    assert {r["sku"]: r["selection_state"] for r in rows} == {
        "A-1": "left",
        "A-2": "left",
        "A-3": "selected",
        "A-4": "left",
    }
