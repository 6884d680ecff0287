"""A channel's communication frequency, recomputed on every read (so a selection change shows at once).

Gathers the inputs of :func:`tradelane.domain.communication.compute`:

* the selected SKUs: the channel's offer bindings in the "selected" state
  (:func:`tradelane.services.selection.selected_count`; bindings being delisted or left on the
  marketplace by a selection change are not kept updated, so they do not count);
* the flows switched on (Listings = offers, Orders) and the orders poll's period;
* the connector's declared budgets and batch sizes (``Capabilities.calls`` names the budget each
  operation draws on; ``max_batch`` the offers one full-sync call carries);
* the measured throughput: the median of the channel's last :data:`MEASURED_RUNS` succeeded jobs of
  each kind, to ``finished_at`` — per offer sent for full syncs and orders polls from ``run_at`` (due),
  deltas that sent something from ``created_at`` (queued by the change: a budget wait or a retry, which
  moves ``run_at``, stays in the figure). Nothing measured: the budgets (the figure says which);
* where the connector declares ``asynchronous_offer_imports``, the marketplace's processing of an import:
  the median, over the channel's last succeeded ``offers.import_check`` jobs of each mode, of
  ``created_at`` (queued in the transaction that recorded the submission) to ``finished_at`` (the check
  that found the import done — so the figure includes up to one check interval); nothing measured: the
  connector's declared ``import_processing_seconds``;
* the worker's poll interval (a queued delta waits at most that for a worker);
* what the connector says holds an order back beyond the poll (``hints[ORDERS_SEEN_HINT]``), as a note.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.config import Settings
from tradelane.connectors.base import ORDERS_SEEN_HINT, Capabilities, Operation, SubmitMode
from tradelane.connectors.registry import CONNECTORS, ConnectorSpec
from tradelane.domain.channels import Flow
from tradelane.domain.communication import CallRate, CommunicationFrequency, FrequencyInputs, compute
from tradelane.persistence.tables import jobs
from tradelane.services.channels import Channel, flow_statuses
from tradelane.services.offer_publishing import IMPORT_CHECK
from tradelane.services.offers import OFFERS_FULL
from tradelane.services.order_intake import POLL
from tradelane.services.outbox import OFFERS_DELTA
from tradelane.services.selection import selected_count
from tradelane.sync.jobs import JobState

#: Succeeded jobs of a kind whose durations are measured.
MEASURED_RUNS = 20
#: The worker poll interval assumed when the caller passes none (the settings' default).
DEFAULT_WORKER_POLL_SECONDS: float = Settings.model_fields["worker_poll_seconds"].default


def _rate(caps: Capabilities | None, operation: Operation) -> CallRate | None:
    if caps is None:
        return None
    budget = caps.budgets.get(caps.calls.get(operation, ""))
    return CallRate(budget.per_second, budget.burst) if budget is not None else None


def _durations(
    conn: Connection, channel_id: int, kind: str, *, from_queued: bool = False
) -> list[tuple[float, dict[str, Any]]]:
    """(seconds to done, result) of the channel's last succeeded jobs of ``kind``: from ``run_at`` (due;
    a retry moves it) or, ``from_queued``, from ``created_at`` (first queued: every wait included)."""
    rows = conn.execute(
        sa.select(jobs.c.run_at, jobs.c.created_at, jobs.c.finished_at, jobs.c.result)
        .where(
            jobs.c.channel_id == channel_id,
            jobs.c.kind == kind,
            jobs.c.state == JobState.SUCCEEDED.value,
            jobs.c.finished_at.is_not(None),
        )
        .order_by(jobs.c.id.desc())
        .limit(MEASURED_RUNS)
    ).all()
    return [
        (
            max(0.0, (r.finished_at - (r.created_at if from_queued else r.run_at)).total_seconds()),
            dict(r.result or {}),
        )
        for r in rows
    ]


def _sent(result: dict[str, Any]) -> int:
    value = result.get("sent")
    return value if isinstance(value, int) else 0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measured_processing(conn: Connection, channel_id: int) -> tuple[float | None, float | None]:
    """Median seconds from submission to the marketplace having applied it, of the channel's last
    full and delta imports (succeeded ``offers.import_check`` jobs: ``created_at`` -> ``finished_at``)."""
    rows = conn.execute(
        sa.select(jobs.c.created_at, jobs.c.finished_at, jobs.c.payload)
        .where(
            jobs.c.channel_id == channel_id,
            jobs.c.kind == IMPORT_CHECK,
            jobs.c.state == JobState.SUCCEEDED.value,
            jobs.c.finished_at.is_not(None),
        )
        .order_by(jobs.c.id.desc())
        .limit(4 * MEASURED_RUNS)
    ).all()
    by_mode: dict[str, list[float]] = {SubmitMode.FULL.value: [], SubmitMode.DELTA.value: []}
    for r in rows:
        mode = (r.payload or {}).get("mode", SubmitMode.DELTA.value)
        seconds = by_mode.get(mode)
        if seconds is not None and len(seconds) < MEASURED_RUNS:
            seconds.append(max(0.0, (r.finished_at - r.created_at).total_seconds()))
    return _median(by_mode[SubmitMode.FULL.value]), _median(by_mode[SubmitMode.DELTA.value])


def measured(conn: Connection, channel_id: int) -> tuple[float | None, float | None, float | None]:
    """Median seconds per offer of full syncs, median delta latency (from the change that queued the
    delta — budget waits and retries included — to its submission), median orders poll duration."""
    per_offer = [s / _sent(r) for s, r in _durations(conn, channel_id, OFFERS_FULL) if _sent(r) > 0]
    deltas = [s for s, r in _durations(conn, channel_id, OFFERS_DELTA, from_queued=True) if _sent(r) > 0]
    polls = [s for s, _ in _durations(conn, channel_id, POLL)]
    return _median(per_offer), _median(deltas), _median(polls)


def communication_frequency(
    conn: Connection,
    channel: Channel,
    *,
    connectors: Mapping[str, ConnectorSpec] = CONNECTORS,
    worker_poll_seconds: float = DEFAULT_WORKER_POLL_SECONDS,
) -> CommunicationFrequency:
    """The channel's figures now (see :mod:`tradelane.domain.communication`); ``worker_poll_seconds``
    is the configured worker poll interval (``Settings.worker_poll_seconds``)."""
    spec = connectors.get(channel.connector)
    caps = spec.channel_capabilities(channel.settings) if spec is not None else None
    flows = {s.flow: s for s in flow_statuses(conn, channel.id)}
    offers, orders = flows.get(Flow.OFFERS), flows.get(Flow.ORDERS)
    full_per_offer, delta, poll = measured(conn, channel.id)
    full_processing, delta_processing = measured_processing(conn, channel.id)
    declared = caps.import_processing_seconds if caps is not None else {}
    return compute(
        FrequencyInputs(
            skus=selected_count(conn, channel.id),
            offers_on=offers is not None and offers.enabled,
            orders_on=orders is not None and orders.enabled,
            orders_period=orders.frequency_seconds if orders is not None else None,
            full_batch=caps.max_batch.get(Operation.SUBMIT_OFFERS_FULL) if caps is not None else None,
            full_rate=_rate(caps, Operation.SUBMIT_OFFERS_FULL),
            delta_rate=_rate(caps, Operation.SUBMIT_OFFERS_DELTA),
            orders_rate=_rate(caps, Operation.FETCH_ORDERS),
            measured_full_seconds_per_offer=full_per_offer,
            measured_delta_seconds=delta,
            measured_poll_seconds=poll,
            full_call=caps.calls.get(Operation.SUBMIT_OFFERS_FULL) if caps is not None else None,
            delta_call=caps.calls.get(Operation.SUBMIT_OFFERS_DELTA) if caps is not None else None,
            orders_call=caps.calls.get(Operation.FETCH_ORDERS) if caps is not None else None,
            worker_poll_seconds=worker_poll_seconds,
            asynchronous_imports=caps is not None and caps.asynchronous_offer_imports,
            measured_full_processing_seconds=full_processing,
            measured_delta_processing_seconds=delta_processing,
            declared_full_processing_seconds=declared.get(Operation.SUBMIT_OFFERS_FULL),
            declared_delta_processing_seconds=declared.get(Operation.SUBMIT_OFFERS_DELTA),
            orders_note=caps.hints.get(ORDERS_SEEN_HINT) if caps is not None else None,
        )
    )
