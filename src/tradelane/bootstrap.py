"""The composition root: the only place that builds engines, key rings and registries and wires
connectors' handlers into the sync engine."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradelane.config import Settings, load_settings
from tradelane.logging import configure_logging, get_logger
from tradelane.persistence.db import make_engine
from tradelane.persistence.migrate import unavailable
from tradelane.security.crypto import KeyRing
from tradelane.sync.registry import JobRegistry
from tradelane.timeutil import utcnow


@dataclass
class Container:
    settings: Settings
    engine: Engine
    keyring: KeyRing
    registry: JobRegistry
    clock: Any = field(default=utcnow)
    extras: dict[str, Any] = field(default_factory=dict)
    #: The resolved store, data directory and key source (see :func:`describe_setup`).
    setup: dict[str, Any] = field(default_factory=dict)

    def now(self) -> datetime:
        result: datetime = self.clock()
        return result

    def close(self) -> None:
        self.engine.dispose()


def build_keyring(settings: Settings, engine: Engine) -> tuple[KeyRing, str]:
    """The key ring for ``engine``'s store, checked against the credentials it already holds, and where
    it came from (for logs; never the key).

    Raises :class:`~tradelane.services.key_check.KeyConfigurationError` (the process must not start)
    when no configured key decrypts them, and never creates a key file over encrypted data.
    """
    from tradelane.services.key_check import open_keyring

    keyring, source, check = open_keyring(
        engine, configured_keys=settings.key_list(), key_file=settings.key_file()
    )
    log = get_logger("tradelane.bootstrap")
    log.debug("settings.resolved", **describe_setup(settings, source.description))
    if source.created_key_file:
        log.warning("keys.created", key_file=str(settings.key_file()))
    if check.undecryptable:
        log.error(
            "keys.some_credentials_undecryptable",
            sampled=check.sampled,
            rows=[v.label for v in check.undecryptable],
        )
    return keyring, source.description


def describe_setup(settings: Settings, keys_from: str) -> dict[str, Any]:
    """What a process runs on, for its start-up log line (no secrets): the store, the data directory and
    where the keys came from. ``worker`` and ``serve`` log it at INFO; one-shot commands at DEBUG."""
    return {
        "database_url": _url_for_log(settings.resolved_database_url()),
        "data_dir": str(settings.data_dir) if settings.data_dir is not None else None,
        "keys_from": keys_from,
    }


def _url_for_log(url: str) -> str:
    """``url`` with any password masked."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def register_handlers(registry: JobRegistry, plugins: list[str] | None = None) -> None:
    """Every job kind the engine knows. Connectors add theirs here; ``plugins`` name extra
    ``module:function`` registrars (site-specific handlers)."""
    from tradelane.connectors.dispatch import register_connectors
    from tradelane.merchant.capabilities import ADAPTERS as MERCHANT_ADAPTERS
    from tradelane.merchant.shopify.adapter import shopify_adapter
    from tradelane.services import (
        channel_lifecycle,
        cutover_jobs,
        files_scan,
        merchant_webhooks,
        order_delivery,
        shopify_catalog,
        shopify_webhooks,
    )
    from tradelane.services import notifications as notification_jobs
    from tradelane.sync import builtin

    builtin.register(registry)
    register_connectors(registry)  # every connector of connectors/registry.py
    order_delivery.register(registry, adapters=MERCHANT_ADAPTERS)  # every merchant adapter factory
    shopify_catalog.register(registry, stock_sources=shopify_adapter)
    merchant_webhooks.register(registry)
    shopify_webhooks.register(registry)  # shopify.apply_event: a stored Shopify webhook applied
    files_scan.register(registry)
    notification_jobs.register(registry)  # notifications.send: emails and signed webhooks
    cutover_jobs.register(registry)  # cutover.advance: a waiting cutover looks again
    channel_lifecycle.register(registry)  # the end of testing periods (lifecycle.end_testing)
    for spec in plugins or []:
        module_name, _, func_name = spec.partition(":")
        if not func_name:
            raise ValueError(f"plugin {spec!r} must look like package.module:function")
        registrar = getattr(importlib.import_module(module_name), func_name)
        registrar(registry)


def notification_services(settings: Settings, keyring: KeyRing) -> dict[str, Any]:
    """The worker's notification transport: the SMTP server of ``settings`` and the key ring."""
    from tradelane.services.notification_transport import SmtpConfig
    from tradelane.services.notifications import TRANSPORT, Transport

    return {TRANSPORT: Transport(SmtpConfig.from_settings(settings), keyring)}


def build(settings: Settings | None = None, *, configure_logs: bool = True) -> Container:
    """Wire the application. Raises :class:`~tradelane.persistence.migrate.DatabaseUnavailable` when the
    store cannot be reached, and the key check's errors (see :func:`build_keyring`)."""
    settings = settings or load_settings()
    if configure_logs:
        configure_logging(settings.log_level, json_output=settings.log_json)
    engine = make_engine(settings.resolved_database_url())
    try:
        keyring, keys_from = build_keyring(settings, engine)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise unavailable(engine, exc) from None
    except BaseException:
        engine.dispose()
        raise
    registry = JobRegistry()
    register_handlers(registry, settings.plugin_list())
    return Container(
        settings=settings,
        engine=engine,
        keyring=keyring,
        registry=registry,
        extras={"keyring": keyring, **notification_services(settings, keyring)},
        setup=describe_setup(settings, keys_from),
    )
