"""``order_from_mirakl`` on spec-valid OR11 payloads, and its failures."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from mirakl_client_fixtures import (
    address,
    decoded,
    order,
    order_line,
    orders_page,
    shipping_order,
    spec,
    validate,
)

from tradelane.connectors.mirakl.errors import MiraklSchemaError
from tradelane.connectors.mirakl.mapping import (
    ORDER_LINE_STATES,
    ORDER_MESSAGE_ATTRIBUTE,
    ORDER_STATES,
    MiraklOrderState,
    add_customer_messages,
    neutral_state,
    order_from_mirakl,
)
from tradelane.domain.errors import PermanentError
from tradelane.domain.orders import Address, OrderState


def mapped(payload: dict[str, Any]) -> Any:
    wire = decoded(payload)
    validate("OR11", "200", orders_page([wire], 1))  # fixtures stay within the contract
    return order_from_mirakl(wire)


def test_waiting_acceptance_order() -> None:
    result = mapped(order())
    assert result.marketplace_order_id == "ORD-1001-A"
    assert result.state is OrderState.AWAITING_ACCEPTANCE and result.raw_state == "WAITING_ACCEPTANCE"
    assert result.currency == "EUR"
    assert result.created_at == datetime(2024, 5, 1, 9, 58, tzinfo=UTC)
    assert result.updated_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert result.shipping_address is None and result.billing_address is None
    assert result.customer_message is None and ORDER_MESSAGE_ATTRIBUTE not in result.attributes
    (line,) = result.lines
    assert line.line_id == "ORD-1001-A-1"
    assert line.offer_sku == "ACME-SKU-1"
    assert line.quantity == 2
    assert line.unit_price == Decimal("29.99") and isinstance(line.unit_price, Decimal)
    assert line.currency == "EUR"
    assert line.state == "WAITING_ACCEPTANCE"
    assert line.title == "Trail Runner 42"
    assert line.product_sku == "SKU-1"
    assert result.attributes["mirakl:commercial_id"] == "ORD-1001"
    assert result.attributes["mirakl:shipping_price"] == "4.90"
    assert result.attributes["mirakl:shipping_deadline"] == "2024-05-03T23:59:59+00:00"
    assert result.attributes["mirakl:has_customer_message"] == "false"
    assert "mirakl:acceptance_decision_date" not in result.attributes
    assert result.acceptance_deadline is None
    assert result.raw["order_id"] == "ORD-1001-A"


def test_shipping_order_has_addresses() -> None:
    result = mapped(shipping_order())
    assert result.state is OrderState.TO_SHIP and result.raw_state == "SHIPPING"
    assert result.shipping_address == Address(
        first_name="Anna",
        last_name="Schmidt",
        company="Schmidt GmbH",
        street1="Hauptstraße 5",
        street2="Hinterhaus",
        zip_code="10115",
        city="Berlin",
        state=None,
        country="DEU",
        phone="+49 30 1234567",
        email=None,
    )
    assert result.billing_address is not None
    assert result.billing_address.street2 is None and result.billing_address.company is None
    assert result.billing_address.email == "anon-77@notify.mirakl.test"
    assert result.attributes["mirakl:shipping_additional_info"] == "Ring twice"
    assert result.attributes["mirakl:acceptance_decision_date"] == "2024-05-01T10:05:00+00:00"
    assert [line.line_id for line in result.lines] == ["ORD-1001-A-1", "ORD-1001-A-2"]


def test_addresses_absent_rather_than_null_are_none_too() -> None:
    payload = order()
    payload["customer"] = {"customer_id": "C-1", "firstname": "A", "lastname": "B"}
    result = order_from_mirakl(decoded(payload))
    assert result.shipping_address is None and result.billing_address is None


def test_customer_personalisation_becomes_an_order_level_message() -> None:
    payload = order(
        has_customer_message=True,
        order_additional_fields=[
            {"code": "gift-message", "type": "TEXTAREA", "value": "Happy birthday, Tom!"},
            {"code": "wrapping", "type": "MULTIPLE_VALUES_LIST", "value": ["RED", "GOLD"]},
        ],
        order_lines=[
            order_line(
                1, order_line_additional_fields=[{"code": "engraving", "type": "STRING", "value": "T + A"}]
            ),
            order_line(2),
        ],
    )
    result = mapped(payload)
    expected = "gift-message: Happy birthday, Tom!\nwrapping: RED, GOLD\n[ACME-SKU-1] engraving: T + A"
    assert result.attributes[ORDER_MESSAGE_ATTRIBUTE] == expected
    assert result.customer_message == expected
    assert result.attributes["mirakl:order_additional_fields.gift-message"] == "Happy birthday, Tom!"
    assert result.attributes["mirakl:line.ORD-1001-A-1.engraving"] == "T + A"
    assert result.attributes["mirakl:has_customer_message"] == "true"
    # the message lives on the order, not on lines
    assert all(not hasattr(line, "attributes") for line in result.lines)


def test_prices_stay_exact_through_the_wire() -> None:
    payload = order(order_lines=[order_line(1, price_unit=Decimal("0.1"), price=Decimal("0.3"), quantity=3)])
    result = mapped(payload)
    assert result.lines[0].unit_price == Decimal("0.1")


def test_float_payloads_from_storage_are_read_exactly() -> None:
    stored = json.loads(
        json.dumps({**order(), "order_lines": [{**order_line(1), "price_unit": 19.99}]}, default=str)
    )
    result = order_from_mirakl(stored)
    assert result.lines[0].unit_price == Decimal("19.99")


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda o: o.pop("order_id"), "order.order_id"),
        (lambda o: o.update(order_state="TELEPORTED"), "order.order_state"),
        (lambda o: o.update(order_state="WAITING_REFUND"), "order.order_state"),  # deprecated value
        (lambda o: o.update(currency_iso_code="EURO"), "order.currency_iso_code"),
        (lambda o: o.update(created_date="yesterday"), "order.created_date"),
        (lambda o: o.pop("last_updated_date"), "order.last_updated_date"),
        (lambda o: o.update(order_lines=[]), "order.order_lines"),
        (lambda o: o.update(order_lines="none"), "order.order_lines"),
        (
            lambda o: o["order_lines"][0].update(order_line_state="LOST"),
            "order.order_lines[0].order_line_state",
        ),
        (lambda o: o["order_lines"][0].pop("price_unit"), "order.order_lines[0].price_unit"),
        (lambda o: o["order_lines"][0].update(quantity="two"), "order.order_lines[0].quantity"),
        (lambda o: o["order_lines"][0].update(quantity=2**31), "order.order_lines[0].quantity"),
        (lambda o: o["order_lines"][0].update(offer_sku=""), "order.order_lines[0].offer_sku"),
        (lambda o: o.update(customer="anna"), "order.customer"),
        (lambda o: o["customer"].update(shipping_address=["x"]), "order.customer.shipping_address"),
        (
            lambda o: o.update(order_additional_fields=[{"type": "STRING", "value": "x"}]),
            "order.order_additional_fields[0].code",
        ),
    ],
)
def test_broken_payloads_name_the_field(mutate: Any, path: str) -> None:
    payload = decoded(order())
    mutate(payload)
    with pytest.raises(MiraklSchemaError) as info:
        order_from_mirakl(payload)
    assert isinstance(info.value, PermanentError)
    assert info.value.field_path == path
    assert path in info.value.reason


def test_path_prefix_is_used_in_errors() -> None:
    payload = decoded(order(order_state="NOPE"))
    with pytest.raises(MiraklSchemaError) as info:
        order_from_mirakl(payload, path="orders[7]")
    assert info.value.field_path == "orders[7].order_state"


@pytest.mark.parametrize("state", [s.value for s in MiraklOrderState])
def test_every_schema_order_state_maps(state: str) -> None:
    result = mapped(order(order_state=state))
    assert result.state is ORDER_STATES[MiraklOrderState(state)]
    assert result.raw_state == state


@pytest.mark.parametrize(
    ("raw", "neutral"),
    [
        ("STAGING", OrderState.PENDING),
        ("WAITING_ACCEPTANCE", OrderState.AWAITING_ACCEPTANCE),
        ("WAITING_DEBIT", OrderState.AWAITING_PAYMENT),
        ("WAITING_DEBIT_PAYMENT", OrderState.AWAITING_PAYMENT),
        ("SHIPPING", OrderState.TO_SHIP),
        ("SHIPPED", OrderState.SHIPPED),
        ("TO_COLLECT", OrderState.SHIPPED),
        ("RECEIVED", OrderState.DELIVERED),
        ("CLOSED", OrderState.CLOSED),
        ("REFUSED", OrderState.REFUSED),
        ("CANCELED", OrderState.CANCELLED),
    ],
)
def test_state_table(raw: str, neutral: OrderState) -> None:
    assert neutral_state(raw) is neutral


def test_the_state_table_covers_every_order_state_of_the_schema() -> None:
    described = spec()["components"]["schemas"]["OR11_Response_200_Orders"]["properties"]["order_state"]
    current = described["description"].split("<details>")[0]  # deprecated values come after
    assert set(ORDER_STATES) == set(MiraklOrderState) == set(re.findall(r'`"([A-Z_]+)"`', current))
    assert {state.value for state in MiraklOrderState} <= ORDER_LINE_STATES


@pytest.mark.parametrize("state", ["WAITING_REFUND", "shipping", "TO_SHIP"])
def test_a_state_outside_the_table_is_a_permanent_schema_error(state: str) -> None:
    with pytest.raises(ValueError):
        neutral_state(state)
    with pytest.raises(MiraklSchemaError, match="unknown order state") as info:
        order_from_mirakl(order(order_state=state))
    assert isinstance(info.value, PermanentError)


@pytest.mark.parametrize("line_state", ["INCIDENT_OPEN", "REFUNDED", "CLOSED"])
def test_line_only_states_are_accepted(line_state: str) -> None:
    result = mapped(order(order_lines=[order_line(1, order_line_state=line_state)]))
    assert result.lines[0].state == line_state


def test_address_helper_fixture_is_spec_valid_when_used_as_shipping_address() -> None:
    payload = shipping_order()
    payload["customer"]["shipping_address"] = address(state="BE")
    assert mapped(payload).shipping_address.state == "BE"


def test_customer_messages_are_folded_into_the_order_message() -> None:
    payload = order(
        has_customer_message=True,
        order_additional_fields=[{"code": "gift-message", "type": "STRING", "value": "For Tom"}],
    )
    base = mapped(payload)
    texts = ["  Please gift-wrap it. ", "", "For Tom", "Thanks!\nAnna", "Please gift-wrap it."]
    result = add_customer_messages(base, texts)
    assert result.customer_message == "gift-message: For Tom\nPlease gift-wrap it.\nFor Tom\nThanks!\nAnna"
    assert result.attributes[ORDER_MESSAGE_ATTRIBUTE] == result.customer_message
    assert base.customer_message == "gift-message: For Tom"  # the input is not modified
    assert add_customer_messages(result, texts) is result  # idempotent


def test_customer_messages_on_an_order_without_custom_fields() -> None:
    result = add_customer_messages(mapped(order()), ["Leave at the door"])
    assert result.attributes[ORDER_MESSAGE_ATTRIBUTE] == "Leave at the door"
    assert add_customer_messages(mapped(order()), []).customer_message is None
