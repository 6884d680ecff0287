"""The composition root: the only place that builds engines, key rings and registries and wires
connectors' handlers into the sync engine."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from tradelane.config import Settings, load_settings
from tradelane.logging import configure_logging
from tradelane.persistence.db import make_engine
from tradelane.security.crypto import KeyRing, load_or_create_key_file
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

    def now(self) -> datetime:
        result: datetime = self.clock()
        return result

    def close(self) -> None:
        self.engine.dispose()


def build_keyring(settings: Settings) -> KeyRing:
    keys = settings.key_list()
    if not keys:
        keys = [load_or_create_key_file(settings.data_dir / "secret.key")]
    return KeyRing(keys)


def register_handlers(registry: JobRegistry, plugins: list[str] | None = None) -> None:
    """Every job kind the engine knows. Connectors add theirs here; ``plugins`` name extra
    ``module:function`` registrars (site-specific handlers)."""
    from tradelane.connectors.dispatch import register_connectors
    from tradelane.connectors.mirakl.connector import HANDLERS as MIRAKL
    from tradelane.merchant.files import scan as files_scan
    from tradelane.merchant.shopify import catalog_sync as shopify_catalog
    from tradelane.merchant.shopify.adapter import shopify_adapter
    from tradelane.services import order_delivery
    from tradelane.sync import builtin

    builtin.register(registry)
    register_connectors(registry, {"mirakl": MIRAKL})
    order_delivery.register(
        registry, adapters={**order_delivery.DEFAULT_ADAPTERS, "shopify": shopify_adapter}
    )
    shopify_catalog.register(registry)
    files_scan.register(registry)
    for spec in plugins or []:
        module_name, _, func_name = spec.partition(":")
        if not func_name:
            raise ValueError(f"plugin {spec!r} must look like package.module:function")
        registrar = getattr(importlib.import_module(module_name), func_name)
        registrar(registry)


def build(settings: Settings | None = None, *, configure_logs: bool = True) -> Container:
    settings = settings or load_settings()
    if configure_logs:
        configure_logging(settings.log_level, json_output=settings.log_json)
    engine = make_engine(settings.resolved_database_url())
    registry = JobRegistry()
    register_handlers(registry, settings.plugin_list())
    keyring = build_keyring(settings)
    return Container(
        settings=settings, engine=engine, keyring=keyring, registry=registry, extras={"keyring": keyring}
    )
