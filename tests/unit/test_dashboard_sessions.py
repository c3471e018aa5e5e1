"""Dashboard sign-in (issue 11, finding 7): a server-side session, not the key, in the
browser; signing out ends it for good; its key's revocation ends it; every state-changing
request is held to its origin and the session's CSRF token. Through ``create_app`` with a
real Hive (in memory); ``tests/e2e/test_dashboard_sessions.py`` takes it across processes
and into a real browser."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest

from api.dashboard.csrf import TOKEN_HEADER, origin_of, token_for
from api.dashboard.session import COOKIE, LEGACY_COOKIE
from api.dashboard.session_book import LIFETIME
from domain.errors import InvalidInput, InvalidTransition
from domain.hive import Hive
from domain.keys import Role
from domain.sessions import MAX_LIFETIME, DashboardSession
from tests.unit.test_api_contract import ROOT, World, assert_problem

OWN = "http://testserver"  # the test client's origin: what the dashboard's pages send
SAME_SITE = {"Origin": OWN}


def sign_in(world: World, token: str) -> str:
    """Signs in with ``token`` (an API key); the session token the cookie now holds."""
    world.client.cookies.clear()
    r = world.client.post("/dashboard/session", json={"key": token}, headers=SAME_SITE)
    assert r.status_code == 200, r.text
    return r.cookies[COOKIE]


def changing(session: str) -> dict[str, str]:
    """What the page's script sends with a state-changing request."""
    return {**SAME_SITE, TOKEN_HEADER: token_for(session)}


def sees_data(world: World, session: str) -> int:
    world.client.cookies.clear()
    world.client.cookies.set(COOKIE, session)
    return world.client.get("/dashboard/data/messages").status_code


def test_the_cookie_holds_a_session_token_never_the_key(world: World) -> None:
    key = world.tokens["client"]
    r = world.client.post("/dashboard/session", json={"key": key}, headers=SAME_SITE)
    assert r.status_code == 200, r.text
    session = r.cookies[COOKIE]
    secret = key.rsplit("_", 1)[1]
    assert session.startswith("aps_") and secret not in session and key not in session
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    assert r.headers["cache-control"] == "no-store"
    assert sees_data(world, session) == 200
    # The log keeps only the hash of the session's secret.
    session_id = UUID(session.split("_")[1])
    opened = world.hive.get(DashboardSession, session_id)
    assert session.rsplit("_", 1)[1] not in str(vars(opened))


def test_signing_out_ends_the_session_on_the_dashboard_and_it_was_never_a_bearer_key(
    world: World,
) -> None:
    """Found by outside testing: after logout the old cookie value still worked, on the
    dashboard and as a bearer key."""
    session = sign_in(world, world.tokens["client"])
    out = world.client.post("/dashboard/logout", headers=changing(session))
    assert out.status_code == 200, out.text
    assert out.json() == {"signed_out": "yes"}
    assert 'apiary_session=""' in out.headers["set-cookie"]  # the browser drops it too

    assert sees_data(world, session) == 401  # replayed after logout: worth nothing
    page = world.client.get("/dashboard/tasks", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/login"
    as_bearer = world.client.get("/v1/tasks", headers={"Authorization": f"Bearer {session}"})
    assert_problem(as_bearer, 401, "unauthorized")
    # The key itself is not touched: a new sign-in works.
    assert sees_data(world, sign_in(world, world.tokens["client"])) == 200


def test_signing_in_again_closes_the_session_the_browser_held(world: World) -> None:
    first = sign_in(world, world.tokens["client"])
    world.client.cookies.set(COOKIE, first)
    again = world.client.post(
        "/dashboard/session", json={"key": world.tokens["admin"]}, headers=SAME_SITE
    )
    assert again.status_code == 200, again.text
    assert sees_data(world, first) == 401
    assert sees_data(world, again.cookies[COOKIE]) == 200
    closed = world.hive.history(UUID(first.split("_")[1]))[-1]
    assert (type(closed).__name__, closed.why) == ("Closed", "signed in again")


def test_a_sign_in_and_a_sign_out_are_events_in_the_audit_log(world: World) -> None:
    session = sign_in(world, world.tokens["admin"])
    world.client.post("/dashboard/logout", headers=changing(session))
    events = world.hive.history(UUID(session.split("_")[1]))
    assert [type(e).__name__ for e in events] == ["Opened", "Closed"]
    assert {e.actor for e in events} == {"root"}  # the admin key's principal
    assert events[0].expires_at - events[0].timestamp == LIFETIME
    assert events[1].why == "signed out"
    assert events[0].request_id and events[1].request_id


def test_revoking_the_key_ends_its_sessions(world: World) -> None:
    token = world.hive.keys.issue("bob", Role.CLIENT, ROOT).token
    session = sign_in(world, token)
    assert sees_data(world, session) == 200
    world.hive.keys.revoke(UUID(token.split("_")[1]), ROOT)
    world.clock.advance(5.01)  # past the key ring's cache of the key
    assert sees_data(world, session) == 401


def test_a_session_expires_after_its_lifetime(world: World) -> None:
    world.hive.clock = world.clock  # the hive's time, moved by the test
    session = sign_in(world, world.tokens["client"])
    world.clock.advance(LIFETIME - timedelta(seconds=1))
    assert sees_data(world, session) == 200
    world.clock.advance(2)
    assert sees_data(world, session) == 401


def test_a_made_up_or_forged_session_token_is_refused(world: World) -> None:
    session = sign_in(world, world.tokens["client"])
    forged = session.rsplit("_", 1)[0] + "_wrongsecret"
    for token in (forged, "aps_junk", world.tokens["client"]):  # a key is no session either
        assert sees_data(world, token) == 401


def test_the_old_cookie_holding_a_raw_key_is_refused_and_dropped(world: World) -> None:
    world.client.cookies.set(LEGACY_COOKIE, world.tokens["admin"])
    r = world.client.get("/dashboard/data/messages")
    assert_problem(r, 401, "unauthorized")
    assert f'{LEGACY_COOKIE}=""' in r.headers["set-cookie"]


# -- cross-site requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # a sandboxed frame, or a page with Referrer-Policy: no-referrer
        {"Referer": "http://evil.example/page"},
        {},  # neither: no browser sends a POST so
        {"Origin": "https://testserver"},  # another scheme is another origin
        {"Origin": "http://testserver:8080"},
    ],
    ids=["origin", "null", "referer", "none", "scheme", "port"],
)
def test_a_cross_site_sign_out_is_forbidden_and_the_session_lives_on(
    world: World, headers: dict[str, str]
) -> None:
    """Found by outside testing: logout could be forged cross-site (Origin:
    http://evil.example got 200). Even with the right CSRF token it is refused."""
    session = sign_in(world, world.tokens["client"])
    forged = world.client.post(
        "/dashboard/logout", headers={**headers, TOKEN_HEADER: token_for(session)}
    )
    assert_problem(forged, 403, "forbidden")
    assert sees_data(world, session) == 200


@pytest.mark.parametrize("token", [None, "", "0" * 64], ids=["none", "empty", "wrong"])
def test_a_same_origin_sign_out_needs_the_sessions_csrf_token(
    world: World, token: str | None
) -> None:
    session = sign_in(world, world.tokens["client"])
    headers = dict(SAME_SITE) if token is None else {**SAME_SITE, TOKEN_HEADER: token}
    assert_problem(world.client.post("/dashboard/logout", headers=headers), 403, "forbidden")
    assert sees_data(world, session) == 200
    other = sign_in(world, world.tokens["admin"])  # another session's token will not do
    world.client.cookies.set(COOKIE, session)
    refused = world.client.post("/dashboard/logout", headers=changing(other))
    assert_problem(refused, 403, "forbidden")
    assert sees_data(world, session) == 200


def test_the_referer_stands_in_for_a_missing_origin(world: World) -> None:
    session = sign_in(world, world.tokens["client"])
    headers = {"Referer": f"{OWN}/dashboard/tasks", TOKEN_HEADER: token_for(session)}
    assert world.client.post("/dashboard/logout", headers=headers).status_code == 200
    assert sees_data(world, session) == 401


def test_signing_in_from_another_site_is_forbidden(world: World) -> None:
    world.client.cookies.clear()
    before = world.persisted()
    forged = world.client.post(
        "/dashboard/session",
        json={"key": world.tokens["client"]},
        headers={"Origin": "http://evil.example"},
    )
    assert_problem(forged, 403, "forbidden")
    assert COOKIE not in forged.cookies
    assert world.persisted() == before  # no session opened


def test_each_page_carries_its_sessions_csrf_token(world: World) -> None:
    session = sign_in(world, world.tokens["client"])
    page = world.client.get("/dashboard/tasks")
    assert f'<meta name="csrf-token" content="{token_for(session)}">' in page.text
    assert session not in page.text


def test_the_cookie_is_secure_over_https(world: World) -> None:
    world.client.base_url = "https://testserver"  # type: ignore[assignment]
    r = world.client.post(
        "/dashboard/session",
        json={"key": world.tokens["client"]},
        headers={"Origin": "https://testserver"},
    )
    assert r.status_code == 200, r.text
    assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://Example.COM", "http://example.com"),
        ("https://example.com:443/x?y", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://127.0.0.1:8000/dashboard", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("ftp://example.com", None),
        ("http://example.com:99999", None),
        ("http://", None),
    ],
)
def test_origins_are_compared_as_browsers_write_them(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


# -- the aggregate ------------------------------------------------------------------------


def test_a_session_is_closed_once_and_lasts_a_bounded_time(hive: Hive) -> None:
    key = hive.keys.issue("alice", Role.CLIENT, ROOT).key
    opened = hive.sessions.open(key.id, timedelta(hours=1), ROOT)
    session_id, secret = opened.token.removeprefix("aps_").split("_", 1)
    session = hive.get(DashboardSession, UUID(session_id))
    now = hive.clock()
    assert session.admits(secret, now) and not session.admits("wrong", now)
    assert not session.admits(secret, now + timedelta(hours=1))  # expired
    hive.sessions.close(session.id, "signed out", ROOT)
    assert not hive.get(DashboardSession, session.id).admits(secret, now)
    with pytest.raises(InvalidTransition):
        hive.sessions.close(session.id, "again", ROOT)
    for lifetime in (timedelta(0), MAX_LIFETIME + timedelta(seconds=1)):
        with pytest.raises(InvalidInput):
            hive.sessions.open(key.id, lifetime, ROOT)
