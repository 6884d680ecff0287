"""``/docs`` works on a machine without internet: the Swagger UI page references no external host, and
every script, stylesheet and icon it loads is served by the app itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from fastapi.testclient import TestClient

from tradelane.web.app import DOCS_ASSETS_PATH


class _Refs(HTMLParser):
    """Every URL an HTML page makes the browser load: src/href attributes and JS string URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _page(client: TestClient) -> _Refs:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    refs = _Refs()
    refs.feed(response.text)
    return refs


def test_docs_page_references_no_external_host(client: TestClient) -> None:
    response = client.get("/docs")
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", response.text, re.IGNORECASE), (
        "the /docs page loads something from another host"
    )
    refs = _page(client)
    assert refs.urls, "the page should load its assets"
    for url in refs.urls:
        assert not urlsplit(url).netloc, url


def test_every_docs_asset_is_served_by_the_app(client: TestClient) -> None:
    refs = _page(client)
    kinds = {urlsplit(url).path.rsplit(".", 1)[-1] for url in refs.urls}
    assert {"js", "css"} <= kinds, refs.urls
    for url in refs.urls:
        path = urlsplit(urljoin("http://testserver/docs", url)).path
        assert path.startswith(DOCS_ASSETS_PATH + "/"), path
        asset = client.get(path)
        assert asset.status_code == 200, path
        assert len(asset.content) > 100, path
    bundle = next(u for u in refs.urls if u.endswith("swagger-ui-bundle.js"))
    assert b"SwaggerUIBundle" in client.get(bundle).content
    # The page points Swagger UI at our own OpenAPI document, which is served too.
    assert any("'/openapi.json'" in s or '"/openapi.json"' in s for s in refs.scripts)
    assert client.get("/openapi.json").status_code == 200


def test_swagger_ui_renders_openapi_31(client: TestClient) -> None:
    """FastAPI publishes OpenAPI 3.1, which Swagger UI renders only from version 5 on (4.x shows
    "Unable to render this definition"): the bundled Swagger UI must be 5 or later."""
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    bundle = client.get(f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js").text
    found = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert found, "the Swagger UI bundle does not state its version"
    assert int(found.group(1)) >= 5, found.group(0)
