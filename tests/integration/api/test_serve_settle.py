"""``settle_server_process``: a server process opens its first pooled connections and freezes its
startup heap before serving; a database that is not there yet does not stop it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tradelane.persistence.db import make_engine
from tradelane.web.app import settle_server_process


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process keeps collecting as before


def test_opens_pooled_connections_then_freezes_the_heap(db_url: str, unfrozen: None):
    engine = make_engine(db_url)
    try:
        settle_server_process(engine, connections=3)
        assert gc.get_freeze_count() > 10_000  # modules, tables, app objects...
        if engine.dialect.name == "postgresql":
            assert engine.pool.checkedin() == 3  # opened and kept for the first requests
    finally:
        engine.dispose()


def test_an_unreachable_database_is_logged_not_raised(unfrozen: None, capsys: pytest.CaptureFixture[str]):
    engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    settle_server_process(engine)
    assert gc.get_freeze_count() > 0
    assert "serve.warm_up_failed" in capsys.readouterr().err
