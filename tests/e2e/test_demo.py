"""`tradelane demo --minutes 1` from a clean directory: the demo itself is tested, not just its parts —
both Mirakl shops and the Amazon channel, and the dashboard showing the Amazon channel while it runs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("TRADELANE_TEST_DB", "sqlite") != "sqlite",
    reason="the demo always runs on its own embedded SQLite store; it is exercised in the SQLite run",
)

NONCE_RE = re.compile(r'name="nonce" value="([^"]+)"')
TOKEN_RE = re.compile(r"demo token (\S+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dashboard(port: int, token: str) -> dict[str, str]:
    """The channels, overview and order-health pages, logged in with the demo's token (the dashboard's
    cookies are Secure: over the demo's plain http they are carried by hand, as a proxy would)."""
    jar: dict[str, str] = {}

    def call(client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
        cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        response = client.request(method, path, headers={"Cookie": cookie}, **kwargs)  # type: ignore[arg-type]
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]
        return response

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
        nonce = NONCE_RE.search(call(client, "GET", "/dashboard/login").text)
        assert nonce is not None
        login = call(
            client,
            "POST",
            "/dashboard/login",
            data={"token": token, "nonce": nonce.group(1), "next": "/dashboard"},
        )
        assert login.status_code == 303, login.text
        pages = {}
        for path in ("/dashboard/channels", "/dashboard", "/dashboard/order-health"):
            page = call(client, "GET", path)
            assert page.status_code == 200, (path, page.text[:2000])
            pages[path] = page.text
        return pages


def test_demo_runs_every_flow_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELANE_")}
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradelane", "demo", "--minutes", "1", "--port", str(port), "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    err_lines: list[str] = []
    reader = threading.Thread(target=lambda: err_lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 200
        token = None
        while token is None and time.monotonic() < deadline and proc.poll() is None:
            token = next((m.group(1) for line in list(err_lines) if (m := TOKEN_RE.search(line))), None)
            time.sleep(0.2)
        assert token is not None, "".join(err_lines)[-4000:]
        time.sleep(30)  # orders flow on every channel meanwhile
        pages = _dashboard(port, token)
        stdout, _ = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert proc.returncode == 0, "".join(err_lines)[-4000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["orders_placed_on_marketplaces"] >= 5
    assert summary["orders_accepted"] >= 3
    assert summary["orders_imported"] >= 3  # handed to the OMS
    assert summary["orders_quarantined"] >= 1  # unknown SKUs are held, never dropped
    assert summary["shipments_sent"] >= 1  # the OMS shipped and tradelane pushed it back
    assert summary["orders_shipped_on_marketplace"] >= 1  # the marketplace shows SHIPPED
    assert (tmp_path / "var" / "demo" / "tradelane.db").exists()

    # Amazon: the sample catalog listed through a feed, Pending orders imported once paid, shipped back.
    assert summary["amazon_offers_published"] >= 100
    assert summary["amazon_orders_placed"] >= 2
    assert 1 <= summary["amazon_orders_seen"] <= summary["amazon_orders_paid"]
    assert summary["amazon_orders_shipped_on_marketplace"] >= 1

    channels = pages["/dashboard/channels"]
    for name in ("marketplace-fr", "marketplace-uk", "amazon-de"):
        assert name in channels
    amazon = channels[channels.index("amazon-de") :]
    assert "<code>amazon:searchOrders</code>" in amazon  # its budget, with the limit Amazon declares
    row = amazon[amazon.index("<code>amazon:searchOrders</code>") :].split("</tr>")[0]
    assert "unknown" not in row
    assert "amazon-de" in pages["/dashboard"] and "amazon-de" in pages["/dashboard/order-health"]
