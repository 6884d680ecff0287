"""/healthz, /readyz, /metrics and /openapi.json."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tradelane.bootstrap import Container
from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import jobs
from tradelane.web.app import create_app, make_server
from tradelane.web.ops import head_revisions
from tradelane.web.problems import PROBLEM_JSON


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _sample(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _container_on(container: Container, engine: sa.engine.Engine) -> Container:
    return Container(
        settings=container.settings, engine=engine, keyring=container.keyring, registry=container.registry
    )


def test_healthz(client: TestClient):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_when_schema_is_at_head(client: TestClient):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and body["schema_revision"] == next(iter(head_revisions()))
    assert body["workers"] == {
        "live": 0,
        "names": [],
        "jobs_due": 0,
        "oldest_due_job_age_seconds": 0.0,
        "stalled": False,
    }


def test_readyz_is_503_on_an_unmigrated_or_outdated_database(container, tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with TestClient(create_app(_container_on(container, engine))) as client:
            response = client.get("/readyz")
            assert response.status_code == 503 and response.headers["content-type"].startswith(PROBLEM_JSON)
            assert "tradelane db upgrade" in response.json()["detail"]
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
                conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('0000_older')")
            response = client.get("/readyz")
            assert response.status_code == 503 and "0000_older" in response.json()["detail"]
            assert client.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        engine.dispose()


def test_readyz_is_503_when_the_database_is_unreachable(container, tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    try:
        with TestClient(create_app(_container_on(container, engine))) as client:
            response = client.get("/readyz")
            assert response.status_code == 503 and response.json()["detail"] == "the database is unreachable"
            metrics = _samples(client.get("/metrics").text)  # the scrape survives a dead database
            assert _sample(metrics, "tradelane_database_up") == 0
    finally:
        engine.dispose()


def test_metrics_count_requests_by_route_template(client: TestClient, world):
    for job_id in (world.acme.dead_job, world.acme.queued_job):
        assert client.get(f"/api/v1/jobs/{job_id}", headers=world.acme.auth).status_code == 200
    client.get("/api/v1/jobs/123456", headers=world.acme.auth)
    client.get("/api/v1/jobs")  # 401
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    route = "/api/v1/jobs/{job_id}"
    assert _sample(samples, "tradelane_http_requests_total", method="GET", route=route, status="200") == 2
    assert _sample(samples, "tradelane_http_requests_total", method="GET", route=route, status="404") == 1
    assert (
        _sample(samples, "tradelane_http_requests_total", method="GET", route="/api/v1/jobs", status="401")
        == 1
    )
    assert (
        _sample(samples, "tradelane_http_requests_total", method="GET", route="<unmatched>", status="404")
        == 2
    )
    assert _sample(samples, "tradelane_http_request_duration_seconds_count", method="GET", route=route) == 3
    assert not any("/no/such" in str(labels) for _, labels in samples)


def test_job_gauges_are_computed_at_scrape_time(client: TestClient, world, container):
    samples = _samples(client.get("/metrics").text)
    assert _sample(samples, "tradelane_jobs", state="dead") == 2  # one per tenant
    assert _sample(samples, "tradelane_jobs", state="queued") == 2
    assert _sample(samples, "tradelane_jobs", state="running") == 0
    assert _sample(samples, "tradelane_database_up") == 1
    with container.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == world.acme.dead_job).values(state="succeeded"))
    samples = _samples(client.get("/metrics").text)
    assert _sample(samples, "tradelane_jobs", state="dead") == 1
    assert _sample(samples, "tradelane_jobs", state="succeeded") == 1


def test_two_apps_in_one_process_keep_separate_metrics(container, client: TestClient):
    client.get("/healthz")
    client.get("/healthz")
    with TestClient(create_app(container)) as other:
        other.get("/healthz")
        mine = _samples(client.get("/metrics").text)
        theirs = _samples(other.get("/metrics").text)
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert _sample(mine, "tradelane_http_requests_total", **labels) == 2
    assert _sample(theirs, "tradelane_http_requests_total", **labels) == 1


def test_openapi_documents_problems_and_bearer_auth(client: TestClient):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if path.startswith("/api/v1"):
                assert set(responses["401"]["content"]) == {PROBLEM_JSON}, (method, path)
            if "422" in responses:
                assert set(responses["422"]["content"]) == {PROBLEM_JSON}, (method, path)


def test_make_server_serves_over_http_and_stops(container, world):
    server = make_server(container, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
        tenant = httpx.get(f"{base}/api/v1/tenant", headers=world.acme.auth, timeout=5)
        assert tenant.json()["name"] == "acme" and tenant.headers["x-request-id"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()
