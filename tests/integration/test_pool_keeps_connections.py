"""The PostgreSQL pool keeps every connection it opens: under a burst of concurrent requests, returning
a connection must not close it (an overflow connection was closed on return, so the next request paid for
a new PostgreSQL backend — the webhook profile at 200 req/s)."""

from __future__ import annotations

import threading

import pytest

from tradelane.persistence.db import POOL_SIZE, make_engine


@pytest.mark.pg_only
def test_a_burst_leaves_its_connections_open_for_the_next_one(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        held = [engine.connect() for _ in range(POOL_SIZE)]
        for conn in held:
            conn.close()
        assert engine.pool.checkedin() == POOL_SIZE  # all of them kept, none closed on return
        opened: list[int] = []
        barrier = threading.Barrier(POOL_SIZE)

        def work() -> None:
            with engine.connect() as conn:
                opened.append(id(conn.connection.dbapi_connection))
                barrier.wait(timeout=10)

        threads = [threading.Thread(target=work) for _ in range(POOL_SIZE)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert engine.pool.checkedin() == POOL_SIZE and len(opened) == POOL_SIZE
    finally:
        engine.dispose()
