"""Orders are found by their bare marketplace id (ambiguity is an error naming the candidates), an
unknown state filter is an error (never an empty list), and the hand-over to the merchant system reads
"sent to OMS <system> <time>" — on a cancelled order not as a fulfilment state. Dashboard, API, CLI."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner
from webtest_support import login

from order_updates_support import make_order
from tradelane.cli import build_app
from tradelane.connectors.mirakl.mapping import MiraklOrderState
from tradelane.domain.errors import ConflictError, NotFoundError
from tradelane.domain.handover import describe_handover
from tradelane.persistence.merchant_systems import add_merchant_system
from tradelane.persistence.tables import order_deliveries, orders
from tradelane.services import order_health as health
from tradelane.services import rules
from tradelane.services.channels import create_channel
from tradelane.services.orders import list_orders, resolve_order_ref
from tradelane.services.tenants import create_tenant

BARE = "88061052-A"


@pytest.fixture
def seeded(container, now: datetime) -> dict[str, int | str]:
    """acme: BARE on channel "fr" (delivered to "oms"), TWIN-1 on "fr" and "de", a cancelled order
    that had been delivered; globex: its own BARE."""
    engine = container.engine
    ids: dict[str, int | str] = {}
    with engine.begin() as conn:
        acme, token = create_tenant(conn, "acme", now=now)
        globex, _ = create_tenant(conn, "globex", now=now)
        channel_ids = {}
        for owner, name in ((acme.id, "fr"), (acme.id, "de"), (globex.id, "fr")):
            channel_ids[(owner, name)] = create_channel(
                conn,
                tenant_id=owner,
                name=name,
                connector="mirakl",
                settings={},
                credentials=None,
                keyring=container.keyring,
                now=now,
            ).id
        oms = add_merchant_system(
            conn,
            tenant_id=acme.id,
            name="oms-main",
            kind="http",
            settings={"url": "https://oms.example/orders"},
            credentials=None,
            keyring=container.keyring,
            now=now,
        )
    ids["token"] = token
    ids["acme"] = acme.id
    ids["bare"] = make_order(engine, acme.id, channel_ids[(acme.id, "fr")], BARE, now)
    ids["twin_fr"] = make_order(engine, acme.id, channel_ids[(acme.id, "fr")], "TWIN-1", now)
    ids["twin_de"] = make_order(engine, acme.id, channel_ids[(acme.id, "de")], "TWIN-1", now)
    ids["cancelled"] = make_order(
        engine, acme.id, channel_ids[(acme.id, "fr")], "GONE-1", now, state=MiraklOrderState.CANCELED
    )
    ids["globex_bare"] = make_order(engine, globex.id, channel_ids[(globex.id, "fr")], BARE, now)
    sent_at = now - timedelta(minutes=30)
    with engine.begin() as conn:
        for key in ("bare", "cancelled"):
            conn.execute(
                sa.insert(order_deliveries).values(
                    tenant_id=acme.id,
                    order_id=ids[key],
                    merchant_system_id=oms.id,
                    status="delivered",
                    attempts=1,
                    created_at=sent_at,
                    delivered_at=sent_at,
                )
            )
            conn.execute(sa.update(orders).where(orders.c.id == ids[key]).values(merchant_status="delivered"))
    return ids


# --- lookup ----------------------------------------------------------------------------------------


def test_service_finds_bare_ids_and_names_the_candidates_when_ambiguous(container, seeded):
    acme = int(seeded["acme"])
    with container.engine.connect() as conn:
        assert resolve_order_ref(conn, acme, BARE) == seeded["bare"]  # not globex's
        assert resolve_order_ref(conn, acme, f"fr:{BARE}") == seeded["bare"]
        assert resolve_order_ref(conn, acme, str(seeded["twin_de"])) == seeded["twin_de"]
        assert resolve_order_ref(conn, acme, "de:TWIN-1") == seeded["twin_de"]
        with pytest.raises(ConflictError) as info:
            resolve_order_ref(conn, acme, "TWIN-1")
        assert "de:TWIN-1, fr:TWIN-1" in str(info.value)
        for odd in ("NOPE", "99999999999999999999", "²", "a\x00b"):
            with pytest.raises(NotFoundError):
                resolve_order_ref(conn, acme, odd)
        # Order Health (retry/release) and publishing-rule previews take the same references
        assert health.resolve_ref(conn, acme, BARE) == seeded["bare"]
        assert rules.resolve_order(conn, acme, BARE) == seeded["bare"]


def test_api_finds_bare_ids_and_rejects_unknown_states(client, seeded):
    auth = {"Authorization": f"Bearer {seeded['token']}"}
    found = client.get(f"/api/v1/orders/{BARE}", headers=auth, params={"payloads": "false"})
    assert found.status_code == 200 and found.json()["id"] == seeded["bare"]
    assert found.json()["handover"]["label"] == "sent to OMS oms-main"
    ambiguous = client.get("/api/v1/orders/TWIN-1", headers=auth)
    assert ambiguous.status_code == 409
    assert "de:TWIN-1, fr:TWIN-1" in ambiguous.json()["detail"]
    assert ambiguous.headers["content-type"].startswith("application/problem+json")
    bogus = client.get("/api/v1/orders", headers=auth, params={"state": "BOGUS"})
    assert bogus.status_code == 422 and bogus.headers["content-type"].startswith("application/problem+json")
    assert "awaiting_acceptance" in bogus.text and "to_ship" in bogus.text
    shipping = client.get("/api/v1/orders", headers=auth, params={"state": "to_ship"}).json()["items"]
    assert {o["marketplace_order_id"] for o in shipping} == {BARE, "TWIN-1"}


def test_dashboard_search_takes_bare_ids(client, seeded):
    login(client, str(seeded["token"]))
    answer = client.get("/dashboard/orders", params={"ref": BARE}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"/dashboard/orders/{seeded['bare']}"
    page = client.get("/dashboard/orders", params={"ref": "TWIN-1"})
    assert "de:TWIN-1, fr:TWIN-1" in page.text


# --- the hand-over label ---------------------------------------------------------------------------------


def test_handover_reads_as_sent_to_oms_and_not_as_fulfilment_on_cancelled_orders(now):
    sent = [("oms-main", now)]
    assert describe_handover("delivered", "to_ship", sent).label == "sent to OMS oms-main"
    assert describe_handover("delivered", "to_ship", sent).tone == "ok"
    gone = describe_handover("delivered", "cancelled", sent)
    assert gone.label == "order cancelled · had been sent to OMS oms-main" and gone.tone == "mute"
    assert describe_handover("pending", "cancelled", []).label == "order cancelled · not sent to OMS"
    assert (
        describe_handover("delivered", "refused", sent).label
        == "order refused · had been sent to OMS oms-main"
    )
    assert describe_handover("pending", "to_ship", []).label == "waiting to be sent to OMS"
    assert "delivered" not in describe_handover("delivered", "to_ship", []).label


def test_dashboard_lists_sent_to_oms_with_system_and_time(client, seeded, container):
    login(client, str(seeded["token"]))
    listing = client.get("/dashboard/orders").text
    assert "<th>Sent to OMS</th>" in listing and "Merchant status" not in listing
    assert "sent to OMS oms-main" in listing and "order cancelled · had been sent to OMS oms-main" in listing
    assert ">delivered<" not in listing
    page = client.get(f"/dashboard/orders/{seeded['cancelled']}").text
    assert "order cancelled · had been sent to OMS oms-main" in page
    with container.engine.connect() as conn:
        [row] = [o for o in list_orders(conn, int(seeded["acme"])) if o["id"] == seeded["bare"]]
    assert row["handover"]["systems"] == ["oms-main"] and row["handover"]["sent_at"] is not None


# --- the command line ----------------------------------------------------------------------------------


@pytest.fixture
def cli(container, db_url, monkeypatch, tmp_path):
    key = container.settings.key_list()[0]
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", key)
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()
    return lambda *args: runner.invoke(app, list(args))


def test_cli_bare_ids_state_validation_and_sent_to_oms(cli, seeded):
    shown = cli("orders", "show", BARE, "--tenant", "acme", "--json")
    assert shown.exit_code == 0, shown.output
    assert f'"id": {seeded["bare"]}' in shown.stdout
    ambiguous = cli("orders", "show", "TWIN-1", "--tenant", "acme")
    assert ambiguous.exit_code == 1 and "de:TWIN-1, fr:TWIN-1" in " ".join(ambiguous.output.split())
    tenants = cli("orders", "show", BARE)  # acme and globex both have it
    assert tenants.exit_code == 1 and "pass --tenant" in tenants.output
    assert cli("orders", "show", "GONE-1", "--json").exit_code == 0  # only acme has it
    bogus = cli("orders", "list", "--tenant", "acme", "--state", "BOGUS")
    assert bogus.exit_code == 2
    flat = " ".join(bogus.output.split())
    assert "unknown order state 'BOGUS'" in flat and "awaiting_payment, to_ship, partially_shipped" in flat
    lower = cli("orders", "list", "--tenant", "acme", "--state", "CANCELLED", "--json")  # any case
    assert lower.exit_code == 0 and "GONE-1" in lower.stdout and BARE not in lower.stdout
    table = cli("orders", "list", "--tenant", "acme")
    assert table.exit_code == 0 and "sent to OMS" in table.stdout and "delivered" not in table.stdout
    detail = cli("orders", "show", "GONE-1", "--tenant", "acme")
    assert "order cancelled · had been sent to OMS oms-main" in detail.stdout
