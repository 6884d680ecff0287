"""Workers SIGKILLed in the middle of their work, again and again, during a seeded order-and-offer run
(and, on PostgreSQL, their connections terminated mid-run): nothing lost, nothing sent twice to the
merchant system, and the final state identical to the same run without faults.

The kills are chosen from the work itself. Every call a worker makes to the marketplace or the OMS
is a *moment*: the sandbox has handled it (the offers import exists, the order is accepted, the OMS
stored the order) and holds its answer while :class:`WorkKiller` decides, seeded, whether to SIGKILL
the process that made it (found by the connection's port) — only while that worker holds the running
lease of the job making the call. The answer then goes to a dead process. Each run kills at least
once during offer sync (a call of an ``offers.*`` job), once during acceptance (an ``orders.accept``
job's OR21: the marketplace accepted the order, tradelane does not know it) and once during delivery
(the OMS POST of an ``orders.deliver`` job: the OMS has the order, tradelane does not know it), and
the test checks that every kill interrupted that job (its attempt was recorded ``lease_expired``).

Short form: 40 orders / 300 offers, 4 kills at most (the three required ones among their phase's
first calls, the other one 1.5-4 s after the last kill or more). Long form
(``TRADELANE_CHAOS=long``): 1,000 orders / 10,000 offers, kills 5-15 s apart or more (a termination
every 20-40 s) until the run ends. The
first test of the process runs the fault-free run first, as another tenant of the same database, the
faulted one after it, and compares what each left behind (:meth:`ProcessRun.final_state`); the other
test compares with that same fault-free state (the same seeded run: no fault may change it).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from chaos_support import oms_posts, scale
from process_run import Call, ProcessRun

from tradelane.persistence.db import read_only
from tradelane.persistence.tables import orders

ORDERS = scale(40, 1000)
OFFERS = scale(300, 10_000)
TIMEOUT = scale(150, 1500)
#: Seconds between two faults (drawn uniformly in this range), and how many at most: a worker needs
#: ~1.5 s to start, so faults much closer than that would leave no worker working.
EVERY = (1.5, 4.0) if ORDERS < 1000 else (5.0, 15.0)  # a 1,000-order poll needs several seconds
#: A termination drops *every* connection at once (a SIGKILL takes one worker of two): no transaction
#: longer than the gap between two of them can commit. The long form's orders poll re-reads all 1,000
#: orders and stores them in one transaction until one commits: with 5-15 s gaps none did after the
#: acceptances (32 terminations in 5 min at load 11, no delivery), so the long form spaces them 20-40 s.
EVERY_TERMINATION = (1.5, 4.0) if ORDERS < 1000 else (20.0, 40.0)
MAX_FAULTS = scale(4, 10_000)
#: Once the gap since the last kill has passed, the chance that a moment is taken.
EXTRA_KILL_CHANCE = 0.5
#: A job is interrupted this many times at most: every kill costs the job the attempt it interrupts,
#: and a job lost on all of its attempts (8; deliveries 12) is dead-lettered by design, which would be
#: the test's doing. (The long form's last delivery, the only work left, was otherwise killed at each
#: of its re-sends: 6 times in a row, each one another ~16 s grace.)
MAX_KILLS_PER_JOB = 3

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)

#: The job kinds whose calls are moments of each phase, by the call's operation (a prefix for Mirakl's
#: offer operations OF01/OF02/OF03/OF24).
PHASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "OF": ("offers", ("offers.full", "offers.delta", "offers.import_check")),
    "OR11": ("poll", ("orders.poll",)),
    "OR21": ("acceptance", ("orders.accept",)),
    "POST /orders": ("delivery", ("orders.deliver",)),
}
#: Phases every faulted run kills in at least once.
REQUIRED = ("offers", "acceptance", "delivery")


def _phase(op: str) -> tuple[str, tuple[str, ...]] | None:
    return PHASES.get("OF" if op.startswith("OF") else op)


class Every:
    """Calls ``action`` at random intervals drawn from ``every`` (seeded)."""

    def __init__(self, seed: int, action: Any, every: tuple[float, float] = EVERY) -> None:
        self.rng = random.Random(seed)
        self.action = action
        self.every = every
        self.count = 0
        self.next = time.monotonic() + self.rng.uniform(*every)

    def __call__(self, run: ProcessRun) -> None:
        if self.count < MAX_FAULTS and time.monotonic() >= self.next:
            self.action(run, self.rng)
            self.count += 1
            self.next = time.monotonic() + self.rng.uniform(*self.every)


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: at which call, of which worker, and the job it interrupted."""

    phase: str
    op: str
    worker: str
    #: The job making the call (the worker held its running lease).
    job_id: int
    kind: str
    #: Seconds into the run.
    at: float
    #: The OMS POST's ``Idempotency-Key`` (a delivery kill), else None.
    idempotency_key: str | None
    #: Every job the worker held a running lease on (id, kind), the interrupted one included.
    held: tuple[tuple[int, str], ...]

    def __str__(self) -> str:
        key = f" {self.idempotency_key}" if self.idempotency_key else ""
        job = f"job {self.job_id} {self.kind}, {len(self.held)} held"
        return f"{self.at:.1f} s {self.phase} {self.op}{key} ({job})"


class WorkKiller:
    """``on_call`` of a :class:`ProcessRun`: SIGKILLs the worker that made a call, at some of the
    moments its calls give (seeded).

    The first kill of each :data:`REQUIRED` phase happens at a seeded ordinal of that phase's moments:
    among its first 2 offer calls, its first ``ORDERS // 4`` acceptances, its first ``ORDERS // 4`` OMS
    POSTs (early: the re-send a delivery kill forces waits for the hand-over's grace, ~16 s, which the
    other deliveries then overlap). Any other kill happens at a moment taken with
    :data:`EXTRA_KILL_CHANCE` once ``every`` seconds (drawn) have passed since the last kill, room
    being kept for the required ones within ``max_kills``. No kill while a killed
    worker's replacement is not started yet (one worker keeps working), none unless the caller holds
    the running lease of a job of the call's kind (for an OMS POST: the order's delivery), and none of
    a job interrupted :data:`MAX_KILLS_PER_JOB` times already."""

    def __init__(self, seed: int, *, every: tuple[float, float], max_kills: int) -> None:
        self.rng = random.Random(seed)
        self.every = every
        self.max_kills = max_kills
        self.targets = {
            "offers": self.rng.randint(1, 2),
            "acceptance": self.rng.randint(1, max(1, ORDERS // 4)),
            "delivery": self.rng.randint(1, max(1, ORDERS // 4)),
        }
        self.seen: Counter[str] = Counter()
        self.kills: list[Kill] = []
        self.next_extra: float | None = None
        self._lock = threading.Lock()  # two sandboxes, two threads

    def __call__(self, run: ProcessRun, call: Call) -> None:
        phase = _phase(call.op)
        if phase is None or not 200 <= call.status < 300:
            return
        name, kinds = phase
        with self._lock:
            self.seen[name] += 1
            if not self._due(run, name):
                return
            worker = run.worker_name(call.worker)
            held = run.running_jobs(worker)
            job = next((j for j in held if j.kind in kinds and _makes(j, call)), None)
            if job is None or sum(k.job_id == job.id for k in self.kills) >= MAX_KILLS_PER_JOB:
                return
            if not run.kill(call.worker):
                return
            self.kills.append(
                Kill(
                    name,
                    call.op,
                    worker,
                    int(job.id),
                    str(job.kind),
                    time.monotonic() - run.started,
                    call.idempotency_key if name == "delivery" else None,
                    tuple((int(j.id), str(j.kind)) for j in held),
                )
            )
            self.next_extra = time.monotonic() + self.rng.uniform(*self.every)

    def _due(self, run: ProcessRun, phase: str) -> bool:
        if run.replacing or len(self.kills) >= self.max_kills:
            return False
        missing = [p for p in REQUIRED if p not in {k.phase for k in self.kills}]
        if phase in missing and self.seen[phase] >= self.targets[phase]:
            return True
        if len(self.kills) + len(missing) >= self.max_kills:
            return False  # the room left is for the required phases
        if self.next_extra is None:
            self.next_extra = time.monotonic() + self.rng.uniform(*self.every)
        return time.monotonic() >= self.next_extra and self.rng.random() < EXTRA_KILL_CHANCE


def _makes(job: Any, call: Call) -> bool:
    """Whether ``job`` is the one making ``call``: an OMS POST is its order's delivery (the
    ``Idempotency-Key`` is ``order-<id>``); any job of the kind makes a marketplace call."""
    if call.service != "oms":
        return True
    return call.idempotency_key == f"order-{job.payload.get('order_id')}"


#: The fault-free run's final state, once per test process (both tests run the same seeded run: its
#: final state is a value that no run may change, so the second test compares with the first's).
_CLEAN: dict[str, dict[str, Any]] = {}


def _clean_run(engine: Any, db_url: str) -> dict[str, Any]:
    if "state" in _CLEAN:
        print("\nchaos clean: the fault-free run of an earlier test of this process")
        return _CLEAN["state"]
    clean = ProcessRun(engine, db_url, "clean", OFFERS, ORDERS)
    try:
        state = clean.run(timeout=TIMEOUT)
    finally:
        _report("clean", clean)
    assert state["dead_jobs"] == 0
    assert [n for _, n in state["oms_orders_per_order"]] == [1] * ORDERS
    assert set(state["marketplace_orders"]) == {"SHIPPING"}
    assert clean.report.oms_posts == ORDERS
    _CLEAN["state"] = state
    return state


def _report(label: str, run: ProcessRun, kills: list[Kill] | None = None) -> None:
    r = run.report
    print(
        f"\nchaos {label}: {run.orders} orders, {run.offers} offers, {r.seconds:.1f} s (offers done at "
        f"{r.offers_seconds:.1f} s), kills={r.kills}, terminations={r.terminations}, "
        f"workers started={r.workers_started}, OMS POSTs={r.oms_posts} ({r.oms_keys} Idempotency-Keys, "
        f"{r.oms_repeats} repeated), failed attempts {r.attempts}, "
        f"load average {r.load[0]:.1f} -> {r.load[1]:.1f}"
        + (f", worker logs {r.log_path}" if r.log_path else "")
        + "".join(f"\n  kill at {k}" for k in kills or [])
    )


def test_sigkilled_workers_lose_nothing_send_nothing_twice_and_end_like_a_clean_run(engine, db_url) -> None:
    expected = _clean_run(engine, db_url)
    killer = WorkKiller(7, every=EVERY, max_kills=MAX_FAULTS)
    faulted = ProcessRun(engine, db_url, "sigkilled", OFFERS, ORDERS)
    try:
        state = faulted.run(on_call=killer, timeout=TIMEOUT)
    finally:
        _report("sigkill", faulted, killer.kills)
    kills = killer.kills
    # The kills hit work in flight: each one in a required phase at least, and each one's job lost the
    # attempt it was making (recorded lease_expired under the killed worker's name).
    assert {k.phase for k in kills} >= set(REQUIRED), f"moments seen {dict(killer.seen)}, kills {kills}"
    lost = faulted.lost_attempts()
    assert [k for k in kills if (k.job_id, k.worker) not in lost] == []
    # Nothing sent twice: every OMS POST beyond one per order repeated an earlier POST's Idempotency-Key
    # and was answered as that repeat (200, no new order), and the OMS holds exactly one order per
    # marketplace order (in ``state``, as in the clean run). A delivery killed after the OMS stored the
    # order and before tradelane recorded the answer is sent again, with the same key: so each
    # delivery kill accounts for at least one repeat.
    posts = oms_posts(faulted.oms_state)
    assert sorted(posts) == sorted(f"order-{order_id}" for order_id in _order_ids(faulted))
    assert {key: s for key, s in posts.items() if s[0] != 201 or set(s[1:]) - {200}} == {}
    repeats = {key: len(s) - 1 for key, s in posts.items() if len(s) > 1}
    assert faulted.report.oms_posts == ORDERS + sum(repeats.values())
    delivery_kills = [k for k in kills if k.phase == "delivery"]
    assert [k for k in delivery_kills if k.idempotency_key not in repeats] == []
    assert sum(repeats.values()) >= len(delivery_kills)
    assert state == expected


def _order_ids(run: ProcessRun) -> list[int]:
    """tradelane's ids of the run's orders (the OMS's ``Idempotency-Key`` is ``order-<id>``)."""
    with read_only(run.engine) as conn:
        return list(conn.execute(sa.select(orders.c.id).where(orders.c.tenant_id == run.tenant_id)).scalars())


@pytest.mark.pg_only
def test_terminated_database_connections_change_nothing(engine, db_url) -> None:
    expected = _clean_run(engine, db_url)

    def terminate(run: ProcessRun, rng: random.Random) -> None:
        with run.engine.connect() as conn:
            conn.exec_driver_sql(TERMINATE)
            conn.commit()
        run.report.terminations += 1

    faulted = ProcessRun(engine, db_url, "terminated", OFFERS, ORDERS)
    try:
        state = faulted.run(Every(8, terminate, EVERY_TERMINATION), timeout=TIMEOUT)
    finally:
        _report("pg_terminate_backend", faulted)
    assert faulted.report.terminations >= 2
    assert faulted.report.kills == 0 and faulted.report.workers_started == faulted.workers  # they reconnected
    assert state == expected
