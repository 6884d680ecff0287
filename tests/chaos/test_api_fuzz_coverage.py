"""The API fuzzing (``tests/integration/api/test_api_schemathesis.py``) reaches every route and fails on
any 5xx: schemathesis generates cases from the OpenAPI document only, so every ``/api`` route of the app
must be in it, and the test must keep schemathesis' ``not_a_server_error`` check."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

import tradelane.web.api as api_package
from tradelane.bootstrap import Container, build
from tradelane.config import Settings
from tradelane.security.crypto import generate_key
from tradelane.web.app import create_app

SCHEMATHESIS_TEST = Path(__file__).resolve().parents[1] / "integration" / "api" / "test_api_schemathesis.py"


@pytest.fixture
def container(db_url: str) -> Iterator[Container]:
    app_container = build(Settings(database_url=db_url, secret_keys=generate_key()), configure_logs=False)
    yield app_container
    app_container.close()


def _api_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of every router module under :mod:`tradelane.web.api` (each
    router carries its full ``/api/...`` prefix)."""
    found: set[tuple[str, str]] = set()
    for info in pkgutil.iter_modules(api_package.__path__):
        module = importlib.import_module(f"{api_package.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if not isinstance(router, APIRouter):
            continue
        for route in router.routes:
            # A router nested in another one (the merchant webhook's, inside Order Health's) has no
            # /api prefix of its own; its full path is checked by name below.
            if isinstance(route, APIRoute) and route.path.startswith("/api/"):
                path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {sku:path} is {sku} in OpenAPI
                found |= {(method, path) for method in route.methods if method != "HEAD"}
    return found


def test_every_api_route_is_in_the_openapi_document_schemathesis_fuzzes(container: Container) -> None:
    documented = {
        (method.upper(), path)
        for path, item in create_app(container).openapi()["paths"].items()
        for method in item
    }
    routes = _api_routes()
    assert len(routes) > 20, routes
    routes.add(("POST", "/api/v1/merchant/{name}/webhook"))
    assert routes - documented == set(), "routes schemathesis never calls"


def test_the_schemathesis_test_checks_every_response_for_5xx() -> None:
    tree = ast.parse(SCHEMATHESIS_TEST.read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", "") in {"call_and_validate", "validate_response"}
    ]
    assert calls, "the schemathesis test no longer validates responses"
    for call in calls:
        keywords = {k.arg: k.value for k in call.keywords}
        # No explicit ``checks=`` (which would replace the default ALL_CHECKS), and no exclusion of
        # not_a_server_error.
        assert "checks" not in keywords
        excluded = ast.unparse(keywords["excluded_checks"]) if "excluded_checks" in keywords else ""
        assert "not_a_server_error" not in excluded
    from schemathesis.checks import ALL_CHECKS, not_a_server_error

    assert not_a_server_error in ALL_CHECKS
