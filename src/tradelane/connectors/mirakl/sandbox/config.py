"""Sandbox configuration (platform timings, reference data) and the order factory's line spec."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from tradelane.connectors.mirakl.sandbox import seeddata
from tradelane.connectors.mirakl.sandbox.faults import RouteOverride
from tradelane.connectors.mirakl.sandbox.models import Carrier
from tradelane.connectors.mirakl.sandbox.offers import OfferRules


@dataclass(frozen=True)
class OrderLineSpec:
    """One line of a factory order: an existing offer of the shop, a quantity, optional prices."""

    offer_sku: str
    quantity: int = 1
    #: Defaults to the offer's price; required when the order currency is not the shop's.
    unit_price: Decimal | None = None
    shipping_price: Decimal = Decimal(0)
    #: Line custom fields (e.g. an engraving text): code -> value.
    additional_fields: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SandboxConfig:
    """Platform timings and reference data (all durations on the sandbox clock)."""

    #: Acceptance (OR21) -> SHIPPING; WAITING_DEBIT_PAYMENT is reached half-way.
    payment_delay: timedelta = timedelta(seconds=60)
    #: Creation -> WAITING_ACCEPTANCE (0: orders are created directly awaiting acceptance).
    staging_delay: timedelta = timedelta(0)
    #: Creation -> acceptance deadline, after which an unaccepted order is auto-canceled.
    acceptance_delay: timedelta = timedelta(days=3)
    #: OR28 refund -> REFUNDED.
    refund_delay: timedelta = timedelta(seconds=60)
    #: OF02 polls that still see the import unfinished (the last of them RUNNING, earlier WAITING).
    import_polls: int = 2
    #: An import also completes once this long has passed, polled or not (``None``: polls only).
    import_delay: timedelta | None = timedelta(seconds=60)
    #: OR11 ``start_update_date`` is moved back by this much ("Mirakl will subtract a time delta to
    #: ensure no orders are missed"): clients must expect to see an order again.
    update_date_slack: timedelta = timedelta(seconds=30)
    platform_currency: str = "EUR"
    carriers: tuple[Carrier, ...] = seeddata.DEFAULT_CARRIERS
    offer_states: Mapping[str, str] = field(default_factory=lambda: dict(seeddata.DEFAULT_OFFER_STATES))
    logistic_classes: Mapping[str, str] = field(
        default_factory=lambda: dict(seeddata.DEFAULT_LOGISTIC_CLASSES)
    )
    reasons: Mapping[str, tuple[tuple[str, str], ...]] = field(
        default_factory=lambda: dict(seeddata.DEFAULT_REASONS)
    )
    document_types: frozenset[str] = seeddata.DEFAULT_DOCUMENT_TYPES
    #: Lasting behaviour per operation id (``RT11`` off like an operator without the returns module,
    #: ``M01`` answering 503 or garbage...). Operations not named here behave normally.
    routes: dict[str, RouteOverride] = field(default_factory=dict)
    #: The operator's offer custom fields (codes): OF24 ``offer_additional_fields`` and OF01 columns of
    #: these codes are stored on the offer and listed by OF21; other codes are ignored.
    offer_fields: frozenset[str] = frozenset()

    def offer_rules(self) -> OfferRules:
        return OfferRules(
            offer_states=self.offer_states,
            logistic_classes=self.logistic_classes,
            default_logistic_class=next(iter(self.logistic_classes)),
            reference_types=seeddata.REFERENCE_TYPES,
            offer_fields=self.offer_fields,
        )


def line_spec(raw: Mapping[str, object]) -> OrderLineSpec:
    def dec(value: object) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise ValueError("amounts must be Decimal or strings, not float")
        return Decimal(str(value))

    fields = raw.get("additional_fields") or {}
    if not isinstance(fields, Mapping):
        raise ValueError("additional_fields must be a mapping")
    quantity = raw.get("quantity", 1)
    if not isinstance(quantity, int):
        raise ValueError("quantity must be an integer")
    return OrderLineSpec(
        offer_sku=str(raw["offer_sku"]),
        quantity=quantity,
        unit_price=dec(raw.get("unit_price")),
        shipping_price=dec(raw.get("shipping_price")) or Decimal(0),
        additional_fields={str(k): str(v) for k, v in fields.items()},
    )


def decimals(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
