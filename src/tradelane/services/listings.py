"""What the marketplace lists for a channel, and what the hub manages for it — the two sides the
reconciler (:mod:`tradelane.services.reconciler`) and the unique-ID match
(:mod:`tradelane.services.id_match`) compare.

* :func:`read_listings` — every listing through the port (``list_offers``: all pages, metered against
  the channel's budget by the session), with a refusal turned into one clear, permanent error that
  says nothing was changed;
* :func:`catalog_side` — the tenant's catalog (SKU, GTIN, parent SKU), which SKUs the channel
  *selects* (an offer binding whose selection state is ``selected``; a binding left on the marketplace
  or being delisted is not selected, see :mod:`tradelane.services.selection`) and which are being
  delisted (``delisting``: the offers delta already sends their deletion).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import ListedOffer, MarketplaceConnector, Operation
from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError
from tradelane.persistence.tables import offer_bindings, products
from tradelane.services.channels import Channel
from tradelane.services.offers import DELISTING, SELECTED


class ListingsUnavailable(PermanentError):
    """The marketplace would not list the channel's offers (e.g. an operator without OF21): nothing
    can be compared, and nothing was changed."""


def read_listings(connector: MarketplaceConnector, channel: Channel, purpose: str) -> Sequence[ListedOffer]:
    """Every listing of ``channel`` now. ``purpose`` names the caller in errors ("the reconciler").

    Raises :class:`ListingsUnavailable` when the connector does not declare ``list_offers`` or the
    marketplace refuses it for good (rejected credentials stay an
    :class:`~tradelane.domain.errors.AuthenticationError`, a retryable failure stays retryable)."""
    if not connector.capabilities.supports(Operation.LIST_OFFERS):
        hint = connector.capabilities.hints.get(Operation.LIST_OFFERS.value)
        raise ListingsUnavailable(
            f"{purpose} cannot run on {channel.name}: connector {channel.connector!r} cannot list the "
            f"marketplace's offers{f' ({hint})' if hint else ''}; nothing was changed"
        )
    try:
        return connector.list_offers()
    except (AuthenticationError, RetryableError):
        raise
    except PermanentError as exc:
        raise ListingsUnavailable(
            f"{purpose} cannot run on {channel.name}: the marketplace refused to list the shop's offers "
            f"({exc.reason}); nothing was changed",
            raw=exc.raw,
        ) from exc


@dataclass(frozen=True, slots=True)
class CatalogItem:
    sku: str
    gtin: str | None
    parent_sku: str | None


@dataclass(frozen=True, slots=True)
class CatalogSide:
    """The tenant's catalog by SKU, the SKUs the channel selects and those it is delisting."""

    items: dict[str, CatalogItem]
    selected: frozenset[str]
    delisting: frozenset[str] = frozenset()


def catalog_side(conn: Connection, channel: Channel) -> CatalogSide:
    """The catalog of ``channel``'s tenant and the channel's selected and delisting SKUs (two reads)."""
    rows = conn.execute(
        sa.select(products.c.sku, products.c.gtin, products.c.parent_sku).where(
            products.c.tenant_id == channel.tenant_id
        )
    ).all()
    bound = conn.execute(
        sa.select(products.c.sku, offer_bindings.c.selection_state)
        .join(offer_bindings, offer_bindings.c.product_id == products.c.id)
        .where(
            offer_bindings.c.channel_id == channel.id,
            offer_bindings.c.selection_state.in_([SELECTED, DELISTING]),
        )
    ).all()
    return CatalogSide(
        items={r.sku: CatalogItem(r.sku, r.gtin or None, r.parent_sku or None) for r in rows},
        selected=frozenset(r.sku for r in bound if r.selection_state == SELECTED),
        delisting=frozenset(r.sku for r in bound if r.selection_state == DELISTING),
    )
