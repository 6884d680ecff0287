"""Shared pieces of the chaos suite (``tests/chaos``).

Two sizes: the short form (default; runs in ``make test`` on both backends, a few seconds to a minute
per test) and the long form (``TRADELANE_CHAOS=long``, ``make chaos``; run by hand). Every test is
bounded in count and wall time, and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tradelane.merchant.sandbox import OmsSandboxState
from tradelane.sync.worker import Worker

LONG = os.environ.get("TRADELANE_CHAOS", "short").strip().lower() == "long"


def scale(short: int, long: int) -> int:
    """``short`` in the default run, ``long`` under ``TRADELANE_CHAOS=long``."""
    return long if LONG else short


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    """Poll ``predicate`` until true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def racing_workers(
    workers: list[Worker], tick: Callable[[float], None] | None = None
) -> Iterator[list[BaseException]]:
    """Run each worker's ``run_once`` in a loop on its own thread until the block exits; ``tick``
    (optional) is called every 50 ms with the elapsed step (to move fake clocks with the wall clock).
    Yields the list the threads append their exceptions to (check it)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(worker: Worker) -> None:
        try:
            while not stop.is_set():
                if worker.run_once() == 0:
                    time.sleep(0.02)
        except BaseException as exc:  # surfaced by the caller
            errors.append(exc)

    def ticker() -> None:
        assert tick is not None
        while not stop.is_set():
            time.sleep(0.05)
            tick(0.05)

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    if tick is not None:
        threads.append(threading.Thread(target=ticker, daemon=True))
    for t in threads:
        t.start()
    try:
        yield errors
    finally:
        stop.set()
        for t in threads:
            t.join(30)


@dataclass(frozen=True)
class OmsView:
    """What the merchant system holds, keyed by the marketplace order id."""

    #: marketplace order id -> number of distinct orders the OMS created for it (must be 1).
    orders: dict[str, int]
    #: marketplace order id -> POSTs that carried it (retries with the same Idempotency-Key included).
    posts: dict[str, int]
    #: marketplace order id -> sorted (sku, quantity) of the lines the OMS holds.
    lines: dict[str, list[tuple[str, int]]]


def oms_view(state: OmsSandboxState) -> OmsView:
    received = state.orders()
    created: Counter[str] = Counter()
    posts: Counter[str] = Counter()
    lines: dict[str, list[tuple[str, int]]] = {}
    for order in received:
        mid = str(order.document["marketplace_order_id"])
        created[mid] += 1
        posts[mid] += order.deliveries
        lines[mid] = sorted((str(line["sku"]), int(line["quantity"])) for line in order.document["lines"])
    return OmsView(dict(created), dict(posts), lines)


def first_error(errors: list[Any]) -> str:
    return repr(errors[0]) if errors else ""
