"""The one place that knows which marketplace connectors exist.

Each connector package defines a :class:`ConnectorSpec` named ``SPEC`` (in its ``connector`` module);
:data:`CONNECTOR_MODULES` lists those modules — adding a connector is one line there. Bootstrap, the
API, the CLI (each spec's ``cli`` module), the dashboard and the demo read :data:`CONNECTORS` /
:func:`get_connector`; the job handlers resolve a channel's connector through it. The modules are
imported on first use (never at import time), so connector packages may import services freely.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradelane.connectors.base import Capabilities, ConnectorFactory
from tradelane.domain.errors import ValidationError
from tradelane.services.channels import Channel, channel_credentials, update_channel_config

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from tradelane.connectors.dispatch import ChannelHandler
    from tradelane.security.crypto import KeyRing

#: The module of every connector, each defining ``SPEC``. Adding a connector: one line here.
CONNECTOR_MODULES: tuple[str, ...] = (
    "tradelane.connectors.mirakl.connector",
    "tradelane.connectors.amazon.connector",
)


@dataclass(frozen=True, slots=True)
class CustomerMessages:
    """How a connector's customer messages reach their orders: a stored message whose raw payload
    ``is_customer`` is appended to the order's ``attribute`` (and ``customer_message``) — whichever of the
    order and the message the hub saw first."""

    attribute: str
    is_customer: Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    """What ``channel check`` found: ``ok``, else the ``problem`` in the connector's own words (Mirakl's
    ``wrong_key``, Amazon's ``bad_credentials``...) and, either way, a message for the operator."""

    ok: bool
    message: str
    problem: str | None = None


#: ``check(conn, channel, keyring, staging)``: call the marketplace with the channel's stored settings
#: and credentials (outside the channel's budget); ``staging`` True/False picks the test/live account,
#: None the account the flows use now. A :class:`ValidationError` when the channel cannot be checked so
#: (e.g. no staging account).
ChannelChecker = Callable[["Connection", "Channel", "KeyRing", "bool | None"], ChannelCheck]


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """A connector as the hub knows it.

    * ``capabilities``: what it does with default settings (the dashboard, the job dispatcher);
      ``channel_capabilities(settings)`` what one channel's connector declares (e.g. Mirakl's partial
      shipments depend on the operator's multi-shipment option);
    * ``factory``: builds the connector for one job or command from a
      :class:`~tradelane.connectors.base.ConnectorEnv`;
    * ``validate_settings(settings, credentials)``: the settings as stored, normalised, or a
      :class:`~tradelane.domain.errors.ValidationError` saying what is wrong (nothing is called remotely);
    * ``cursors``: the channel cursor under which each stream's opaque cursor is kept (``orders``,
      ``messages``, ``returns``; default ``<name>.<stream>.cursor``);
    * ``customer_messages``: where customer messages go on their orders (None: they are only stored);
    * ``handlers``: job kinds this connector still handles itself (kinds not yet served by a generic
      handler; a generic handler of the same kind wins);
    * ``check``: ``channel check`` (CLI, API, ``channel update``), see :data:`ChannelChecker`; None:
      the connector has no check;
    * ``credential_keys``: the credentials a channel of this connector holds that
      :func:`update_settings` may replace (e.g. Amazon's LWA client id/secret and refresh token);
    * ``cli``: the module of the connector's commands (``channel add <name>``, ``sandbox <name>``...),
      imported by the CLI when it builds its app (never at import time: ``tradelane --help`` loads no
      more than it shows); importing it attaches the commands to the CLI's groups
      (``tradelane.cli.channels.add_app``, ``tradelane.cli.sandbox.sandbox_app``). None: no commands.
    """

    name: str
    title: str
    capabilities: Capabilities
    factory: ConnectorFactory
    validate_settings: Callable[[Mapping[str, Any], Mapping[str, str]], dict[str, Any]]
    channel_capabilities: Callable[[Mapping[str, Any]], Capabilities]
    cursors: Mapping[str, str] = field(default_factory=dict)
    customer_messages: CustomerMessages | None = None
    handlers: Mapping[str, ChannelHandler] = field(default_factory=dict)
    check: ChannelChecker | None = None
    credential_keys: tuple[str, ...] = ()
    cli: str | None = None

    def cursor(self, stream: str) -> str:
        """The channel cursor name of ``stream`` (``orders``, ``messages``, ``returns``)."""
        return self.cursors.get(stream, f"{self.name}.{stream}.cursor")


class _Connectors(Mapping[str, ConnectorSpec]):
    """Name → spec, loaded from :data:`CONNECTOR_MODULES` on first access."""

    def __init__(self, modules: tuple[str, ...]) -> None:
        self._modules = modules
        self._specs: dict[str, ConnectorSpec] | None = None

    def _load(self) -> dict[str, ConnectorSpec]:
        if self._specs is None:
            specs: dict[str, ConnectorSpec] = {}
            for module_name in self._modules:
                spec = getattr(importlib.import_module(module_name), "SPEC", None)
                if not isinstance(spec, ConnectorSpec):
                    raise TypeError(f"{module_name}.SPEC is not a ConnectorSpec")
                if spec.name in specs:
                    raise ValueError(f"connector {spec.name!r} is registered twice")
                specs[spec.name] = spec
            self._specs = specs
        return self._specs

    def __getitem__(self, name: str) -> ConnectorSpec:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


#: Every connector by name.
CONNECTORS: Mapping[str, ConnectorSpec] = _Connectors(CONNECTOR_MODULES)


def connector_names() -> tuple[str, ...]:
    """The registered connectors' names, sorted."""
    return tuple(sorted(CONNECTORS))


def get_connector(name: str) -> ConnectorSpec:
    """The spec of connector ``name``; :class:`ValidationError` naming the known ones otherwise."""
    spec = CONNECTORS.get(name)
    if spec is None:
        raise ValidationError(f"unknown connector {name!r} (known: {', '.join(connector_names())})")
    return spec


def check_channel(
    conn: Connection, channel: Channel, keyring: KeyRing, *, staging: bool | None = None
) -> ChannelCheck:
    """``channel``'s connector's check (see :data:`ChannelChecker`); :class:`ValidationError` when the
    connector is unknown or has no check."""
    spec = get_connector(channel.connector)
    if spec.check is None:
        raise ValidationError(f"connector {channel.connector!r} has no check")
    return spec.check(conn, channel, keyring, staging)


def update_settings(
    conn: Connection,
    channel: Channel,
    changes: Mapping[str, Any],
    keyring: KeyRing,
    *,
    credentials: Mapping[str, str] | None = None,
) -> Channel:
    """``changes`` merged into ``channel``'s settings and ``credentials`` (names among the connector's
    ``credential_keys``) into its credentials, both validated by the connector's ``validate_settings``
    (nothing is called remotely; a :class:`ValidationError` stores nothing), then stored (credentials
    encrypted anew). Callers check the channel next (:func:`check_channel`)."""
    spec = get_connector(channel.connector)
    unknown = sorted(set(credentials or {}) - set(spec.credential_keys))
    if unknown:
        known = ", ".join(spec.credential_keys) or "none"
        raise ValidationError(
            f"{', '.join(unknown)}: not a credential of connector {spec.name!r} (it has: {known})"
        )
    blank = sorted(k for k, v in (credentials or {}).items() if not v.strip())
    if blank:
        raise ValidationError(f"empty credential(s): {', '.join(blank)}")
    stored = channel_credentials(conn, channel, keyring)
    stored.update({k: v.strip() for k, v in (credentials or {}).items()})
    settings = spec.validate_settings({**channel.settings, **changes}, stored)
    return update_channel_config(conn, channel, settings=settings, credentials=stored, keyring=keyring)
