"""The marketplace side of a cutover (:mod:`tradelane.services.cutover`): the channel's connector for a
command (not a job), and offer pushes tracked across calls.

:func:`open_connector` builds the channel's connector the way a job's session does
(:class:`~tradelane.services.connector_session.ConnectorSession`): decrypted credentials, the channel's
durable rate budgets shared with every worker (waiting in-process up to a few seconds, beyond that a
:class:`~tradelane.domain.errors.RetryableError` with the wait), its raw exchanges collected for the
caller to store.

:class:`OfferPush` is the bookkeeping of "send these offers and make sure the marketplace took them"
(zeroing quantities, restoring a snapshot) kept as JSON in the cutover's working data, so a crash
between two calls loses nothing: each submission is recorded as soon as it is made, each import's
result applied once it is done, refusals kept per SKU with the marketplace's own reasons. Nothing here
writes tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from tradelane.connectors.base import (
    ConnectorEnv,
    ConnectorFactory,
    ImportRef,
    ImportResult,
    MarketplaceConnector,
    OfferUpdate,
    Operation,
    SubmitMode,
)
from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import PermanentError
from tradelane.http_edge import Exchange
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.channels import Channel, channel_credentials
from tradelane.services.connector_session import budget_limit
from tradelane.sync.ratelimit import RateLimiter

#: Offers per submission when the connector declares no largest delta batch.
DEFAULT_BATCH = 1_000

_KEEP = OfferUpdate(sku="", price=Decimal(0), currency="EUR", quantity=0)  # "not a deletion"


@contextmanager
def open_connector(
    engine: Engine,
    channel: Channel,
    factory: ConnectorFactory,
    *,
    keyring: KeyRing,
    clock: Callable[[], datetime],
    exchanges: list[Exchange],
    sleep: Callable[[float], None] | None = None,
) -> Iterator[MarketplaceConnector]:
    """The channel's connector, closed on exit; ``exchanges`` receives every raw exchange. Raises
    :class:`PermanentError` when the credentials cannot be decrypted."""
    try:
        with engine.connect() as conn:
            credentials = channel_credentials(conn, channel, keyring)
    except CredentialError as exc:
        raise PermanentError(f"channel {channel.name}: {exc}") from None
    limiter = RateLimiter(engine, clock) if sleep is None else RateLimiter(engine, clock, sleep=sleep)
    holder: list[MarketplaceConnector] = []

    def limit(operation: str) -> Any:
        budget = holder[0].capabilities.budgets.get(operation)
        if budget is None:
            raise PermanentError(f"connector {channel.connector!r} declares no rate budget for {operation}")
        return budget_limit(budget)

    def throttle(operation: str) -> None:
        limiter.acquire(channel.id, f"{channel.connector}:{operation}", limit(operation))

    def hold(operation: str, seconds: float) -> None:
        limiter.hold(channel.id, f"{channel.connector}:{operation}", limit(operation), seconds)

    env = ConnectorEnv(
        channel_id=channel.id,
        channel_name=channel.name,
        settings=channel.settings,
        credentials={k: str(v) for k, v in credentials.items() if v is not None},
        now=clock,
        throttle=throttle,
        on_exchange=exchanges.append,
        testing=channel.lifecycle_state == LifecycleState.TESTING.value,
        hold=hold,
    )
    connector = factory(env)
    holder.append(connector)
    try:
        yield connector
    finally:
        connector.close()


@dataclass(frozen=True, slots=True)
class PushState:
    """Where an :class:`OfferPush` stands: done (nothing in flight, nothing left to send), and when to
    look again at an import still running (seconds)."""

    done: bool
    retry_after: float | None = None


class OfferPush:
    """Send ``updates`` (keyed by SKU) and follow their imports to the end, across calls.

    ``state`` is the JSON-able record this push lives in (kept by the caller in the cutover's data):
    ``imports`` (submissions in flight: reference, mode, count, SKUs), ``ok`` (SKUs the marketplace
    took), ``errors`` (SKU → the marketplace's reasons, verbatim). :meth:`step` does at most one round:
    it reads the imports in flight (any not done → not done), else submits what is neither taken nor
    refused, in batches of the connector's largest delta, calling ``save`` after each submission and
    each result so that a crash never sends a batch twice without need. A batch is recorded as
    ``sending`` just before it goes out: when a call finds one there (the answer was lost), it reads the
    listing first (where the connector lists offers) and settles the SKUs whose change already took
    effect — a deletion whose offer is gone, an update listed with its price and quantity — as ``ok``
    and ``already``; only the others are sent again (same values). A refused deletion whose offer is
    no longer listed is a success too (``already``: the marketplace had deleted it).
    :meth:`retry` forgets the refusals, to send them again."""

    def __init__(self, state: dict[str, Any], updates: Mapping[str, OfferUpdate]) -> None:
        self.state = state
        state.setdefault("imports", [])
        state.setdefault("ok", [])
        state.setdefault("errors", {})
        state.setdefault("already", [])
        self.updates = dict(updates)

    @property
    def errors(self) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = self.state["errors"]
        return errors

    @property
    def ok(self) -> set[str]:
        return set(self.state["ok"])

    @property
    def already(self) -> set[str]:
        """SKUs found already in effect on the marketplace (a lost answer, a refused repeat deletion)."""
        return set(self.state.get("already", []))

    def remaining(self) -> list[str]:
        settled = self.ok | set(self.errors) | {s for i in self.state["imports"] for s in i["skus"]}
        return [sku for sku in self.updates if sku not in settled]

    def _settle_refused_deletions(self, connector: MarketplaceConnector, skus: Sequence[str]) -> None:
        refused = [sku for sku in skus if sku in self.errors and self.updates.get(sku, _KEEP).delete]
        self._settle_in_effect(connector, refused)

    def retry(self) -> None:
        self.state["errors"] = {}

    def _apply(self, skus: Sequence[str], result: ImportResult) -> None:
        failed: dict[str, list[str]] = {}
        for outcome in result.outcomes:
            if not outcome.ok:
                failed.setdefault(outcome.sku, []).extend(outcome.errors or ("rejected by the marketplace",))
        for sku in skus:
            if sku in failed:
                self.errors[sku] = failed[sku]
            elif sku not in self.state["ok"]:
                self.state["ok"].append(sku)

    def _settle_in_effect(self, connector: MarketplaceConnector, skus: Sequence[str]) -> set[str]:
        """Mark ``ok`` (and ``already``) the SKUs whose change the listing shows done; returns them."""
        if not skus or not connector.capabilities.supports(Operation.LIST_OFFERS):
            return set()
        listed = {o.sku: o for o in connector.list_offers()}
        done: set[str] = set()
        for sku in skus:
            update = self.updates.get(sku)
            if update is None:
                continue
            seen = listed.get(sku)
            if update.delete:
                took = seen is None
            else:
                took = seen is not None and seen.quantity == update.quantity and seen.price == update.price
            if took:
                done.add(sku)
                self.errors.pop(sku, None)
                if sku not in self.state["ok"]:
                    self.state["ok"].append(sku)
                if sku not in self.state["already"]:
                    self.state["already"].append(sku)
        return done

    def step(self, connector: MarketplaceConnector, save: Callable[[], None]) -> PushState:
        in_doubt = list(self.state.pop("sending", None) or ())
        if in_doubt:  # sent, answer lost: send again only what the marketplace does not show done
            self._settle_in_effect(connector, in_doubt)
            save()
        in_flight = list(self.state["imports"])
        if in_flight:
            wait: float | None = None
            for entry in in_flight:
                ref = ImportRef(entry["reference"], SubmitMode(entry["mode"]), int(entry["submitted"]))
                result = connector.import_result(ref)
                if not result.done:
                    wait = max(wait or 0.0, result.retry_after or 0.0)
                    continue
                self._apply(entry["skus"], result)
                self._settle_refused_deletions(connector, entry["skus"])
                self.state["imports"].remove(entry)
                save()
            if self.state["imports"]:
                return PushState(False, wait)
        todo = self.remaining()
        if not todo:
            return PushState(True)
        size = max(1, connector.capabilities.batch_size(Operation.SUBMIT_OFFERS_DELTA, DEFAULT_BATCH))
        for start in range(0, len(todo), size):
            part = todo[start : start + size]
            self.state["sending"] = list(part)
            save()
            ref = connector.submit_offers([self.updates[sku] for sku in part], SubmitMode.DELTA)
            self.state.pop("sending", None)
            early = ref.result
            if early is not None and (early.done or not ref.submitted or not ref.reference):
                self._apply(part, early)  # synchronous, or nothing sent: settled now
                self._settle_refused_deletions(connector, part)
            else:
                refused = {o.sku for o in (early.outcomes if early is not None else ()) if not o.ok}
                if refused and early is not None:
                    self._apply([s for s in part if s in refused], early)
                self.state["imports"].append(
                    {
                        "reference": ref.reference,
                        "mode": ref.mode.value,
                        "submitted": ref.submitted,
                        "skus": [s for s in part if s not in refused],
                    }
                )
            save()
        return PushState(not self.state["imports"], None)
