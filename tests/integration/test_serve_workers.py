"""``tradelane serve --workers N``: N server processes share the port under one supervisor, every
acknowledged webhook is stored, and SIGTERM stops them all; the default number suits the database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import inbound_events
from tradelane.security.crypto import generate_key
from tradelane.services.tenants import create_tenant
from tradelane.web.app import MAX_DEFAULT_WORKERS, default_workers

ROOT = Path(__file__).resolve().parents[2]


def test_default_workers_one_per_cpu_on_postgresql_one_on_sqlite():
    sqlite_engine = make_engine("sqlite://")
    pg_engine = make_engine("postgresql://nobody@127.0.0.1:1/none")  # never connected
    try:
        assert default_workers(sqlite_engine, cpu_count=8) == 1
        assert default_workers(pg_engine, cpu_count=1) == 1
        assert default_workers(pg_engine, cpu_count=2) == 2
        assert default_workers(pg_engine, cpu_count=64) == MAX_DEFAULT_WORKERS
        assert 1 <= default_workers(pg_engine) <= MAX_DEFAULT_WORKERS
    finally:
        sqlite_engine.dispose()
        pg_engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _post(port: int, token: str, event_id: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/webhooks/shop",
        data=json.dumps({"n": event_id}).encode(),
        headers={"Authorization": f"Bearer {token}", "X-Event-Id": event_id},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


def test_two_server_processes_share_the_port_and_stop_on_sigterm(db_url: str, now: datetime):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        _, token = create_tenant(conn, "acme", now=now)
    port = _free_port()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        TRADELANE_DATABASE_URL=db_url,
        TRADELANE_SECRET_KEYS=generate_key(),
        TRADELANE_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "tradelane", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        workers: list[int] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            # Spawned server processes (multiprocessing may add a resource tracker beside them).
            workers = [p for p in _children(proc.pid) if "spawn_main" in _cmdline(p)]
            if len(workers) == 2 and _answers(port):
                break
            time.sleep(0.2)
        assert len(workers) == 2 and _answers(port)
        statuses = [_post(port, token, f"E-{i}") for i in range(20)]
        assert statuses == [202] * 20
        with engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(inbound_events)).scalar_one()
        assert stored == 20
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not [p for p in workers if Path(f"/proc/{p}").exists()]  # stopped, and reaped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        engine.dispose()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def test_workers_must_be_positive():
    result = subprocess.run(
        [sys.executable, "-m", "tradelane", "serve", "--workers", "0"],
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2 and b"--workers" in result.stderr
