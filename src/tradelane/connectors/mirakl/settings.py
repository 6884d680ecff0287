"""Per-channel Mirakl settings (stored as JSON in ``channels.settings``; the API key is a credential)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tradelane.connectors.mirakl.limits import DEFAULT_LIMITS, FALLBACK_LIMIT
from tradelane.connectors.mirakl.mapping import MiraklOfferSettings, MiraklOrderState
from tradelane.sync.ratelimit import RateLimit

CONNECTOR = "mirakl"


class AcceptancePolicy(StrEnum):
    ACCEPT_ALL = "accept_all"  # as the reference integration: accept every line
    ACCEPT_IF_KNOWN = "accept_if_known"  # refuse lines whose SKU is unknown or out of stock


#: The operator's optional modules a channel may declare absent (setting ``modules``), each with the
#: call it would make: an absent module's feed is never read (its operation is not declared).
OPTIONAL_MODULES: dict[str, str] = {"returns": "RT11", "messages": "M01"}


def _modules(value: Any) -> dict[str, bool]:
    """``modules`` validated: an object of :data:`OPTIONAL_MODULES` names to booleans; a module left
    out is on (the default, with the 404 → ``feed_unavailable`` alert and backoff as safety net)."""
    if not isinstance(value, dict):
        raise ValueError('modules must be an object, e.g. {"returns": false, "messages": false}')
    unknown = sorted(set(value) - set(OPTIONAL_MODULES))
    if unknown:
        raise ValueError(
            f"unknown Mirakl modules: {', '.join(map(str, unknown))} (known: {', '.join(OPTIONAL_MODULES)})"
        )
    wrong = sorted(k for k, v in value.items() if not isinstance(v, bool))
    if wrong:
        raise ValueError(f"modules: {', '.join(wrong)} must be true or false")
    return {name: value.get(name, True) for name in OPTIONAL_MODULES}


#: Order states polled with OR11 (every seller-side state after STAGING, so cancellations show too).
POLLED_STATES: tuple[str, ...] = tuple(s.value for s in MiraklOrderState if s is not MiraklOrderState.STAGING)


@dataclass(frozen=True, slots=True)
class MiraklSettings:
    hostname: str
    shop_id: str | None = None
    acceptance_policy: AcceptancePolicy = AcceptancePolicy.ACCEPT_ALL
    multi_shipment: bool = False
    #: merchant carrier name/code (lower-cased) -> Mirakl carrier code (validated against SH21)
    carrier_map: dict[str, str] = field(default_factory=dict)
    #: op id -> [calls, per_seconds]; overrides Mirakl's published guidance (sandboxes allow more)
    rate_limits: dict[str, tuple[int, float]] = field(default_factory=dict)
    offer: dict[str, Any] = field(default_factory=dict)
    #: The operator's acceptance delay (a back-office setting Mirakl's API does not expose): an order not
    #: accepted within this time of its creation is auto-cancelled by the marketplace.
    acceptance_window_seconds: int = 86_400
    poll_overlap_seconds: int = 300
    initial_lookback_hours: int = 72
    timeout_seconds: float = 30.0
    delta_batch_size: int = 5_000
    staging_hostname: str | None = None
    staging_shop_id: str | None = None
    #: The operator's optional modules (:data:`OPTIONAL_MODULES`) → offered; all on by default. An
    #: operator without returns or messages: ``{"returns": false, "messages": false}``.
    modules: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(OPTIONAL_MODULES, True))

    def offers_module(self, name: str) -> bool:
        """Whether the operator offers optional module ``name`` (``returns``, ``messages``)."""
        return self.modules.get(name, True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiraklSettings:
        known = {name for name in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Mirakl settings: {', '.join(unknown)}")
        if not data.get("hostname"):
            raise ValueError("Mirakl settings need a hostname")
        values = dict(data)
        if "acceptance_policy" in values:
            values["acceptance_policy"] = AcceptancePolicy(values["acceptance_policy"])
        if "rate_limits" in values:
            values["rate_limits"] = {
                k.upper(): (int(v[0]), float(v[1])) for k, v in values["rate_limits"].items()
            }
        if "carrier_map" in values:
            values["carrier_map"] = {k.strip().lower(): v for k, v in values["carrier_map"].items()}
        if "modules" in values:
            values["modules"] = _modules(values["modules"])
        settings = cls(**values)
        settings.offer_settings()  # validate eagerly
        return settings

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "shop_id": self.shop_id,
            "acceptance_policy": self.acceptance_policy.value,
            "multi_shipment": self.multi_shipment,
            "carrier_map": dict(self.carrier_map),
            "rate_limits": {k: [v[0], v[1]] for k, v in self.rate_limits.items()},
            "offer": dict(self.offer),
            "acceptance_window_seconds": self.acceptance_window_seconds,
            "poll_overlap_seconds": self.poll_overlap_seconds,
            "initial_lookback_hours": self.initial_lookback_hours,
            "timeout_seconds": self.timeout_seconds,
            "delta_batch_size": self.delta_batch_size,
            "staging_hostname": self.staging_hostname,
            "staging_shop_id": self.staging_shop_id,
            "modules": dict(self.modules),
        }

    def offer_settings(self) -> MiraklOfferSettings:
        return MiraklOfferSettings(**self.offer)

    def limit(self, op: str) -> RateLimit:
        if op in self.rate_limits:
            calls, per = self.rate_limits[op]
            return RateLimit(calls, per)
        published = DEFAULT_LIMITS.get(op, FALLBACK_LIMIT)
        return RateLimit(published.calls, published.per_seconds)
