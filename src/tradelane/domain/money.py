"""Money: ``Decimal`` amounts with an ISO 4217 currency. Never float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from tradelane.domain.currencies import ISO_4217


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal")
        if self.currency not in ISO_4217:
            raise ValueError(f"unknown currency {self.currency!r} (not ISO 4217)")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def parse_decimal(text: str) -> Decimal:
    """Parse a plain decimal string (``12.50``); raises ``ValueError`` with the offending text."""
    cleaned = text.strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite decimal number: {text!r}")
    return value
