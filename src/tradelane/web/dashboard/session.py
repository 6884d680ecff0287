"""Dashboard sessions: log in with a tenant API token, kept server-verifiable in a sealed cookie.

* The session cookie (:data:`SESSION_COOKIE`) holds a Fernet token made with the application's key
  ring (:class:`~tradelane.security.crypto.KeyRing`): the API token inside is encrypted and
  authenticated, never in clear. Each request re-checks the token with
  :func:`~tradelane.services.tenants.tenant_for_token`, so revoking the token ends the session. The
  sealed payload carries a purpose tag, so no other Fernet token of the key ring (e.g. channel
  credentials) can pass for a session.
* Cookies are ``Secure``, ``HttpOnly`` and ``SameSite=Strict``. Browsers accept ``Secure`` cookies
  over plain HTTP only from loopback (``127.0.0.1``/``localhost``); anywhere else serve the dashboard
  over HTTPS.
* CSRF: every POST carries the session's random ``csrf`` form field, compared in constant time; the
  login form uses a pre-session nonce cookie the same way (double submit).
* A session lasts :data:`SESSION_SECONDS` from login.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from tradelane.bootstrap import Container
from tradelane.persistence.db import read_only
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.tenants import Tenant, tenant_for_token

SESSION_COOKIE = "tl_session"
LOGIN_COOKIE = "tl_login"
FLASH_COOKIE = "tl_flash"
SESSION_SECONDS = 8 * 3600
CSRF_FIELD = "csrf"
_SESSION_PURPOSE = "tradelane.dashboard.session.v1"
_FLASH_PURPOSE = "tradelane.dashboard.flash.v1"
_LOGIN_PURPOSE = "tradelane.dashboard.login.v1"


class LoginRequired(Exception):
    """No valid session: GET requests are redirected to the login page, other methods answer 401."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token (answered 403)."""


@dataclass(frozen=True, slots=True)
class DashboardSession:
    tenant: Tenant
    csrf: str


def seal(keyring: KeyRing, purpose: str, data: dict[str, Any]) -> str:
    return keyring.encrypt({**data, "purpose": purpose}).decode("ascii")


def unseal(keyring: KeyRing, purpose: str, value: str | None) -> dict[str, Any] | None:
    """The sealed payload, or None when missing, forged, made with other keys or for another purpose."""
    if not value:
        return None
    try:
        data = keyring.decrypt(value.encode("ascii"))
    except (CredentialError, UnicodeEncodeError, ValueError):
        return None
    return data if data.get("purpose") == purpose else None


def same_secret(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def _cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="strict")


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="strict")


def container_of(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


# --- login / logout -----------------------------------------------------------------------------


def issue_login_nonce(keyring: KeyRing) -> tuple[str, str]:
    """A fresh nonce for the login form and the sealed cookie value carrying it
    (set it with :func:`set_login_cookie`)."""
    nonce = secrets.token_urlsafe(24)
    return nonce, seal(keyring, _LOGIN_PURPOSE, {"n": nonce})


def set_login_cookie(response: Response, sealed: str) -> None:
    _cookie(response, LOGIN_COOKIE, sealed, 3600)


def login_nonce_matches(keyring: KeyRing, request: Request, submitted: str) -> bool:
    data = unseal(keyring, _LOGIN_PURPOSE, request.cookies.get(LOGIN_COOKIE))
    return data is not None and same_secret(str(data.get("n", "")), submitted)


def start_session(keyring: KeyRing, response: Response, token: str, *, now: datetime) -> None:
    payload = {"t": token, "c": secrets.token_urlsafe(32), "iat": int(now.timestamp())}
    _cookie(response, SESSION_COOKIE, seal(keyring, _SESSION_PURPOSE, payload), SESSION_SECONDS)
    clear_cookie(response, LOGIN_COOKIE)


def end_session(response: Response) -> None:
    clear_cookie(response, SESSION_COOKIE)


def lookup_tenant(container: Container, token: str) -> Tenant | None:
    with read_only(container.engine) as conn:
        return tenant_for_token(conn, token)


# --- request dependencies -----------------------------------------------------------------------


async def current_session(request: Request) -> DashboardSession:
    """The logged-in tenant and CSRF token, or :class:`LoginRequired`."""
    container = container_of(request)
    data = unseal(container.keyring, _SESSION_PURPOSE, request.cookies.get(SESSION_COOKIE))
    if data is None:
        raise LoginRequired()
    token, csrf, issued = data.get("t"), data.get("c"), data.get("iat")
    if not isinstance(token, str) or not isinstance(csrf, str) or not isinstance(issued, int):
        raise LoginRequired()
    age = container.now().timestamp() - issued
    if not 0 <= age <= SESSION_SECONDS + 60:  # a minute of tolerance for clock steps
        raise LoginRequired()
    tenant = await run_in_threadpool(lookup_tenant, container, token)
    if tenant is None:
        raise LoginRequired()
    return DashboardSession(tenant, csrf)


async def action_session(request: Request) -> DashboardSession:
    """:func:`current_session` for a POST whose form must carry the session's CSRF token."""
    session = await current_session(request)
    form = await request.form()
    submitted = form.get(CSRF_FIELD)
    if not isinstance(submitted, str) or not same_secret(session.csrf, submitted):
        raise CsrfRejected()
    return session


SessionDep = Annotated[DashboardSession, Depends(current_session)]
ActionDep = Annotated[DashboardSession, Depends(action_session)]


# --- flash messages -----------------------------------------------------------------------------


def set_flash(keyring: KeyRing, response: Response, message: str, *, level: str = "ok") -> None:
    _cookie(response, FLASH_COOKIE, seal(keyring, _FLASH_PURPOSE, {"m": message[:500], "l": level}), 120)


def read_flash(keyring: KeyRing, request: Request) -> tuple[str, str] | None:
    data = unseal(keyring, _FLASH_PURPOSE, request.cookies.get(FLASH_COOKIE))
    if data is None:
        return None
    return str(data.get("m", "")), "error" if data.get("l") == "error" else "ok"
