"""Every order-receiving merchant adapter against its own sandbox, through the port only: the checks of
:mod:`merchant_suite`, each run against every kind in :data:`merchant_suite.WORLDS`.

No database is involved: the SQLite half of ``make test`` runs these, the PostgreSQL half need not."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from merchant_suite import CHECKS, WORLDS, MerchantWorld

from tradelane.merchant.capabilities import ADAPTERS
from tradelane.merchant.http_oms import partner_message

pytestmark = pytest.mark.skipif(
    os.environ.get("TRADELANE_TEST_DB") == "postgres", reason="no database involved: runs in the SQLite half"
)


@pytest.fixture(params=sorted(WORLDS))
def world(request: pytest.FixtureRequest) -> Iterator[MerchantWorld]:
    with WORLDS[request.param].build() as built:
        yield built


def test_every_order_receiving_kind_is_in_the_suite() -> None:
    assert set(ADAPTERS) == {spec.kind for spec in WORLDS.values()}


@pytest.mark.parametrize("check", list(CHECKS.values()), ids=list(CHECKS))
def test_merchant_adapter_contract(world: MerchantWorld, check: Callable[[MerchantWorld], None]) -> None:
    check(world)
    assert world.proxy.pending() == [], "a queued fault was never hit: the check did not test it"


@pytest.mark.parametrize(
    ("body", "text", "said"),
    [
        ({"message": "unknown SKU(s): X"}, "", "unknown SKU(s): X"),
        ({"error": "invalid_order", "message": ""}, "", "invalid_order"),
        ({"errors": {"line_items": ["out of stock", "gone"]}}, "", "line_items: out of stock, gone"),
        ({"errors": ["a", "b"]}, "", "a; b"),
        (
            None,
            "<html><head><title> 502  Bad Gateway </title></head><body>x</body></html>",
            "502 Bad Gateway",
        ),
        (None, "<p>Service <b>down</b></p>", "Service down"),
        (None, "plain\ntext", "plain text"),
        ({"id": "OMS-1"}, "", None),
        (None, "   ", None),
    ],
)
def test_the_partners_message_is_read_from_json_text_or_html(
    body: object, text: str, said: str | None
) -> None:
    assert partner_message(body, text) == said


def test_a_partners_message_is_bounded() -> None:
    said = partner_message({"message": "x" * 5000}, "")
    assert said is not None and len(said) < 400 and said.startswith("x" * 300)
