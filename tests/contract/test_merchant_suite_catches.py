"""The merchant suite fails adapters that break the contract: each test hands the suite a deliberately
wrong adapter (built on the HTTP OMS adapter, against the same sandbox and proxy) and expects the check
that guards the broken rule to fail. A suite that passed these would prove nothing.

No database is involved: the SQLite half of ``make test`` runs these, the PostgreSQL half need not."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from merchant_suite import (
    check_broken_answers,
    check_delivered_once,
    check_slow_partner,
    http_oms_world,
)

from tradelane.merchant.base import DeliveryOutcome, MerchantSystem, OutcomeKind
from tradelane.merchant.http_oms import HttpOmsAdapter
from tradelane.merchant.schema import OmsOrder

pytestmark = pytest.mark.skipif(
    os.environ.get("TRADELANE_TEST_DB") == "postgres", reason="no database involved: runs in the SQLite half"
)


class ForgetsItsKey(HttpOmsAdapter):
    """Sends a new Idempotency-Key on every attempt: the OMS cannot tell a re-delivery."""

    def deliver_order(self, document: OmsOrder, *, idempotency_key: str, now: datetime) -> DeliveryOutcome:
        return super().deliver_order(document, idempotency_key=str(uuid.uuid4()), now=now)


class TrustsAny2xx(HttpOmsAdapter):
    """Reads any 2xx as delivered, whatever its body (the HTTP OMS adapter's behaviour before the suite)."""

    def deliver_order(self, document: OmsOrder, *, idempotency_key: str, now: datetime) -> DeliveryOutcome:
        outcome = super().deliver_order(document, idempotency_key=idempotency_key, now=now)
        if outcome.status_code is not None and 200 <= outcome.status_code < 300:
            return replace(outcome, kind=OutcomeKind.DELIVERED)
        return outcome


def waits_forever(system: MerchantSystem, credentials: dict[str, Any]) -> HttpOmsAdapter:
    """Ignores the configured timeout: a slow partner holds the delivery as long as it likes."""
    return HttpOmsAdapter(replace(system, settings={**system.settings, "timeout_seconds": 30}), credentials)


@pytest.mark.parametrize(
    ("factory", "check", "complaint"),
    [
        (ForgetsItsKey, check_delivered_once, "already there"),
        (TrustsAny2xx, check_broken_answers, "HTML 200"),
        (waits_forever, check_slow_partner, "waited for the slow answer"),
    ],
    ids=["forgets its key", "trusts any 2xx", "waits forever"],
)
def test_the_suite_fails_an_adapter_breaking_the_contract(factory: Any, check: Any, complaint: str) -> None:
    with http_oms_world() as world:
        world.factory = factory
        with pytest.raises(AssertionError, match=complaint):
            check(world)
