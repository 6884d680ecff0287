"""The seller-API operations the sandbox serves: Mirakl operation id, method and path template.

The table is shared by the routes and by the request pipeline (logging, faults, rate limits), so an
operation is identified the same way everywhere. Paths are those of the OpenAPI spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    op_id: str
    method: str
    path: str

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", self.path) + "$")


OPERATIONS: tuple[Operation, ...] = (
    Operation("A01", "GET", "/api/account"),
    Operation("A02", "PUT", "/api/account"),
    Operation("OF01", "POST", "/api/offers/imports"),
    Operation("OF02", "GET", "/api/offers/imports/{import_id}"),
    Operation("OF03", "GET", "/api/offers/imports/{import_id}/error_report"),
    Operation("OF21", "GET", "/api/offers"),
    Operation("OF24", "POST", "/api/offers"),
    Operation("OR11", "GET", "/api/orders"),
    Operation("OR21", "PUT", "/api/orders/{order_id}/accept"),
    Operation("OR23", "PUT", "/api/orders/{order_id}/tracking"),
    Operation("OR24", "PUT", "/api/orders/{order_id}/ship"),
    Operation("OR28", "PUT", "/api/orders/refund"),
    Operation("OR29", "PUT", "/api/orders/{order_id}/cancel"),
    Operation("OR72", "GET", "/api/orders/documents"),
    Operation("OR73", "GET", "/api/orders/documents/download"),
    Operation("OR74", "POST", "/api/orders/{order_id}/documents"),
    Operation("SH21", "GET", "/api/shipping/carriers"),
    Operation("ST01", "POST", "/api/shipments"),
    Operation("RT11", "GET", "/api/returns"),
    Operation("M01", "GET", "/api/messages"),
    Operation("RE01", "GET", "/api/reasons"),
)

_BY_ID = {op.op_id: op for op in OPERATIONS}
_COMPILED = [(op, op.pattern) for op in OPERATIONS]


def operation(op_id: str) -> Operation:
    return _BY_ID[op_id]


def match(method: str, path: str) -> Operation | None:
    """The operation serving ``method path``; literal paths win over templated ones."""
    candidates = [op for op, rx in _COMPILED if op.method == method and rx.match(path)]
    if not candidates:
        return None
    return min(candidates, key=lambda op: op.path.count("{"))


def known_op_ids() -> frozenset[str]:
    return frozenset(_BY_ID)
