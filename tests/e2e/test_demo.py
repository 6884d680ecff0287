"""`tradelane demo --minutes 1` from a clean directory: the demo itself is tested, not just its parts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("TRADELANE_TEST_DB", "sqlite") != "sqlite",
    reason="the demo always runs on its own embedded SQLite store; it is exercised in the SQLite run",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_runs_every_flow_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELANE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "tradelane", "demo", "--minutes", "1", "--port", str(_free_port()), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["orders_placed_on_marketplaces"] >= 5
    assert summary["orders_accepted"] >= 3
    assert summary["orders_imported"] >= 3  # handed to the OMS
    assert summary["orders_quarantined"] >= 1  # unknown SKUs are held, never dropped
    assert summary["shipments_sent"] >= 1  # the OMS shipped and tradelane pushed it back
    assert summary["orders_shipped_on_marketplace"] >= 1  # the marketplace shows SHIPPED
    assert (tmp_path / "var" / "demo" / "tradelane.db").exists()
