"""Mirakl's half of the port for offers: hub :class:`OfferUpdate` values → OF24 (delta) / OF01 (full),
an import's result from OF02 + OF03, and the listed offers from OF21. Pure mapping plus client calls:
nothing here reads or writes tables.

Calls made (the caller meters each one against the channel's budget of that operation):

* :func:`submit_offers` — one ``OF24`` (delta) or one ``OF01`` (full), none when nothing is sendable;
* :func:`import_result` — one ``OF02``, then one ``OF03`` when the import has an error report;
* :func:`list_offers` — ``OF21`` pages until ``total_count``.

SKUs crossing the port are the hub's (product) SKUs: the channel's ``sku_template`` is applied on the way
out and inverted on the way back (an error row whose SKU does not fit the template keeps Mirakl's SKU).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tradelane.connectors.base import (
    ImportRef,
    ImportResult,
    ListedOffer,
    OfferOutcome,
    OfferUpdate,
    SubmitMode,
)
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.connectors.mirakl.mapping import (
    OfferImportMode,
    error_report_rows_to_offer_errors,
    offer_blockers,
    offer_csv,
    offer_update_json,
)
from tradelane.connectors.mirakl.settings import MiraklSettings
from tradelane.domain.catalog import Product

#: Seconds between two looks at a running import (OF02's own budget may space them further).
IMPORT_POLL_SECONDS = 15.0
#: ``OfferUpdate.attributes`` keys carrying the product's own fields (custom fields may name them as
#: ``":parent_sku"``, ``":brand"``); every other key is a catalog attribute.
PRODUCT_FIELD_KEYS = frozenset({":parent_sku", ":brand"})
#: The longest stored excerpt of an import's report (kept on each offer as its last response).
REPORT_EXCERPT_CHARS = 65_536


def as_product(offer: OfferUpdate) -> Product:
    """The catalog :class:`Product` Mirakl's offer mapping works on (pure)."""
    attributes = {k: str(v) for k, v in offer.attributes.items() if k not in PRODUCT_FIELD_KEYS}
    parent = offer.attributes.get(":parent_sku")
    brand = offer.attributes.get(":brand")
    return Product(
        sku=offer.sku,
        parent_sku=None if parent is None else str(parent),
        title=offer.title,
        brand=None if brand is None else str(brand),
        gtin=offer.gtin,
        price=offer.price,
        currency=offer.currency,
        quantity=offer.quantity,
        attributes=attributes,
    )


def check_delay(settings: MiraklSettings) -> float:
    """Never look at an import sooner than the OF02 budget allows (a wasted token delays the result)."""
    limit = settings.limit("OF02")
    return max(IMPORT_POLL_SECONDS, limit.per_seconds / limit.calls)


def submit_offers(
    client: MiraklClient, settings: MiraklSettings, offers: Sequence[OfferUpdate], mode: SubmitMode
) -> ImportRef:
    """Send ``offers``: a delta as one OF24 call, a full sync as one OF01 file (NORMAL mode: create or
    update, nothing else is deleted); ``delete`` offers become deletions in either.

    Offers Mirakl could not take (no product reference, another currency than the shop's...) are not
    sent: they come back at once as failed outcomes in ``result.outcomes`` (with ``result.done`` False
    while the sent ones await :func:`import_result`; ``result.retry_after`` says when to look first).
    When nothing is sendable no call is made and ``reference`` is empty (``submitted`` 0, ``done``)."""
    offer_settings = settings.offer_settings()
    updates: list[Product] = []
    deletions: list[Product] = []
    refused: list[OfferOutcome] = []
    for offer in offers:
        product = as_product(offer)
        reasons = offer_blockers(product, offer_settings)
        if reasons:
            refused.append(OfferOutcome(offer.sku, ok=False, errors=tuple(reasons)))
        else:
            (deletions if offer.delete else updates).append(product)
    sent = len(updates) + len(deletions)
    if not sent:
        return ImportRef("", mode, 0, ImportResult(done=True, outcomes=tuple(refused)))
    if mode is SubmitMode.DELTA:
        body = offer_update_json(updates, offer_settings)
        if deletions:
            body += offer_update_json(deletions, offer_settings, update_delete="delete")
        import_id = client.update_offers(body)
    else:
        data = offer_csv(updates, mode=OfferImportMode.NORMAL, settings=offer_settings, deleted=deletions)
        import_id = client.import_offers(data, OfferImportMode.NORMAL)
    pending = ImportResult(done=False, outcomes=tuple(refused), retry_after=check_delay(settings))
    return ImportRef(str(import_id), mode, sent, pending)


def _import_id(ref: ImportRef) -> int:
    try:
        return int(ref.reference)
    except ValueError:
        raise ValueError(f"not a Mirakl import id: {ref.reference!r}") from None


def import_result(client: MiraklClient, settings: MiraklSettings, ref: ImportRef) -> ImportResult:
    """OF02 until the import is finished (``done`` False, look again in :data:`IMPORT_POLL_SECONDS`),
    then OF03's error rows as failed outcomes per hub SKU (every other sent offer was accepted).
    ``summary`` is the stored response: the error report's rows as JSON, else OF02's body."""
    import_id = _import_id(ref)
    status = client.offer_import_status(import_id)
    if not status.finished:
        return ImportResult(
            done=False,
            retry_after=IMPORT_POLL_SECONDS,
            summary=f"import {import_id} is {status.status.value}",
        )
    outcomes: list[OfferOutcome] = []
    summary = json.dumps(dict(status.raw), default=str)
    if status.has_error_report:
        rows = client.offer_import_error_report(import_id)
        summary = json.dumps(list(rows), ensure_ascii=False)[:REPORT_EXCERPT_CHARS]
        offer_settings = settings.offer_settings()
        for offer_sku, messages in error_report_rows_to_offer_errors(rows).items():
            sku = offer_settings.product_sku(offer_sku) or offer_sku
            outcomes.append(OfferOutcome(sku, ok=False, errors=tuple(messages)))
    return ImportResult(done=True, outcomes=tuple(outcomes), summary=summary)


def list_offers(client: MiraklClient, settings: MiraklSettings) -> list[ListedOffer]:
    """Every offer of the shop (OF21, every page), as listed: ``sku`` is the hub SKU the offer's shop
    SKU was made from (the channel's ``sku_template`` inverted; a shop SKU that does not fit it is kept
    as is), ``product_id`` its first product reference, and ``group_key`` the value of the offer custom
    field the channel maps to ``:parent_sku`` (None without such a field or value)."""
    offer_settings = settings.offer_settings()
    group_field = next(
        (code for code, src in offer_settings.custom_fields.items() if src == ":parent_sku"), None
    )
    listed: list[ListedOffer] = []
    for offer in client.iter_offers():
        reference = offer.product_references[0][1] if offer.product_references else None
        listed.append(
            ListedOffer(
                sku=offer_settings.product_sku(offer.shop_sku) or offer.shop_sku,
                price=offer.price,
                currency=offer.currency or None,
                quantity=offer.quantity,
                product_id=reference,
                raw=offer.raw,
                group_key=_custom_field(offer.raw, group_field) if group_field else None,
            )
        )
    return listed


def _custom_field(raw: Mapping[str, Any], code: str) -> str | None:
    """The value of the offer custom field ``code`` in an OF21 offer, None when absent or empty."""
    fields = raw.get("offer_additional_fields")
    for item in fields if isinstance(fields, list) else []:
        if isinstance(item, Mapping) and item.get("code") == code:
            value = item.get("value")
            return str(value) if value not in (None, "") else None
    return None
