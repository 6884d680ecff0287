"""notify(): the outbox row, its deliveries and its job are written in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from helpers import make_channel, make_tenant
from tradelane.persistence import migrate
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.tables import jobs, notification_deliveries, notification_settings, notifications
from tradelane.services import notifications as notes


def _configure(
    engine: Engine, tenant_id: int, emails: list[str], now: datetime, channel_id: int | None = None
) -> None:
    with transaction(engine) as conn:
        conn.execute(
            sa.insert(notification_settings).values(
                tenant_id=tenant_id, channel_id=channel_id, emails=emails, created_at=now, updated_at=now
            )
        )


def test_nothing_configured_queues_nothing(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    with transaction(engine) as conn:
        result = notes.notify(
            conn, tenant_id=tenant.id, channel_id=None, event="cutover.step", subject="s", body="b", now=now
        )
    assert result is None
    with read_only(engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one() == 0


def test_notify_queues_one_job_and_a_delivery_per_destination(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    _configure(engine, tenant.id, ["ops@acme.test", "boss@acme.test"], now)
    _configure(engine, tenant.id, ["ops@acme.test", "shop@acme.test"], now, channel_id=channel.id)
    with transaction(engine) as conn:
        nid = notes.notify(
            conn,
            tenant_id=tenant.id,
            channel_id=channel.id,
            event="cutover.step",
            subject="Step 2 done",
            body="The store is on holiday.",
            details={"step": 2},
            now=now,
        )
    assert nid is not None
    with read_only(engine) as conn:
        row = conn.execute(sa.select(notifications).where(notifications.c.id == nid)).one()
        job = conn.execute(sa.select(jobs).where(jobs.c.id == row.job_id)).one()
        destinations = sorted(
            conn.execute(
                sa.select(notification_deliveries.c.destination).where(
                    notification_deliveries.c.notification_id == nid
                )
            ).scalars()
        )
    assert row.status == "queued" and row.details == {"step": 2}
    assert job.kind == notes.SEND_KIND and job.payload == {"notification_id": nid}
    assert job.idempotency_key == f"notification:{nid}" and job.priority == notes.SEND_PRIORITY
    assert destinations == ["boss@acme.test", "ops@acme.test", "shop@acme.test"]


def test_a_rolled_back_caller_leaves_no_notification(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    _configure(engine, tenant.id, ["ops@acme.test"], now)

    class Boom(Exception):
        pass

    try:
        with transaction(engine) as conn:
            notes.notify(
                conn,
                tenant_id=tenant.id,
                channel_id=None,
                event="cutover.step",
                subject="s",
                body="b",
                now=now,
            )
            raise Boom
    except Boom:
        pass
    with read_only(engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one() == 0


def test_migration_0021_downgrades_and_upgrades_again(engine: Engine) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0020")
        conn.commit()
        assert not {"notifications", "notification_deliveries", "notification_settings"} & set(
            sa.inspect(conn).get_table_names()
        )
        command.upgrade(cfg, "head")
        conn.commit()
        assert {"notifications", "notification_deliveries", "notification_settings"} <= set(
            sa.inspect(conn).get_table_names()
        )
