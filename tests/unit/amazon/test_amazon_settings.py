"""Amazon channel settings: region endpoints, overrides, validation messages, carrier table."""

from __future__ import annotations

import pytest
from amazon_fakes import MARKETPLACE, SELLER

from tradelane.connectors.amazon.settings import AmazonSettings


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
