"""The deterministic world a seed gives: one application, seller accounts, a catalog of ASINs."""

from __future__ import annotations

import random

from tradelane.connectors.amazon.sandbox.models import Application, CatalogItem, SellerAccount

PRODUCT_TYPES = ("HOME", "KITCHEN", "TOY_FIGURE", "SPORTING_GOODS", "OFFICE_PRODUCTS")
_NOUNS = ("Mug", "Lamp", "Kettle", "Figure", "Ball", "Notebook", "Pan", "Clock", "Bottle", "Stapler")
_ADJECTIVES = ("Blue", "Classic", "Compact", "Deluxe", "Eco", "Large", "Retro", "Smart", "Steel", "Tiny")
#: Every marketplace where the seeded catalog exists.
CATALOG_MARKETPLACES = (
    "ATVPDKIKX0DER",
    "A2EUQ1WTGCTBG2",
    "A1PA6795UKMFR9",
    "A13V1IB3VIYZZH",
    "APJ6JRA9NG5V4",
    "A1RKKUPIHCS9HS",
    "A1F83G8C2ARO7P",
)


def ean13(body12: str) -> str:
    """``body12`` followed by its EAN-13 check digit."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def application(seed: int) -> Application:
    rng = random.Random(f"amazon-app-{seed}")
    return Application(
        client_id=f"amzn1.application-oa2-client.sandbox{rng.getrandbits(64):016x}",
        client_secret=f"amzn1.oa2-cs.v1.{rng.getrandbits(128):032x}",
    )


def accounts(seed: int, client_id: str) -> list[SellerAccount]:
    """An EU seller (Germany and France) and a North-American seller (United States)."""
    rng = random.Random(f"amazon-accounts-{seed}")
    return [
        SellerAccount(
            seller_id=f"A1SBX{seed % 1000:03d}EU00001",
            name="Sandbox EU Seller",
            region="eu",
            marketplace_ids=("A1PA6795UKMFR9", "A13V1IB3VIYZZH"),
            client_id=client_id,
            refresh_token=f"Atzr|sandbox-eu-{rng.getrandbits(128):032x}",
        ),
        SellerAccount(
            seller_id=f"A2SBX{seed % 1000:03d}NA00001",
            name="Sandbox NA Seller",
            region="na",
            marketplace_ids=("ATVPDKIKX0DER",),
            client_id=client_id,
            refresh_token=f"Atzr|sandbox-na-{rng.getrandbits(128):032x}",
        ),
    ]


def catalog(seed: int, count: int) -> list[CatalogItem]:
    """``count`` ASINs ``B0SBX00001``... with EAN-13 GTINs, titles and product types."""
    rng = random.Random(f"amazon-catalog-{seed}")
    items = []
    for i in range(1, count + 1):
        items.append(
            CatalogItem(
                asin=f"B0SBX{i:05d}",
                title=f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {i}",
                product_type=PRODUCT_TYPES[i % len(PRODUCT_TYPES)],
                gtin=ean13(f"40{seed % 100:02d}{i:08d}"),
                marketplace_ids=CATALOG_MARKETPLACES,
            )
        )
    return items
