"""Inbound webhooks on PostgreSQL, open loop at fixed rates: the signed merchant webhook (shipment
updates, ``POST /api/v1/merchant/{name}/webhook``) and the generic inbound webhook (``POST
/api/v1/webhooks/{source}``), each against a raw baseline measured in the same run:

* ``tradelane``: ``tradelane serve`` itself, as an operator starts it (its default number of server
  processes, one per CPU on PostgreSQL, unless ``--workers`` says otherwise), configured through the
  environment;
* ``raw``: a minimal ASGI app under the same uvicorn, with the same parser and event loop (``--http``,
  ``--loop``; default httptools and uvloop, as ``tradelane serve``), in its own process, verifying the same
  ``X-Tradelane-Signature`` HMAC (or the same bearer token, by its SHA-256) and inserting the raw body
  and headers with ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` through a small psycopg pool.

    python bench/bench_webhooks.py [--rates 200,500] [--seconds 10] [--workers N] [--pg-url URL]
        [--http httptools|h11] [--loop uvloop|asyncio]

The load generator runs in its own process: request *i* is due at ``t0 + i / rate`` whatever happened
to the earlier ones (open loop), on its own loopback connection, and its latency is measured from when
it was due, so a server that falls behind is charged for the queue it builds. A request that has no
answer after ``--timeout`` seconds counts as a timeout. Each (rate, endpoint) runs the raw side then
tradelane back to back, so both see the same background load. Afterwards every acknowledged event must
be in ``inbound_events`` (and, for the merchant webhook, have its apply job): nothing accepted is lost.

Prints one JSON object: per rate and endpoint, p50/p99/max latency (ms), timeouts and statuses for
both sides, the server's CPU time per answered request (every process of the server, from ``/proc``:
on a busy box this is the figure the other loads do not distort), ``p99_ratio`` and
``cpu_per_request_ratio`` (tradelane / raw). The goal is tradelane p99 <= 20 ms at 500 req/s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = os.environ.get("TRADELANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-webhook-signing-secret"
MERCHANT = "oms"
SOURCE = "bench"

RAW_APP = r"""
import asyncio, hashlib, hmac, json, sys, time
import psycopg, uvicorn

URL, PORT, SECRET, TOKEN_SHA, HTTP, LOOP = (
    sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4], sys.argv[5], sys.argv[6])
POOL_SIZE = 5
pool: asyncio.Queue | None = None
INSERT = (
    "INSERT INTO raw_events (source, external_id, headers, body, received_at) "
    "VALUES (%s, %s, %s, %s, now()) ON CONFLICT DO NOTHING RETURNING id"
)

pool_lock = asyncio.Lock()

async def _pool() -> asyncio.Queue:
    global pool
    async with pool_lock:  # one pool, however many requests arrive before it exists
        if pool is None:
            queue = asyncio.Queue()
            for _ in range(POOL_SIZE):
                queue.put_nowait(await psycopg.AsyncConnection.connect(URL, autocommit=True))
            pool = queue
    return pool

def _verify(header: str, body: bytes) -> str | None:
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        t, v1 = fields["t"], fields["v1"]
    except Exception:
        return None
    if abs(time.time() - int(t)) > 300:
        return None
    digest = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return v1 if hmac.compare_digest(digest, v1) else None

async def _send(send, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    if scope["path"] == "/merchant":
        external_id = _verify(headers.get("x-tradelane-signature", ""), body)
        source = "merchant"
    else:
        auth = headers.pop("authorization", "")
        ok = auth.startswith("Bearer ") and hmac.compare_digest(
            hashlib.sha256(auth[7:].encode()).hexdigest(), TOKEN_SHA)
        external_id = headers.get("x-event-id") if ok else None
        source = "generic"
    if external_id is None:
        await _send(send, 401, {"error": "unauthorized"})
        return
    queue = await _pool()
    conn = await queue.get()
    try:
        cur = await conn.execute(INSERT, (source, external_id, json.dumps(headers), body))
        row = await cur.fetchone()
    finally:
        queue.put_nowait(conn)
    if row is None:
        await _send(send, 401, {"error": "replayed"})
    else:
        await _send(send, 202, {"event_id": row[0]})

uvicorn.run(app, host="127.0.0.1", port=PORT, http=HTTP, loop=LOOP, access_log=False, log_level="warning")
"""

LOAD_GENERATOR = r"""
import asyncio, hashlib, hmac, json, sys, time

spec = json.loads(sys.argv[1])
RATE, SECONDS, TIMEOUT = spec["rate"], spec["seconds"], spec["timeout"]
PORT, PATH, KIND, SECRET, TOKEN, TAG = (
    spec["port"], spec["path"], spec["kind"], spec["secret"].encode(), spec["token"], spec["tag"])

def request(i: int) -> bytes:
    body = json.dumps({"type": "shipment", "order": f"shop:{TAG}-{i}", "id": f"{TAG}-{i}",
                       "carrier": "UPS", "tracking_number": f"1Z{i:010d}"}).encode()
    headers = [f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{PORT}", "Content-Type: application/json",
               f"Content-Length: {len(body)}", "Connection: close"]
    if KIND == "merchant":
        t = str(int(time.time()))
        digest = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers.append(f"X-Tradelane-Signature: t={t},v1={digest}")
    else:
        headers += [f"Authorization: Bearer {TOKEN}", f"X-Event-Id: {TAG}-{i}"]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body

async def one(i: int, due: float, results: list) -> None:
    try:
        async with asyncio.timeout(TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
            writer.write(request(i))
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()
            writer.close()
        status = int(status_line.split()[1])
        results.append((status, time.perf_counter() - due))
    except TimeoutError:
        results.append(("timeout", TIMEOUT))
    except Exception as exc:
        results.append((type(exc).__name__, time.perf_counter() - due))

async def main() -> None:
    results: list = []
    tasks = []
    total = int(RATE * SECONDS)
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        due = t0 + i / RATE
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due, results)))
    await asyncio.gather(*tasks)
    print(json.dumps({"sent": total, "results": results}))

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _database(admin_url: str) -> tuple[str, str]:
    from tradelane.persistence.db import normalize_url

    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"tradelane_bench_wh_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.engine.make_url(normalize_url(admin_url)).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop(admin_url: str, name: str) -> None:
    from tradelane.persistence.db import normalize_url

    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _start(
    command: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), **(env or {}))
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-3000:]}")


def _start_tradelane(
    url: str, key: str, port: int, log: Path, workers: int | None, http: str, loop: str
) -> subprocess.Popen[bytes]:
    """``tradelane serve`` exactly as an operator runs it (its default number of server processes unless
    ``workers`` is given), configured through the environment; ``--http``/``--loop`` as given (the
    defaults are httptools and uvloop)."""
    env = {
        "TRADELANE_DATABASE_URL": url,
        "TRADELANE_SECRET_KEYS": key,
        "TRADELANE_LOG_LEVEL": "WARNING",
    }
    if workers is not None:
        env["TRADELANE_API_WORKERS"] = str(workers)
    command = [sys.executable, "-m", "tradelane", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--http", http, "--loop", loop]
    proc = _start(command, port, log, env)
    if workers is None or workers > 1:
        time.sleep(3)  # the port answers once the first process listens; let every process start
    return proc


def _warm(port: int, path: str, headers: dict[str, str]) -> None:
    """A few requests so both servers have their connections and caches before the clock starts."""
    for _ in range(5):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}", headers=headers)
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except Exception:  # 401/422 are fine: the point is the warm-up
            pass


def _generate(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_GENERATOR, json.dumps(spec)],
        capture_output=True,
        env=env,
        timeout=spec["seconds"] + spec["timeout"] + 60,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode()[-3000:])
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` and all its descendants so far (Linux ``/proc``;
    None elsewhere): ``tradelane serve`` may run several server processes under one supervisor."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent pid, CPU seconds)
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    if pid not in stats:
        return None
    total, tree = 0.0, {pid}
    changed = True
    while changed:
        changed = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                changed = True
    for member in tree:
        total += stats[member][1]
    return total


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(data: dict[str, Any], accepted_status: int) -> dict[str, Any]:
    results = data["results"]
    latencies = sorted(lat for status, lat in results)
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "sent": data["sent"],
        "accepted": statuses.get(str(accepted_status), 0),
        "timeouts": statuses.get("timeout", 0),
        "statuses": statuses,
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 2) if numerator and denominator else None


def run(
    rates: tuple[int, ...] = (200, 500),
    seconds: float = 10.0,
    pg_url: str | None = None,
    timeout: float = 10.0,
    endpoints: tuple[str, ...] = ("merchant", "generic"),
    workers: int | None = None,
    http: str = "httptools",
    loop: str = "uvloop",
) -> dict[str, Any]:
    from tradelane.persistence import migrate
    from tradelane.persistence.db import make_engine
    from tradelane.persistence.tables import inbound_events, jobs
    from tradelane.security.crypto import KeyRing, generate_key
    from tradelane.services.merchant_systems import add_http_system
    from tradelane.services.merchant_webhooks import APPLY_KIND
    from tradelane.services.tenants import create_tenant

    admin_url = pg_url or DEFAULT_PG
    name, url = _database(admin_url)
    procs: list[subprocess.Popen[bytes]] = []
    logs = Path(tempfile.mkdtemp(prefix="bench_webhooks_"))
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        key = generate_key()
        now = datetime.now(UTC)
        with engine.begin() as conn:
            tenant, token = create_tenant(conn, "bench", now=now)
            add_http_system(
                conn,
                tenant_id=tenant.id,
                name=MERCHANT,
                url="http://127.0.0.1:9/orders",
                secret=SECRET,
                keyring=KeyRing([key]),
                now=now,
                timeout_seconds=5,
            )
            conn.exec_driver_sql(
                "CREATE TABLE raw_events (id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, "
                "external_id TEXT NOT NULL, headers JSONB NOT NULL, body BYTEA NOT NULL, "
                "received_at TIMESTAMPTZ NOT NULL, UNIQUE (source, external_id))"
            )
        import hashlib

        psycopg_url = url.replace("postgresql+psycopg://", "postgresql://")
        raw_port, app_port = _free_port(), _free_port()
        token_sha = hashlib.sha256(token.encode()).hexdigest()
        raw_command = [
            sys.executable,
            "-c",
            RAW_APP,
            psycopg_url,
            str(raw_port),
            SECRET,
            token_sha,
            http,
            loop,
        ]
        procs.append(_start(raw_command, raw_port, logs / "raw.log"))
        procs.append(_start_tradelane(url, key, app_port, logs / "app.log", workers, http, loop))
        pids = {"raw": procs[0].pid, "tradelane": procs[1].pid}
        paths = {
            ("raw", "merchant"): (raw_port, "/merchant"),
            ("raw", "generic"): (raw_port, "/generic"),
            ("tradelane", "merchant"): (app_port, f"/api/v1/merchant/{MERCHANT}/webhook"),
            ("tradelane", "generic"): (app_port, f"/api/v1/webhooks/{SOURCE}"),
        }
        warm_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for port, path in paths.values():
            if path.startswith("/api/v1/webhooks/"):
                path = "/api/v1/webhooks/warm-up"  # a source of its own: not counted below
            _warm(port, path, warm_headers)

        report: dict[str, Any] = {
            "benchmark": "webhooks_postgres_open_loop",
            "seconds_per_run": seconds,
            "timeout_s": timeout,
            "goal": "tradelane p99 <= 20 ms at 500 req/s",
            "tradelane_serve_workers": workers if workers is not None else "default",
            "uvicorn_http_and_loop_both_sides": f"{http}+{loop}",
        }
        accepted = {"merchant": 0, "generic": 0}
        for rate in rates:
            for endpoint in endpoints:
                sides = {}
                for side in ("raw", "tradelane"):
                    port, path = paths[(side, endpoint)]
                    spec = {
                        "rate": rate,
                        "seconds": seconds,
                        "timeout": timeout,
                        "port": port,
                        "path": path,
                        "kind": endpoint,
                        "secret": SECRET,
                        "token": token,
                        "tag": f"{side}-{endpoint}-{rate}",
                    }
                    cpu_before = _cpu_seconds(pids[side])
                    sides[side] = _summary(_generate(spec), 202)
                    cpu_after = _cpu_seconds(pids[side])
                    answered = sides[side]["sent"] - sides[side]["timeouts"]
                    if cpu_before is not None and cpu_after is not None and answered:
                        # Server CPU per answered request: what the load of the box does not change.
                        cpu_ms = (cpu_after - cpu_before) * 1000 / answered
                        sides[side]["server_cpu_ms_per_request"] = round(cpu_ms, 3)
                    if side == "tradelane":
                        accepted[endpoint] += sides[side]["accepted"]
                raw_p99, app_p99 = sides["raw"]["p99_ms"], sides["tradelane"]["p99_ms"]
                report[f"{endpoint}_{rate}_rps"] = {
                    "baseline_raw_asgi": sides["raw"],
                    "tradelane": sides["tradelane"],
                    "p99_ratio": round(app_p99 / raw_p99, 2) if raw_p99 else None,
                    "cpu_per_request_ratio": _ratio(
                        sides["tradelane"].get("server_cpu_ms_per_request"),
                        sides["raw"].get("server_cpu_ms_per_request"),
                    ),
                    "meets_goal_p99_20ms": app_p99 <= 20.0,
                }
        with engine.connect() as conn:
            stored = {
                "merchant": conn.execute(
                    sa.select(sa.func.count()).where(inbound_events.c.source == f"merchant:{MERCHANT}")
                ).scalar_one(),
                "generic": conn.execute(
                    sa.select(sa.func.count()).where(inbound_events.c.source == SOURCE)
                ).scalar_one(),
            }
            apply_jobs = conn.execute(
                sa.select(sa.func.count()).where(jobs.c.kind == APPLY_KIND)
            ).scalar_one()
        report["durability"] = {
            "acknowledged": accepted,
            "stored": stored,
            "merchant_apply_jobs": apply_jobs,
            "every_acknowledged_event_stored": all(stored[k] >= accepted[k] for k in accepted),
        }
        engine.dispose()
        return report
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        _drop(admin_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,500", help="comma-separated requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each run")
    parser.add_argument("--timeout", type=float, default=10.0, help="a request unanswered after this is lost")
    parser.add_argument("--endpoints", default="merchant,generic")
    parser.add_argument("--pg-url", default=None)
    parser.add_argument(
        "--workers", type=int, default=None, help="tradelane serve --workers (default: its own default)"
    )
    parser.add_argument("--http", default="httptools", help="uvicorn's parser, both sides: httptools or h11")
    parser.add_argument("--loop", default="uvloop", help="the event loop, both sides: uvloop or asyncio")
    args = parser.parse_args()
    rates = tuple(int(r) for r in args.rates.split(","))
    endpoints = tuple(args.endpoints.split(","))
    report = run(
        rates, args.seconds, args.pg_url, args.timeout, endpoints, args.workers, args.http, args.loop
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
