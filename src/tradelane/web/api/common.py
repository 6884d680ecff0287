"""Parameter types and response envelopes shared by the ``/api/v1`` routers.

Every free-text parameter refuses control characters (PostgreSQL text cannot hold NUL) and is
bounded to what its column holds; every number is bounded to what the database can compare, so bad
input answers 422 and never reaches the database as an error.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, Field

API_PREFIX = "/api/v1"
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
MAX_DB_ID = 2**63 - 1
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_OFFSET = 1_000_000_000

ChannelName = Annotated[
    str,
    Path(min_length=1, max_length=100, pattern=PRINTABLE, description="Channel name (unique per tenant)."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip.")]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, newest or alphabetical first as the route says."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page, null on the last page.")


def next_offset(returned: int, limit: int, offset: int) -> int | None:
    """The next page's offset when this page is full (there may be more), else None."""
    return offset + limit if returned == limit else None
