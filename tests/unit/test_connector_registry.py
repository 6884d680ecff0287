"""The connector registry: which connectors exist, what each declares, how a channel's connector is
found (pure: no database, no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tradelane.connectors.base import ConnectorEnv, HolidayMode, MarketplaceConnector, Operation, RateBudget
from tradelane.connectors.mirakl.port import MiraklConnector
from tradelane.connectors.registry import (
    CONNECTOR_MODULES,
    CONNECTORS,
    ConnectorSpec,
    connector_names,
    get_connector,
)
from tradelane.domain.errors import ValidationError
from tradelane.services.connector_session import budget_limit
from tradelane.sync.ratelimit import RateLimit


def test_mirakl_is_registered_with_its_spec() -> None:
    assert "mirakl" in connector_names() and "mirakl" in CONNECTORS
    spec = get_connector("mirakl")
    assert isinstance(spec, ConnectorSpec) and spec.name == "mirakl" and spec.title == "Mirakl"
    assert len(CONNECTORS) == len(CONNECTOR_MODULES) and set(CONNECTORS) == set(connector_names())
    # the cursors Mirakl's flows kept before the port: channels keep their watermarks
    assert spec.cursor("orders") == "mirakl.or11.start_update_date"
    assert spec.cursor("messages") == "mirakl.m01.start_date"
    assert spec.cursor("returns") == "mirakl.rt11.updated_from"
    assert spec.customer_messages is not None
    assert spec.customer_messages.is_customer({"from_type": "CUSTOMER"})
    assert not spec.customer_messages.is_customer({"from_type": "OPERATOR"})


def test_an_unknown_connector_names_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown connector 'ebay' \(known: .*mirakl"):
        get_connector("ebay")


def test_the_factory_builds_a_port_connector_for_a_channel() -> None:
    spec = get_connector("mirakl")
    env = ConnectorEnv(
        channel_id=1,
        channel_name="shop",
        settings={"hostname": "shop.mirakl.test", "shop_id": "2001"},
        credentials={"api_key": "key-1"},
        now=lambda: datetime(2024, 5, 1, tzinfo=UTC),
        throttle=lambda _op: None,
        on_exchange=lambda _exchange: None,
    )
    connector = spec.factory(env)
    try:
        assert isinstance(connector, MarketplaceConnector) and isinstance(connector, MiraklConnector)
        assert connector.name == spec.name
    finally:
        connector.close()


def test_capabilities_static_and_per_channel() -> None:
    spec = get_connector("mirakl")
    assert spec.capabilities.acceptance_required and spec.capabilities.supports(Operation.ACCEPT)
    assert spec.capabilities.holiday_mode is HolidayMode.CLOSING_PERIOD
    assert not spec.capabilities.partial_shipments
    multi = spec.channel_capabilities({"hostname": "shop.mirakl.test", "multi_shipment": True})
    assert multi.partial_shipments
    with pytest.raises(ValidationError, match="hostname"):
        spec.channel_capabilities({"shop_id": "1"})


def test_settings_are_validated_with_their_credentials() -> None:
    spec = get_connector("mirakl")
    stored = spec.validate_settings({"hostname": "shop.mirakl.test", "shop_id": "2001"}, {"api_key": "k"})
    assert stored["hostname"] == "shop.mirakl.test" and stored["acceptance_policy"] == "accept_all"
    with pytest.raises(ValidationError, match="shop id"):
        spec.validate_settings({"hostname": "shop.mirakl.test", "shop_id": "abc"}, {"api_key": "k"})
    with pytest.raises(ValidationError, match="empty"):
        spec.validate_settings({"hostname": "shop.mirakl.test"}, {"api_key": " "})


def test_declared_budgets_become_exact_token_buckets() -> None:
    caps = get_connector("mirakl").capabilities
    assert budget_limit(caps.budgets["OR11"]) == RateLimit(1, 60.0)
    assert budget_limit(caps.budgets["RT11"]) == RateLimit(1, 300.0)
    assert budget_limit(caps.budgets["OR21"]).rate == 100 / 60
    assert budget_limit(RateBudget(per_second=0.5, burst=2)) == RateLimit(1, 2.0, burst=2)
    # a refill of exactly one period yields a whole token (no float shortfall)
    assert 60.0 * budget_limit(caps.budgets["OR11"]).rate >= 1.0
