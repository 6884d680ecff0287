"""The merchant side's shape: adapters behind the port, never touching tables; each kind's declaration
and factory; the Shopify stock re-read driven through the stock source the composition root supplies."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from merchant_support import Shop, add_product, read
from shopify_support import run_jobs

from helpers import FakeClock
from tradelane.bootstrap import Container
from tradelane.merchant import capabilities as merchant_kinds
from tradelane.merchant.base import Capability, MerchantSystem
from tradelane.persistence.tables import jobs, products
from tradelane.services.merchant_systems import add_shopify_system
from tradelane.services.shopify_catalog import INVENTORY_JOB, enqueue_inventory_sync
from tradelane.services.shopify_catalog import register as register_inventory
from tradelane.sync.registry import JobRegistry

MERCHANT_PACKAGE = Path(merchant_kinds.__file__).parent
#: What an adapter may not import: tables, repositories, use cases, the job engine.
FORBIDDEN = ("sqlalchemy", "tradelane.persistence", "tradelane.services", "tradelane.sync", "tradelane.web")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_merchant_adapters_import_no_table_use_case_or_engine_module() -> None:
    offending = {
        f"{path.relative_to(MERCHANT_PACKAGE)}: {name}"
        for path in MERCHANT_PACKAGE.rglob("*.py")
        for name in _imports(path)
        if name == "sqlalchemy" or name.startswith(FORBIDDEN)
    }
    assert len(list(MERCHANT_PACKAGE.rglob("*.py"))) > 10  # the walk found the package
    assert offending == set()


def test_every_kind_that_receives_orders_has_an_adapter_factory_and_only_those() -> None:
    receiving = {
        kind
        for kind, declare in merchant_kinds.DECLARATIONS.items()
        if Capability.RECEIVE_ORDERS in declare({"sends": ["catalog", "stock"]})
    }
    assert receiving == set(merchant_kinds.ADAPTERS) == {"http", "shopify"}


class FakeStockSource:
    """A merchant system's stock as a dict; records what was read and that it was closed."""

    def __init__(self, stock: dict[int, tuple[str | None, int] | None]) -> None:
        self.stock = stock
        self.read: list[int] = []
        self.closed = 0

    def read_stock(self, inventory_item_id: int) -> tuple[str | None, int] | None:
        self.read.append(inventory_item_id)
        return self.stock.get(inventory_item_id)

    def close(self) -> None:
        self.closed += 1


def _shopify_system(container: Container, shop: Shop) -> MerchantSystem:
    with container.engine.begin() as conn:
        return add_shopify_system(
            conn,
            tenant_id=shop.tenant_id,
            name="shopify",
            shop_domain="port-test.myshopify.com",
            access_token="shpat_port_test_token",
            webhook_secret="a-webhook-secret-for-the-port-test",
            keyring=container.keyring,
            now=container.now(),
            api_url="http://127.0.0.1:9",  # never called: the fake source answers
        )


def _queue(container: Container, system: MerchantSystem, item: int) -> None:
    with container.engine.begin() as conn:
        enqueue_inventory_sync(conn, system=system, inventory_item_id=item, now=container.now())


def _inventory_jobs(container: Container) -> list[Any]:
    return read(container.engine, sa.select(jobs).where(jobs.c.kind == INVENTORY_JOB).order_by(jobs.c.id))


def test_the_inventory_job_reads_stock_through_the_supplied_source(
    container: Container, shop: Shop, clock: FakeClock, now: Any
) -> None:
    add_product(container.engine, shop.tenant_id, "B", now)
    system = _shopify_system(container, shop)
    source = FakeStockSource({71: ("B", 17), 72: None, 73: (None, 4)})
    built: list[tuple[str, dict[str, Any]]] = []

    def factory(got: MerchantSystem, credentials: dict[str, Any]) -> FakeStockSource:
        built.append((got.name, credentials))
        return source

    registry = JobRegistry()
    register_inventory(registry, stock_sources=factory)
    for item in (71, 72, 73):
        _queue(container, system, item)
    run_jobs(container, registry, clock)

    assert [job.result for job in _inventory_jobs(container)] == [
        {"sku": "B", "quantity": 17, "status": "updated"},
        {"skipped": "inventory item 72 no longer exists in Shopify"},
        {"skipped": "inventory item 73 has no SKU"},
    ]
    assert source.read == [71, 72, 73] and source.closed == 3
    assert built[0] == (
        "shopify",
        {"access_token": "shpat_port_test_token", "webhook_secret": "a-webhook-secret-for-the-port-test"},
    )
    [quantity] = read(container.engine, sa.select(products.c.quantity).where(products.c.sku == "B"))
    assert quantity == (17,)


def test_a_source_that_cannot_be_built_fails_the_job_permanently(
    container: Container, shop: Shop, clock: FakeClock
) -> None:
    system = _shopify_system(container, shop)

    def factory(got: MerchantSystem, credentials: dict[str, Any]) -> FakeStockSource:
        raise ValueError("the Shopify system has no access token")

    registry = JobRegistry()
    register_inventory(registry, stock_sources=factory)
    _queue(container, system, 5)
    run_jobs(container, registry, clock)

    [job] = _inventory_jobs(container)
    assert job.state == "dead"
    assert job.last_error == "shopify: the Shopify system has no access token"
