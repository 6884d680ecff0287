"""The signed merchant webhook under concurrency (its writes go through the group commit): every valid
update is stored once with its one apply job, a replay within the same burst is refused, a body that is
not an update is answered 422 and stored failed, a forged signature stores nothing; no answer is 5xx."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import httpx
import sqlalchemy as sa
from merchant_support import SECRET, Shop, read, register_oms

from tradelane.bootstrap import Container
from tradelane.merchant.signing import SIGNATURE_HEADER, sign
from tradelane.persistence.tables import inbound_events, jobs
from tradelane.services.merchant_webhooks import APPLY_KIND
from tradelane.web.app import create_app

URL = "/api/v1/merchant/oms/webhook"


def _body(i: int) -> bytes:
    return json.dumps({"type": "shipment", "order": f"shop-fr:W-{i}", "id": f"S-{i}"}).encode()


def test_concurrent_signed_updates(container: Container, shop: Shop, now: datetime) -> None:
    register_oms(container, shop, "http://127.0.0.1:9/orders")
    app = create_app(container)
    requests = [(_body(i), sign(SECRET, _body(i), now)) for i in range(25)]
    requests.append(requests[7])  # the same signed request again: a replay
    requests.append((b'{"type": "teleport"}', sign(SECRET, b'{"type": "teleport"}', now)))
    requests.append((_body(99), sign("not-the-secret", _body(99), now)))

    async def post(client: httpx.AsyncClient, body: bytes, signature: str) -> httpx.Response:
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature}
        return await client.post(URL, content=body, headers=headers)

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return list(await asyncio.gather(*(post(client, b, s) for b, s in requests)))

    try:
        responses = asyncio.run(main())
    finally:
        app.state.webhook_writer.close()
    statuses = [r.status_code for r in responses]
    assert sorted(statuses[:26]) == [202] * 25 + [401]
    assert statuses[26:] == [422, 401]
    accepted = [r.json() for r in responses if r.status_code == 202]
    events = read(container.engine, sa.select(inbound_events).order_by(inbound_events.c.id))
    assert len(events) == 26  # 25 updates and the failed one; no replay, nothing forged
    assert [e.status for e in events].count("failed") == 1
    apply = read(container.engine, sa.select(jobs).where(jobs.c.kind == APPLY_KIND))
    assert sorted(j.payload["event_id"] for j in apply) == sorted(a["event_id"] for a in accepted)
    assert sorted(j.id for j in apply) == sorted(a["job_id"] for a in accepted)
