"""Dashboard channel card: a feed the channel never reads (a Mirakl operator without the returns module)
says why; a channel reading every feed shows no such line."""

from __future__ import annotations

import html

from webtest_support import login

from tradelane.connectors.registry import update_settings
from tradelane.services import channels as channel_service


def test_an_absent_module_is_shown_with_its_reason(client, shops, container):
    login(client, shops.acme.token)
    assert "not read:" not in html.unescape(client.get("/dashboard/channels").text)
    with container.engine.begin() as conn:
        channel = channel_service.get_channel_by_id(conn, shops.acme.tenant_id, shops.acme.channel_id)
        update_settings(conn, channel, {"modules": {"returns": False}}, container.keyring)
    page = html.unescape(client.get("/dashboard/channels").text)
    assert (
        "returns not read: the operator does not offer returns (channel setting modules.returns is false): "
        "RT11 is never called"
    ) in page
    assert "messages not read" not in page
