"""The selection page (``/dashboard/channels/{name}/selection``): current selection, preview of a
proposed one (counts and samples, nothing changed), "Apply" (CSRF, audited as ``dashboard:<tenant>``),
the link from the channels page, other tenants' channels not reachable."""

from __future__ import annotations

import html

import sqlalchemy as sa
from webtest_support import CHANNEL, csrf_of, login

from tradelane.persistence.tables import products
from tradelane.services import audit
from tradelane.services import selection as selection_service

PAGE = f"/dashboard/channels/{CHANNEL}/selection"


def _label(container, sku: str, *labels: str) -> None:
    with container.engine.begin() as conn:
        conn.execute(sa.update(products).where(products.c.sku == sku).values(labels=list(labels)))


def _count(text: str, group: str) -> str:
    row = text.split(f'data-group="{group}"', 1)[1]
    return row.split("data-count>", 1)[1].split("<", 1)[0]


def test_preview_then_apply_a_label_selection(client, shops, container) -> None:
    _label(container, "ACME-1", "summer")
    login(client, shops.acme.token)
    channels_page = client.get("/dashboard/channels").text
    assert f'href="/dashboard/channels/{CHANNEL}/selection" data-selection-link' in channels_page

    current = client.get(PAGE)
    assert current.status_code == 200
    assert 'data-current="all"' in current.text and "all products" in current.text
    assert _count(current.text, "updated") == "2"
    assert 'data-form="apply"' not in current.text  # nothing proposed: nothing to apply

    proposed = html.unescape(client.get(PAGE, params={"preview": "1", "labels": "summer\n"}).text)
    assert "label summer" in proposed
    assert (_count(proposed, "updated"), _count(proposed, "delisted")) == ("1", "1")
    assert "ACME-BAD" in proposed.split('data-group="delisted"', 1)[1].split("</tr>", 1)[0]
    assert "of which never sent" in proposed and "ACME-BAD" in proposed.split('data-group="never_sent"', 1)[1]
    with container.engine.connect() as conn:
        assert selection_service.get_selection(
            conn, shops.acme.channel_id
        ).is_all  # a preview changes nothing

    refused = client.post(PAGE, data={"labels": "summer"}, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token
    applied = client.post(
        PAGE,
        data={"csrf": csrf_of(client, PAGE), "labels": "summer", "where": "", "all": "", "reason": "summer"},
        follow_redirects=True,
    )
    text = html.unescape(applied.text)
    assert "label summer applied — 0 listed, 1 updated, 1 delisted." in text
    assert 'data-current="rule"' in text
    with container.engine.connect() as conn:
        assert selection_service.selected_count(conn, shops.acme.channel_id) == 1
        [event] = audit.history(conn, shops.acme.channel_id, prefix="selection.")
    assert event.actor == "dashboard:acme" and event.reason == "summer"


def test_bad_rules_and_other_tenants(client, shops) -> None:
    login(client, shops.acme.token)
    bad = html.unescape(client.get(PAGE, params={"preview": "1", "where": "color"}).text)
    assert "data-error" in bad and "attribute=value" in bad
    answer = client.post(
        PAGE, data={"csrf": csrf_of(client, PAGE), "where": "c=a\nc=b"}, follow_redirects=True
    )
    assert "cannot equal both" in html.unescape(answer.text)
    missing = client.get("/dashboard/channels/nope/selection", follow_redirects=True)
    assert "no channel named" in html.unescape(missing.text)
