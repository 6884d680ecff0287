"""An Amazon SP-API sandbox on a real socket and AmazonConnectors pointed at it (integration tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradelane.connectors.amazon.connector import AmazonConnector
from tradelane.connectors.amazon.sandbox.models import SellerAccount
from tradelane.connectors.amazon.sandbox.server import AmazonSandboxServer
from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState, SandboxSettings
from tradelane.connectors.base import ConnectorEnv, OfferUpdate
from tradelane.http_edge import Exchange

DE = "A1PA6795UKMFR9"
IT = "APJ6JRA9NG5V4"


@dataclass
class World:
    state: AmazonSandboxState
    url: str
    exchanges: list[Exchange] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)
    holds: list[tuple[str, float]] = field(default_factory=list)
    #: Pace calls like the hub's durable budget (token buckets of the connector's declared budgets on
    #: the sandbox clock, waiting by moving that clock); off: every call goes straight out.
    pacing: bool = False
    _tokens: dict[str, tuple[float, datetime]] = field(default_factory=dict)
    _connector: AmazonConnector | None = None

    def throttle(self, op: str) -> None:
        self.throttled.append(op)
        if not self.pacing or self._connector is None:
            return
        budget = self._connector.capabilities.budgets[op]
        now = self.state.now()
        tokens, since = self._tokens.get(op, (float(budget.burst), now))
        tokens = min(float(budget.burst), tokens + (now - since).total_seconds() * budget.per_second)
        if tokens < 1.0:
            now = self.state.advance((1.0 - tokens) / budget.per_second)
            tokens = 1.0
        self._tokens[op] = (tokens - 1.0, now)

    def hold(self, op: str, seconds: float) -> None:
        self.holds.append((op, seconds))

    @property
    def eu(self) -> SellerAccount:
        return next(a for a in self.state.accounts.values() if a.region == "eu")

    @property
    def na(self) -> SellerAccount:
        return next(a for a in self.state.accounts.values() if a.region == "na")

    def connector(
        self,
        seller: SellerAccount | None = None,
        *,
        marketplace_id: str = DE,
        region: str = "eu",
        credentials: dict[str, str] | None = None,
        endpoint: str | None = None,
        **settings: Any,
    ) -> AmazonConnector:
        seller = seller or self.eu
        app = self.state.application
        creds = {
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "refresh_token": seller.refresh_token,
        }
        creds.update(credentials or {})
        connector = AmazonConnector(
            ConnectorEnv(
                channel_id=1,
                channel_name="amazon-de",
                settings={
                    "seller_id": seller.seller_id,
                    "marketplace_id": marketplace_id,
                    "region": region,
                    "endpoint": endpoint or self.url,
                    "token_endpoint": self.url,
                    **settings,
                },
                credentials=creds,
                now=self.state.now,
                throttle=self.throttle,
                on_exchange=self.exchanges.append,
                hold=self.hold,
            )
        )
        self._connector = connector
        return connector

    def list_offers(self, count: int, price: str = "19.90", quantity: int = 5) -> list[str]:
        """``count`` offers SKU-001... listed directly on the sandbox (ASINs B0SBX00001...)."""
        skus = []
        for i in range(1, count + 1):
            sku = f"SKU-{i:03d}"
            self.state.add_offer(self.eu.seller_id, sku, f"B0SBX{i:05d}", Decimal(price), quantity)
            skus.append(sku)
        return skus


@contextmanager
def sandbox(rate_limits: str = "generous", products: int = 40, **tunables: Any) -> Iterator[World]:
    settings = SandboxSettings(feed_queue_seconds=1, feed_processing_seconds=1, **tunables)
    state = AmazonSandboxState(
        seed=7, rate_limits=rate_limits, region="eu", products=products, settings=settings
    )
    with AmazonSandboxServer(state) as server:
        yield World(state, server.url)


def offer(sku: str, price: str = "19.90", quantity: int = 5, **kwargs: Any) -> OfferUpdate:
    return OfferUpdate(sku=sku, price=Decimal(price), currency="EUR", quantity=quantity, **kwargs)
