"""A deterministic sample catalog made by the project (nothing downloaded): parents with variants
(grouping keys) and standalone products, with valid EAN-13 GTINs."""

from __future__ import annotations

import csv
import random
from decimal import Decimal
from pathlib import Path

FAMILIES = [
    ("Linen shirt", "Nordweave", ["S", "M", "L", "XL"], ["white", "sand", "navy"]),
    ("Trail sneaker", "Pathfinder", ["40", "41", "42", "43", "44"], ["grey", "black"]),
    ("Merino beanie", "Nordweave", ["one-size"], ["red", "green", "charcoal", "mustard"]),
    ("Rain jacket", "Drizzle & Co", ["S", "M", "L"], ["yellow", "olive"]),
    ("Chino trousers", "Tailorbird", ["30", "32", "34", "36"], ["beige", "navy"]),
]
STANDALONE = [
    "Ceramic mug",
    "Steel bottle",
    "Canvas tote",
    "Desk lamp",
    "Notebook A5",
    "Espresso cups x2",
    "Cotton throw",
    "Plant pot",
    "Wall clock",
    "Bamboo cutting board",
]


def ean13(number: int) -> str:
    body = f"{590000000000 + number:012d}"[-12:]
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def sample_rows(seed: int = 7, families: int = 40, standalone: int = 90) -> list[dict[str, str]]:
    """A few hundred rows: ``families`` parents' variants plus ``standalone`` products."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    counter = 0
    for f in range(families):
        name, brand, sizes, colors = FAMILIES[f % len(FAMILIES)]
        parent = f"FAM-{f:03d}"
        base = Decimal(rng.randrange(1500, 12000)) / 100
        for color in colors[: rng.randint(1, len(colors))]:
            for size in sizes:
                counter += 1
                rows.append(
                    {
                        "sku": f"{parent}-{color[:3].upper()}-{size}",
                        "parent_sku": parent,
                        "title": f"{name} {f + 1} — {color}, {size}",
                        "description": f"{name} by {brand}, colour {color}, size {size}.",
                        "brand": brand,
                        "gtin": ean13(counter),
                        "price": str(base),
                        "currency": "EUR",
                        "quantity": str(rng.randint(0, 40)),
                        "labels": "apparel;" + ("sale" if rng.random() < 0.2 else "new-season"),
                        "attr:color": color,
                        "attr:size": size,
                    }
                )
    for s in range(standalone):
        counter += 1
        name = STANDALONE[s % len(STANDALONE)]
        rows.append(
            {
                "sku": f"HOME-{s:03d}",
                "parent_sku": "",
                "title": f"{name} #{s + 1}",
                "description": f"{name}, made for everyday use.",
                "brand": "Homely",
                "gtin": ean13(counter),
                "price": str(Decimal(rng.randrange(500, 6000)) / 100),
                "currency": "EUR",
                "quantity": str(rng.randint(0, 60)),
                "labels": "home",
                "attr:color": "",
                "attr:size": "",
            }
        )
    return rows


def write_csv(rows: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
