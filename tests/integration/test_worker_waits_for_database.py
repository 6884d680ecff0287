"""A store that cannot be reached at start-up: one-shot commands say so in one line; a `tradelane worker`
waits for it with backoff and then runs its jobs (a worker started before its database, or during a
database restart, must not exit and leave orders unmoved)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from test_worker_processes import SHARED_KEY, _effects, _enqueue_probes, _env, _worker

from helpers import make_tenant


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Forwarder:
    """A TCP forwarder 127.0.0.1:``port`` -> ``target``: the database "comes up" when it starts."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self._server: socket.socket | None = None  # nothing listens before start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._thread.join(timeout=5)
            self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def test_a_command_on_an_unreachable_store_says_so_in_one_line(tmp_path):
    env = _env(f"postgresql://tl:s3cr3t@127.0.0.1:{_free_port()}/none")
    done = subprocess.run(
        [sys.executable, "-m", "tradelane", "tenant", "list"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "cannot open the database at postgresql+psycopg://tl:***@127.0.0.1:" in done.stderr
    assert "s3cr3t" not in done.stderr


@pytest.mark.pg_only
def test_a_worker_started_before_its_database_waits_then_runs_every_job_once(engine, db_url, now):
    tenant, _ = make_tenant(engine, "acme", now)
    ids = _enqueue_probes(engine, tenant.id, 5, sleep=0)
    url = sa.engine.make_url(db_url)
    port = _free_port()
    unreachable = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    worker = _worker(unreachable, "--burst", TRADELANE_SECRET_KEYS=SHARED_KEY)
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.decode() for line in worker.stderr or []), daemon=True
    )
    reader.start()
    forwarder = _Forwarder(port, (url.host or "127.0.0.1", url.port or 5432))
    try:
        deadline = time.monotonic() + 60
        while sum("waiting for the database" in line for line in lines) < 2:  # it waits, and tries again
            assert worker.poll() is None, "".join(lines)[-3000:]
            assert time.monotonic() < deadline, "the worker never said it was waiting"
            time.sleep(0.1)
        forwarder.start()  # the database "comes up"
        worker.wait(timeout=90)
        reader.join(timeout=5)
        assert worker.returncode == 0, "".join(lines)[-3000:]
        assert _effects(engine) == dict.fromkeys(ids, 1)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        forwarder.close()
