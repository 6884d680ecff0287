"""Facts read from the committed Amazon contracts (contracts/amazon/), for tests that check the
connector's tables cover the models' enums. Skips nothing: a missing contract fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts" / "amazon"


def fulfillment_statuses() -> list[str]:
    model = json.loads((CONTRACTS / "orders_2026-01-01.subset.json").read_text())
    return list(model["definitions"]["FulfillmentStatus"]["enum"])
