"""Route configuration: an operation switched off (404, an operator without the module), answering a
fixed status, garbage or a truncated body — lasting until cleared, set programmatically or over HTTP."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tradelane.connectors.mirakl.sandbox import SandboxState


def test_a_route_switched_off_answers_404_until_restored(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.set_route("RT11", "off")
    for _ in range(3):  # lasting, not a one-off fault
        reply = client.get("/api/returns", headers=auth)
        assert reply.status_code == 404 and reply.json()["status"] == 404
    assert client.get("/api/messages", headers=auth).status_code == 200  # other routes untouched
    assert [r.status for r in state.calls("RT11")] == [404, 404, 404]
    state.clear_route("RT11")
    assert client.get("/api/returns", headers=auth).status_code == 200


def test_routes_over_http_status_garbage_truncated(client: TestClient, auth: dict[str, str]) -> None:
    assert client.put("/_sandbox/routes/M01", json={"mode": "status", "status": 503}).status_code == 200
    assert client.get("/api/messages", headers=auth).status_code == 503
    client.put("/_sandbox/routes/M01", json={"mode": "garbage"})
    reply = client.get("/api/messages", headers=auth)
    assert reply.status_code == 200
    with pytest.raises(ValueError):
        json.loads(reply.content)
    client.put("/_sandbox/routes/M01", json={"mode": "truncated"})
    reply = client.get("/api/messages", headers=auth)
    assert reply.status_code == 200 and reply.content.startswith(b"{")
    with pytest.raises(ValueError):
        json.loads(reply.content)
    assert client.delete("/_sandbox/routes").status_code == 204
    assert client.get("/api/messages", headers=auth).json() is not None


def test_a_wrong_key_is_still_401_on_a_route_switched_off(client: TestClient, state: SandboxState) -> None:
    state.set_route("RT11", "off")
    assert client.get("/api/returns", headers={"Authorization": "wrong"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"mode": "sometimes"}, "unknown route mode"),
        ({"mode": "status"}, "needs a 4xx/5xx status"),
        ({"mode": "status", "status": 200}, "needs a 4xx/5xx status"),
        ({"mode": "off", "status": 500}, "always answers 404"),
        ({}, "mode"),
    ],
)
def test_bad_route_configuration_is_a_clear_400(client: TestClient, body: dict, problem: str) -> None:
    reply = client.put("/_sandbox/routes/RT11", json=body)
    assert reply.status_code == 400 and problem in reply.json()["message"]


def test_unknown_operation_is_refused(client: TestClient) -> None:
    reply = client.put("/_sandbox/routes/XX99", json={"mode": "off"})
    assert reply.status_code == 400 and "unknown operation" in reply.json()["message"]
