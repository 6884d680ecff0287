"""Amazon channel settings: region endpoints, overrides, validation messages, carrier table, budget
overrides."""

from __future__ import annotations

import pytest
from amazon_fakes import MARKETPLACE, SELLER

from tradelane.connectors.amazon.client import PUBLISHED_BUDGETS
from tradelane.connectors.amazon.connector import CAPABILITIES, channel_capabilities
from tradelane.connectors.amazon.settings import RATE_LIMITED_OPERATIONS, AmazonSettings
from tradelane.connectors.base import RateBudget
from tradelane.domain.errors import ValidationError


def make(**overrides: object) -> AmazonSettings:
    return AmazonSettings.from_dict(
        {"seller_id": SELLER, "marketplace_id": MARKETPLACE, "region": "eu", **overrides}
    )


def test_region_gives_amazons_sp_api_and_lwa_urls() -> None:
    eu = make()
    assert eu.api_url == "https://sellingpartnerapi-eu.amazon.com"
    assert eu.lwa_url == "https://api.amazon.co.uk/auth/o2/token"
    na = AmazonSettings.from_dict({"seller_id": SELLER, "marketplace_id": "ATVPDKIKX0DER"})
    assert (na.region, na.api_url, na.lwa_url) == (
        "na",
        "https://sellingpartnerapi-na.amazon.com",
        "https://api.amazon.com/auth/o2/token",
    )


def test_overrides_for_the_sandbox() -> None:
    s = make(endpoint="http://127.0.0.1:8766/", token_endpoint="http://127.0.0.1:8766")
    assert s.api_url == "http://127.0.0.1:8766"
    assert s.lwa_url == "http://127.0.0.1:8766/auth/o2/token"  # LWA's path added to a bare base URL
    assert make(token_endpoint="http://127.0.0.1:9/custom/token").lwa_url == "http://127.0.0.1:9/custom/token"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"seller_id": ""}, "seller id is missing"),
        ({"seller_id": "bad id"}, "invalid Amazon seller id"),
        ({"marketplace_id": "x"}, "invalid Amazon marketplace id"),
        ({"region": "us"}, "invalid Amazon region 'us'"),
        ({"region": "na"}, "served by the 'eu' region, not 'na': use --region eu"),
        ({"endpoint": "ftp://x"}, "give a full URL"),
        ({"endpoint": "https://sp.example/v1"}, "without a path"),
        ({"endpoint": "https://user:pw@sp.example"}, "no credentials"),
        ({"product_types": {"mugs": "not a type!"}}, "invalid Amazon product type"),
        ({"carriers": {"x": ""}}, "carriers must be an object"),
        ({"order_overlap_seconds": -1}, "order_overlap_seconds must be a number"),
        ({"rate_limits": [1, 2]}, "rate_limits must be an object"),
        ({"rate_limits": {"getOrders": [1, 1]}}, "unknown SP-API operation 'getOrders'"),
        ({"rate_limits": {"searchOrders": [0, 1]}}, r"rate_limits.searchOrders must be \[requests"),
        ({"rate_limits": {"searchOrders": [1, 0.5]}}, "burst"),
        ({"rate_limits": {"searchOrders": [True, 1]}}, "rate_limits.searchOrders"),
    ],
)
def test_invalid_settings_say_what_is_wrong(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_round_trip() -> None:
    s = make(product_types={"mugs": "kitchen"}, carriers={"Acme Express": "DHL"}, carrier_map={"acme": "DHL"})
    assert AmazonSettings.from_dict(s.to_dict()) == s
    assert s.to_dict()["carrier_map"] == {"acme": "DHL"}  # the hub's own settings are kept
    assert s.product_types == {"mugs": "KITCHEN"}


def test_carrier_table() -> None:
    s = make(carriers={"our-fast-one": "DPD"})
    assert s.amazon_carrier("ups") == ("UPS", None)
    assert s.amazon_carrier("Royal-Mail") == ("Royal Mail", None)
    assert s.amazon_carrier("Our Fast One") == ("DPD", None)  # the channel's table
    assert s.amazon_carrier("FedEx") == ("FedEx", None)  # an Amazon code already
    assert s.amazon_carrier("Kurier Müller") == ("Other", "Kurier Müller")
    assert s.amazon_carrier(None) == ("Other", None)


def test_rate_limits_override_the_published_budgets() -> None:
    assert set(PUBLISHED_BUDGETS) == RATE_LIMITED_OPERATIONS  # every operation called has a plan
    s = make(rate_limits={"searchOrders": [2, 30]})
    assert s.rate_limits == {"searchOrders": RateBudget(2.0, 30)}
    assert AmazonSettings.from_dict(s.to_dict()) == s
    caps = channel_capabilities(s.to_dict())
    assert caps.budgets["searchOrders"] == RateBudget(2.0, 30)
    assert caps.budgets["getOrder"] == PUBLISHED_BUDGETS["getOrder"]  # the rest: Amazon's plans
    assert caps.operations == CAPABILITIES.operations
    assert channel_capabilities(make().to_dict()) is CAPABILITIES
    with pytest.raises(ValidationError, match="unknown SP-API operation"):
        channel_capabilities({**make().to_dict(), "rate_limits": {"nope": [1, 1]}})
