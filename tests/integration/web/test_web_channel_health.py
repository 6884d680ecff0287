"""Dashboard channel row: the credentials alert shows on the channel, and "Run now" brings a flow's
pending job forward (out of a backoff) through the same service as `tradelane channel sync`."""

from __future__ import annotations

import html
from datetime import timedelta

import sqlalchemy as sa
from webtest_support import csrf_of, login

from tradelane.persistence.tables import jobs
from tradelane.services import channels as channel_service
from tradelane.sync import jobs as jobstore


def _post(client, url: str, **data) -> str:
    answer = client.post(url, data={"csrf": csrf_of(client), **data}, follow_redirects=True)
    assert answer.status_code == 200
    return html.unescape(answer.text)


def test_channel_row_shows_the_credentials_alert(client, shops, container, now):
    with container.engine.begin() as conn:
        channel = channel_service.get_channel_by_id(conn, shops.acme.tenant_id, shops.acme.channel_id)
        channel_service.credentials_rejected(
            conn, channel, host="shop.mirakl.example", reason="API key rejected (HTTP 401)", now=now
        )
    login(client, shops.acme.token)
    page = html.unescape(client.get("/dashboard/channels").text)
    assert "shop-fr: credentials rejected by shop.mirakl.example: API key rejected (HTTP 401)" in page
    assert "tradelane channel update shop-fr" in page
    login(client, shops.globex.token)
    assert "credentials rejected" not in client.get("/dashboard/channels").text


def test_run_now_brings_a_backed_off_job_forward(client, shops, container, now):
    with container.engine.begin() as conn:
        job_id = jobstore.enqueue(
            conn,
            jobstore.JobSpec(
                shops.acme.tenant_id,
                "orders.poll",
                {},
                channel_id=shops.acme.channel_id,
                flow="orders",
                dedupe_key=f"orders.poll:{shops.acme.channel_id}",
                run_at=now + timedelta(seconds=90),  # as if backing off after a failure
            ),
            now=now,
        ).job_id
    login(client, shops.acme.token)
    assert "Run now" in client.get("/dashboard/channels").text
    page = _post(client, "/dashboard/channels/run", channel="shop-fr", flow="orders")
    assert f"shop-fr: orders.poll job {job_id} already pending; due now." in page
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(jobs.c.run_at).where(jobs.c.id == job_id)).scalar_one() == now
    refused = _post(client, "/dashboard/channels/run", channel="nope", flow="orders")
    assert "no channel named 'nope'" in refused
