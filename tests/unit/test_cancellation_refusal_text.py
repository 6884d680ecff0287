"""The text of a refused cancellation (history note and alert) comes from the adapter's classified
reason, not from the status line alone."""

from __future__ import annotations

from datetime import UTC, datetime

from tradelane.merchant.base import DeliveryOutcome, OutcomeKind
from tradelane.merchant.http_oms import classify
from tradelane.services.order_delivery import _refusal

NOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


def _answer(status: int, text: str) -> DeliveryOutcome:
    return classify(status, {}, text, request="POST /cancellations", now=NOW, what="the cancellation")


def test_a_404_with_a_detail_says_what_the_oms_said() -> None:
    text = _refusal(_answer(404, '{"detail":"Not Found"}'))
    assert text == "OMS rejected the cancellation with HTTP 404: Not Found"


def test_an_html_error_page_is_named_by_its_title() -> None:
    text = _refusal(_answer(410, "<html><head><title>Gone for good</title></head><body>x</body></html>"))
    assert text == "OMS rejected the cancellation with HTTP 410: Gone for good"


def test_a_retry_given_up_keeps_the_reason_and_says_so() -> None:
    text = _refusal(_answer(503, '{"message":"maintenance"}'))
    assert text == "OMS answered HTTP 503: maintenance (gave up after the last attempt)"


def test_a_reason_without_the_status_gets_it_in_front() -> None:
    outcome = DeliveryOutcome(OutcomeKind.REJECTED, "order unknown to the shop", "POST /x", status_code=404)
    assert _refusal(outcome) == "HTTP 404: order unknown to the shop"


def test_a_refusal_without_an_answer_is_the_reason_itself() -> None:
    outcome = DeliveryOutcome(OutcomeKind.REJECTED, "oms declares no cancellations module", "POST /x")
    assert _refusal(outcome) == "oms declares no cancellations module"
