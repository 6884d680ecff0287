"""Dashboard login, sessions and CSRF: no page or action without a valid session, cookies sealed and
strict, every POST bound to the session's CSRF token."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from webtest_support import NONCE_RE, csrf_of, login

from tradelane.persistence.tables import api_tokens, jobs
from tradelane.web.dashboard.session import SESSION_COOKIE

PAGES = [
    "/dashboard",
    "/dashboard/channels",
    "/dashboard/offers",
    "/dashboard/orders",
    "/dashboard/order-health",
    "/dashboard/jobs",
]


def test_root_redirects_to_the_dashboard(client):
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"


@pytest.mark.parametrize("page", PAGES)
def test_pages_redirect_to_login_without_a_session(client, page):
    answer = client.get(page + "?x=1", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/dashboard/login?next={page.replace('/', '%2F')}%3Fx%3D1"


def test_actions_answer_401_without_a_session(client, shops):
    answer = client.post(f"/dashboard/jobs/{shops.acme.dead_job_id}/replay", data={"csrf": "x"})
    assert answer.status_code == 401
    with client.app.state.container.engine.connect() as conn:
        assert (
            conn.execute(sa.select(jobs.c.state).where(jobs.c.id == shops.acme.dead_job_id)).scalar()
            == "dead"
        )


def test_login_sets_a_sealed_strict_cookie_and_shows_the_tenant(client, shops):
    login(client, shops.acme.token)
    cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
    assert shops.acme.token not in cookie.value and cookie.secure
    assert cookie.has_nonstandard_attr("HttpOnly")
    page = client.get("/dashboard")
    assert page.status_code == 200 and ">acme<" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_login_refuses_unknown_tokens_and_forms_without_nonce(client, shops):
    page = client.get("/dashboard/login")
    nonce = NONCE_RE.search(page.text).group(1)
    wrong = client.post("/dashboard/login", data={"token": "tl_nope", "nonce": nonce})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
    forged = client.post("/dashboard/login", data={"token": shops.acme.token, "nonce": "guess"})
    assert forged.status_code == 403
    assert SESSION_COOKIE not in client.cookies


def test_login_never_redirects_off_site(client, shops):
    page = client.get("/dashboard/login?next=https://evil.example/x")
    nonce = NONCE_RE.search(page.text).group(1)
    answer = client.post(
        "/dashboard/login",
        data={"token": shops.acme.token, "nonce": nonce, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"


def test_tampered_or_foreign_cookies_are_no_session(client, shops, container):
    login(client, shops.acme.token)
    sealed = client.cookies[SESSION_COOKIE]
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:])
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    # A Fernet token of the same key ring made for something else (e.g. channel credentials) is no session.
    foreign = container.keyring.encrypt({"t": shops.acme.token, "c": "x", "iat": 0}).decode()
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, foreign)
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, sealed)  # control: the genuine cookie, set the same way, works
    assert client.get("/dashboard", follow_redirects=False).status_code == 200


def test_revoking_the_token_ends_the_session(client, shops, container, now):
    login(client, shops.acme.token)
    assert client.get("/dashboard", follow_redirects=False).status_code == 200
    with container.engine.begin() as conn:
        conn.execute(
            sa.update(api_tokens).where(api_tokens.c.tenant_id == shops.acme.tenant_id).values(revoked_at=now)
        )
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_posts_without_the_session_csrf_token_are_refused(client, other_client, shops, container):
    login(client, shops.acme.token)
    login(other_client, shops.acme.token)  # another session of the same tenant: another token
    url = f"/dashboard/jobs/{shops.acme.dead_job_id}/replay"
    assert client.post(url).status_code == 403
    assert client.post(url, data={"csrf": "forged"}).status_code == 403
    assert client.post(url, data={"csrf": csrf_of(other_client)}).status_code == 403
    with container.engine.connect() as conn:
        assert (
            conn.execute(sa.select(jobs.c.state).where(jobs.c.id == shops.acme.dead_job_id)).scalar()
            == "dead"
        )
    answer = client.post(url, data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert answer.status_code == 303
    with container.engine.connect() as conn:
        assert (
            conn.execute(sa.select(jobs.c.state).where(jobs.c.id == shops.acme.dead_job_id)).scalar()
            == "queued"
        )


def test_logout_needs_csrf_and_ends_the_session(client, shops):
    login(client, shops.acme.token)
    assert client.post("/dashboard/logout").status_code == 403
    answer = client.post("/dashboard/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/login"
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
