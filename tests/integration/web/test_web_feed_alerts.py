"""A secondary feed's failure is visible on the dashboard overview, with where its raw exchange is."""

from __future__ import annotations

from webtest_support import login

from tradelane.domain.feeds import FeedFailureKind, SecondaryFeed
from tradelane.services import feeds


def test_overview_lists_the_feed_alert(client, shops, container, now):
    with container.engine.begin() as conn:
        feeds.record_failure(
            conn,
            tenant_id=shops.acme.tenant_id,
            channel_id=shops.acme.channel_id,
            channel_name="acme-shop",
            feed=SecondaryFeed.MESSAGES,
            operation="M01",
            kind=FeedFailureKind.FAILING,
            reason="Mirakl server error on M01 (HTTP 503)",
            raw="GET https://x/api/messages -> HTTP 503",
            now=now,
        )
    login(client, shops.acme.token)
    text = client.get("/dashboard").text
    assert "feed_failing" in text and "M01 (messages) failed" in text and "feed:messages" in text
