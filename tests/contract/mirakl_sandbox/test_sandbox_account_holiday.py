"""A02 (PUT /api/account) in the sandbox: the closing period ("holiday") and the other account fields,
requests and answers validated against the committed contract subset, A01 showing the result; then
MiraklConnector.set_holiday driven against the sandbox itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID, seed_offers
from mirakl_sandbox_spec import assert_response, request_errors

from tradelane.connectors.base import ConnectorEnv
from tradelane.connectors.mirakl.port import MiraklConnector
from tradelane.connectors.mirakl.sandbox import OrderLineSpec, SandboxState
from tradelane.domain.errors import PermanentError

FROM = "2026-08-01T00:00:00Z"
TO = "2026-08-22T00:00:00Z"


def put_account(client: TestClient, auth: dict[str, str], body: Any) -> dict[str, Any]:
    """A02 with ``body`` (itself checked against A02_Request); the 200 answer, checked against the spec."""
    assert request_errors("A02", body) == [], body
    response = client.put("/api/account", json=body, headers=auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_response("A02", 200, answer)
    return answer


def account(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    response = client.get("/api/account", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_response("A01", 200, body)
    return body


def test_a_closing_period_is_stored_answered_and_shown_by_a01(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    assert "closed_from" not in account(client, auth)
    state.advance(3600)
    answer = put_account(client, auth, {"closed_from": FROM, "closed_to": "2026-08-22T02:00:00+02:00"})
    assert answer["errors"] == []
    assert (answer["updated"]["closed_from"], answer["updated"]["closed_to"]) == (FROM, TO)
    shown = account(client, auth)
    assert (shown["closed_from"], shown["closed_to"]) == (FROM, TO)
    assert shown["last_updated_date"] != shown["date_created"]  # A02 changed the account
    assert state.shops[SHOP_ID].closed_from == datetime(2026, 8, 1, tzinfo=UTC)

    # An absent field stays as it is; null clears it (both nullable in A02_Request).
    put_account(client, auth, {"closed_to": "2026-09-01T00:00:00Z"})
    assert account(client, auth)["closed_from"] == FROM
    assert put_account(client, auth, {"closed_from": None, "closed_to": None})["errors"] == []
    reopened = account(client, auth)
    assert "closed_from" not in reopened and "closed_to" not in reopened


def test_a_period_ending_before_it_starts_is_refused_in_errors_and_changes_nothing(
    client: TestClient, auth: dict[str, str]
) -> None:
    put_account(client, auth, {"closed_from": FROM, "closed_to": TO})
    answer = put_account(client, auth, {"closed_from": TO, "closed_to": FROM})
    assert {(e["code"], e["field"]) for e in answer["errors"]} == {
        ("INVALID_CLOSING_PERIOD", "closed_from"),
        ("INVALID_CLOSING_PERIOD", "closed_to"),
    }
    assert (answer["updated"]["closed_from"], answer["updated"]["closed_to"]) == (FROM, TO)
    # Checked against the period already stored: a new end before the stored start is refused too.
    [error] = put_account(client, auth, {"closed_to": "2026-07-01T00:00:00Z"})["errors"]
    assert error["field"] == "closed_to"
    assert account(client, auth)["closed_to"] == TO


@pytest.mark.parametrize(
    "body",
    [
        {"closed_from": "next monday"},
        {"closed_from": "2026-08-01T00:00:00"},  # no zone
        {"closed_to": 20260801},
        ["closed_from"],
    ],
)
def test_malformed_bodies_are_400_with_a_mirakl_error_and_change_nothing(
    client: TestClient, auth: dict[str, str], body: Any
) -> None:
    response = client.put("/api/account", json=body, headers=auth)
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert "closed_from" not in account(client, auth)


def test_name_and_email_are_updated_and_unmodelled_fields_answered_not_editable(
    client: TestClient, auth: dict[str, str]
) -> None:
    answer = put_account(
        client, auth, {"shop_name": "Holiday Shop", "email": None, "description": "x", "channels": ["US"]}
    )
    assert sorted((e["code"], e["field"]) for e in answer["errors"]) == [
        ("FIELD_NOT_EDITABLE", "channels"),
        ("FIELD_NOT_EDITABLE", "description"),
        ("FIELD_NOT_NULLABLE", "email"),
    ]
    assert answer["updated"]["shop_name"] == "Holiday Shop"
    assert answer["updated"]["email"] == "seller@example.test"
    assert account(client, auth)["shop_name"] == "Holiday Shop"


def test_a02_is_logged_and_needs_the_key(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    assert client.put("/api/account", json={"closed_from": None}).status_code == 401
    put_account(client, auth, {"closed_from": None})
    assert [(r.op_id, r.status) for r in state.requests] == [("A02", 401), ("A02", 200)]


def test_a_closed_shop_still_gets_orders_created_through_the_controls(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    """The contract says nothing of orders during a closing period: the sandbox does not invent a rule."""
    skus = seed_offers(state, 1)
    now = state.now()
    put_account(client, auth, {"closed_from": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "closed_to": TO})
    order_id = state.create_order(SHOP_ID, [OrderLineSpec(skus[0], 1)])
    assert state.order(order_id).shop_id == SHOP_ID


def _env(state: SandboxState) -> ConnectorEnv:
    return ConnectorEnv(
        channel_id=1,
        channel_name="sandbox",
        settings={"hostname": "sandbox.mirakl.test", "shop_id": str(SHOP_ID)},
        credentials={"api_key": state.shops[SHOP_ID].api_key},
        now=state.now,
        throttle=lambda _op: None,
        on_exchange=lambda _exchange: None,
    )


def test_mirakl_connector_set_holiday_against_the_sandbox(client: TestClient, state: SandboxState) -> None:
    """The port's own request is one the sandbox (and so the contract) accepts, both ways."""
    connector = MiraklConnector(_env(state), http=client)
    start = datetime(2026, 8, 1, 9, 30, tzinfo=UTC)
    connector.set_holiday(start, start + timedelta(days=14))
    shop = state.shops[SHOP_ID]
    assert (shop.closed_from, shop.closed_to) == (start, start + timedelta(days=14))
    [record] = state.requests
    assert (record.op_id, record.status) == ("A02", 200)

    # The sandbox's refusal (in ``errors`` of a 200) reaches the port as a permanent error naming it.
    with pytest.raises(PermanentError, match="closed_to"):
        connector.client.set_closing_period(start + timedelta(days=9), start + timedelta(days=1))
    assert (shop.closed_from, shop.closed_to) == (start, start + timedelta(days=14))
    connector.set_holiday(None, None)
    assert (shop.closed_from, shop.closed_to) == (None, None)
