"""Login and logout pages, the ``/`` redirect, and the answers to a missing session or CSRF token."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from tradelane.web.dashboard.rendering import PREFIX, redirect, render, safe_back, with_security_headers
from tradelane.web.dashboard.session import (
    SESSION_COOKIE,
    ActionDep,
    CsrfRejected,
    LoginRequired,
    clear_cookie,
    container_of,
    end_session,
    issue_login_nonce,
    login_nonce_matches,
    lookup_tenant,
    set_login_cookie,
    start_session,
)

router = APIRouter(include_in_schema=False)

MAX_TOKEN_LENGTH = 200


@router.get("/")
def root() -> Response:
    return with_security_headers(RedirectResponse(PREFIX, status_code=303))


def _login_page(request: Request, next_url: str, *, error: str | None, status_code: int) -> Response:
    nonce, sealed = issue_login_nonce(container_of(request).keyring)
    response = render(
        request,
        "dashboard/login.html",
        {"next_url": next_url, "error": error, "nonce": nonce},
        session=None,
        status_code=status_code,
    )
    set_login_cookie(response, sealed)
    return response


@router.get(f"{PREFIX}/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, safe_back(next, PREFIX), error=None, status_code=200)


@router.post(f"{PREFIX}/login")
async def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = PREFIX,
) -> Response:
    container = container_of(request)
    target = safe_back(next, PREFIX)
    if not login_nonce_matches(container.keyring, request, nonce):
        return _login_page(request, target, error="The form expired; please try again.", status_code=403)
    token = token.strip()
    tenant = None
    if 0 < len(token) <= MAX_TOKEN_LENGTH:
        tenant = await run_in_threadpool(lookup_tenant, container, token)
    if tenant is None:
        return _login_page(request, target, error="This token is unknown or revoked.", status_code=401)
    response = redirect(request, target, f"Logged in as {tenant.name}.")
    start_session(container.keyring, response, token, now=container.now())
    return response


@router.post(f"{PREFIX}/logout")
def logout(request: Request, session: ActionDep) -> Response:
    response = redirect(request, f"{PREFIX}/login")
    end_session(response)
    return response


async def on_login_required(request: Request, exc: Exception) -> Response:
    if request.method in {"GET", "HEAD"}:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response: Response = RedirectResponse(
            f"{PREFIX}/login?next={quote(target, safe='')}", status_code=303
        )
    else:
        response = render(
            request,
            "dashboard/error.html",
            {"title": "Not logged in", "message": "Your session is missing or expired; log in again."},
            session=None,
            status_code=401,
        )
    if SESSION_COOKIE in request.cookies:
        clear_cookie(response, SESSION_COOKIE)
    return with_security_headers(response)


async def on_csrf_rejected(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "dashboard/error.html",
        {
            "title": "Request refused",
            "message": "This form is not from your current session (missing or wrong CSRF token). "
            "Reload the page and try again.",
        },
        session=None,
        status_code=403,
    )


HANDLERS: dict[type[Exception], object] = {LoginRequired: on_login_required, CsrfRejected: on_csrf_rejected}
