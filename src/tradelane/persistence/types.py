"""Column types that behave the same on SQLite and PostgreSQL.

* :class:`UTCDateTime` stores timezone-aware datetimes as UTC and always returns aware values
  (SQLite has no timezone support, so naive values would otherwise leak out).
* :class:`DecimalText` keeps money exact: ``NUMERIC`` on PostgreSQL, text on SQLite (whose numeric
  affinity would round through a float).
* :data:`JSONDoc` is JSONB on PostgreSQL and JSON text elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass a timezone-aware value")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    impl = sa.Numeric(20, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(20, 6, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money/decimal columns take Decimal, not {type(value).__name__}")
        if dialect.name == "sqlite":
            return format(value, "f")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        result = Decimal(str(value)) if not isinstance(value, Decimal) else value
        # Trailing zeros from NUMERIC(20,6) are noise: 12.500000 -> 12.5
        if result == result.to_integral():
            return result.quantize(Decimal(1))
        return result.normalize()


JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
