"""Shipping labels: HTML rendered to PDF by headless Chromium (checked by rendering the PDF to pixels),
no network or local-file access while rendering, PDF validation, storage, and OR74 delivery to the
Mirakl sandbox."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pypdfium2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mirakl_world import SHOP_ID, World, build_world
from order_updates_support import make_order, tiny_pdf
from tradelane.domain.labels import (
    LabelError,
    LabelFormat,
    check_offline,
    decode_base64,
    harden_html,
    offline_problems,
    validate_pdf,
)
from tradelane.domain.order_updates import UpdateStatus
from tradelane.persistence.tables import exchanges, order_documents
from tradelane.services import order_updates as updates
from tradelane.services.labels import (
    ChromiumRenderer,
    PreparedLabel,
    RendererUnavailable,
    get_document,
    prepare_label,
    store_label,
)
from tradelane.services.orders import list_orders
from tradelane.sync import jobs as jobstore

CHROMIUM = "/usr/bin/chromium"
F = TypeVar("F", bound=Callable[..., Any])


def needs_chromium(test: F) -> F:
    """A test that drives headless Chromium (marker ``browser``; skipped where it is not installed)."""
    skip = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed")
    marked: F = pytest.mark.browser(skip(test))
    return marked


LABEL_HTML = """<!doctype html>
<html><head><style>
  body { font-family: sans-serif; margin: 20mm; }
  .box { width: 60mm; height: 30mm; background: #000; }
</style></head>
<body>
  <h1>SHIP TO ADA LOVELACE</h1>
  <p>Tracking LABEL-4711</p>
  <div class="box"></div>
  <img alt="dot" src="data:image/svg+xml;base64,{DOT}">
</body></html>
""".replace(
    "{DOT}", base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>').decode()
)


def page_stats(pdf: bytes) -> tuple[int, str]:
    """(dark pixels on page 1 rendered at 50 dpi, the text of every page)."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        page = document[0]
        bitmap = page.render(scale=50 / 72)
        pixels = bytes(bitmap.buffer)
        step = bitmap.n_channels
        dark = sum(1 for i in range(0, len(pixels) - step + 1, step) if min(pixels[i : i + 3]) < 128)
        text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
        return dark, text
    finally:
        document.close()


@pytest.fixture(scope="module")
def renderer() -> ChromiumRenderer:
    return ChromiumRenderer(CHROMIUM, timeout=60)


@pytest.fixture(scope="module")
def rendered(renderer: ChromiumRenderer) -> PreparedLabel:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed")
    return prepare_label(LABEL_HTML.encode(), LabelFormat.HTML, renderer=renderer)


# --- rendering ------------------------------------------------------------------------------------


@needs_chromium
def test_html_label_renders_to_a_pdf_that_is_not_blank(rendered: PreparedLabel):
    validate_pdf(rendered.pdf)
    assert rendered.source_format is LabelFormat.HTML
    dark, text = page_stats(rendered.pdf)
    assert dark > 500  # the black box alone is ~60 × 30 mm
    assert "SHIP TO ADA LOVELACE" in text and "LABEL-4711" in text
    assert "file:" not in text and "label.html" not in text  # no header/footer with the temp path


def test_blank_pdf_is_told_apart_by_the_pixel_check():
    dark, text = page_stats(tiny_pdf(""))
    assert dark == 0 and text.strip() == ""
    dark, text = page_stats(tiny_pdf("hello"))
    assert dark > 0 and "hello" in text


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"LEAKED-FROM-NETWORK")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_remote_references_are_refused_with_a_clear_error(local_server):
    url, hits = local_server
    html = f'<html><body><img src="{url}/pixel.png"><p>x</p></body></html>'
    with pytest.raises(LabelError, match="rendered offline") as err:
        prepare_label(html.encode(), LabelFormat.HTML, renderer=ChromiumRenderer("/nonexistent"))
    assert f"{url}/pixel.png" in str(err.value)
    assert hits == []


@needs_chromium
def test_renderer_itself_fetches_nothing_and_reads_no_local_file(renderer, local_server, tmp_path: Path):
    """Even HTML that slipped past the check cannot reach the network or other local files."""
    url, hits = local_server
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    html = f"""<!doctype html><html><head>
      <link rel="stylesheet" href="{url}/style.css">
      <style>@import url("{url}/import.css"); body {{ background: url({url}/bg.png); }}</style>
    </head><body>
      <p>VISIBLE-TEXT</p>
      <img src="{url}/img.png"><img src="http://localhost:{url.rsplit(":", 1)[1]}/by-name.png">
      <iframe src="{secret.as_uri()}"></iframe><iframe src="{url}/frame"></iframe>
      <script>document.write("SCRIPT-RAN"); fetch("{url}/fetch");</script>
    </body></html>"""
    assert len(offline_problems(html)) >= 7
    pdf = renderer.render_pdf(html)
    _, text = page_stats(pdf)
    assert "VISIBLE-TEXT" in text
    assert "TOP-SECRET" not in text and "LEAKED" not in text and "SCRIPT-RAN" not in text
    # A redirect to a local file never yields a PDF of that file.
    redirect = f'<meta http-equiv="refresh" content="0;url={secret.as_uri()}"><p>VISIBLE-TEXT</p>'
    try:
        _, text = page_stats(renderer.render_pdf(redirect))
        assert "TOP-SECRET" not in text
    except LabelError as exc:
        assert "could not be printed" in str(exc)
    time.sleep(0.2)  # a straggling request would have arrived by now
    assert hits == []


def test_renderer_timeout_kills_the_process_group(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    fake = tmp_path / "fake-chromium"
    fake.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {pid_file}\nwait\n")
    fake.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(LabelError, match=r"did not finish within 0\.5s"):
        ChromiumRenderer(str(fake), timeout=0.5).render_pdf("<p>x</p>")
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_missing_or_failing_renderer_is_reported(tmp_path: Path):
    with pytest.raises(RendererUnavailable, match="cannot start Chromium"):
        ChromiumRenderer(str(tmp_path / "missing")).render_pdf("<p>x</p>")
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'boom: no display' >&2\nexit 3\n")
    failing.chmod(0o755)
    with pytest.raises(RendererUnavailable, match=r"exit 3.*boom"):
        ChromiumRenderer(str(failing)).render_pdf("<p>x</p>")


# --- validation -----------------------------------------------------------------------------------


def test_pdf_validation():
    pdf = tiny_pdf()
    validate_pdf(pdf)
    for bad, reason in (
        (b"", "empty"),
        (b"<html>not a pdf</html>", "does not start with %PDF-"),
        (pdf[: len(pdf) // 2], "truncated"),
    ):
        with pytest.raises(LabelError, match=reason):
            validate_pdf(bad)
    with pytest.raises(LabelError, match="above the limit"):
        validate_pdf(pdf, max_bytes=100)
    assert decode_base64(base64.b64encode(pdf).decode()) == pdf
    wrapped = base64.encodebytes(pdf).decode()  # MIME line breaks are fine
    assert decode_base64(wrapped) == pdf
    for text in ("", "not base64!", "QUJD=x"):
        with pytest.raises(LabelError):
            decode_base64(text)
    with pytest.raises(LabelError, match="exceeds"):
        decode_base64(base64.b64encode(b"x" * 200).decode(), max_bytes=100)
    with pytest.raises(LabelError, match="not UTF-8"):
        prepare_label(b"\xff\xfe<p>", LabelFormat.HTML, renderer=ChromiumRenderer("/nonexistent"))


@pytest.mark.parametrize(
    ("html", "problem"),
    [
        ('<img src="https://cdn.example/logo.png">', "would be fetched"),
        ('<img src="logo.png">', "would be fetched"),
        ('<img srcset="data:image/png;base64,AA 1x, //cdn.example/a.png 2x">', "//cdn.example/a.png"),
        ('<link rel="stylesheet" href="/etc/style.css">', "would be fetched"),
        ("<style>@import 'x.css';</style>", "@import"),
        ('<div style="background:u\\72l(http://x/y.png)">', "url(http://x/y.png)"),
        ("<style>.a{background-image:image-set('http://x/a.png' 1x)}</style>", "image-set"),
        ("<script>1</script>", "scripts are not run"),
        ('<iframe src="data:text/html,hi"></iframe>', "frames"),
        ('<base href="http://x/">', "<base>"),
        ('<meta http-equiv="Refresh" content="0;url=file:///etc/passwd">', "redirects"),
        ('<svg><image href="http://x/a.png"/></svg>', "would be fetched"),
    ],
)
def test_offline_check_names_what_would_be_fetched(html: str, problem: str):
    problems = offline_problems(html)
    assert problems and any(problem in p for p in problems), problems
    with pytest.raises(LabelError):
        check_offline(html)


def test_offline_check_accepts_inline_resources_and_links():
    html = (
        '<a href="https://track.example/1Z">Track</a><img src="data:image/png;base64,AAAA">'
        '<svg><use href="#bar"/></svg><div style="background:url(data:image/png;base64,AA)">'
        "<p>Visit https://carrier.example for help</p>"
    )
    assert offline_problems(html) == []


def test_csp_goes_right_after_the_doctype():
    hardened = harden_html("<!-- c --><!DOCTYPE html><html><body>x</body></html>")
    assert hardened.startswith(
        '<!-- c --><!DOCTYPE html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy"'
    )
    assert harden_html("<p>x</p>").startswith('<meta charset="utf-8">')


# --- storage ----------------------------------------------------------------------------------------


def test_labels_are_stored_once_per_content(engine: Engine, now: datetime):
    from helpers import make_channel, make_tenant

    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "mk", now, connector="mirakl")
    order_id = make_order(engine, tenant.id, channel.id, "ORD/1 é", now)
    label = PreparedLabel(tiny_pdf("one"), LabelFormat.PDF)
    with engine.begin() as conn:
        first, created = store_label(conn, tenant_id=tenant.id, order_id=order_id, label=label, now=now)
        again, created_again = store_label(conn, tenant_id=tenant.id, order_id=order_id, label=label, now=now)
        other, _ = store_label(
            conn,
            tenant_id=tenant.id,
            order_id=order_id,
            label=PreparedLabel(tiny_pdf("two"), LabelFormat.PDF),
            now=now,
        )
        assert get_document(conn, tenant.id, order_id, first.id).content == label.pdf
    assert created and not created_again and first.id == again.id and other.id != first.id
    assert first.filename == f"label-ORD_1-{label.sha256[:12]}.pdf" and first.filename.isascii()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(order_documents)).scalar_one() == 2


# --- delivery to Mirakl (OR74) -------------------------------------------------------------------------


@pytest.fixture
def mirakl(engine: Engine, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def _seed_offers(world: World, count: int) -> None:
    """Offers SKU-0..n on the sandbox, as a finished offers sync would have left them."""
    for i, product in enumerate(list(world.state.catalog.values())[:count]):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal("10.00") + i, 10)


def _imported_order(world: World) -> dict[str, object]:
    _seed_offers(world, 2)
    world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(120)
    world.enqueue("orders.poll")
    world.run()
    with world.engine.connect() as conn:
        [order] = list_orders(conn, world.tenant_id)
    return order


def _attach(
    world: World, order: dict[str, object], label: PreparedLabel, type_code: str
) -> updates.UpdateResult:
    with world.engine.begin() as conn:
        return updates.attach_label(
            conn,
            tenant_id=world.tenant_id,
            order_ref=f"{world.channel.name}:{order['marketplace_order_id']}",
            label=label,
            type_code=type_code,
            now=world.clock(),
        )


@needs_chromium
def test_label_is_attached_to_the_mirakl_order_with_or74(mirakl: World, rendered: PreparedLabel):
    order = _imported_order(mirakl)
    result = _attach(mirakl, order, rendered, "SHIPPING_LABEL")
    assert result.status is UpdateStatus.QUEUED
    assert _attach(mirakl, order, rendered, "SHIPPING_LABEL").id == result.id  # same label: nothing new
    mirakl.run()
    [document] = [d for d in mirakl.state.documents.values() if d.order_id == order["marketplace_order_id"]]
    assert document.type_code == "SHIPPING_LABEL" and document.content == rendered.pdf
    assert document.file_name == result.payload["filename"]
    dark, text = page_stats(document.content)  # what the marketplace got is the rendered label
    assert dark > 500 and "LABEL-4711" in text
    assert len(mirakl.state.calls("OR74")) == 1
    with mirakl.engine.connect() as conn:
        stored = get_document(conn, mirakl.tenant_id, int(order["id"]), int(result.payload["document_id"]))
        [update] = updates.list_updates(conn, mirakl.tenant_id, int(order["id"]))
        [exchange] = conn.execute(sa.select(exchanges).where(exchanges.c.operation == "OR74")).all()
    assert stored.status == "sent" and update["status"] == "sent"
    assert exchange.subject == f"order:{order['id']}" and exchange.status == 200
    assert (
        exchange.request
        == f"multipart upload: {stored.filename} ({len(stored.content)} bytes, SHIPPING_LABEL)"
    )


def test_label_refused_by_mirakl_fails_with_its_reason(mirakl: World):
    order = _imported_order(mirakl)
    result = _attach(mirakl, order, PreparedLabel(tiny_pdf(), LabelFormat.PDF), "NOT_A_TYPE")
    mirakl.run()
    with mirakl.engine.connect() as conn:
        stored = get_document(conn, mirakl.tenant_id, int(order["id"]), int(result.payload["document_id"]))
        [update] = updates.list_updates(conn, mirakl.tenant_id, int(order["id"]))
    assert stored.status == "failed"
    assert update["status"] == "failed" and "NOT_A_TYPE" in str(update["detail"])
    assert "does not exist" in str(update["detail"])
    assert [d for d in mirakl.state.documents.values() if d.order_id == order["marketplace_order_id"]] == []


def test_retried_label_job_does_not_upload_twice(mirakl: World):
    """An attempt that uploaded the file but died before recording it: the retry finds it (OR72)."""
    order = _imported_order(mirakl)
    label = PreparedLabel(tiny_pdf("retry"), LabelFormat.PDF)
    result = _attach(mirakl, order, label, "SHIPPING_LABEL")
    mirakl_id = str(order["marketplace_order_id"])
    mirakl.state.add_document(
        mirakl.state.order(mirakl_id), result.payload["filename"], "SHIPPING_LABEL", label.pdf
    )
    with mirakl.engine.begin() as conn:
        [claimed] = jobstore.claim(
            conn, worker="died", now=mirakl.clock(), lease_seconds=30, kinds=["fulfillments.label"]
        )
        jobstore.retry_later(conn, claimed, now=mirakl.clock(), delay=0, error="worker died after OR74")
    mirakl.run()
    assert mirakl.state.calls("OR74") == [] and len(mirakl.state.calls("OR72")) == 1
    assert len([d for d in mirakl.state.documents.values() if d.order_id == mirakl_id]) == 1
    with mirakl.engine.connect() as conn:
        [update] = updates.list_updates(conn, mirakl.tenant_id, int(order["id"]))
        history = updates.order_detail(conn, mirakl.tenant_id, int(order["id"]))["history"]
    assert update["status"] == "sent"
    assert history[-1]["state"] == "LABEL_SENT" and "already there" in str(history[-1]["note"])
