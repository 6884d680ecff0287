"""POST /api/v1/catalog/imports: multipart uploads and raw bodies, refused files, tenant scoping."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tradelane.persistence.tables import catalog_imports, products
from tradelane.web.app import create_app
from tradelane.web.problems import PROBLEM_JSON

CSV = b"sku,title,price,currency,quantity\nN-1,New one,12.50,EUR,4\nA-1,Renamed,19.90,EUR,3\nbad,,-1,EUR,1\n"


def _skus(container, tenant_id: int) -> dict[str, str | None]:
    with container.engine.connect() as conn:
        rows = conn.execute(
            sa.select(products.c.sku, products.c.title).where(products.c.tenant_id == tenant_id)
        )
        return {r.sku: r.title for r in rows}


def test_multipart_csv_upload(client: TestClient, world, container):
    response = client.post(
        "/api/v1/catalog/imports",
        headers=world.acme.auth,
        files={"file": ("../../etc/catalog.csv", CSV, "text/csv")},
    )
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["created"], summary["updated"], summary["rejected"]) == (1, 1, 1)
    assert summary["errors"][0]["line"] == 4 and summary["errors"][0]["sku"] == "bad"
    assert summary["errors_truncated"] is False
    assert _skus(container, world.acme.id)["N-1"] == "New one"
    product = client.get("/api/v1/products/N-1", headers=world.acme.auth).json()
    assert product["price"] == "12.5" and product["quantity"] == 4
    with container.engine.connect() as conn:
        record = conn.execute(
            sa.select(catalog_imports).where(catalog_imports.c.id == summary["import_id"])
        ).one()
    assert record.tenant_id == world.acme.id and record.filename == "catalog.csv" and record.format == "csv"
    assert "N-1" not in _skus(container, world.globex.id)  # the other tenant is untouched


def test_raw_body_with_format_or_content_type(client: TestClient, world, container):
    lines = [{"sku": "J-1", "title": "From JSONL", "quantity": 2}, {"sku": "J-2"}]
    jsonl = "\n".join(json.dumps(x) for x in lines).encode()
    by_query = client.post(
        "/api/v1/catalog/imports", params={"format": "jsonl"}, headers=world.acme.auth, content=jsonl
    )
    assert by_query.status_code == 200 and by_query.json()["created"] == 2
    by_type = client.post(
        "/api/v1/catalog/imports",
        headers={**world.acme.auth, "Content-Type": "text/csv; charset=utf-8"},
        content=b"sku,title\nC-1,From CSV\n",
    )
    assert by_type.status_code == 200 and by_type.json()["created"] == 1
    assert {"J-1", "J-2", "C-1"} <= set(_skus(container, world.acme.id))


def _assert_422(response) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    detail: str = response.json()["detail"]
    return detail


def test_refused_files_are_422_and_import_nothing(client: TestClient, world, container):
    before = _skus(container, world.acme.id)
    unknown_format = client.post("/api/v1/catalog/imports", headers=world.acme.auth, content=CSV)
    assert "format" in _assert_422(unknown_format)
    no_sku_column = client.post(
        "/api/v1/catalog/imports", params={"format": "csv"}, headers=world.acme.auth, content=b"title\nx\n"
    )
    assert "sku" in _assert_422(no_sku_column)
    empty = client.post(
        "/api/v1/catalog/imports", params={"format": "csv"}, headers=world.acme.auth, content=b""
    )
    _assert_422(empty)
    no_file_part = client.post(
        "/api/v1/catalog/imports", headers=world.acme.auth, data={"x": "1"}, files={"y": b""}
    )
    assert "file" in _assert_422(no_file_part)
    assert _skus(container, world.acme.id) == before


def test_import_size_limit(container, world):
    with TestClient(create_app(container, max_body_bytes=64, max_import_bytes=4096)) as client:
        big = b"sku\n" + b"".join(b"S-%05d\n" % i for i in range(1000))
        response = client.post(
            "/api/v1/catalog/imports", params={"format": "csv"}, headers=world.acme.auth, content=big
        )
        assert response.status_code == 413
        # The import limit, not the general one, applies to imports.
        small = client.post(
            "/api/v1/catalog/imports",
            params={"format": "csv"},
            headers=world.acme.auth,
            content=b"sku\nS-1\n",
        )
        assert small.status_code == 200
