"""Settings of one Amazon SP-API channel (a merchant-fulfilled seller account in one marketplace).

Stored as the channel's ``settings`` (JSON); credentials (LWA client id/secret, refresh token) live
apart, encrypted. :meth:`AmazonSettings.from_dict` validates everything and raises ``ValueError`` with
a message saying what is wrong and how to fix it.

The region picks Amazon's SP-API host and the Login-with-Amazon token endpoint; ``endpoint`` and
``token_endpoint`` override them (e.g. ``http://127.0.0.1:PORT`` for the sandbox).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tradelane.connectors.base import RateBudget

CONNECTOR = "amazon"

#: SP-API host and LWA token endpoint per region (Amazon's published URLs).
REGIONS: Mapping[str, tuple[str, str]] = {
    "na": ("https://sellingpartnerapi-na.amazon.com", "https://api.amazon.com/auth/o2/token"),
    "eu": ("https://sellingpartnerapi-eu.amazon.com", "https://api.amazon.co.uk/auth/o2/token"),
    "fe": ("https://sellingpartnerapi-fe.amazon.com", "https://api.amazon.co.jp/auth/o2/token"),
}

#: Amazon's public marketplace ids and the region that serves each (a known id in the wrong region
#: is refused at set-up; an unknown, well-formed id is accepted — Amazon adds marketplaces).
MARKETPLACE_REGIONS: Mapping[str, str] = {
    "ATVPDKIKX0DER": "na",  # US
    "A2EUQ1WTGCTBG2": "na",  # CA
    "A1AM78C64UM0Y8": "na",  # MX
    "A2Q3Y263D00KWC": "na",  # BR
    "A1F83G8C2ARO7P": "eu",  # UK
    "A1PA6795UKMFR9": "eu",  # DE
    "A13V1IB3VIYZZH": "eu",  # FR
    "APJ6JRA9NG5V4": "eu",  # IT
    "A1RKKUPIHCS9HS": "eu",  # ES
    "A1805IZSGTT6HS": "eu",  # NL
    "A2NODRKZP88ZB9": "eu",  # SE
    "A1C3SOZRARQ6R3": "eu",  # PL
    "AMEN7PMS3EDWL": "eu",  # BE
    "A28R8C7NBKEWEA": "eu",  # IE
    "A33AVAJ2PDY3EV": "eu",  # TR
    "A21TJRUUN4KGV": "eu",  # IN
    "ARBP9OOSHTCHU": "eu",  # EG
    "A17E79C6D8DWNP": "eu",  # SA
    "A2VIGQ35RCS4UG": "eu",  # AE
    "A1VC38T7YXB528": "fe",  # JP
    "A39IBJ37TRP1C6": "fe",  # AU
    "A19VAU5U5O7RUS": "fe",  # SG
}

#: Our carrier names/codes (lower-cased, spaces and dashes dropped) → Amazon carrier codes. A channel's
#: ``carriers`` setting adds to or overrides it; anything unknown goes out as ``Other`` + the name.
DEFAULT_CARRIERS: Mapping[str, str] = {
    "ups": "UPS",
    "usps": "USPS",
    "fedex": "FedEx",
    "dhl": "DHL",
    "dhlexpress": "DHL",
    "dhlecommerce": "DHL eCommerce",
    "dpd": "DPD",
    "gls": "GLS",
    "hermes": "Hermes",
    "evri": "Evri",
    "royalmail": "Royal Mail",
    "parcelforce": "Parcelforce",
    "deutschepost": "Deutsche Post",
    "colissimo": "Colissimo",
    "chronopost": "Chronopost",
    "laposte": "La Poste",
    "colisprive": "Colis Prive",
    "mondialrelay": "Mondial Relay",
    "poste": "Poste Italiane",
    "posteitaliane": "Poste Italiane",
    "brt": "BRT",
    "seur": "SEUR",
    "correos": "Correos",
    "postnl": "PostNL",
    "bpost": "bpost",
    "canadapost": "Canada Post",
    "purolator": "Purolator",
    "australiapost": "Australia Post",
    "japanpost": "Japan Post",
    "yamato": "Yamato Transport",
    "sagawa": "Sagawa Express",
    "tnt": "TNT",
    "amazonshipping": "Amazon Shipping",
}

OTHER_CARRIER = "Other"

_ID = re.compile(r"^[A-Z0-9]{8,20}$")
_PRODUCT_TYPE = re.compile(r"^[A-Z0-9_]{1,80}$")


def carrier_key(name: str) -> str:
    """The lookup key of a carrier name or code: lower-cased, spaces, dashes, dots and underscores
    dropped (``Royal-Mail`` and ``royal mail`` are the same carrier)."""
    return re.sub(r"[\s\-._]", "", name).lower()


@dataclass(frozen=True, slots=True)
class AmazonSettings:
    """One channel's Amazon settings (validated by :meth:`from_dict`).

    * ``product_type``: the Amazon product type sent with offers (``PRODUCT`` suits offer-only
      listings on existing catalog items);
    * ``product_types``: the product-type mapping — catalog value of ``product_type_attribute`` →
      Amazon product type; an offer whose value is mapped is sent as a full listing (``LISTING``
      requirements, with its title and ``amazon:*`` attributes), any other as ``LISTING_OFFER_ONLY``;
    * ``carriers``: additions/overrides of :data:`DEFAULT_CARRIERS`;
    * ``order_overlap_seconds``: how far each orders poll reaches back before the last watermark;
    * ``initial_lookback_hours``: the first poll's window;
    * ``max_patch_seconds``: the longest a delta may spend in ``patchListingsItem`` calls before the
      planner sends a feed instead;
    * ``full_batch``: offers per full-sync submission (the service's batch; the connector packs them into
      as few feed documents as their bytes allow — ≤ 25,000 messages and ≤ 10 MiB each); lower it for
      large listings when a batch would need more feeds than createFeed's burst;
    * ``issue_reads``: listings with ERROR issues an import's result reads back (searchListingsItems,
      20 a page) for offers whose issues the feed's processing report does not carry (0: none);
    * ``rate_limits``: budget overrides per SP-API operation (``{"searchOrders": [rate, burst]}``:
      requests per second, bucket size) — a usage plan Amazon raised for this application, or a
      sandbox's; other operations follow Amazon's published plans, and a rate Amazon reports in
      ``x-amzn-RateLimit-Limit`` wins over both.
    """

    seller_id: str
    marketplace_id: str
    region: str = "na"
    endpoint: str | None = None
    token_endpoint: str | None = None
    product_type: str = "PRODUCT"
    product_type_attribute: str = "amazon_product_type"
    product_types: Mapping[str, str] = field(default_factory=dict)
    carriers: Mapping[str, str] = field(default_factory=dict)
    fulfillment_channel_code: str = "DEFAULT"
    order_overlap_seconds: int = 600
    initial_lookback_hours: int = 72
    max_patch_seconds: float = 60.0
    feed_poll_seconds: float = 60.0
    full_batch: int = 100_000
    issue_reads: int = 100
    rate_limits: Mapping[str, RateBudget] = field(default_factory=dict)
    #: Settings the hub keeps on the channel that are not the connector's (e.g. ``carrier_map``, read
    #: by the fulfilment service): kept as they are.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        """Base URL of the SP-API (no trailing slash)."""
        return self.endpoint or REGIONS[self.region][0]

    @property
    def lwa_url(self) -> str:
        """The LWA token endpoint (an override without a path gets LWA's ``/auth/o2/token``)."""
        if self.token_endpoint is None:
            return REGIONS[self.region][1]
        if urlsplit(self.token_endpoint).path.strip("/"):
            return self.token_endpoint
        return f"{self.token_endpoint}/auth/o2/token"

    def amazon_carrier(self, carrier: str | None) -> tuple[str, str | None]:
        """Our carrier name or code → (Amazon carrier code, carrier name when the code is ``Other``).

        Known names (the channel's table first, then :data:`DEFAULT_CARRIERS`) and values that already
        are Amazon codes map to the code; anything else is ``("Other", carrier)``. ``None`` or blank
        gives ``("Other", None)`` (the caller decides whether that is acceptable)."""
        if carrier is None or not carrier.strip():
            return OTHER_CARRIER, None
        key = carrier_key(carrier)
        table = {**DEFAULT_CARRIERS, **{carrier_key(k): v for k, v in self.carriers.items()}}
        if key in table:
            return table[key], None
        codes = {carrier_key(code): code for code in table.values()}
        if key in codes:
            return codes[key], None
        return OTHER_CARRIER, carrier.strip()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AmazonSettings:
        """Validated settings; ``ValueError`` says what is wrong."""
        seller_id = _text(data.get("seller_id"), "seller id")
        if not _ID.match(seller_id):
            raise ValueError(
                f"invalid Amazon seller id {seller_id!r}: expected the merchant token "
                "(8-20 upper-case letters and digits, e.g. A2ABCDEFGHIJKL)"
            )
        marketplace_id = _text(data.get("marketplace_id"), "marketplace id")
        if not _ID.match(marketplace_id):
            raise ValueError(
                f"invalid Amazon marketplace id {marketplace_id!r}: expected e.g. ATVPDKIKX0DER (US) "
                "or A1PA6795UKMFR9 (DE)"
            )
        region = str(data.get("region") or "na").strip().lower()
        if region not in REGIONS:
            raise ValueError(f"invalid Amazon region {region!r}: use one of {', '.join(REGIONS)}")
        home = MARKETPLACE_REGIONS.get(marketplace_id)
        if home is not None and home != region:
            raise ValueError(
                f"marketplace {marketplace_id} is served by the {home!r} region, not {region!r}: "
                f"use --region {home}"
            )
        endpoint = _url(data.get("endpoint"), "endpoint")
        token_endpoint = _url(data.get("token_endpoint"), "token endpoint", path_allowed=True)
        product_type = _product_type(data.get("product_type") or "PRODUCT")
        product_types_raw = data.get("product_types") or {}
        if not isinstance(product_types_raw, Mapping):
            raise ValueError("product_types must be an object: catalog value → Amazon product type")
        product_types = {str(k): _product_type(v) for k, v in product_types_raw.items()}
        carriers_raw = data.get("carriers") or {}
        if not isinstance(carriers_raw, Mapping) or not all(
            isinstance(v, str) and v.strip() for v in carriers_raw.values()
        ):
            raise ValueError("carriers must be an object: our carrier name or code → Amazon carrier code")
        carriers = {str(k): str(v).strip() for k, v in carriers_raw.items()}
        return cls(
            seller_id=seller_id,
            marketplace_id=marketplace_id,
            region=region,
            endpoint=endpoint,
            token_endpoint=token_endpoint,
            product_type=product_type,
            product_type_attribute=str(data.get("product_type_attribute") or "amazon_product_type"),
            product_types=product_types,
            carriers=carriers,
            fulfillment_channel_code=str(data.get("fulfillment_channel_code") or "DEFAULT"),
            order_overlap_seconds=_number(data, "order_overlap_seconds", 600, 0, 86_400),
            initial_lookback_hours=_number(data, "initial_lookback_hours", 72, 1, 24 * 30),
            max_patch_seconds=float(_number(data, "max_patch_seconds", 60, 1, 3_600)),
            feed_poll_seconds=float(_number(data, "feed_poll_seconds", 60, 1, 3_600)),
            full_batch=_number(data, "full_batch", 100_000, 1, 1_000_000),
            issue_reads=_number(data, "issue_reads", 100, 0, 10_000),
            rate_limits=_rate_limits(data.get("rate_limits")),
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "seller_id": self.seller_id,
            "marketplace_id": self.marketplace_id,
            "region": self.region,
            "endpoint": self.endpoint,
            "token_endpoint": self.token_endpoint,
            "product_type": self.product_type,
            "product_type_attribute": self.product_type_attribute,
            "product_types": dict(self.product_types),
            "carriers": dict(self.carriers),
            "fulfillment_channel_code": self.fulfillment_channel_code,
            "order_overlap_seconds": self.order_overlap_seconds,
            "initial_lookback_hours": self.initial_lookback_hours,
            "max_patch_seconds": self.max_patch_seconds,
            "feed_poll_seconds": self.feed_poll_seconds,
            "full_batch": self.full_batch,
            "issue_reads": self.issue_reads,
            "rate_limits": {op: [b.per_second, b.burst] for op, b in self.rate_limits.items()},
        }


_KNOWN = frozenset(
    {
        "seller_id",
        "marketplace_id",
        "region",
        "endpoint",
        "token_endpoint",
        "product_type",
        "product_type_attribute",
        "product_types",
        "carriers",
        "fulfillment_channel_code",
        "order_overlap_seconds",
        "initial_lookback_hours",
        "max_patch_seconds",
        "feed_poll_seconds",
        "full_batch",
        "issue_reads",
        "rate_limits",
    }
)


def _text(value: Any, what: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ValueError(f"the Amazon {what} is missing")
    return text


def _product_type(value: Any) -> str:
    text = value.strip().upper() if isinstance(value, str) else ""
    if not _PRODUCT_TYPE.match(text):
        raise ValueError(f"invalid Amazon product type {value!r}: e.g. PRODUCT, LUGGAGE, SHOES")
    return text


#: The SP-API operations the connector calls, each with a published usage plan (``client.PUBLISHED_BUDGETS``).
RATE_LIMITED_OPERATIONS = frozenset(
    {
        "searchOrders",
        "getOrder",
        "confirmShipment",
        "createFeedDocument",
        "createFeed",
        "getFeed",
        "getFeedDocument",
        "getListingsItem",
        "putListingsItem",
        "patchListingsItem",
        "deleteListingsItem",
        "searchListingsItems",
    }
)


def _rate_limits(raw: Any) -> dict[str, RateBudget]:
    """``rate_limits`` as budgets: operation → ``[requests per second, burst]``."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("rate_limits must be an object: SP-API operation → [requests per second, burst]")
    budgets = {}
    for op, value in raw.items():
        if op not in RATE_LIMITED_OPERATIONS:
            known = ", ".join(sorted(RATE_LIMITED_OPERATIONS))
            raise ValueError(f"rate_limits: unknown SP-API operation {op!r} (known: {known})")
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int | float) for v in value)
            or not 0 < value[0] <= 10_000
            or not (1 <= value[1] <= 10_000 and float(value[1]).is_integer())
        ):
            raise ValueError(
                f"rate_limits.{op} must be [requests per second (> 0), burst (a whole number >= 1)], "
                f"not {value!r}"
            )
        budgets[op] = RateBudget(float(value[0]), int(value[1]))
    return budgets


def _number(data: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{key} must be a number from {low} to {high}, not {value!r}")
    return int(value)


def _url(value: Any, what: str, *, path_allowed: bool = False) -> str | None:
    """An override URL: http(s), a host, no credentials/query; no trailing slash. The SP-API endpoint
    takes no path (Amazon's paths are absolute); the token endpoint keeps its path."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"the Amazon {what} must be a URL, not {value!r}")
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"invalid Amazon {what} {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid Amazon {what} {text!r}: give a full URL such as http://127.0.0.1:8766")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"invalid Amazon {what} {text!r}: no credentials, query or fragment allowed")
    if not path_allowed and parts.path.strip("/"):
        raise ValueError(f"invalid Amazon {what} {text!r}: give the base URL only, without a path")
    return text.rstrip("/")
