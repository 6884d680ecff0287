"""Communication frequency from the store (services/communication.py), both stores, Mirakl channel:

* a selection change changes the full-sync figure at once (recomputed on every read);
* once finished jobs exist their durations replace the declarations: a full sync's seconds per offer,
  a delta's due -> submitted time, and the marketplace's processing of an import (its succeeded
  ``offers.import_check``: queued at submission -> found done), each part saying it is measured.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from mirakl_world import World, build_world, catalog
from tradelane.connectors.amazon.connector import HINTS as AMAZON_HINTS
from tradelane.connectors.base import ORDERS_SEEN_HINT, Capabilities
from tradelane.connectors.mirakl.port import TYPICAL_IMPORT_SECONDS
from tradelane.connectors.registry import CONNECTORS
from tradelane.domain.communication import Basis, CommunicationFrequency
from tradelane.domain.selection import selection
from tradelane.persistence.tables import jobs
from tradelane.services import selection as selections
from tradelane.services.communication import communication_frequency
from tradelane.services.offer_publishing import IMPORT_CHECK
from tradelane.services.offers import OFFERS_FULL
from tradelane.services.outbox import OFFERS_DELTA


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def _finished(
    world: World,
    kind: str,
    seconds: float,
    *,
    result: dict[str, Any],
    payload: dict[str, Any],
    retried_after: float = 0.0,
) -> None:
    """A succeeded job of ``kind`` of the channel that took ``seconds`` from due to done; queued
    ``retried_after`` seconds before it was last due (a retry moves ``run_at``, not ``created_at``)."""
    start = world.clock() - timedelta(hours=1)
    with world.engine.begin() as conn:
        conn.execute(
            sa.insert(jobs).values(
                tenant_id=world.tenant_id, channel_id=world.channel.id, flow="offers", kind=kind,
                payload=payload, state="succeeded", max_attempts=8, attempts=1, run_at=start,
                created_at=start - timedelta(seconds=retried_after),
                updated_at=start + timedelta(seconds=seconds),
                finished_at=start + timedelta(seconds=seconds), result=result,
            )
        )  # fmt: skip


def _frequency(world: World) -> CommunicationFrequency:
    with world.engine.connect() as conn:
        return communication_frequency(conn, world.channel, worker_poll_seconds=2.0)


def test_a_selection_change_changes_the_full_sync_figure_at_once(world: World) -> None:
    world.add_products(
        [replace(p, labels=("keep",)) for p in catalog(2, prefix="KEEP")]
        + [replace(p, labels=("drop",)) for p in catalog(3, prefix="DROP")]
    )
    # one full sync of the five took 10 s: 2 s an offer
    _finished(world, OFFERS_FULL, 10.0, result={"sent": 5}, payload={})
    before = _frequency(world)
    assert before.skus == 5
    assert (before.full_sync.parts[0].seconds, before.full_sync.parts[0].basis) == (10.0, Basis.MEASURED)
    with world.engine.begin() as conn:
        selections.set_selection(
            conn, world.channel, selection(labels=["keep"]), actor="cli:test", now=world.clock()
        )
    after = _frequency(world)
    assert after.skus == 2 and after.full_sync.parts[0].seconds == 4.0
    # the OF01 import's processing is not measured yet: the connector's declared value, said so
    assert after.full_sync.parts[1].basis is Basis.DECLARED
    assert after.full_sync.seconds == 4.0 + TYPICAL_IMPORT_SECONDS
    assert after.full_sync.basis is Basis.PARTLY_MEASURED


def test_measured_jobs_replace_the_declarations(world: World) -> None:
    world.add_products(catalog(3))
    declared = _frequency(world).stock_change
    assert [p.basis for p in declared.parts] == [
        Basis.CONFIGURED,
        Basis.BUDGET,
        Basis.NOMINAL,
        Basis.DECLARED,
    ]
    assert declared.parts[0].seconds == 2.0  # the worker poll interval passed in
    assert "OF24" in declared.parts[1].what  # the channel's OF24 budget (fast in this world)
    assert declared.parts[3].seconds == TYPICAL_IMPORT_SECONDS
    # a delta that waited 57 s for the OF24 budget (a retry) before its 3 s run: the change took 60 s
    _finished(world, OFFERS_DELTA, 3.0, result={"sent": 3}, payload={}, retried_after=57.0)
    _finished(world, OFFERS_DELTA, 99.0, result={"sent": 0}, payload={})  # sent nothing: not a latency
    _finished(world, IMPORT_CHECK, 42.0, result={"published": 3}, payload={"import_id": "1", "mode": "delta"})
    _finished(world, IMPORT_CHECK, 500.0, result={"published": 3}, payload={"import_id": "2", "mode": "full"})
    figures = _frequency(world)
    measured = figures.stock_change
    assert [(p.seconds, p.basis) for p in measured.parts] == [(60.0, Basis.MEASURED), (42.0, Basis.MEASURED)]
    assert measured.basis is Basis.MEASURED and measured.seconds == 102.0
    assert figures.sentences()[1] == "a stock change reaches the marketplace within ~2 min (measured)"
    # the full import's processing is measured apart
    assert (
        figures.full_sync.parts[-1].seconds == 500.0 and figures.full_sync.parts[-1].basis is Basis.MEASURED
    )
    as_json = figures.as_json()["stock_change"]
    assert isinstance(as_json, dict) and [p["basis"] for p in as_json["parts"]] == ["measured", "measured"]


def test_what_the_connector_says_holds_orders_back_is_shown(world: World) -> None:
    """Mirakl: orders seen = poll period + poll, nothing else; a connector declaring what holds an order
    back (Amazon: unpaid Pending orders) has it as a note of the figure."""
    assert _frequency(world).orders_seen.notes == ()
    spec = CONNECTORS[world.channel.connector]

    def held_back(settings: Mapping[str, Any]) -> Capabilities:
        caps = spec.channel_capabilities(settings)
        return replace(caps, hints={**caps.hints, ORDERS_SEEN_HINT: AMAZON_HINTS[ORDERS_SEEN_HINT]})

    connectors = {world.channel.connector: replace(spec, channel_capabilities=held_back)}
    with world.engine.connect() as conn:
        figure = communication_frequency(conn, world.channel, connectors=connectors).orders_seen
    assert figure.notes == (AMAZON_HINTS[ORDERS_SEEN_HINT],) and "Pending" in figure.notes[0]
