"""Shipping labels: HTML → PDF rendering with headless Chromium, and storage in ``order_documents``.

Contracts:

* :func:`prepare_label` turns what a merchant system sent (PDF bytes or UTF-8 HTML) into a validated
  PDF. HTML is refused with a clear :class:`~tradelane.domain.labels.LabelError` when it would need
  to fetch anything; it is then rendered by an :class:`HtmlRenderer`. Run it *outside* a database
  transaction: rendering takes a second or more.
* :class:`ChromiumRenderer` runs Chromium in a subprocess (own session, private profile directory,
  bounded by a timeout after which the whole process group is killed). The network is unusable for it:
  every request goes to a dead proxy (loopback included), host names never resolve, and the page
  carries a Content-Security-Policy that only allows inline styles and ``data:`` images.
* :func:`store_label` stores a label once per (order, SHA-256): storing the same PDF again returns the
  existing document.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import NotFoundError, RetryableError
from tradelane.domain.labels import (
    MAX_PDF_BYTES,
    LabelError,
    LabelFormat,
    check_offline,
    decode_html,
    document_filename,
    harden_html,
    validate_pdf,
)
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import order_documents, orders

DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_RENDER_TIMEOUT = 30.0
LABEL_KIND = "shipping_label"
PDF_CONTENT_TYPE = "application/pdf"

#: Flags that keep the browser away from the network and from the user's environment.
_OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    # Every request goes to a proxy nobody answers on, loopback included (no SSRF on local services)...
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    # ...and no host name resolves at all.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--no-pdf-header-footer",
)


class DocumentStatus(StrEnum):
    STORED = "stored"
    SENT = "sent"
    FAILED = "failed"


class RendererUnavailable(RetryableError):
    """The HTML renderer could not run (binary missing, crashed): not the label's fault."""


class HtmlRenderer(Protocol):
    def render_pdf(self, html: str) -> bytes:
        """The PDF of ``html``, rendered without fetching anything."""
        ...


@dataclass
class ChromiumRenderer:
    """Headless Chromium's ``--print-to-pdf``; at most ``max_concurrent`` browsers at once."""

    binary: str = DEFAULT_CHROMIUM
    timeout: float = DEFAULT_RENDER_TIMEOUT
    max_concurrent: int = 2
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_concurrent)

    def render_pdf(self, html: str) -> bytes:
        with (
            self._slots,
            tempfile.TemporaryDirectory(prefix="tradelane-label-", ignore_cleanup_errors=True) as tmp,
        ):
            root = Path(tmp)
            source = root / "label.html"
            source.write_text(harden_html(html), encoding="utf-8")
            output = root / "label.pdf"
            log_path = root / "chromium.log"
            args = [
                self.binary,
                *_OFFLINE_FLAGS,
                f"--user-data-dir={root / 'profile'}",
                f"--print-to-pdf={output}",
                source.as_uri(),
            ]
            env = {
                "HOME": tmp,
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "XDG_CONFIG_HOME": str(root / "config"),
                "XDG_CACHE_HOME": str(root / "cache"),
                "LANG": "C.UTF-8",
            }
            returncode = self._run(args, env, log_path)
            if returncode != 0:
                raise RendererUnavailable(
                    f"Chromium failed to render the label (exit {returncode}): {_tail(log_path)}"
                )
            if not output.exists():  # e.g. the page navigated away (a redirect the check let through)
                raise LabelError("the HTML label could not be printed to PDF (the page did not stay put)")
            pdf = output.read_bytes()
        try:
            validate_pdf(pdf)
        except LabelError as exc:
            raise LabelError(f"the rendered label is unusable: {exc}") from None
        return pdf

    def _run(self, args: list[str], env: dict[str, str], log_path: Path) -> int:
        with log_path.open("wb") as log:
            try:
                proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise RendererUnavailable(f"cannot start Chromium ({self.binary}): {exc}") from None
            try:
                return proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise LabelError(
                    f"rendering the HTML label did not finish within {self.timeout:g}s"
                ) from None
            finally:
                _kill_group(proc)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill what is left of the browser's own process group (helpers outliving the main process)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - the kernel reaps a SIGKILLed process
        pass


_NOISE = ("dbus", "bus.cc", "object_proxy.cc", "Failed to connect to the bus")


def _tail(path: Path, limit: int = 500) -> str:
    """The last meaningful lines Chromium logged (its D-Bus complaints on servers are noise)."""
    try:
        data = path.read_bytes()
    except OSError:
        return "(no output)"
    lines = data[-65536:].decode("utf-8", "replace").splitlines()
    if len(data) > 65536:
        lines = lines[1:]  # cut mid-line
    lines = [ln for ln in lines if ln.strip() and not any(n in ln for n in _NOISE)]
    return " | ".join(lines[-3:])[:limit] or "(no output)"


@dataclass(frozen=True, slots=True)
class PreparedLabel:
    """A validated PDF label, ready to store."""

    pdf: bytes
    source_format: LabelFormat

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pdf).hexdigest()


def prepare_label(content: bytes, fmt: LabelFormat, *, renderer: HtmlRenderer) -> PreparedLabel:
    """Validate a PDF label, or render an HTML one (refused when it needs anything fetched)."""
    if fmt is LabelFormat.PDF:
        validate_pdf(content)
        return PreparedLabel(content, fmt)
    html = decode_html(content)
    check_offline(html)
    pdf = renderer.render_pdf(html)
    validate_pdf(pdf, max_bytes=MAX_PDF_BYTES)
    return PreparedLabel(pdf, fmt)


# --- storage --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredDocument:
    id: int
    order_id: int
    kind: str
    filename: str
    content_type: str
    source_format: str
    sha256: str
    status: str
    created_at: datetime
    size: int
    content: bytes = field(repr=False)

    def meta(self) -> dict[str, Any]:
        """Everything but the content."""
        return {
            "id": self.id,
            "kind": self.kind,
            "filename": self.filename,
            "content_type": self.content_type,
            "source_format": self.source_format,
            "sha256": self.sha256,
            "size": self.size,
            "status": self.status,
            "created_at": self.created_at,
        }


def store_label(
    conn: Connection, *, tenant_id: int, order_id: int, label: PreparedLabel, now: datetime
) -> tuple[StoredDocument, bool]:
    """Store ``label`` for the order once; returns the document and whether it is new."""
    marketplace_id = conn.execute(
        sa.select(orders.c.marketplace_order_id).where(
            orders.c.tenant_id == tenant_id, orders.c.id == order_id
        )
    ).scalar()
    if marketplace_id is None:
        raise NotFoundError(f"no order {order_id}")
    sha = label.sha256
    inserted = conn.execute(
        insert_ignore(conn, order_documents)
        .values(
            tenant_id=tenant_id,
            order_id=order_id,
            kind=LABEL_KIND,
            filename=document_filename(marketplace_id, sha),
            content_type=PDF_CONTENT_TYPE,
            source_format=label.source_format.value,
            content=label.pdf,
            sha256=sha,
            status=DocumentStatus.STORED.value,
            created_at=now,
        )
        .returning(order_documents.c.id)
    ).scalar()
    row = conn.execute(
        sa.select(order_documents).where(
            order_documents.c.order_id == order_id, order_documents.c.sha256 == sha
        )
    ).one()
    return _document(row), inserted is not None


def _document(row: Any) -> StoredDocument:
    return StoredDocument(
        id=row.id,
        order_id=row.order_id,
        kind=row.kind,
        filename=row.filename,
        content_type=row.content_type,
        source_format=row.source_format,
        sha256=row.sha256,
        status=row.status,
        created_at=row.created_at,
        size=len(row.content),
        content=bytes(row.content),
    )


def get_document(conn: Connection, tenant_id: int, order_id: int, document_id: int) -> StoredDocument:
    row = conn.execute(
        sa.select(order_documents).where(
            order_documents.c.tenant_id == tenant_id,
            order_documents.c.order_id == order_id,
            order_documents.c.id == document_id,
        )
    ).first()
    if row is None:
        raise NotFoundError(f"order {order_id} has no document {document_id}")
    return _document(row)


def list_documents(conn: Connection, tenant_id: int, order_id: int) -> list[dict[str, Any]]:
    """The order's documents, oldest first, without their content."""
    rows = conn.execute(
        sa.select(
            order_documents.c.id,
            order_documents.c.kind,
            order_documents.c.filename,
            order_documents.c.content_type,
            order_documents.c.source_format,
            order_documents.c.sha256,
            order_documents.c.status,
            order_documents.c.created_at,
            sa.func.length(order_documents.c.content).label("size"),
        )
        .where(order_documents.c.tenant_id == tenant_id, order_documents.c.order_id == order_id)
        .order_by(order_documents.c.id)
    )
    return [dict(r._mapping) for r in rows]


def set_document_status(conn: Connection, document_id: int, status: DocumentStatus) -> None:
    conn.execute(
        sa.update(order_documents).where(order_documents.c.id == document_id).values(status=status.value)
    )
