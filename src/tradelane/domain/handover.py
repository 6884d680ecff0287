"""How an order's hand-over to the merchant system reads to a person (pure; no I/O).

``orders.merchant_status`` says where tradelane stands in *handing the order to the merchant system*
(OMS, Shopify, files) — it is not a fulfilment state: ``delivered`` means "created in the merchant
system", not "delivered to the customer". :func:`describe_handover` turns it into an unambiguous label
("sent to OMS oms-main", with the time), and on a cancelled or refused order never presents it as
progress ("order cancelled · had been sent to OMS oms-main").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradelane.domain.orders import DEAD_STATES, MerchantStatus, OrderState

#: Neutral order states in which the order will never be fulfilled.
DEAD_ORDER_STATES = frozenset(state.value for state in DEAD_STATES)

HANDOVER_LABELS: dict[str, str] = {
    MerchantStatus.NOT_READY.value: "not released by the marketplace yet",
    MerchantStatus.PENDING.value: "waiting to be sent to OMS",
    MerchantStatus.DELIVERED.value: "sent to OMS",
    MerchantStatus.QUARANTINED.value: "quarantined: not sent to OMS",
    MerchantStatus.RELEASED.value: "released by hand: not sent to OMS",
    MerchantStatus.THIRD_PARTY_MANAGED.value: "third-party managed: never sent to OMS",
}
_TONES: dict[str, str] = {
    MerchantStatus.NOT_READY.value: "wait",
    MerchantStatus.PENDING.value: "wait",
    MerchantStatus.DELIVERED.value: "ok",
    MerchantStatus.QUARANTINED.value: "bad",
    MerchantStatus.RELEASED.value: "mute",
    MerchantStatus.THIRD_PARTY_MANAGED.value: "mute",
}


@dataclass(frozen=True, slots=True)
class Handover:
    """``label`` for people, ``tone`` for the badge (ok | wait | bad | mute), the merchant systems the
    order was sent to and when it was first sent (``None`` when it was not)."""

    label: str
    tone: str
    systems: tuple[str, ...]
    sent_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "tone": self.tone,
            "systems": list(self.systems),
            "sent_at": self.sent_at,
        }


def describe_handover(
    merchant_status: str, order_state: str, sent: Sequence[tuple[str, datetime | None]]
) -> Handover:
    """The hand-over as it should read. ``sent`` lists (merchant system name, time) of the systems the
    order was created in."""
    systems = tuple(sorted({name for name, _ in sent}))
    times = [at for _, at in sent if at is not None]
    sent_at = min(times) if times else None
    label = HANDOVER_LABELS.get(merchant_status, merchant_status)
    tone = _TONES.get(merchant_status, "wait")
    if merchant_status == MerchantStatus.DELIVERED.value and systems:
        label = f"sent to OMS {', '.join(systems)}"
    if order_state in DEAD_ORDER_STATES:
        what = "order cancelled" if order_state == OrderState.CANCELLED.value else "order refused"
        if merchant_status == MerchantStatus.DELIVERED.value:
            label = f"{what} · had been {label}"
        elif merchant_status in (MerchantStatus.NOT_READY.value, MerchantStatus.PENDING.value):
            label = f"{what} · not sent to OMS"
        else:
            label = f"{what} · {label}"
        tone = "mute"
    return Handover(label, tone, systems, sent_at)
