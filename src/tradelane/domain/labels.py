"""Shipping labels: validation of PDFs and base64 payloads, and making HTML safe to render offline
(pure; no I/O).

Contracts:

* A label is stored and delivered as a PDF: ``%PDF-`` at the start, an ``%%EOF`` marker near the end
  (a truncated upload is refused) and at most :data:`MAX_PDF_BYTES`.
* HTML labels are rendered without any network or local-file access. :func:`offline_problems` lists
  every construct that would fetch something (remote or ``file:`` URLs, ``@import``, frames, scripts,
  ``<base>``, meta refresh), so the caller can refuse the label with a clear message;
  :func:`harden_html` additionally pins a Content-Security-Policy that only allows inline styles and
  ``data:`` images/fonts, as a second line of defence for whatever a parser-level check could miss.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from html.parser import HTMLParser

from tradelane.domain.errors import ValidationError

#: Largest label (PDF) tradelane stores or delivers.
MAX_PDF_BYTES = 10 * 1024 * 1024
#: Largest HTML label accepted for rendering.
MAX_HTML_BYTES = 2 * 1024 * 1024

#: Resources an HTML label may use once rendered: inline styles and ``data:`` images/fonts only.
LABEL_CSP = "default-src 'none'; style-src 'unsafe-inline' data:; img-src data:; font-src data:"


class LabelFormat(StrEnum):
    PDF = "pdf"
    HTML = "html"


class LabelError(ValidationError):
    """The label content is unusable; the message says why (an API answers 422)."""


def decode_base64(text: str | bytes, *, max_bytes: int = MAX_PDF_BYTES) -> bytes:
    """Strict base64 (standard alphabet; line breaks and spaces are tolerated) of at most ``max_bytes``."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    compact = re.sub(rb"\s+", b"", raw)
    if not compact:
        raise LabelError("the label content is empty")
    if len(compact) // 4 * 3 > max_bytes + 2:
        raise LabelError(f"the label exceeds {max_bytes} bytes")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise LabelError("the label content is not valid base64") from None
    if len(data) > max_bytes:
        raise LabelError(f"the label exceeds {max_bytes} bytes")
    return data


def validate_pdf(data: bytes, *, max_bytes: int = MAX_PDF_BYTES) -> None:
    """Refuse anything that is not a complete PDF of at most ``max_bytes``."""
    if not data:
        raise LabelError("the label is empty")
    if len(data) > max_bytes:
        raise LabelError(f"the label is {len(data)} bytes, above the limit of {max_bytes}")
    if not data.startswith(b"%PDF-"):
        raise LabelError("the label is not a PDF (it does not start with %PDF-)")
    if b"%%EOF" not in data[-1024:]:
        raise LabelError("the PDF is truncated (no %%EOF marker at its end)")


def decode_html(data: bytes, *, max_bytes: int = MAX_HTML_BYTES) -> str:
    """HTML label bytes as text: UTF-8 (a BOM is dropped), no NUL, at most ``max_bytes``."""
    if not data.strip():
        raise LabelError("the HTML label is empty")
    if len(data) > max_bytes:
        raise LabelError(f"the HTML label is {len(data)} bytes, above the limit of {max_bytes}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelError(f"the HTML label is not UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise LabelError("the HTML label contains NUL characters")
    return text


# --- offline rendering ---------------------------------------------------------------------------

#: Attributes whose value the browser fetches (``href`` too, except on links a reader clicks).
_LOADING_ATTRIBUTES = frozenset(
    {
        "src",
        "srcset",
        "poster",
        "data",
        "background",
        "codebase",
        "archive",
        "manifest",
        "lowsrc",
        "dynsrc",
        "xlink:href",
        "href",
        "imagesrcset",
    }
)
_CLICK_ONLY = frozenset({"a", "area"})
_FORBIDDEN_TAGS = {
    "script": "scripts are not run in labels (draw barcodes as inline SVG or data: images)",
    "iframe": "frames are not rendered in labels",
    "frame": "frames are not rendered in labels",
    "frameset": "frames are not rendered in labels",
    "object": "embedded objects are not rendered in labels",
    "embed": "embedded objects are not rendered in labels",
    "portal": "portals are not rendered in labels",
    "base": "<base> is not allowed in labels",
}
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT = re.compile(r"@import", re.IGNORECASE)
_CSS_IMAGE_SET = re.compile(r"image-set\((.*?)\)", re.IGNORECASE | re.DOTALL)
_CSS_STRING = re.compile(r"(['\"])(.*?)\1", re.DOTALL)
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?|\\(.)", re.DOTALL)
_DOCTYPE_PREFIX = re.compile(r"\A(?:\s|<!--.*?-->)*<!doctype[^>]*>", re.IGNORECASE | re.DOTALL)


def _unescape_css(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(1):
            code = int(match.group(1), 16)
            return chr(code) if 0 < code <= 0x10FFFF else "\ufffd"
        return match.group(2)

    return _CSS_ESCAPE.sub(repl, text)


def _show(text: str) -> str:
    """Input echoed in an error message: stripped, bounded, ASCII (non-ASCII as escapes)."""
    return text.strip()[:100].encode("ascii", "backslashreplace").decode("ascii")


def _is_inline(url: str) -> bool:
    """A reference that needs nothing outside the document: ``data:`` or a fragment (SVG ``#id``)."""
    value = "".join(url.split()).lower()
    return value.startswith("data:") or value.startswith("#") or value == ""


def _css_problems(css: str, where: str) -> list[str]:
    text = _unescape_css(css)
    problems = []
    if _CSS_IMPORT.search(text):
        problems.append(f"{where}: @import is not allowed (inline the stylesheet)")
    for match in _CSS_URL.finditer(text):
        if not _is_inline(match.group(2)):
            problems.append(f"{where}: url({_show(match.group(2))}) would be fetched")
    for image_set in _CSS_IMAGE_SET.finditer(text):
        for string in _CSS_STRING.finditer(image_set.group(1)):
            if not _is_inline(string.group(2)):
                problems.append(f"{where}: image-set({_show(string.group(2))}) would be fetched")
    return problems


def _srcset_urls(value: str) -> list[str]:
    return [part.strip().split()[0] for part in value.split(",") if part.strip()]


class _OfflineChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check_tag(tag, attrs)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check_tag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.problems.extend(_css_problems(data, "<style>"))

    def _check_tag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>: {_FORBIDDEN_TAGS[tag]}")
        values = {name: value or "" for name, value in attrs}
        if tag == "meta" and values.get("http-equiv", "").strip().lower() == "refresh":
            self.problems.append("<meta http-equiv=refresh>: redirects are not allowed in labels")
        for name, value in attrs:
            text = value or ""
            if name == "style":
                self.problems.extend(_css_problems(text, f"<{tag} style>"))
            elif name in _LOADING_ATTRIBUTES and not (name.endswith("href") and tag in _CLICK_ONLY):
                urls = _srcset_urls(text) if name.endswith("srcset") else [text]
                for url in urls:
                    if not _is_inline(url):
                        self.problems.append(f"<{_show(tag)} {_show(name)}={_show(url)}> would be fetched")


def offline_problems(html: str) -> list[str]:
    """Everything in ``html`` that would make the renderer fetch a resource (empty: renderable)."""
    checker = _OfflineChecker()
    checker.feed(html)
    checker.close()
    return list(dict.fromkeys(checker.problems))


def check_offline(html: str) -> None:
    """Raise :class:`LabelError` naming the first offending constructs when ``html`` needs fetching."""
    problems = offline_problems(html)
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise LabelError(
            "the HTML label references resources that would have to be fetched; labels are rendered "
            f"offline, so inline images and fonts as data: URLs: {shown}"
        )


def harden_html(html: str) -> str:
    """``html`` with a UTF-8 charset and :data:`LABEL_CSP` declared before anything else it holds
    (right after its doctype, so the document's rendering mode is unchanged)."""
    head = f'<meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{LABEL_CSP}">'
    match = _DOCTYPE_PREFIX.match(html)
    cut = match.end() if match else 0
    return html[:cut] + head + html[cut:]


def document_filename(marketplace_order_id: str, sha256: str) -> str:
    """A plain US-ASCII file name for a label, distinct per content (Mirakl OR74 requires ASCII names
    distinct within an order)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", marketplace_order_id).strip("_")[:80] or "order"
    return f"label-{safe}-{sha256[:12]}.pdf"
