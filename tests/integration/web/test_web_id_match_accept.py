"""The ID match page's "Accept ours" (``/dashboard/channels/{name}/id-match/accept``): a button per
unresolved conflict and one for all, each with a reason (CSRF; audited as ``dashboard:<tenant>``); an
accepted conflict shows who accepted it and why, and go-live is no longer said to be blocked."""

from __future__ import annotations

import html

from webtest_support import CHANNEL, csrf_of, login

from tradelane.services import audit, id_match
from tradelane.services.channels import get_channel_by_id

MATCH = f"/dashboard/channels/{CHANNEL}/id-match"


def test_accept_ours_per_conflict_and_all(client, shops, container) -> None:
    login(client, shops.acme.token)
    rows = [
        id_match.MatchRow(
            "conflict", sku="ACME-1", their_sku="ACME-1", matched_by="sku", our_group="P", their_group="Q"
        ),
        id_match.MatchRow(
            "conflict", sku="ACME-BAD", their_sku="ACME-BAD", matched_by="sku", their_group="Z"
        ),
    ]
    with container.engine.begin() as conn:
        channel = get_channel_by_id(conn, shops.acme.tenant_id, shops.acme.channel_id)
        id_match.store_run(conn, channel, 2, rows, actor="cli:x", now=container.now())
    page = client.get(MATCH).text
    assert "data-blocked" in page and 'data-form="accept-all"' in page
    assert page.count('data-form="accept"') == 2 and 'data-sku="ACME-1"' in page

    assert client.post(f"{MATCH}/accept", data={"sku": "ACME-1", "reason": "x"}).status_code == 403  # CSRF
    refused = client.post(
        f"{MATCH}/accept", data={"csrf": csrf_of(client, MATCH), "sku": "ACME-1"}, follow_redirects=True
    )
    assert "needs a reason" in html.unescape(refused.text)
    one = client.post(
        f"{MATCH}/accept",
        data={"csrf": csrf_of(client, MATCH), "sku": "ACME-1", "reason": "ours is right"},
        follow_redirects=True,
    )
    text = html.unescape(one.text)
    assert "Accepted ours for ACME-1" in text and 'data-accepted="ACME-1"' in text
    assert "ours accepted by dashboard:acme (ours is right)" in text and text.count('data-form="accept"') == 1
    assert "Go-live is blocked: 1 conflict(s) unresolved" in text

    rest = client.post(
        f"{MATCH}/accept", data={"csrf": csrf_of(client, MATCH), "reason": "all"}, follow_redirects=True
    )
    text = html.unescape(rest.text)
    assert "Accepted ours for ACME-BAD" in text and "data-blocked" not in text and "data-accepted-all" in text
    with container.engine.connect() as conn:
        events = audit.history(conn, shops.acme.channel_id, prefix="idmatch.accept")
    assert [(e.actor, e.reason) for e in events] == [
        ("dashboard:acme", "ours is right"),
        ("dashboard:acme", "all"),
    ]
