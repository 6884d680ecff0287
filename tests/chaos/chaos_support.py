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
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
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


@dataclass(frozen=True)
class Answered:
    """An HTTP call a sandbox has handled and is about to answer: its effect has taken place (the OMS
    stored the order, the marketplace applied the call), its answer has not left yet."""

    method: str
    path: str
    status: int
    #: The caller's end of the connection (127.0.0.1:``client_port``).
    client_port: int
    #: Request headers, names in lower case.
    headers: dict[str, str]


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class CallWatch:
    """ASGI middleware: ``hook(answered)`` runs when ``app`` starts its answer to an HTTP call, on the
    server's thread, and the answer leaves only once it returns. Whatever the hook does (SIGKILL the
    caller) therefore happens after the call took effect and before the caller can know it."""

    def __init__(self, app: ASGIApp, hook: Callable[[Answered], None]) -> None:
        self.app = app
        self.hook = hook

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_after_hook(message: Any) -> None:
            if message["type"] == "http.response.start":
                client = scope.get("client") or ("", 0)
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                self.hook(
                    Answered(scope["method"], scope["path"], int(message["status"]), int(client[1]), headers)
                )
            await send(message)

        await self.app(scope, receive, send_after_hook)


def socket_owner(local_port: int, remote_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the IPv4 TCP connection from ``local_port`` to ``remote_port`` (on
    127.0.0.1), read from Linux's ``/proc``; None when none of them does or ``/proc`` cannot tell."""
    inode = None
    try:
        with open("/proc/net/tcp") as table:
            next(table)  # the header
            for line in table:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (
                    int(local.rsplit(":", 1)[1], 16) == local_port
                    and int(remote.rsplit(":", 1)[1], 16) == remote_port
                ):
                    inode = fields[9]
                    break
    except OSError:
        return None
    if inode in (None, "0"):
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def oms_posts(state: OmsSandboxState) -> dict[str, list[int]]:
    """Every POST the OMS sandbox answered, by ``Idempotency-Key``: the statuses in order (201 the one
    that created the order, 200 a repeat it recognised)."""
    posts: dict[str, list[int]] = {}
    for request in state.requests():
        posts.setdefault(str(request["idempotency_key"]), []).append(int(request["status"]))
    return posts
