"""Builders for the order-update and label tests: marketplace orders ingested as the Mirakl poll would,
and a small PDF made without any renderer."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from tradelane.connectors.mirakl.mapping import MiraklOrderState, neutral_state
from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine
from tradelane.services.orders import ingest_order

#: (line id, sku, quantity, unit price)
DEFAULT_LINES: tuple[tuple[str, str, int, str], ...] = (
    ("L1", "SKU-1", 2, "19.90"),
    ("L2", "SKU-2", 1, "5.00"),
)


def marketplace_order(
    mid: str,
    now: datetime,
    *,
    state: MiraklOrderState = MiraklOrderState.SHIPPING,
    lines: tuple[tuple[str, str, int, str], ...] = DEFAULT_LINES,
    attributes: dict[str, str] | None = None,
    line_state: str | None = None,
    line_states: dict[str, str] | None = None,
    updated: timedelta = timedelta(0),
) -> MarketplaceOrder:
    raw: dict[str, Any] = {"order_id": mid, "order_state": state.value, "v": updated.total_seconds()}
    return MarketplaceOrder(
        marketplace_order_id=mid,
        state=neutral_state(state),
        raw_state=state.value,
        currency="EUR",
        created_at=now - timedelta(hours=1),
        updated_at=now + updated,
        lines=tuple(
            MarketplaceOrderLine(
                line_id=f"{mid}-{lid}",
                offer_sku=f"OFFER-{sku}",
                quantity=qty,
                unit_price=Decimal(price),
                currency="EUR",
                state=(line_states or {}).get(lid) or line_state or state.value,
                title=f"Product {sku}",
                product_sku=sku,
            )
            for lid, sku, qty, price in lines
        ),
        shipping_address=Address(
            first_name="Ada",
            last_name="Lovelace",
            street1="1 rue X",
            city="Paris",
            zip_code="75001",
            country="FRA",
        ),
        billing_address=Address(first_name="Ada", last_name="Lovelace", city="Paris", country="FRA"),
        attributes=dict(attributes or {}),
        raw=raw,
    )


def make_order(
    engine: Engine,
    tenant_id: int,
    channel_id: int,
    mid: str,
    now: datetime,
    *,
    third_party_managed: bool = False,
    **kwargs: Any,
) -> int:
    with engine.begin() as conn:
        return ingest_order(
            conn,
            tenant_id=tenant_id,
            channel_id=channel_id,
            order=marketplace_order(mid, now, **kwargs),
            now=now,
            third_party_managed=third_party_managed,
        ).order_id


def tiny_pdf(text: str = "hello") -> bytes:
    """A small, valid one-page PDF with ``text`` (hand-built, with a correct xref table)."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
