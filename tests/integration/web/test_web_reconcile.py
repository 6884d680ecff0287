"""The reconciler page (``/dashboard/channels/{name}/reconcile``) and the unique-ID match page
(``/dashboard/channels/{name}/id-match``): links from the channels page and the channel page, a dry
run queued (CSRF), the stored report with counts, samples and the oversell warning, "Enable
reconciler" confirming it (audited as ``dashboard:<tenant>``), the ID match table and its CSV, other
tenants' channels not reachable."""

from __future__ import annotations

import html

import sqlalchemy as sa
from webtest_support import CHANNEL, csrf_of, login

from tradelane.persistence.tables import jobs
from tradelane.services import audit, id_match, reconciler
from tradelane.services.channels import get_channel_by_id

PAGE = f"/dashboard/channels/{CHANNEL}/reconcile"
MATCH = f"/dashboard/channels/{CHANNEL}/id-match"


def _count(text: str, marker: str) -> str:
    row = text.split(marker, 1)[1]
    return row.split("data-count>", 1)[1].split("<", 1)[0]


def test_dry_run_report_and_enable(client, shops, container) -> None:
    login(client, shops.acme.token)
    channels_page = client.get("/dashboard/channels").text
    assert f'href="/dashboard/channels/{CHANNEL}/reconcile" data-reconcile-link' in channels_page
    assert f'href="/dashboard/channels/{CHANNEL}/id-match" data-id-match-link' in channels_page
    detail = client.get(f"/dashboard/channels/{CHANNEL}").text
    assert f'href="/dashboard/channels/{CHANNEL}/reconcile" data-reconcile-link' in detail

    empty = client.get(PAGE)
    assert empty.status_code == 200 and "data-no-report" in empty.text
    assert client.post(PAGE, data={}, follow_redirects=False).status_code == 403  # no CSRF token
    queued = client.post(
        PAGE, data={"csrf": csrf_of(client, PAGE), "include_unmanaged": ""}, follow_redirects=True
    )
    assert "Dry run queued" in html.unescape(queued.text) and "data-waiting" in queued.text
    with container.engine.connect() as conn:
        assert conn.execute(
            sa.select(jobs.c.kind).where(jobs.c.kind == reconciler.DRY_RUN)
        ).scalars().all() == [reconciler.DRY_RUN]

    with container.engine.begin() as conn:
        channel = get_channel_by_id(conn, shops.acme.tenant_id, shops.acme.channel_id)
        comparison = reconciler.compare(
            ["ACME-1", "ACME-BAD", "LEGACY-7"], ["ACME-1", "ACME-BAD"], ["ACME-1"], can_delete=True,
            include_unmanaged=False,
        )  # fmt: skip
        report = reconciler.store_report(
            conn, channel, comparison, kind="dry_run", actor="cli:x", hint=None, now=container.now()
        )
    shown = html.unescape(client.get(PAGE).text)
    assert f'data-report-id="{report.id}"' in shown
    assert (_count(shown, 'data-group="not_selected"'), _count(shown, 'data-group="unmanaged"')) == ("1", "1")
    assert "1 listings exist that tradelane does not manage" in shown
    assert "ACME-BAD" in shown.split('data-group="to_remove"', 1)[1].split("</tr>", 1)[0]

    refused = client.post(
        f"{PAGE}/enable",
        data={"csrf": csrf_of(client, PAGE), "report_id": str(report.id)},
        follow_redirects=True,
    )
    assert "is live: enabling its reconciler needs a reason" in html.unescape(refused.text)
    done = client.post(
        f"{PAGE}/enable",
        data={"csrf": csrf_of(client, PAGE), "report_id": str(report.id), "reason": "checked the list"},
        follow_redirects=True,
    )
    text = html.unescape(done.text)
    assert f"switched on, confirming dry run {report.id}" in text and "data-confirmed" in text
    with container.engine.connect() as conn:
        [event] = audit.history(conn, shops.acme.channel_id, prefix="reconciler.")
    assert (event.actor, event.reason) == ("dashboard:acme", "checked the list")


def test_id_match_page_and_csv(client, other_client, shops, container) -> None:
    login(client, shops.acme.token)
    assert "data-no-run" in client.get(MATCH).text
    rows = [
        id_match.MatchRow(
            "conflict", sku="ACME-1", their_sku="ACME-1", matched_by="sku", our_group="P", their_group="Q"
        ),
        id_match.MatchRow("matched", sku="ACME-BAD", their_sku="ACME-BAD", matched_by="sku"),
    ]
    with container.engine.begin() as conn:
        channel = get_channel_by_id(conn, shops.acme.tenant_id, shops.acme.channel_id)
        run = id_match.store_run(conn, channel, 2, rows, actor="cli:x", now=container.now())
    page = client.get(MATCH).text
    assert f'data-run-id="{run.id}"' in page and "data-blocked" in page
    assert _count(page, 'data-category="conflict"') == "1"
    assert page.count('data-row="') == 2
    only_conflicts = client.get(MATCH, params={"category": "conflict"}).text
    assert only_conflicts.count('data-row="') == 1
    csv_text = client.get(f"{MATCH}.csv").text
    assert csv_text.splitlines()[1] == "conflict,ACME-1,ACME-1,sku,,,P,Q"
    queued = client.post(MATCH, data={"csrf": csrf_of(client, MATCH)}, follow_redirects=True)
    assert "ID match queued" in html.unescape(queued.text)

    login(other_client, shops.globex.token)  # globex's own shop-fr: never acme's run
    assert "data-no-run" in other_client.get(MATCH).text
