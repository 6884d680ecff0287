"""Webhook intake on PostgreSQL: one statement per accepted request, run on the server's event loop.

The transactional paths (:func:`tradelane.web.api.merchant_webhook.receive`,
:func:`tradelane.web.api.webhooks.receive`) hand each request to a worker thread and make five or six
round trips (pool pre-ping, ``BEGIN``, the sender or token read, the inserts, ``COMMIT``); under an
open-loop burst every round trip's return waits for the GIL behind the event loop and the other
threads, and the tail latency grows with it. Here the same rows are written by one data-modifying
statement in autocommit, on an async connection, without leaving the event loop: the signed merchant
webhook's event and apply job (:meth:`PgIntake.store_merchant_update`), the generic webhook's event with
its tenant authenticated by token digest and its channel looked up in the same statement
(:meth:`PgIntake.store_event`).

Contracts:

* Same rows as the transactional paths: the event row is
  :func:`tradelane.services.inbound.inbound_event_row`, the job row :func:`tradelane.sync.jobs.job_row` of
  :func:`tradelane.services.merchant_webhooks.apply_job_spec`; only the event id (payload ``event_id`` and
  the idempotency key) is filled in by the statement. Event and job commit together or not at all.
* Deduplication stays with the unique indexes (``ON CONFLICT DO NOTHING``): a replayed signature inserts
  nothing and is reported as such; never check-then-insert.
* Freshness: the merchant systems of a name are cached per process, but the statement inserts only while
  the verifying system is still enabled with the very credentials (ciphertext) the signature was checked
  against; otherwise nothing is written and the caller re-reads the systems (:attr:`MerchantStored.stale`).
  Disabling a system or rotating its secret therefore takes effect on the next request, as before.
* Connections: a small pool of autocommit connections per process (``size``), ``warm`` of them opened at
  startup. A connection that fails is closed, never reused, and so are the idle ones (a restarted or
  terminating server drops them all at once); a statement interrupted by a lost connection is retried
  once on a new connection. The statement is atomic: the first attempt either wrote nothing or committed
  everything, and then the retry finds the conflict and answers with the stored event (a merchant
  update: its event and job; a generic event: the duplicate's answer). When the retry fails too,
  :class:`~tradelane.domain.errors.RetryableError` (the API answers 503 with Retry-After) and the sender
  retries later.
* Loops: connections belong to the event loop that opened them; used from another loop (a test client's
  new loop), the idle ones are closed and new ones opened.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from tradelane.domain.errors import RetryableError
from tradelane.logging import get_logger
from tradelane.merchant.http_oms import HTTP_KIND
from tradelane.persistence.db import json_dumps
from tradelane.persistence.tables import api_tokens, channels, inbound_events, jobs, merchant_systems, tenants
from tradelane.services.inbound import APPLY_KEY_PREFIX
from tradelane.sync.jobs import JobSpec, job_row
from tradelane.web.api.merchant_webhook import Candidate

log = get_logger("tradelane.intake")

#: Connections per server process, and how many are opened at startup.
POOL_SIZE = 10
WARM_CONNECTIONS = 4
#: How long a name's merchant systems are served from the cache (the statement re-checks them anyway).
CANDIDATES_TTL_SECONDS = 60.0
_MAX_CACHED_NAMES = 1024


@dataclass(frozen=True, slots=True)
class MerchantStored:
    """What :meth:`PgIntake.store_merchant_update` did: ``stale`` (the system changed: nothing written),
    else the new event and job ids, or ``event_id`` None for a replay (nothing written)."""

    stale: bool
    event_id: int | None = None
    job_id: int | None = None


def _pg_type(table: sa.Table, column: str) -> str:
    """The column's PostgreSQL type for a parameter cast; strings without their length, so that an
    over-long value fails the insert as it would unquoted (an explicit cast would cut it silently)."""
    column_type = table.c[column].type
    if isinstance(column_type, sa.String):
        return "TEXT"
    return str(column_type.compile(dialect=postgresql.dialect()))


def _casts(table: sa.Table, columns: list[str], prefix: str) -> str:
    return ", ".join(f"CAST(%({prefix}{c})s AS {_pg_type(table, c)})" for c in columns)


_EVENT_COLUMNS = [
    "tenant_id",
    "channel_id",
    "source",
    "external_id",
    "content_type",
    "headers",
    "body",
    "status",
    "received_at",
]
_JOB_COLUMNS = [
    "tenant_id",
    "channel_id",
    "flow",
    "kind",
    "payload",
    "idempotency_key",
    "dedupe_key",
    "exclusive_key",
    "state",
    "priority",
    "attempts",
    "max_attempts",
    "run_at",
    "created_at",
    "updated_at",
]
#: Job columns the statement computes from the new event's id.
_FROM_EVENT = {
    "payload": "jsonb_set(CAST(%(j_payload)s AS JSONB), '{event_id}', to_jsonb(event.id))",
    "idempotency_key": "%(j_key_prefix)s || event.id::text",
}


@functools.cache
def _merchant_statement() -> str:
    """The one statement: the sender re-checked, the event inserted unless a replay, its job inserted."""
    job_values = ", ".join(
        _FROM_EVENT[c] if c in _FROM_EVENT else f"CAST(%(j_{c})s AS {_pg_type(jobs, c)})"
        for c in _JOB_COLUMNS
    )
    return (
        "WITH sender AS ("
        f" SELECT id FROM {merchant_systems.name}"
        " WHERE id = %(m_id)s AND tenant_id = %(m_tenant_id)s AND kind = %(m_kind)s AND enabled"
        " AND credentials = %(m_credentials)s"
        "), event AS ("
        f" INSERT INTO {inbound_events.name} ({', '.join(_EVENT_COLUMNS)})"
        f" SELECT {_casts(inbound_events, _EVENT_COLUMNS, 'e_')} FROM sender"
        " ON CONFLICT DO NOTHING RETURNING id"
        "), job AS ("
        f" INSERT INTO {jobs.name} ({', '.join(_JOB_COLUMNS)})"
        f" SELECT {job_values} FROM event"
        " ON CONFLICT DO NOTHING RETURNING id"
        ")"
        " SELECT (SELECT count(*) FROM sender), (SELECT id FROM event), (SELECT id FROM job)"
    )


_EVENT_AND_JOB = (
    f"SELECT e.id, j.id FROM {inbound_events.name} e JOIN {jobs.name} j"
    " ON j.tenant_id = e.tenant_id AND j.idempotency_key = %(j_key_prefix)s || e.id::text"
    " WHERE e.tenant_id = %(e_tenant_id)s AND e.source = %(e_source)s AND e.external_id = %(e_external_id)s"
)

_CANDIDATES = (
    f"SELECT id, tenant_id, credentials FROM {merchant_systems.name}"
    " WHERE name = %(name)s AND kind = %(kind)s AND enabled ORDER BY id"
)


#: Event columns the generic statement takes from the authenticated tenant and the named channel.
_FROM_LOOKUP = {"tenant_id": "tenant.id", "channel_id": "(SELECT id FROM channel)"}


@functools.cache
def _generic_statement() -> str:
    """Tenant by token digest, channel by name (when asked for), the event inserted unless a duplicate
    or the channel is missing; one row per authenticated tenant (none for an unknown or revoked token)."""
    event_values = ", ".join(
        _FROM_LOOKUP.get(c) or f"CAST(%(e_{c})s AS {_pg_type(inbound_events, c)})" for c in _EVENT_COLUMNS
    )
    return (
        "WITH tenant AS ("
        f" SELECT {tenants.name}.id, {tenants.name}.name FROM {tenants.name}"
        f" JOIN {api_tokens.name} ON {api_tokens.name}.tenant_id = {tenants.name}.id"
        f" WHERE {api_tokens.name}.token_hash = %(token_hash)s AND {api_tokens.name}.revoked_at IS NULL"
        " LIMIT 1"
        "), channel AS ("
        f" SELECT {channels.name}.id FROM {channels.name}, tenant"
        f" WHERE {channels.name}.tenant_id = tenant.id AND {channels.name}.name = %(channel_name)s"
        f" AND {channels.name}.removed_at IS NULL"
        "), event AS ("
        f" INSERT INTO {inbound_events.name} ({', '.join(_EVENT_COLUMNS)})"
        f" SELECT {event_values} FROM tenant"
        " WHERE NOT %(with_channel)s OR EXISTS (SELECT 1 FROM channel)"
        " ON CONFLICT DO NOTHING RETURNING id"
        ")"
        " SELECT tenant.id, tenant.name, EXISTS (SELECT 1 FROM channel), (SELECT id FROM event) FROM tenant"
    )


@dataclass(frozen=True, slots=True)
class GenericStored:
    """What :meth:`PgIntake.store_event` did for an authenticated tenant: the new event's id, or None
    when nothing was written (a duplicate delivery, or ``channel_found`` False)."""

    tenant_id: int
    tenant_name: str
    channel_found: bool
    event_id: int | None


def _bind(row: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}{key}": json_dumps(value) if isinstance(value, dict) else value
        for key, value in row.items()
    }


def merchant_parameters(
    event: Mapping[str, Any], job: JobSpec, sender: Candidate, now: datetime
) -> dict[str, Any]:
    """The statement's parameters: ``event`` (an :func:`inbound_event_row`), the apply job ``job`` (built
    for event id 0: the statement puts the real id in its payload and key), the verifying ``sender``."""
    row = job_row(job, now)
    if row["idempotency_key"] != f"{APPLY_KEY_PREFIX}0" or row["payload"].get("event_id") != 0:
        raise ValueError("the apply job must be built for event id 0 (see merchant_webhooks.apply_job_spec)")
    params = _bind(event, "e_")
    params.update(_bind({k: row[k] for k in _JOB_COLUMNS if k not in _FROM_EVENT}, "j_"))
    params["j_payload"] = json_dumps(row["payload"])
    params["j_key_prefix"] = APPLY_KEY_PREFIX
    params.update(
        m_id=sender.system_id,
        m_tenant_id=sender.tenant_id,
        m_kind=HTTP_KIND,
        m_credentials=sender.credentials,
    )
    return params


class PgIntake:
    """A pool of async autocommit connections and the one-statement writes (see the module docstring)."""

    def __init__(self, conninfo: str, *, size: int = POOL_SIZE, warm: int = WARM_CONNECTIONS) -> None:
        self._conninfo = conninfo
        self._size = size
        self._warm = min(warm, size)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._candidates: dict[str, tuple[float, list[Candidate]]] = {}

    @classmethod
    def for_engine(cls, engine: Engine) -> PgIntake | None:
        """An intake on ``engine``'s PostgreSQL database (psycopg); None for any other store."""
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
            return None
        url = engine.url.set(drivername="postgresql")
        return cls(url.render_as_string(hide_password=False))

    def _bind_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None:
            self._discard_idle()  # opened by another loop: unusable here
            self._loop, self._slots = loop, asyncio.Semaphore(self._size)
        return self._slots

    def _discard_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()  # closes the socket without a round trip

    async def open(self) -> None:
        """Open the warm connections (server startup). A database that cannot be reached is logged, not
        raised: the connections are opened on demand later."""
        self._bind_loop()
        try:
            opened = [await self._connect() for _ in range(self._warm - len(self._idle))]
        except psycopg.Error as exc:
            log.warning("intake.open_failed", error=str(exc))
            return
        self._idle.extend(opened)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._bind_loop():
            conn = self._idle.pop() if self._idle else await self._connect()
            healthy = False
            try:
                yield conn
                healthy = not conn.closed
            finally:
                if healthy:
                    self._idle.append(conn)
                else:
                    await conn.close()

    async def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of one autocommit statement; retried once on a new connection when the connection fails."""
        return (await self._fetch_noting_retry(sql, params))[0]

    async def _fetch_noting_retry(
        self, sql: str, params: dict[str, Any]
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """:meth:`_fetch`, and whether the statement was sent twice (its first answer lost)."""
        for attempt in (1, 2):
            try:
                async with self._connection() as conn:
                    cursor = await conn.execute(sql, params)
                    return await cursor.fetchall(), attempt > 1
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.warning("intake.connection_failed", attempt=attempt, error=str(exc))
                # A server restart or a mass termination drops every connection at once: the idle
                # ones are as dead as this one, so the retry opens a new one.
                self._discard_idle()
        raise RetryableError("the database is unavailable; retry later", retry_after=1)

    async def candidates(self, name: str, *, refresh: bool = False) -> list[Candidate]:
        """The enabled HTTP merchant systems called ``name``, from the cache unless ``refresh`` or older
        than :data:`CANDIDATES_TTL_SECONDS`. Only names that have systems are cached."""
        cached = self._candidates.get(name)
        if cached is not None and not refresh and time.monotonic() - cached[0] < CANDIDATES_TTL_SECONDS:
            return cached[1]
        rows = await self._fetch(_CANDIDATES, {"name": name, "kind": HTTP_KIND})
        found = [Candidate(r[0], r[1], None if r[2] is None else bytes(r[2])) for r in rows]
        if found:
            if len(self._candidates) >= _MAX_CACHED_NAMES:
                self._candidates.clear()
            self._candidates[name] = (time.monotonic(), found)
        else:
            self._candidates.pop(name, None)
        return found

    async def store_event(
        self, event: Mapping[str, Any], *, token_hash: str, channel_name: str | None
    ) -> GenericStored | None:
        """Insert ``event`` (an :func:`inbound_event_row`; its ``tenant_id`` and ``channel_id`` are
        replaced by the tenant of the token digest ``token_hash`` and its channel ``channel_name``) in
        one statement. None: no tenant has that token (unknown or revoked); nothing was written."""
        params = _bind({k: v for k, v in event.items() if k not in _FROM_LOOKUP}, "e_")
        params.update(token_hash=token_hash, channel_name=channel_name, with_channel=channel_name is not None)
        rows = await self._fetch(_generic_statement(), params)
        if not rows:
            return None
        tenant_id, tenant_name, channel_found, event_id = rows[0]
        return GenericStored(
            int(tenant_id), str(tenant_name), bool(channel_found), None if event_id is None else int(event_id)
        )

    async def store_merchant_update(
        self, event: Mapping[str, Any], job: JobSpec, sender: Candidate, now: datetime
    ) -> MerchantStored:
        """Insert the event and its apply job in one statement (see :func:`merchant_parameters`)."""
        params = merchant_parameters(event, job, sender, now)
        rows, retried = await self._fetch_noting_retry(_merchant_statement(), params)
        senders, event_id, job_id = rows[0]
        if not senders:
            return MerchantStored(stale=True)
        if event_id is None and retried:
            # The first attempt's answer was lost: it may have committed this very request's event (the
            # digest covers timestamp and body), which is then accepted, not a replay.
            found = await self._fetch(_EVENT_AND_JOB, params)
            if found:
                event_id, job_id = found[0]
        if event_id is None:
            return MerchantStored(stale=False)
        if job_id is None:  # the key holds the new event's id: no other job can hold it
            raise RuntimeError(f"the apply job of inbound event {event_id} was not inserted")
        return MerchantStored(stale=False, event_id=int(event_id), job_id=int(job_id))
