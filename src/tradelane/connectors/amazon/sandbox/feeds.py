"""JSON_LISTINGS_FEED processing: the feed's status follows the clock (IN_QUEUE until ``starts``,
IN_PROGRESS until ``ends``, then DONE or FATAL), and the messages are applied once, when the feed is
first seen past ``ends``. The result is a processing report (schema v2) in the document store.

FATAL (nothing applied, a report with the feed-level issue): a document that is not JSON, a header
that is not version 2.0 of this seller, more than 25,000 messages or more than 10 MiB.
"""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING, Any

from tradelane.connectors.amazon.sandbox import listings as li
from tradelane.connectors.amazon.sandbox.models import Feed, FeedStatus
from tradelane.connectors.amazon.sandbox.orders import iso

if TYPE_CHECKING:
    from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState

OPERATION_TYPES = ("UPDATE", "PARTIAL_UPDATE", "PATCH", "DELETE")
INCLUDED = (
    "summaries",
    "attributes",
    "issues",
    "offers",
    "fulfillmentAvailability",
    "procurement",
    "relationships",
    "productTypes",
)


def settle(state: AmazonSandboxState, feed: Feed) -> None:
    """Bring ``feed`` up to the sandbox clock (the caller holds the state lock)."""
    if feed.status in (FeedStatus.DONE, FeedStatus.FATAL, FeedStatus.CANCELLED):
        return
    now = state.now()
    if now < feed.starts:
        feed.status = FeedStatus.IN_QUEUE
        return
    if now < feed.ends:
        feed.status = FeedStatus.IN_PROGRESS
        return
    doc = state.documents[feed.input_document_id]
    report, fatal = process(state, feed, doc.content or b"")
    result = state.create_document(feed.seller_id, "application/json")
    content = json.dumps(report, indent=None, separators=(",", ":")).encode()
    if state.settings.gzip_reports:
        result.content, result.compression = gzip.compress(content, mtime=0), "GZIP"
    else:
        result.content = content
    feed.report = report
    feed.result_document_id = result.document_id
    feed.status = FeedStatus.FATAL if fatal else FeedStatus.DONE


def _fatal(header: dict[str, Any], message: str, code: str) -> tuple[dict[str, Any], bool]:
    return (
        {
            "header": header,
            "issues": [{"code": code, "severity": "ERROR", "message": message}],
            "summary": {
                "errors": 1,
                "warnings": 0,
                "messagesProcessed": 0,
                "messagesAccepted": 0,
                "messagesInvalid": 0,
            },
        },
        True,
    )


def process(state: AmazonSandboxState, feed: Feed, content: bytes) -> tuple[dict[str, Any], bool]:
    """The processing report of ``content`` and whether the feed is FATAL; accepted messages are
    applied to the seller's listings."""
    header: dict[str, Any] = {"sellerId": feed.seller_id, "version": "2.0", "feedId": feed.feed_id}
    if len(content) > state.settings.max_feed_bytes:
        return _fatal(
            header,
            f"The feed document exceeds the maximum size of {state.settings.max_feed_bytes} bytes.",
            "100001",
        )
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        return _fatal(header, f"The feed document is not valid JSON: {exc}.", "100002")
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("header"), dict)
        or not isinstance(doc.get("messages"), list)
    ):
        return _fatal(header, "The feed document needs a 'header' object and a 'messages' array.", "100003")
    head = doc["header"]
    if head.get("version") != "2.0":
        return _fatal(header, f"Unsupported feed version '{head.get('version')}'; expected '2.0'.", "100004")
    if head.get("sellerId") != feed.seller_id:
        return _fatal(
            header, f"The header's sellerId '{head.get('sellerId')}' is not the submitting seller.", "100005"
        )
    messages = doc["messages"]
    if not 1 <= len(messages) <= state.settings.max_feed_messages:
        return _fatal(
            header,
            f"The feed holds {len(messages)} messages; between 1 and "
            f"{state.settings.max_feed_messages} are allowed.",
            "100006",
        )
    included: tuple[str, ...] = ()
    report_spec = head.get("report")
    if isinstance(report_spec, dict) and isinstance(report_spec.get("includedData"), list):
        included = tuple(v for v in report_spec["includedData"] if v in INCLUDED)
        header["report"] = {"includedData": list(included), "apiVersion": "2021-08-01"}
    issues: list[dict[str, Any]] = []
    accepted_skus: list[str] = []
    invalid = 0
    seen: set[int] = set()
    for message in messages:
        found = _message(state, feed, message, seen)
        mid = message.get("messageId") if isinstance(message, dict) else None
        sku = message.get("sku") if isinstance(message, dict) else None
        for item in found:
            entry: dict[str, Any] = {
                "severity": item["severity"],
                "message": item["message"],
                "code": item["code"],
            }
            if isinstance(mid, int) and not isinstance(mid, bool) and mid >= 1:
                entry["messageId"] = mid
            if isinstance(sku, str) and sku:
                entry["sku"] = sku
            if item.get("attributeNames"):
                entry["attributeName"] = item["attributeNames"][0]
            issues.append(entry)
        if li.has_errors(found):
            invalid += 1
        elif isinstance(sku, str):
            accepted_skus.append(sku)
    summary: dict[str, Any] = {
        "errors": sum(1 for i in issues if i["severity"] == "ERROR"),
        "warnings": sum(1 for i in issues if i["severity"] == "WARNING"),
        "messagesProcessed": len(messages),
        "messagesAccepted": len(messages) - invalid,
        "messagesInvalid": invalid,
    }
    report: dict[str, Any] = {"header": header, "issues": issues, "summary": summary}
    if included:
        items = []
        for sku in dict.fromkeys(accepted_skus):
            listing = state.listings.get((feed.seller_id, sku))
            if listing is not None:
                items.append(li.item_json(listing, feed.marketplace_ids, included, state.catalog, iso))
        item_issues = [i for item in items for i in item.get("issues", [])]
        summary["itemSummary"] = {
            "items": len(items),
            "errors": sum(1 for i in item_issues if i["severity"] == "ERROR"),
            "warnings": sum(1 for i in item_issues if i["severity"] == "WARNING"),
        }
        report["items"] = items
    return report, False


def _message(state: AmazonSandboxState, feed: Feed, message: Any, seen: set[int]) -> list[li.Issue]:
    """Validate and apply one message; its issues (an ERROR means it was not applied)."""

    def bad(text: str) -> list[li.Issue]:
        return [li.issue("100010", text, category="INVALID_ATTRIBUTE")]

    if not isinstance(message, dict):
        return bad("A message must be a JSON object.")
    mid = message.get("messageId")
    if isinstance(mid, bool) or not isinstance(mid, int) or not 1 <= mid <= 2_147_483_647:
        return bad("'messageId' must be an integer between 1 and 2147483647.")
    if mid in seen:
        return bad(f"'messageId' {mid} is used by more than one message.")
    seen.add(mid)
    sku = message.get("sku")
    if not isinstance(sku, str) or not sku:
        return bad("'sku' is required but not supplied.")
    op = message.get("operationType")
    if op not in OPERATION_TYPES:
        return bad(f"'operationType' must be one of {', '.join(OPERATION_TYPES)}.")
    if op == "DELETE":
        state.delete_listing(feed.seller_id, sku)
        return []
    product_type = message.get("productType")
    if not isinstance(product_type, str) or not product_type:
        return bad("'productType' is required but not supplied.")
    if op in ("UPDATE", "PARTIAL_UPDATE"):
        attributes = message.get("attributes")
        if not isinstance(attributes, dict) or not attributes:
            return bad("'attributes' is required and must hold at least one attribute.")
        if op == "PARTIAL_UPDATE":
            patches = [
                {"op": "replace", "path": f"/attributes/{k}", "value": v} for k, v in attributes.items()
            ]
            return state.submit_patch(feed.seller_id, sku, product_type, patches, feed.marketplace_ids)[1]
        requirements = message.get("requirements", "LISTING")
        if requirements not in li.REQUIREMENTS:
            return bad(f"'requirements' must be one of {', '.join(li.REQUIREMENTS)}.")
        return state.submit_put(
            feed.seller_id, sku, product_type, requirements, attributes, feed.marketplace_ids
        )[1]
    raw_patches = message.get("patches")
    if not isinstance(raw_patches, list) or not raw_patches:
        return bad("'patches' is required and must hold at least one operation.")
    return state.submit_patch(feed.seller_id, sku, product_type, raw_patches, feed.marketplace_ids)[1]


def report_iso(feed: Feed) -> dict[str, str]:
    """The feed's times (for the Feed object)."""
    out = {"createdTime": iso(feed.created)}
    if feed.status in (FeedStatus.IN_PROGRESS, FeedStatus.DONE, FeedStatus.FATAL):
        out["processingStartTime"] = iso(feed.starts)
    if feed.status in (FeedStatus.DONE, FeedStatus.FATAL):
        out["processingEndTime"] = iso(feed.ends)
    return out
