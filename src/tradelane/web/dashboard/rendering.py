"""Rendering of dashboard pages: the Jinja2 environment (templates shipped in
``tradelane/web/templates``), display filters, flash messages, redirects and security headers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tradelane.web.dashboard.session import (
    CSRF_FIELD,
    FLASH_COOKIE,
    DashboardSession,
    clear_cookie,
    container_of,
    read_flash,
    set_flash,
)

PREFIX = "/dashboard"
#: Raw payloads longer than this are cut on screen (the full text stays in the database / API).
RAW_DISPLAY_LIMIT = 64 * 1024

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def fmt_datetime(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float | int | None) -> str:
    """``93`` → ``1m 33s``; ``90000`` → ``1d 1h``; None → ``—``."""
    if seconds is None:
        return "—"
    total = int(abs(seconds))
    sign = "-" if seconds < 0 else ""
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h {minutes}m"
    if minutes:
        return f"{sign}{minutes}m {secs}s"
    return f"{sign}{secs}s"


def fmt_percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def pretty(value: Any) -> str:
    """A raw payload for display: JSON (objects, or text that parses as JSON) indented, else as is;
    cut at :data:`RAW_DISPLAY_LIMIT` characters."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            text = json.dumps(json.loads(value), indent=2, ensure_ascii=False)
        except ValueError:
            text = value
    else:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=_json_default, sort_keys=True)
    if len(text) > RAW_DISPLAY_LIMIT:
        return text[:RAW_DISPLAY_LIMIT] + f"\n… cut: {len(text) - RAW_DISPLAY_LIMIT} more characters"
    return text


def build_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tradelane.web", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(dt=fmt_datetime, duration=fmt_duration, percent=fmt_percent, pretty=pretty)
    env.globals.update(prefix=PREFIX, csrf_field=CSRF_FIELD)
    return env


def _environment(request: Request) -> Environment:
    env: Environment = request.app.state.dashboard_templates
    return env


def with_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    session: DashboardSession | None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the common context: tenant, CSRF token, flash message, ``now``, ``request``."""
    container = container_of(request)
    flash = read_flash(container.keyring, request)
    page = (
        _environment(request)
        .get_template(template)
        .render(
            {
                "request": request,
                "tenant": session.tenant if session else None,
                "csrf": session.csrf if session else "",
                "flash": flash,
                "now": container.now(),
                **context,
            }
        )
    )
    response = HTMLResponse(page, status_code=status_code)
    if flash is not None:
        clear_cookie(response, FLASH_COOKIE)
    with_security_headers(response)
    return response


def safe_back(value: str | None, default: str) -> str:
    """A redirect target inside the dashboard (never another site): ``value`` when it is a dashboard
    path, else ``default``."""
    if not value or not value.startswith(PREFIX) or "\\" in value:
        return default
    return value if all(0x20 < ord(c) < 0x7F for c in value) else default


def redirect(request: Request, to: str, message: str | None = None, *, level: str = "ok") -> Response:
    """303 See Other to ``to`` (after a POST), with an optional flash message."""
    response = RedirectResponse(to, status_code=303)
    if message:
        set_flash(container_of(request).keyring, response, message, level=level)
    return with_security_headers(response)


def page_url(path: str, params: Mapping[str, Any]) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


def clean_filter(value: str | None, max_length: int) -> str | None:
    """A query filter as typed by the operator: stripped, printable and bounded, else no filter."""
    value = (value or "").strip()
    return value if value and len(value) <= max_length and value.isprintable() else None
