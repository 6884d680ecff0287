"""The Mirakl connector as the hub knows it (:data:`SPEC`, read by the registry) and channel set-up
(add, update, check). Every job kind runs as a service through the port (:mod:`.port`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from tradelane.connectors.base import Capabilities
from tradelane.connectors.mirakl.client import CheckResult, MiraklClient
from tradelane.connectors.mirakl.mapping import ORDER_MESSAGE_ATTRIBUTE
from tradelane.connectors.mirakl.port import mirakl_capabilities, mirakl_connector
from tradelane.connectors.mirakl.settings import CONNECTOR, MiraklSettings
from tradelane.connectors.registry import ChannelCheck, ConnectorSpec, CustomerMessages
from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import ValidationError
from tradelane.security.crypto import KeyRing
from tradelane.services.channels import Channel, channel_credentials, create_channel, update_channel_config

#: Channel cursors of each stream (the names the flows used before the port: stored cursors still apply).
CURSORS: Mapping[str, str] = {
    "orders": "mirakl.or11.start_update_date",
    "messages": "mirakl.m01.start_date",
    "returns": "mirakl.rt11.updated_from",
}


def _is_customer(raw: Mapping[str, Any]) -> bool:
    return raw.get("from_type") == "CUSTOMER"


def validate_settings(settings: Mapping[str, Any], credentials: Mapping[str, str]) -> dict[str, Any]:
    """The settings as stored (normalised), checked with the hosts, keys and shop ids they go with."""
    return _validated(dict(settings), dict(credentials)).to_dict()


def channel_capabilities(settings: Mapping[str, Any]) -> Capabilities:
    """What a Mirakl channel with these settings declares (see :func:`.port.mirakl_capabilities`)."""
    try:
        return mirakl_capabilities(MiraklSettings.from_dict(dict(settings)))
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None


def _check(conn: Connection, channel: Channel, keyring: KeyRing, staging: bool | None) -> ChannelCheck:
    """The registry's check: :func:`check_in_use` (``staging`` None) or :func:`check_channel`."""
    if staging is None:
        result = check_in_use(conn, channel, keyring)
    else:
        result = check_channel(conn, channel, keyring, staging=staging)
    return ChannelCheck(result.ok, result.message, result.problem.value if result.problem else None)


SPEC = ConnectorSpec(
    name=CONNECTOR,
    title="Mirakl",
    capabilities=mirakl_capabilities(MiraklSettings(hostname="example.mirakl.net")),
    factory=mirakl_connector,
    validate_settings=validate_settings,
    channel_capabilities=channel_capabilities,
    cursors=CURSORS,
    customer_messages=CustomerMessages(attribute=ORDER_MESSAGE_ATTRIBUTE, is_customer=_is_customer),
    check=_check,
    cli="tradelane.connectors.mirakl.cli",
)


def add_channel(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    hostname: str,
    shop_id: str | None,
    api_key: str,
    keyring: KeyRing,
    now: datetime,
    options: dict[str, Any] | None = None,
    staging_api_key: str | None = None,
) -> Channel:
    """Create a Mirakl channel. Settings are validated (hostname, shop id) before anything is stored."""
    data = {"hostname": hostname, "shop_id": shop_id, **(options or {})}
    credentials: dict[str, Any] = {"api_key": api_key}
    if staging_api_key:
        credentials["staging_api_key"] = staging_api_key
    settings = _validated(data, credentials)
    return create_channel(
        conn,
        tenant_id=tenant_id,
        name=name,
        connector=CONNECTOR,
        settings=settings.to_dict(),
        credentials=credentials,
        keyring=keyring,
        now=now,
    )


def update_channel(
    conn: Connection,
    channel: Channel,
    *,
    keyring: KeyRing,
    api_key: str | None = None,
    hostname: str | None = None,
    shop_id: str | None = None,
    staging_api_key: str | None = None,
    options: dict[str, Any] | None = None,
) -> Channel:
    """Change a Mirakl channel's credentials and/or settings (what is not given is kept).

    The new settings are validated before anything is stored; the credentials are encrypted again
    under the current key. Nothing is checked against the marketplace here: callers run
    :func:`check_channel` next (and :func:`~tradelane.services.channels.credentials_accepted` when it
    passes)."""
    if channel.connector != CONNECTOR:
        raise ValidationError(f"channel {channel.name} uses connector {channel.connector!r}, not mirakl")
    if api_key is not None and not api_key.strip():
        raise ValidationError("the API key is empty")
    data = {**channel.settings, **(options or {})}
    if hostname is not None:
        data["hostname"] = hostname
    if shop_id is not None:
        data["shop_id"] = shop_id or None
    credentials = channel_credentials(conn, channel, keyring)
    if api_key is not None:
        credentials["api_key"] = api_key.strip()
    if staging_api_key is not None:
        credentials["staging_api_key"] = staging_api_key.strip()
    settings = _validated(data, credentials)
    return update_channel_config(
        conn, channel, settings=settings.to_dict(), credentials=credentials, keyring=keyring
    )


def _validated(data: dict[str, Any], credentials: dict[str, Any]) -> MiraklSettings:
    """Settings from ``data``, with the hosts, keys and shop ids (live and staging) checked by building
    the clients that would use them; a :class:`ValidationError` says what is wrong."""
    try:
        settings = MiraklSettings.from_dict(data)
        MiraklClient(settings.hostname, str(credentials.get("api_key", "")), settings.shop_id).close()
        staging_key = credentials.get("staging_api_key")
        if staging_key:
            host = settings.staging_hostname or settings.hostname
            MiraklClient(host, str(staging_key), settings.staging_shop_id).close()
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None
    return settings


def check_in_use(conn: Connection, channel: Channel, keyring: KeyRing) -> CheckResult:
    """:func:`check_channel` on the account the flows use now: the staging one while the channel is in
    ``testing`` with a staging account, else the live one."""
    staging = channel.lifecycle_state == LifecycleState.TESTING.value and bool(
        channel.settings.get("staging_hostname")
    )
    return check_channel(conn, channel, keyring, staging=staging)


def check_channel(
    conn: Connection, channel: Channel, keyring: KeyRing, *, staging: bool = False
) -> CheckResult:
    """A01 with the channel's credentials: wrong host / wrong key / wrong shop id / unreachable are
    told apart (see :meth:`MiraklClient.check`)."""
    try:
        settings = MiraklSettings.from_dict(channel.settings)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"channel {channel.name} has invalid Mirakl settings: {exc}") from None
    credentials = channel_credentials(conn, channel, keyring)
    if staging:
        if not settings.staging_hostname or not credentials.get("staging_api_key"):
            raise ValidationError(f"channel {channel.name} has no staging account")
        client = MiraklClient(
            settings.staging_hostname, credentials["staging_api_key"], settings.staging_shop_id
        )
    else:
        client = MiraklClient(settings.hostname, credentials["api_key"], settings.shop_id, timeout=10.0)
    with client:
        return client.check()
