"""The generic dispatcher decides with the CHANNEL's capabilities (``channel_capabilities(settings)``),
not the connector's defaults: an operation a channel's settings switch off is never run for it (the job
is dead-lettered with the reason and the connector is never built), one they switch on is served, and
settings the connector refuses dead-letter the job naming the channel. Real worker, test database."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from helpers import FakeClock, make_tenant, put_live
from tradelane.connectors.base import Capabilities, ConnectorEnv, MarketplaceConnector, Operation
from tradelane.connectors.dispatch import GenericKind, register_connectors
from tradelane.connectors.mirakl.connector import SPEC as MIRAKL
from tradelane.connectors.registry import ConnectorSpec
from tradelane.domain.errors import ValidationError
from tradelane.persistence.tables import jobs
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import Channel, create_channel
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

KIND = "probe.holiday"


def _capabilities(settings: Mapping[str, Any]) -> Capabilities:
    if settings.get("holiday") == "broken":
        raise ValidationError("holiday: must be on or off")
    operations = {Operation.FETCH_ORDERS}
    if settings.get("holiday") == "on":
        operations.add(Operation.SET_HOLIDAY)
    return Capabilities(
        operations=frozenset(operations),
        hints={Operation.SET_HOLIDAY.value: "only with the setting holiday=on"},
    )


def _spec(built: list[str], *, default_holiday: bool) -> ConnectorSpec:
    def factory(env: ConnectorEnv) -> MarketplaceConnector:
        built.append(env.channel_name)
        raise AssertionError("the probe kind never builds a connector")

    return ConnectorSpec(
        name="probe",
        title="Probe",
        capabilities=_capabilities({"holiday": "on" if default_holiday else "off"}),
        factory=factory,
        validate_settings=lambda settings, _credentials: dict(settings),
        channel_capabilities=_capabilities,
    )


def _run(engine: Any, now: datetime, spec: ConnectorSpec, settings: dict[str, Any]) -> tuple[Any, list[str]]:
    """One ``probe.holiday`` job on a channel with ``settings``; the job row and the channels served."""
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    with engine.begin() as conn:
        channel = create_channel(
            conn,
            tenant_id=tenant.id,
            name="probe-shop",
            connector="probe",
            settings=settings,
            credentials={"token": "t"},
            keyring=keyring,
            now=now,
        )
        put_live(conn, channel.id)
        enqueue(conn, JobSpec(tenant_id=tenant.id, kind=KIND, payload={}, channel_id=channel.id), now=now)
    served: list[str] = []

    def handler(_ctx: JobContext, chan: Channel, _spec: ConnectorSpec) -> dict[str, Any]:
        served.append(chan.name)
        return {"served": chan.name}

    registry = JobRegistry()
    register_connectors(registry, {"probe": spec}, {KIND: GenericKind(handler, Operation.SET_HOLIDAY)})
    clock = FakeClock(now)
    worker = Worker(
        engine,
        registry,
        clock,
        WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
        services={"keyring": keyring},
        name="probe-worker",
        sleep=clock.advance,
    )
    worker.run(burst=True)
    with engine.connect() as conn:
        job = conn.execute(sa.select(jobs).where(jobs.c.kind == KIND)).one()
    return job, served


def test_an_operation_the_channel_switches_off_is_never_run_though_the_default_declares_it(
    engine: Any, now: datetime
) -> None:
    built: list[str] = []
    job, served = _run(engine, now, _spec(built, default_holiday=True), {"holiday": "off"})
    assert served == [] and built == []
    assert job.state == "dead"
    assert "does not support probe.holiday on channel probe-shop" in job.last_error
    assert "only with the setting holiday=on" in job.last_error  # the connector's hint


def test_an_operation_the_channel_switches_on_is_served_though_the_default_lacks_it(
    engine: Any, now: datetime
) -> None:
    job, served = _run(engine, now, _spec([], default_holiday=False), {"holiday": "on"})
    assert served == ["probe-shop"]
    assert job.state == "succeeded" and job.result == {"served": "probe-shop"}


def test_settings_the_connector_refuses_dead_letter_the_job_naming_the_channel(
    engine: Any, now: datetime
) -> None:
    job, served = _run(engine, now, _spec([], default_holiday=True), {"holiday": "broken"})
    assert served == [] and job.state == "dead"
    assert "channel probe-shop: settings refused by probe" in job.last_error


def test_mirakl_declares_partial_shipments_per_channel_not_by_default() -> None:
    """What the dispatcher (and the ship service's connector) go by for a Mirakl shop."""
    settings = {"hostname": "shop.mirakl.test", "shop_id": "2001"}
    assert not MIRAKL.channel_capabilities(settings).partial_shipments
    assert MIRAKL.channel_capabilities({**settings, "multi_shipment": True}).partial_shipments
    assert not MIRAKL.capabilities.partial_shipments
