"""The SP-API operations the sandbox serves: operationId, method, path template (as in the models)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote


@dataclass(frozen=True)
class Operation:
    op_id: str
    method: str
    path: str
    model: str  # the contracts/amazon file describing it

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{([^/}]+)\}", r"(?P<\1>[^/]+)", self.path) + "$")


ORDERS_2026 = "orders_2026-01-01"
ORDERS_V0 = "ordersV0"
FEEDS = "feeds_2021-06-30"
LISTINGS = "listingsItems_2021-08-01"

OPERATIONS: tuple[Operation, ...] = (
    Operation("searchOrders", "GET", "/orders/2026-01-01/orders", ORDERS_2026),
    Operation("getOrder", "GET", "/orders/2026-01-01/orders/{orderId}", ORDERS_2026),
    Operation("confirmShipment", "POST", "/orders/v0/orders/{orderId}/shipmentConfirmation", ORDERS_V0),
    Operation("searchListingsItems", "GET", "/listings/2021-08-01/items/{sellerId}", LISTINGS),
    Operation("getListingsItem", "GET", "/listings/2021-08-01/items/{sellerId}/{sku}", LISTINGS),
    Operation("putListingsItem", "PUT", "/listings/2021-08-01/items/{sellerId}/{sku}", LISTINGS),
    Operation("patchListingsItem", "PATCH", "/listings/2021-08-01/items/{sellerId}/{sku}", LISTINGS),
    Operation("deleteListingsItem", "DELETE", "/listings/2021-08-01/items/{sellerId}/{sku}", LISTINGS),
    Operation("createFeedDocument", "POST", "/feeds/2021-06-30/documents", FEEDS),
    Operation("getFeedDocument", "GET", "/feeds/2021-06-30/documents/{feedDocumentId}", FEEDS),
    Operation("createFeed", "POST", "/feeds/2021-06-30/feeds", FEEDS),
    Operation("getFeed", "GET", "/feeds/2021-06-30/feeds/{feedId}", FEEDS),
    Operation("cancelFeed", "DELETE", "/feeds/2021-06-30/feeds/{feedId}", FEEDS),
)

_COMPILED = [(op, op.pattern) for op in OPERATIONS]
BY_ID = {op.op_id: op for op in OPERATIONS}


def match(method: str, raw_path: str) -> tuple[Operation, dict[str, str]] | None:
    """The operation serving ``method raw_path`` and its (percent-decoded) path parameters."""
    for op, rx in _COMPILED:
        found = rx.match(raw_path)
        if found and op.method == method:
            return op, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


def path_exists(raw_path: str) -> bool:
    return any(rx.match(raw_path) for _, rx in _COMPILED)
