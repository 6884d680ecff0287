"""Workers SIGKILLed at random points, again and again, during a seeded order-and-offer run (and, on
PostgreSQL, their connections terminated mid-run): nothing lost, nothing sent twice to the merchant
system, and the final state identical to the same run without faults.

Short form: 40 orders / 300 offers, 4 faults 1.5-4 s apart. Long form (``TRADELANE_CHAOS=long``):
1,000 orders / 10,000 offers, a kill every 5-15 s (a termination every 20-40 s) until the run ends.
Each test runs the fault-free run first, as another tenant of the same database, then the faulted
one, and compares what each left behind (:meth:`ProcessRun.final_state`).
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from chaos_support import scale
from process_run import ProcessRun

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

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


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


def _clean_run(engine: Any, db_url: str) -> dict[str, Any]:
    clean = ProcessRun(engine, db_url, "clean", OFFERS, ORDERS)
    try:
        state = clean.run(timeout=TIMEOUT)
    finally:
        _report("clean", clean)
    assert state["dead_jobs"] == 0
    assert [n for _, n in state["oms_orders_per_order"]] == [1] * ORDERS
    assert set(state["marketplace_orders"]) == {"SHIPPING"}
    assert clean.report.oms_posts == ORDERS
    return state


def _report(label: str, run: ProcessRun) -> None:
    r = run.report
    print(
        f"\nchaos {label}: {run.orders} orders, {run.offers} offers, {r.seconds:.1f} s, kills={r.kills}, "
        f"terminations={r.terminations}, workers started={r.workers_started}, OMS POSTs={r.oms_posts}, "
        f"dead letters replayed={len(r.replayed)} {r.replayed[:5]}, failed attempts {r.attempts}, "
        f"load average {r.load[0]:.1f} -> {r.load[1]:.1f}"
        + (f", worker logs {r.log_path}" if r.log_path else "")
    )


def test_sigkilled_workers_lose_nothing_send_nothing_twice_and_end_like_a_clean_run(engine, db_url) -> None:
    expected = _clean_run(engine, db_url)
    faulted = ProcessRun(engine, db_url, "sigkilled", OFFERS, ORDERS, replay_dead=True)
    try:
        state = faulted.run(Every(7, lambda run, rng: run.kill_one(rng)), timeout=TIMEOUT)
    finally:
        _report("sigkill", faulted)
    assert faulted.report.kills >= 2, "the run ended before the workers were killed twice"
    assert state == expected
    # One OMS order per marketplace order is in ``state``; a re-sent POST (a worker killed after the
    # OMS answered, before tradelane recorded it) reuses the order's Idempotency-Key, so it creates
    # nothing — it is counted in the report, never as a second order.


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
