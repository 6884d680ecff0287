"""Deterministic generated data for the sandbox: catalog products, customers, addresses, API keys.

Everything is drawn from a ``random.Random`` the caller seeds, so one seed gives one world.
"""

from __future__ import annotations

import random
import uuid

from tradelane.connectors.mirakl.sandbox.models import Address, Carrier, Customer, Product

#: SH21 carriers. ``{trackingId}`` in a URL makes the tracking number mandatory (OR23).
DEFAULT_CARRIERS: tuple[Carrier, ...] = (
    Carrier(
        "CHRONOPOST",
        "Chronopost",
        "https://www.chronopost.fr/tracking-no-cms/suivi-page?listeNumerosLT={trackingId}",
    ),
    Carrier("COLISSIMO", "Colissimo", "https://www.laposte.fr/outils/suivre-vos-envois?code={trackingId}"),
    Carrier("DHL", "DHL Express", "https://www.dhl.com/en/express/tracking.html?AWB={trackingId}"),
    Carrier("DPD", "DPD", "https://tracking.dpd.de/status/en_US/parcel/{trackingId}"),
    Carrier(
        "ROYAL_MAIL", "Royal Mail", "https://www.royalmail.com/track-your-item#/tracking-results/{trackingId}"
    ),
    Carrier("UPS", "UPS", "https://www.ups.com/track?tracknum={trackingId}"),
    Carrier("OWN_FLEET", "Own delivery fleet", None),
)

#: OF61 offer conditions (``state`` column / ``state_code``).
DEFAULT_OFFER_STATES: dict[str, str] = {
    "11": "New",
    "1": "Used - Like New",
    "2": "Used - Very Good Condition",
    "3": "Used - Good Condition",
    "4": "Used - Acceptable Condition",
    "10": "Refurbished",
}

#: SH31 logistic classes; the first one is used when a line gives none.
DEFAULT_LOGISTIC_CLASSES: dict[str, str] = {"M": "Medium", "S": "Small", "L": "Large", "XL": "Extra large"}

#: Product reference types an offer may point its product with (``product-id-type``).
REFERENCE_TYPES = frozenset({"SKU", "EAN", "UPC", "ISBN", "MPN"})

#: RE01 reasons, by type: (code, label).
DEFAULT_REASONS: dict[str, tuple[tuple[str, str], ...]] = {
    "REFUND": (
        ("REFUND_CUSTOMER_RETURN", "Item returned by the customer"),
        ("REFUND_DAMAGED_ITEM", "Item damaged"),
        ("REFUND_MISSING_ITEM", "Item missing from the parcel"),
        ("REFUND_GOODWILL", "Commercial gesture"),
    ),
    "CANCELATION": (
        ("CANCEL_OUT_OF_STOCK", "Out of stock"),
        ("CANCEL_CUSTOMER_REQUEST", "Customer request"),
    ),
    "ORDER_MESSAGING": (("ORDER_QUESTION", "Question about the order"),),
}

#: Order document types accepted by OR74 (DO01).
DEFAULT_DOCUMENT_TYPES: frozenset[str] = frozenset(
    {"CUSTOMER_INVOICE", "CUSTOMER_CREDIT_INVOICE", "SHIPPING_LABEL", "DELIVERY_NOTE", "OTHER"}
)

_ADJECTIVES = ("Classic", "Eco", "Compact", "Deluxe", "Urban", "Vintage", "Smart", "Soft", "Pro", "Mini")
_NOUNS = ("Backpack", "Lamp", "Kettle", "Mug", "Notebook", "Scarf", "Speaker", "Blanket", "Bottle", "Chair")
_CATEGORIES = (("HOME", "Home & Living"), ("BAGS", "Bags"), ("KITCHEN", "Kitchen"), ("AUDIO", "Audio"))
_FIRST = ("Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Greta", "Hugo", "Inès", "Jonas")
_LAST = ("Martin", "Bernard", "Dubois", "Smith", "Jones", "Müller", "Rossi", "García", "Novak", "Larsen")
_ADDRESSES: dict[str, tuple[tuple[str, str, str, str, str], ...]] = {
    # country iso3: (street, city, zip, country label, state)
    "FRA": (
        ("12 rue de la Paix", "Paris", "75002", "France", ""),
        ("4 quai Saint-Antoine", "Lyon", "69002", "France", ""),
    ),
    "GBR": (
        ("221B Baker Street", "London", "NW1 6XE", "United Kingdom", ""),
        ("10 Deansgate", "Manchester", "M3 1AZ", "United Kingdom", ""),
    ),
    "DEU": (("Unter den Linden 5", "Berlin", "10117", "Germany", ""),),
    "USA": (("350 5th Ave", "New York", "10118", "United States", "NY"),),
}
_COUNTRY_BY_CURRENCY = {"EUR": "FRA", "GBP": "GBR", "USD": "USA"}


def ean13(rng: random.Random) -> str:
    """A random EAN-13 with a valid check digit."""
    body = [rng.randint(0, 9) for _ in range(12)]
    total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(body))
    return "".join(map(str, body)) + str((10 - total % 10) % 10)


def make_products(rng: random.Random, count: int) -> list[Product]:
    products = []
    for i in range(1, count + 1):
        code, label = rng.choice(_CATEGORIES)
        title = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {i}"
        sku = f"PRD-{i:05d}"
        products.append(
            Product(sku, title, code, label, (("EAN", ean13(rng)), ("MPN", f"MPN-{i:05d}")), "Acme")
        )
    return products


def make_customer(rng: random.Random) -> Customer:
    return Customer(
        customer_id=f"CUST-{rng.randint(100000, 999999)}",
        firstname=rng.choice(_FIRST),
        lastname=rng.choice(_LAST),
        civility=rng.choice(("Mr", "Mrs", "Ms")),
        locale="en_GB",
    )


def make_address(rng: random.Random, customer: Customer, currency: str) -> Address:
    country = _COUNTRY_BY_CURRENCY.get(currency, "FRA")
    street, city, zip_code, label, state = rng.choice(_ADDRESSES[country])
    return Address(
        firstname=customer.firstname,
        lastname=customer.lastname,
        street_1=street,
        city=city,
        zip_code=zip_code,
        country=label,
        country_iso_code=country,
        phone="+33 6 " + " ".join(str(rng.randint(10, 99)) for _ in range(4)),
        state=state or None,
    )


def make_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_api_key(rng: random.Random) -> str:
    """A sandbox shop key (not a secret: it only opens the local sandbox)."""
    return make_uuid(rng)
