"""Currency minor units and rounding for sandbox amounts (Decimal only, never float)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from tradelane.domain.currencies import ISO_4217

_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
}


def minor_units(currency: str) -> int:
    """Number of decimals of ``currency`` (2 unless ISO 4217 says otherwise)."""
    return _MINOR_UNITS.get(currency, 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded (half-even) to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)


def is_currency(code: str) -> bool:
    return code in ISO_4217
