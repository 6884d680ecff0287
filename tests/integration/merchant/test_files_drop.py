"""The Files merchant adapter: a drop folder whose catalog and stock files the scan job applies."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from merchant_support import run_worker
from typer.testing import CliRunner

from helpers import make_channel, make_tenant
from tradelane.bootstrap import Container
from tradelane.cli import build_app
from tradelane.merchant.base import MerchantSystem
from tradelane.persistence.db import read_only
from tradelane.persistence.merchant_systems import set_enabled
from tradelane.persistence.tables import jobs, merchant_systems, offer_bindings, products
from tradelane.services.files_scan import SCAN_JOB, add_files_system, enqueue_scan, scan_dedupe_key

CATALOG = "sku,title,price,currency,quantity\nA-1,Apple,10.00,EUR,5\nB-2,Banana,2.50,EUR,0\n"


@pytest.fixture
def tenant_id(container: Container, now: datetime) -> int:
    return make_tenant(container.engine, "acme", now)[0].id


@pytest.fixture
def system(container: Container, tenant_id: int, tmp_path: Path, now: datetime) -> MerchantSystem:
    with container.engine.begin() as conn:
        return add_files_system(
            conn,
            tenant_id=tenant_id,
            name="drop",
            folder=tmp_path / "drop",
            keyring=container.keyring,
            now=now,
        )


def drop(system: MerchantSystem, name: str, content: str | bytes, *, age: float = 60.0) -> Path:
    """Write a file into the inbox, last modified ``age`` seconds ago (settled unless age is small)."""
    path = Path(system.settings["folder"]) / "inbox" / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def folder(system: MerchantSystem, sub: str) -> list[str]:
    return sorted(p.name for p in (Path(system.settings["folder"]) / sub).iterdir())


def stock_of(container: Container, tenant_id: int) -> dict[str, int]:
    with read_only(container.engine) as conn:
        rows = conn.execute(
            sa.select(products.c.sku, products.c.quantity).where(products.c.tenant_id == tenant_id)
        )
        return {r.sku: r.quantity for r in rows}


def queued_scans(container: Container, system: MerchantSystem) -> list[datetime]:
    with read_only(container.engine) as conn:
        return list(
            conn.execute(
                sa.select(jobs.c.run_at).where(
                    jobs.c.kind == SCAN_JOB,
                    jobs.c.state == "queued",
                    jobs.c.dedupe_key == scan_dedupe_key(system.id),
                )
            ).scalars()
        )


def test_setup_creates_the_folder_layout_and_the_first_scan(container, system, now):
    assert folder(system, ".") == ["inbox", "processed", "rejected"]
    assert system.kind == "files" and system.settings["every_seconds"] == 60
    assert queued_scans(container, system) == [now]


def test_catalog_file_creates_products_and_leaves_a_result(container, clock, system, tenant_id, now):
    drop(system, "catalog.csv", CATALOG)
    run_worker(container, clock)
    assert stock_of(container, tenant_id) == {"A-1": 5, "B-2": 0}
    assert folder(system, "inbox") == []
    assert folder(system, "processed") == ["catalog.csv", "catalog.csv.result.json"]
    result = json.loads(
        (Path(system.settings["folder"]) / "processed" / "catalog.csv.result.json").read_text()
    )
    assert (result["kind"], result["created"], result["rejected"]) == ("catalog", 2, 0)
    # the schedule goes on, once: the next scan is pending at now + every
    assert queued_scans(container, system) == [now + timedelta(seconds=60)]


def test_stock_file_sets_quantities_dirties_offers_and_reports_bad_lines(
    container, clock, system, tenant_id, now
):
    channel = make_channel(container.engine, tenant_id, "shop-fr", now)
    drop(system, "catalog.csv", CATALOG, age=120)
    run_worker(container, clock)
    with container.engine.begin() as conn:
        conn.execute(sa.update(offer_bindings).values(dirty=False))
    clock.advance(60)
    drop(system, "stock-2026-11-25.csv", "sku,quantity\nA-1,7\nB-2,0\nZZZ,3\nB-2,-1\nA-1,9\nB-2,x\n")
    run_worker(container, clock)
    assert stock_of(container, tenant_id) == {"A-1": 7, "B-2": 0}
    with read_only(container.engine) as conn:
        bindings = {
            r.sku: (r.dirty, r.change_seq)
            for r in conn.execute(
                sa.select(products.c.sku, offer_bindings.c.dirty, offer_bindings.c.change_seq)
                .join(offer_bindings, offer_bindings.c.product_id == products.c.id)
                .where(offer_bindings.c.channel_id == channel.id)
            )
        }
    assert bindings == {"A-1": (True, 2), "B-2": (False, 1)}
    result = json.loads(
        (Path(system.settings["folder"]) / "processed" / "stock-2026-11-25.csv.result.json").read_text()
    )
    assert (result["kind"], result["updated"], result["unchanged"], result["rejected"]) == ("stock", 1, 1, 4)
    assert [(e["line"], e["sku"]) for e in result["errors"]] == [
        (4, "ZZZ"),
        (5, "B-2"),
        (6, "A-1"),
        (7, "B-2"),
    ]
    assert "unknown sku" in result["errors"][0]["error"] and "0 or more" in result["errors"][1]["error"]
    assert "duplicate" in result["errors"][2]["error"] and "integer" in result["errors"][3]["error"]
    # the stored content hash follows the new quantity: re-importing the same values changes nothing
    clock.advance(60)
    drop(system, "catalog-again.csv", CATALOG.replace("EUR,5", "EUR,7"))
    run_worker(container, clock)
    again = json.loads(
        (Path(system.settings["folder"]) / "processed" / "catalog-again.csv.result.json").read_text()
    )
    assert (again["unchanged"], again["updated"]) == (2, 0)


def test_jsonl_stock_file(container, clock, system, tenant_id):
    drop(system, "catalog.jsonl", '{"sku": "A-1", "quantity": 1}\n', age=120)
    run_worker(container, clock)
    clock.advance(60)
    drop(system, "STOCK.ndjson", '{"sku": "A-1", "quantity": 4}\n[1]\n{"sku": "A-1", "qty": 2}\n')
    run_worker(container, clock)
    assert stock_of(container, tenant_id) == {"A-1": 4}
    result = json.loads(
        (Path(system.settings["folder"]) / "processed" / "STOCK.ndjson.result.json").read_text()
    )
    assert [e["line"] for e in result["errors"]] == [2, 3]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("catalog.csv", b"sku,title\nA-1,\xff\xfe broken\n", "UTF-8"),
        ("stock.csv", "sku,quantity,price\nA-1,3,1.00\n", "header"),
        ("stock.csv", b"sku,quantity\nA-1,3\nB-2,\xff\n", "UTF-8"),
        ("products.xlsx", "not a csv", "unsupported file type"),
    ],
)
def test_refused_file_is_rejected_and_changes_nothing(
    container, clock, system, tenant_id, name, content, reason
):
    drop(system, "catalog.csv", CATALOG, age=120)
    run_worker(container, clock)
    clock.advance(60)
    drop(system, name, content)
    run_worker(container, clock)
    assert stock_of(container, tenant_id) == {"A-1": 5, "B-2": 0}
    assert folder(system, "inbox") == []
    assert folder(system, "rejected") == [name, f"{name}.error.txt"]
    assert reason in (Path(system.settings["folder"]) / "rejected" / f"{name}.error.txt").read_text()


def test_unsettled_and_partial_files_wait(container, clock, system, tenant_id):
    drop(system, "catalog.csv", CATALOG, age=0)
    drop(system, "later.csv.tmp", CATALOG)
    run_worker(container, clock)
    assert stock_of(container, tenant_id) == {}
    assert folder(system, "inbox") == ["catalog.csv", "later.csv.tmp"]


def test_files_go_oldest_first_and_names_are_never_overwritten(container, clock, system, tenant_id):
    drop(system, "catalog.csv", CATALOG, age=120)
    drop(system, "stock.csv", "sku,quantity\nA-1,8\n", age=100)
    run_worker(container, clock)
    assert stock_of(container, tenant_id)["A-1"] == 8  # the catalog (older) came first
    clock.advance(60)
    drop(system, "stock.csv", "sku,quantity\nA-1,2\n")
    run_worker(container, clock)
    assert stock_of(container, tenant_id)["A-1"] == 2
    assert folder(system, "processed") == [
        "catalog.csv",
        "catalog.csv.result.json",
        "stock.1.csv",
        "stock.1.csv.result.json",
        "stock.csv",
        "stock.csv.result.json",
    ]


def test_next_scan_is_queued_once_and_a_disabled_system_stops(container, clock, system, now):
    with container.engine.begin() as conn:
        assert not enqueue_scan(conn, system, now=now).created  # coalesced with the first scan
    run_worker(container, clock)
    pending = queued_scans(container, system)
    assert len(pending) == 1
    with container.engine.begin() as conn:
        assert not enqueue_scan(conn, system, now=now).created
    assert len(queued_scans(container, system)) == 1
    with container.engine.begin() as conn:
        set_enabled(conn, system, False)
    clock.advance(120)
    run_worker(container, clock)
    assert queued_scans(container, system) == []


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    from tradelane.security.crypto import generate_key

    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (result.output, result.exception)
        return result

    return run


def test_cli_merchant_add_files_and_scan(cli, engine, tmp_path):
    cli("tenant", "create", "acme")
    target = tmp_path / "drops" / "acme"
    out = json.loads(
        cli("merchant", "add", "files", "--tenant", "acme", "--name", "ftp", "--folder", str(target),
            "--every", "30", "--json").stdout
    )  # fmt: skip
    assert out["kind"] == "files" and out["settings"] == {
        "folder": str(target.resolve()),
        "every_seconds": 30,
    }
    assert sorted(p.name for p in target.iterdir()) == ["inbox", "processed", "rejected"]
    cli(
        "merchant",
        "add",
        "files",
        "--tenant",
        "acme",
        "--name",
        "x",
        "--folder",
        str(target),
        "--every",
        "5",
        code=2,
    )
    scanned = json.loads(
        cli("merchant", "files", "scan", "--tenant", "acme", "--name", "ftp", "--json").stdout
    )
    assert scanned["created"] is False  # the first scan is still pending: one scan per system
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(jobs).where(jobs.c.kind == SCAN_JOB)).scalar()
            == 1
        )
        assert conn.execute(sa.select(merchant_systems.c.kind)).scalars().all() == ["files"]
