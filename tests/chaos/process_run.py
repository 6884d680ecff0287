"""One seeded order-and-offer run driven by real ``tradelane worker`` processes, with faults on the side.

A run owns a tenant, a Mirakl channel on its own Mirakl sandbox (real HTTP on 127.0.0.1, wall clock,
no rate limits) and an HTTP OMS sandbox. It publishes ``offers`` products (``offers.full``), then
changes the price and stock of a tenth of the catalog before the first upload is done
(``offers.delta``), and once the offers are on the marketplace places ``orders`` seeded orders there
(3 lines each) for the workers to accept and hand to the OMS. The test plays the scheduler (coalesced
polls every 0.3 s until the OMS holds every order) and, through ``fault`` (every 0.3 s) and ``on_call``
(at the answer of each call a worker makes to either sandbox), whatever goes wrong.
:meth:`ProcessRun.final_state` is what must not depend on the faults. A dead letter fails the run.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from chaos_support import Answered, CallWatch, oms_posts, oms_view, socket_owner

from helpers import make_tenant, put_live
from mirakl_world import API_KEY, GENEROUS, SHOP_ID, catalog, sandbox_catalog
from tradelane.background_server import BackgroundServer
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.sandbox import SandboxState, Shop, operations
from tradelane.connectors.mirakl.sandbox.app import create_app as marketplace_app
from tradelane.connectors.mirakl.sandbox.config import SandboxConfig
from tradelane.merchant.sandbox import OmsSandboxState
from tradelane.merchant.sandbox.app import create_app as oms_app
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import job_attempts, jobs, orders, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.outbox import bind_new_products, mark_offers_dirty
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.timeutil import utcnow

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
OMS_SECRET = "chaos-process-oms-secret-0123456789"
#: Order lines use the first ORDER_SKUS products; the price/stock changes touch only later ones, so
#: the final stock on the marketplace does not depend on when an order landed.
ORDER_SKUS = 50
TERMINAL = ("succeeded", "dead", "cancelled")
#: A directory to keep every run's worker logs in (one file per run, named after it and the instant),
#: at ``TRADELANE_CHAOS_LOG_LEVEL`` (WARNING unless given); unset, they go to a temporary file at ERROR
#: and only a dead worker's last lines are shown.
LOG_DIR = os.environ.get("TRADELANE_CHAOS_LOGS", "")
LOG_LEVEL = os.environ.get("TRADELANE_CHAOS_LOG_LEVEL", "WARNING") if LOG_DIR else "ERROR"


@dataclass
class RunReport:
    seconds: float = 0.0
    #: When every offer was on the marketplace and the orders were placed (seconds into the run).
    offers_seconds: float = 0.0
    kills: int = 0
    terminations: int = 0
    workers_started: int = 0
    oms_posts: int = 0
    #: The 1-minute load average of the box when the run started and when it ended.
    load: tuple[float, float] = (0.0, 0.0)
    #: Unsuccessful attempts by outcome (``job_attempts``; ``lease_expired`` is a lost attempt).
    attempts: dict[str, int] = field(default_factory=dict)
    #: Where the workers' logs were kept (``TRADELANE_CHAOS_LOGS``), if anywhere.
    log_path: str = ""
    #: Distinct ``Idempotency-Key`` values among the OMS POSTs, and the POSTs that repeated one.
    oms_keys: int = 0
    oms_repeats: int = 0


@dataclass(frozen=True)
class Call:
    """A worker's call to a sandbox, handled and about to be answered (see :class:`CallWatch`)."""

    #: ``marketplace`` (the Mirakl sandbox) or ``oms``.
    service: str
    #: The Mirakl operation id (``OF01``, ``OR11``...) or ``POST /orders`` (the OMS).
    op: str
    status: int
    #: The worker process that made the call.
    worker: subprocess.Popen[bytes]
    idempotency_key: str | None


@dataclass
class ProcessRun:
    engine: Any
    db_url: str
    name: str
    offers: int
    orders: int
    workers: int = 2
    seed: int = 12
    #: The OMS's request timeout (the merchant system's ``timeout_seconds``). A delivery whose worker
    #: died during its POST is sent again only once twice this plus 10 s have passed (the hand-over's
    #: ``sending_grace``): the harness keeps it short so that such a kill costs ~16 s, not ~30 s.
    oms_timeout: float = 3.0
    report: RunReport = field(default_factory=RunReport)

    def run(
        self,
        fault: Callable[[ProcessRun], None] | None = None,
        *,
        on_call: Callable[[ProcessRun, Call], None] | None = None,
        timeout: float,
    ) -> dict[str, Any]:
        """Do the whole run; ``fault(self)`` is called about every 0.3 s while the workers work, and
        ``on_call(self, call)`` on a sandbox's thread when it is about to answer a call a worker made
        (the answer leaves once it returns: it may :meth:`kill` the caller). Returns :meth:`final_state`."""
        started = self.started = time.monotonic()
        load_before = os.getloadavg()[0]
        key = _deployment_key()
        self.keyring = KeyRing([key])
        self.env = _env(self.db_url, key)
        self.state = SandboxState(
            self.seed,
            shops=[Shop(SHOP_ID, "Chaos Shop", API_KEY, multi_shipment=True)],
            products=sandbox_catalog(self.offers),
            rate_limits={},
            follow_wall_time=True,
            # Imports finish at their first status read (the test is about tradelane, not Mirakl's pace).
            config=SandboxConfig(import_polls=0, import_delay=timedelta(0)),
        )
        self.oms_state = OmsSandboxState(OMS_SECRET)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()  # procs, the kills to replace, closing
        self._to_replace = 0
        self._closing = False
        self.hook_errors: list[BaseException] = []
        self.logs = self._log_file()  # every worker's stderr, closed after the run
        now = utcnow()
        tenant, _ = make_tenant(self.engine, self.name, now)
        self.tenant_id = tenant.id
        mirakl = BackgroundServer(
            CallWatch(marketplace_app(self.state), self._watch("marketplace", on_call, lambda: mirakl.port)),
            name="mirakl-sandbox",
        )
        oms = BackgroundServer(
            CallWatch(oms_app(self.oms_state), self._watch("oms", on_call, lambda: oms.port)),
            name="oms-sandbox",
        )
        with mirakl, oms:
            with self.engine.begin() as conn:
                self.channel = add_channel(
                    conn,
                    tenant_id=tenant.id,
                    name="marketplace-x",
                    hostname=mirakl.url,
                    shop_id=str(SHOP_ID),
                    api_key=API_KEY,
                    keyring=self.keyring,
                    now=now,
                    options={"rate_limits": GENEROUS, "multi_shipment": True},
                )
                put_live(conn, self.channel.id)
                add_http_system(
                    conn,
                    tenant_id=tenant.id,
                    name="oms",
                    url=f"{oms.url}/orders",
                    secret=OMS_SECRET,
                    keyring=self.keyring,
                    now=now,
                    timeout_seconds=self.oms_timeout,
                )
            self.skus = self._publish_catalog()
            rng = random.Random(self.seed)
            self._change_prices(rng)
            try:
                for _ in range(self.workers):
                    self.start_worker()
                # Orders only once the offer jobs are all done: a full upload re-run after a kill would
                # otherwise reset stock the marketplace already decremented for them (timing, not a fault).
                self._wait(self._offers_done, fault, timeout, "offers")
                self.report.offers_seconds = time.monotonic() - started
                self.order_ids = self._place_orders(rng)
                self._wait(self._done, fault, timeout, "every order delivered and every job finished")
            finally:
                with self._lock:
                    self._closing = True  # no kill from a sandbox's thread from now on
                for proc in self.procs:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                    proc.wait(30)
                self.logs.close()
                # Filled in even when the run failed (the test prints the report either way).
                self.report.seconds = time.monotonic() - started
                self.report.load = (load_before, os.getloadavg()[0])
                posts = oms_posts(self.oms_state)
                self.report.oms_posts = sum(len(statuses) for statuses in posts.values())
                self.report.oms_keys = len(posts)
                self.report.oms_repeats = self.report.oms_posts - len(posts)
                self.report.attempts = self._attempt_outcomes()
        return self.final_state()

    def _log_file(self) -> Any:
        if not LOG_DIR:
            return tempfile.TemporaryFile()  # closed at the end of the run
        stamp = utcnow().strftime("%Y%m%dT%H%M%S")
        path = Path(LOG_DIR) / f"{self.name}-{stamp}-{os.getpid()}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.report.log_path = str(path)
        return path.open("w+b")

    # --- workers ---------------------------------------------------------------------------------

    def start_worker(self) -> None:
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tradelane", "worker", "--no-schedule", "--batch-size", "5"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                # A file, not a pipe: nobody reads a pipe while the run goes on, and a worker whose
                # pipe is full blocks on its next log line (dropped connections log tracebacks).
                stderr=self.logs,
            )
        )
        self.report.workers_started += 1

    def live(self) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            return [p for p in self.procs if p.poll() is None]

    @staticmethod
    def worker_name(proc: subprocess.Popen[bytes]) -> str:
        """The worker's name in ``jobs.lease_owner`` and ``job_attempts.worker`` (``host:pid``)."""
        return f"{socket.gethostname()}:{proc.pid}"

    def kill(self, proc: subprocess.Popen[bytes]) -> bool:
        """SIGKILL ``proc`` (from any thread) and have the run start a replacement within ~0.3 s.
        False when the run is ending or ``proc`` is gone already."""
        with self._lock:
            if self._closing or proc.poll() is not None:
                return False
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            self.report.kills += 1
            self._to_replace += 1
            return True

    @property
    def replacing(self) -> bool:
        """A killed worker's replacement is not started yet."""
        with self._lock:
            return self._to_replace > 0

    def _replace_killed(self) -> None:
        with self._lock:
            while self._to_replace and not self._closing:
                self.start_worker()
                self._to_replace -= 1

    def running_jobs(self, worker: str) -> list[Any]:
        """The jobs ``worker`` holds a running lease on: id, kind, payload."""
        with read_only(self.engine) as conn:
            return list(
                conn.execute(
                    sa.select(jobs.c.id, jobs.c.kind, jobs.c.payload).where(
                        jobs.c.tenant_id == self.tenant_id,
                        jobs.c.state == "running",
                        jobs.c.lease_owner == worker,
                    )
                )
            )

    def lost_attempts(self) -> set[tuple[int, str]]:
        """(job id, worker) of every attempt recorded ``lease_expired`` (the worker vanished)."""
        with read_only(self.engine) as conn:
            rows = conn.execute(
                sa.select(job_attempts.c.job_id, job_attempts.c.worker)
                .join(jobs, jobs.c.id == job_attempts.c.job_id)
                .where(jobs.c.tenant_id == self.tenant_id, job_attempts.c.outcome == "lease_expired")
            ).all()
        return {(int(r.job_id), str(r.worker)) for r in rows}

    def _watch(
        self, service: str, on_call: Callable[[ProcessRun, Call], None] | None, port: Callable[[], int]
    ) -> Callable[[Answered], None]:
        """The :class:`CallWatch` hook of one sandbox: names the call and its caller for ``on_call``.
        Its errors are kept for the run's loop to raise (a hook must not change the answer)."""

        def hook(answered: Answered) -> None:
            if on_call is None or self._closing:
                return
            try:
                if service == "oms":
                    op = f"{answered.method} {answered.path}"
                else:
                    found = operations.match(answered.method, answered.path)
                    if found is None:
                        return
                    op = found.op_id
                by_pid = {p.pid: p for p in self.live()}
                pid = socket_owner(answered.client_port, port(), by_pid)
                if pid is None:
                    return  # not a worker's call (or its worker is gone)
                key = answered.headers.get("idempotency-key")
                on_call(self, Call(service, op, answered.status, by_pid[pid], key))
            except BaseException as exc:  # raised by the run's loop
                self.hook_errors.append(exc)

        return hook

    def check_workers(self) -> None:
        if self.hook_errors:
            raise self.hook_errors[0]
        with self._lock:
            procs = list(self.procs)
        dead = [p for p in procs if p.poll() not in (None, -signal.SIGKILL)]
        if dead:
            self.logs.flush()
            self.logs.seek(0)
            err = self.logs.read().decode(errors="replace")[-3000:]
            raise AssertionError(f"a worker exited with {dead[0].returncode}: {err}")

    # --- the run ---------------------------------------------------------------------------------

    def _publish_catalog(self) -> list[str]:
        now = utcnow()
        items = catalog(self.offers, quantity=100_000)
        rows = [
            {
                "tenant_id": self.tenant_id,
                "sku": p.sku,
                "parent_sku": p.parent_sku,
                "title": p.title,
                "gtin": p.gtin,
                "price": p.price,
                "currency": p.currency,
                "quantity": p.quantity,
                "labels": list(p.labels),
                "attributes": dict(p.attributes),
                "content_hash": p.content_hash(),
                "created_at": now,
                "updated_at": now,
            }
            for p in items
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), 1000):
                conn.execute(sa.insert(products), rows[start : start + 1000])
            ids = list(
                conn.execute(sa.select(products.c.id).where(products.c.tenant_id == self.tenant_id)).scalars()
            )
            bind_new_products(conn, self.tenant_id, ids, now=now)
            self._enqueue(conn, "offers.full", "offers")
        return [p.sku for p in items]

    def _place_orders(self, rng: random.Random) -> list[str]:
        ids = []
        for _ in range(self.orders):
            lines = [
                {
                    "offer_sku": self.skus[rng.randrange(min(ORDER_SKUS, self.offers))],
                    "quantity": rng.randint(1, 3),
                }
                for _ in range(3)
            ]
            ids.append(
                self.state.create_order(
                    SHOP_ID, lines, payment_delay=timedelta(0), staging_delay=timedelta(0)
                )
            )
        return ids

    def _change_prices(self, rng: random.Random) -> None:
        candidates = self.skus[ORDER_SKUS:] or self.skus
        chosen = rng.sample(candidates, max(1, len(candidates) // 10))
        now = utcnow()
        with self.engine.begin() as conn:
            for sku in chosen:
                conn.execute(
                    sa.update(products)
                    .where(products.c.tenant_id == self.tenant_id, products.c.sku == sku)
                    .values(
                        price=products.c.price + Decimal("0.99"),
                        quantity=products.c.quantity - 7,
                        updated_at=now,
                    )
                )
            ids = list(
                conn.execute(
                    sa.select(products.c.id).where(
                        products.c.tenant_id == self.tenant_id, products.c.sku.in_(chosen)
                    )
                ).scalars()
            )
            mark_offers_dirty(conn, self.tenant_id, ids, now=now)
            self._enqueue(conn, "offers.delta", "offers")

    def _enqueue(self, conn: Any, kind: str, flow: str) -> None:
        spec = JobSpec(
            self.tenant_id,
            kind,
            {},
            channel_id=self.channel.id,
            flow=flow,
            dedupe_key=f"{kind}:{self.channel.id}",
        )
        enqueue(conn, spec, now=utcnow())

    def _wait(
        self, done: Callable[[], bool], fault: Callable[[ProcessRun], None] | None, timeout: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}: {self._stuck()}")
            self.check_workers()
            self._replace_killed()
            if len(oms_view(self.oms_state).orders) < self.orders:  # polls stop once all are handed over
                with self.engine.begin() as conn:
                    self._enqueue(conn, "orders.poll", "orders")
            if fault is not None:
                fault(self)
            time.sleep(0.3)

    def _offers_done(self) -> bool:
        if len(self.state.shop_offers(SHOP_ID)) < self.offers:
            return False
        with read_only(self.engine) as conn:
            pending = conn.execute(
                sa.select(sa.func.count()).where(
                    jobs.c.tenant_id == self.tenant_id,
                    jobs.c.kind.like("offers.%"),
                    jobs.c.state.in_(["queued", "running"]),
                )
            ).scalar_one()
        return pending == 0

    def _done(self) -> bool:
        states = self._job_states()
        if states["dead"]:
            # No fault of these runs may dead-letter a job: a kill costs the attempt it interrupts, and
            # only a job interrupted on every one of its attempts (8, deliveries 12) would die of it.
            with read_only(self.engine) as conn:
                rows = conn.execute(
                    sa.select(jobs.c.id, jobs.c.kind, jobs.c.attempts, jobs.c.last_error).where(
                        jobs.c.tenant_id == self.tenant_id, jobs.c.state == "dead"
                    )
                ).all()
            raise AssertionError(
                f"{self.name}: dead letters: "
                + "; ".join(f"job {r.id} {r.kind} after {r.attempts} attempts: {r.last_error}" for r in rows)
            )
        if not all(state in TERMINAL for state in states):
            return False
        return len(oms_view(self.oms_state).orders) == self.orders

    def _stuck(self) -> str:
        """The job states and every unfinished job (for a timeout's message)."""
        with read_only(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    jobs.c.id,
                    jobs.c.kind,
                    jobs.c.state,
                    jobs.c.attempts,
                    jobs.c.run_at,
                    jobs.c.lease_owner,
                    jobs.c.lease_expires_at,
                    jobs.c.last_error,
                ).where(jobs.c.tenant_id == self.tenant_id, jobs.c.state.not_in(TERMINAL))
            ).all()
        received = len(oms_view(self.oms_state).orders)
        return (
            f"{dict(self._job_states())}; OMS holds {received}/{self.orders} orders; at {utcnow()}: "
            + "; ".join(str(tuple(r)) for r in rows[:20])
        )

    def _attempt_outcomes(self) -> dict[str, int]:
        with read_only(self.engine) as conn:
            rows = conn.execute(
                sa.select(job_attempts.c.outcome, sa.func.count())
                .join(jobs, jobs.c.id == job_attempts.c.job_id)
                .where(jobs.c.tenant_id == self.tenant_id)
                .group_by(job_attempts.c.outcome)
            ).all()
        return {str(outcome): int(n) for outcome, n in rows}

    def _job_states(self) -> Counter[str]:
        with read_only(self.engine) as conn:
            return Counter(
                conn.execute(sa.select(jobs.c.state).where(jobs.c.tenant_id == self.tenant_id)).scalars()
            )

    def final_state(self) -> dict[str, Any]:
        """Everything the faults must not change: offers on the marketplace (price, quantity per SKU),
        the orders' states there and in tradelane, what the OMS holds (by order index), dead jobs."""
        index = {mid: i for i, mid in enumerate(self.order_ids)}
        view = oms_view(self.oms_state)
        with read_only(self.engine) as conn:
            stored = conn.execute(
                sa.select(orders.c.marketplace_order_id, orders.c.state, orders.c.merchant_status).where(
                    orders.c.tenant_id == self.tenant_id
                )
            ).all()
            dead = conn.execute(
                sa.select(sa.func.count()).where(jobs.c.tenant_id == self.tenant_id, jobs.c.state == "dead")
            ).scalar_one()
        return {
            "offers": {
                sku: (str(o.price), o.quantity) for sku, o in sorted(self.state.shop_offers(SHOP_ID).items())
            },
            "marketplace_orders": [self.state.order(mid).state.value for mid in self.order_ids],
            "tradelane_orders": sorted(
                (index[r.marketplace_order_id], r.state, r.merchant_status) for r in stored
            ),
            "oms_orders_per_order": sorted((index[mid], n) for mid, n in view.orders.items()),
            "oms_lines": sorted((index[mid], tuple(lines)) for mid, lines in view.lines.items()),
            "dead_jobs": dead,
        }


@cache
def _deployment_key() -> str:
    """One secret key for every run of this test process: the runs of a test are tenants of one
    database, and a worker started with another key than the one that encrypted a tenant's channel
    warns that some credentials cannot be decrypted (as a misconfigured deployment should)."""
    return generate_key()


def _env(db_url: str, key: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TRADELANE_DATABASE_URL": db_url,
            "TRADELANE_SECRET_KEYS": key,
            "TRADELANE_WORKER_LEASE_SECONDS": "2",
            "TRADELANE_WORKER_POLL_SECONDS": "0.1",
            "TRADELANE_JOB_BACKOFF_BASE_SECONDS": "0.2",
            "TRADELANE_LOG_LEVEL": LOG_LEVEL,
            "PYTHONPATH": str(SRC),
        }
    )
    env.pop("TRADELANE_PLUGINS", None)
    return env
