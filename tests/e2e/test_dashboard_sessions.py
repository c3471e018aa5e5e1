"""Dashboard sessions and the security headers against real `apiary serve` processes
(issue 11, findings 6 and 7): the dashboard works in a real headless Chromium under its
CSP with no violation, and signing out ends the session for good; a session opened
through one API process holds on another, and a sign-out through either ends it on both
within about a second; X-Forwarded-Proto is believed only from a proxy named in
APIARY_FORWARDED_ALLOW_IPS. The rules themselves are tested in
``tests/unit/test_dashboard_sessions.py`` and ``tests/unit/test_security_headers.py``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api.dashboard.csrf import TOKEN_HEADER
from api.dashboard.session import COOKIE
from tests.e2e.harness import Hive, signed_in
from tests.e2e.test_dashboard import browser, sign_in  # noqa: F401  (fixture)
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

PAGES = [
    ("", "svg[aria-label='Tasks by state']"),
    ("/tasks", "#tasks"),
    ("/bots", "#bots"),
    ("/schedules", "#schedules"),
    ("/messages", "svg[aria-label='Messages by state']"),
    ("/config", "#knobs"),
]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9a-f]{64})">')
# Swagger UI's bundle stands in for the CDN's (no network here): it notes that the docs
# page's inline script called it.
SWAGGER_STAND_IN = """window.SwaggerUIBundle = Object.assign(
  (options) => { window.swaggerStarted = options.url; return {}; },
  {presets: {apis: {}}, SwaggerUIStandalonePreset: {}});"""


def csp_reports(page: Any) -> list[str]:
    """What the browser says, from now on, about anything the page's policy blocked."""
    seen: list[str] = []
    page.on(
        "console",
        lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return seen


def test_the_dashboard_works_under_its_policy_and_a_sign_out_is_for_good(
    hive: Hive,
    browser: Any,  # noqa: F811
) -> None:
    hive.start()
    admin = hive.key("admin")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = csp_reports(page)
    sign_in(page, hive, admin)
    for path, drawn in PAGES:
        page.goto(f"{hive.url}/dashboard{path}")
        page.wait_for_selector(drawn, timeout=10_000)  # the script ran and drew its data
        page.wait_for_selector("#live.on", timeout=10_000)  # the stream is open
    assert blocked == []
    # The policy is in force: a script injected inline does not run, and the browser says so.
    ran = page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.injected = true';
                   document.body.append(s); return window.injected === true; }"""
    )
    assert ran is False
    wait_for(lambda: blocked, what="the browser's report of the blocked inline script")
    blocked.clear()

    session = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)
    assert session.startswith("aps_") and admin not in session
    page.click("#signout")
    page.wait_for_url(f"{hive.url}/dashboard/login")
    assert COOKIE not in {c["name"] for c in page.context.cookies()}
    page.goto(f"{hive.url}/dashboard")
    assert page.url.endswith("/dashboard/login")  # signed out
    replayed = httpx.get(f"{hive.url}/dashboard/data/overview", cookies={COOKIE: session})
    assert replayed.status_code == 401
    as_bearer = httpx.get(f"{hive.url}/v1/tasks", headers={"Authorization": f"Bearer {session}"})
    assert as_bearer.status_code == 401
    assert blocked == []


def test_the_docs_page_starts_swagger_under_its_own_policy(hive: Hive, browser: Any) -> None:  # noqa: F811
    hive.start()
    page = browser.new_page()
    blocked = csp_reports(page)
    page.route(
        "https://cdn.jsdelivr.net/**",
        lambda route: route.fulfill(
            status=200,
            content_type="application/javascript"
            if route.request.url.endswith(".js")
            else "text/css",
            body=SWAGGER_STAND_IN if route.request.url.endswith(".js") else "",
        ),
    )
    page.route("https://fastapi.tiangolo.com/**", lambda route: route.fulfill(status=204))
    page.goto(f"{hive.url}/docs")
    wait_for(
        lambda: page.evaluate("window.swaggerStarted") == "/openapi.json",
        what="the docs page's inline script to start Swagger UI",
    )
    assert blocked == []


def test_a_session_holds_on_every_api_process_and_a_sign_out_ends_it_on_all(
    make_hive: Callable[..., Hive],
) -> None:
    first = make_hive().start()
    second = make_hive(APIARY_FORWARDED_ALLOW_IPS="127.0.0.1").start(
        "--role", "api", "--no-migrate"
    )
    key = first.key("client")
    on_first = signed_in(first.url, key)
    session = on_first.cookies[COOKIE]
    assert on_first.get("/dashboard/data/tasks").status_code == 200  # now cached there
    on_second = httpx.Client(
        base_url=second.url, headers={"Origin": second.url}, cookies={COOKIE: session}
    )
    page = on_second.get("/dashboard/tasks")  # opened through the first, known here
    assert page.status_code == 200, page.text
    for answer in (page, on_first.get("/dashboard/data/tasks")):
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"
    csrf = CSRF_META.search(page.text)
    assert csrf is not None

    out = on_second.post("/dashboard/logout", headers={TOKEN_HEADER: csrf.group(1)})
    assert out.status_code == 200, out.text
    assert on_second.get("/dashboard/data/tasks").status_code == 401  # here at once
    wait_for(  # there once its one-second memory of the session lapses
        lambda: on_first.get("/dashboard/data/tasks").status_code == 401,
        timeout=3,
        what="the sign-out through the second process to hold on the first",
    )

    # Behind a proxy that terminates TLS: the second believes its X-Forwarded-Proto (it
    # trusts 127.0.0.1), so the browser's https origin is its own and the cookie Secure.
    proxied = {"Host": "apiary.example", "X-Forwarded-Proto": "https"}
    through_proxy = httpx.post(
        f"{second.url}/dashboard/session",
        json={"key": key},
        headers={**proxied, "Origin": "https://apiary.example"},
    )
    assert through_proxy.status_code == 200, through_proxy.text
    assert "Secure" in through_proxy.headers["set-cookie"]
    # The first trusts no proxy: the same claim is ignored, and the origins differ.
    ignored = httpx.post(
        f"{first.url}/dashboard/session",
        json={"key": key},
        headers={**proxied, "Origin": "https://apiary.example"},
    )
    assert ignored.status_code == 403, ignored.text
    assert "APIARY_FORWARDED_ALLOW_IPS" in ignored.json()["detail"]
