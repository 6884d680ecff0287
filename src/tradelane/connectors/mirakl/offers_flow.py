"""Mirakl's ``offers.*`` job handlers (and the session the ``fulfillments.*`` ones share): the
connector-neutral services (:mod:`tradelane.services.offer_publishing`,
:mod:`tradelane.services.fulfilment_push`) over the channel's Mirakl account.

Thin adapter: :class:`GatewayPort` is the offers and fulfilment half of the marketplace port over a
:class:`MiraklGateway` (every call takes a token of the channel's budget of that Mirakl operation first;
exchanges are kept by the gateway), delegating to :mod:`.offers_port` and :mod:`.fulfilment_port`. It
stands in until the per-job connector session builds the full ``MiraklConnector`` for these kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy.engine import Connection

from tradelane.connectors.base import (
    Cancellation,
    Capabilities,
    CheckReport,
    Document,
    FeedChanges,
    ImportRef,
    ImportResult,
    LineDecision,
    ListedOffer,
    OfferUpdate,
    Operation,
    OrderChanges,
    Refund,
    Shipment,
    SubmitMode,
    UnsupportedOperation,
)
from tradelane.connectors.mirakl import fulfilment_port, offers_port
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.connectors.mirakl.gateway import MiraklGateway
from tradelane.connectors.mirakl.settings import CONNECTOR, MiraklSettings
from tradelane.http_edge import Exchange
from tradelane.services import offer_publishing
from tradelane.services.channels import Channel
from tradelane.sync.context import JobContext

#: The Mirakl operation each client method performs (the budget its call draws on).
CLIENT_OPERATIONS: dict[str, str] = {
    "update_offers": "OF24",
    "import_offers": "OF01",
    "offer_import_status": "OF02",
    "offer_import_error_report": "OF03",
    "update_tracking": "OR23",
    "ship": "OR24",
    "create_shipments": "ST01",
    "cancel": "OR29",
    "refund": "OR28",
    "carriers": "SH21",
    "list_order_documents": "OR72",
    "upload_order_documents": "OR74",
}


class _MeteredClient:
    """Stands for a :class:`MiraklClient` whose calls go through the gateway (budget token first)."""

    def __init__(self, gw: MiraklGateway) -> None:
        self._gw = gw

    def __getattr__(self, name: str) -> Callable[..., Any]:
        op = CLIENT_OPERATIONS.get(name)
        if op is None:
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._gw.call(op, lambda c: getattr(c, name)(*args, **kwargs))

        return call


def interim_capabilities(settings: MiraklSettings) -> Capabilities:
    """What :class:`GatewayPort` does for a channel with ``settings``."""
    return Capabilities(
        operations=frozenset(
            {
                Operation.SUBMIT_OFFERS_FULL,
                Operation.SUBMIT_OFFERS_DELTA,
                Operation.READ_IMPORT,
                Operation.SHIP,
                Operation.CANCEL,
                Operation.REFUND,
                Operation.UPLOAD_DOCUMENT,
            }
        ),
        line_level_cancellation=False,
        partial_shipments=settings.multi_shipment,
        labels=True,
        asynchronous_offer_imports=True,
        max_batch={Operation.SUBMIT_OFFERS_DELTA: settings.delta_batch_size},
        hints={
            "line_cancellation": "OR29 cancels whole orders only; refund the lines instead",
            "partial_shipments": "the operator's multi-shipment is off",
        },
    )


class GatewayPort:
    """The offers and fulfilment operations of the port for one Mirakl channel inside one job."""

    name = CONNECTOR

    def __init__(self, gw: MiraklGateway) -> None:
        self.gw = gw
        self.settings = gw.settings
        self.capabilities = interim_capabilities(gw.settings)
        self._client = cast(MiraklClient, _MeteredClient(gw))

    def submit_offers(self, offers: Sequence[OfferUpdate], mode: SubmitMode) -> ImportRef:
        return offers_port.submit_offers(self._client, self.settings, offers, mode)

    def import_result(self, ref: ImportRef) -> ImportResult:
        return offers_port.import_result(self._client, self.settings, ref)

    def ship(self, shipment: Shipment) -> None:
        fulfilment_port.ship(self._client, self.settings, shipment)

    def cancel(self, cancellation: Cancellation) -> None:
        fulfilment_port.cancel(self._client, self.settings, cancellation)

    def refund(self, refund: Refund) -> None:
        fulfilment_port.refund(self._client, self.settings, refund)

    def upload_document(self, document: Document) -> None:
        fulfilment_port.upload_document(self._client, self.settings, document)

    def carrier_codes(self) -> set[str]:
        return fulfilment_port.carrier_codes(self._client)

    def document_present(self, document: Document) -> bool:
        return fulfilment_port.document_present(self._client, self.settings, document)

    # Not served by this adapter (the orders side is the connector's): declared absent above.

    def _unsupported(self, operation: Operation) -> UnsupportedOperation:
        return UnsupportedOperation(self.name, operation)

    def fetch_orders(self, cursor: str | None, *, now: datetime) -> OrderChanges:
        raise self._unsupported(Operation.FETCH_ORDERS)

    def fetch_messages(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        raise self._unsupported(Operation.FETCH_MESSAGES)

    def fetch_returns(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        raise self._unsupported(Operation.FETCH_RETURNS)

    def accept(self, order_id: str, decisions: Sequence[LineDecision]) -> None:
        raise self._unsupported(Operation.ACCEPT)

    def list_offers(self) -> Sequence[ListedOffer]:
        raise self._unsupported(Operation.LIST_OFFERS)

    def set_holiday(self, start: datetime | None, end: datetime | None) -> None:
        raise self._unsupported(Operation.SET_HOLIDAY)

    def check(self) -> CheckReport:
        raise NotImplementedError("channel checks go through the Mirakl connector")

    def close(self) -> None:
        self.gw.close()


class GatewaySession:
    """One job's :class:`GatewayPort` and the recording of its exchanges."""

    def __init__(self, gw: MiraklGateway) -> None:
        self._gw = gw
        self._port = GatewayPort(gw)

    @property
    def connector(self) -> GatewayPort:
        return self._port

    @property
    def exchanges(self) -> list[Exchange]:
        return self._gw.exchanges

    def record(self, conn: Connection, subject: str, *, now: datetime) -> None:
        self._gw.record(conn, subject, now=now)


@contextmanager
def open_session(ctx: JobContext, channel: Channel) -> Iterator[GatewaySession]:
    with MiraklGateway(ctx, channel) as gw:
        yield GatewaySession(gw)


def push_delta(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    return offer_publishing.push_delta(ctx, channel, open_session)


def push_full(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    return offer_publishing.push_full(ctx, channel, open_session)


def check_import(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    return offer_publishing.check_import(ctx, channel, open_session)
