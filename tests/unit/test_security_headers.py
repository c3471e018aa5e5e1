"""Security headers on every answer (issue 11, finding 6): the API's data and problems, a
404, a 413 from the body limit, the dashboard's pages and data; ``no-store`` on all but the
dashboard's static files; the docs page's own policy admits its one inline script by
hash. Through ``create_app``; the dashboard under this policy in a real browser is
``tests/e2e/test_dashboard_sessions.py``."""

from __future__ import annotations

import re

import httpx
import pytest

from api.docs_page import INLINE_SCRIPT, script_hash
from tests.unit.test_api_contract import World, assert_problem
from tests.unit.test_dashboard_sessions import sign_in

SAME_EVERYWHERE = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def directives(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    parsed = [d.split() for d in policy.split(";")]
    return {d[0]: d[1:] for d in parsed if d}


def assert_secured(response: httpx.Response, *, stored: bool = False) -> dict[str, list[str]]:
    for name, value in SAME_EVERYWHERE.items():
        assert response.headers.get_list(name) == [value], name
    csp = directives(response)
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'none'"]
    caching = response.headers.get_list("cache-control")
    assert caching == ([] if stored else ["no-store"]), caching
    return csp


def test_an_api_answer_a_problem_and_a_404_carry_them(world: World) -> None:
    data = world.client.get("/v1/tasks", headers=world.auth("client"))
    assert data.status_code == 200
    assert_secured(data)
    assert directives(data)["script-src"] == ["'self'"]

    unauthorized = world.client.get("/v1/tasks")
    assert_problem(unauthorized, 401, "unauthorized")
    assert_secured(unauthorized)
    assert_secured(world.client.get("/no/such/path"))
    assert_secured(world.client.get("/healthz"))


def test_a_refusal_before_any_route_carries_them(world: World) -> None:
    """The body limit answers 413 before the app sees the request."""
    too_big = world.client.post("/v1/tasks", content=b"x" * 100_000, headers=world.auth("client"))
    assert too_big.status_code == 413
    assert_secured(too_big)


def test_the_dashboards_pages_data_and_sign_in_carry_them(world: World) -> None:
    assert_secured(world.client.get("/dashboard/login"))
    refused = world.client.get("/dashboard/data/messages")
    assert refused.status_code == 401
    assert_secured(refused)
    sign_in(world, world.tokens["client"])
    page = world.client.get("/dashboard/tasks")
    assert page.status_code == 200
    assert_secured(page)
    data = world.client.get("/dashboard/data/messages")
    assert data.status_code == 200
    assert_secured(data)


def test_static_files_may_be_cached_and_a_routes_own_cache_control_is_kept(
    world: World,
) -> None:
    script = world.client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200
    assert_secured(script, stored=True)
    # Registering a bot answers its key; the route says no-store itself: said once.
    registered = world.client.post(
        "/v1/bots",
        json={"name": "b1", "capabilities": ["code"], "max_concurrency": 1, "version": "1"},
        headers=world.auth("enrol"),
    )
    assert registered.status_code == 201, registered.text
    assert_secured(registered)


def test_the_docs_page_admits_its_own_inline_script_by_hash_and_nothing_else_inline(
    world: World,
) -> None:
    docs = world.client.get("/docs")
    assert docs.status_code == 200
    csp = assert_secured(docs)
    inline = INLINE_SCRIPT.findall(docs.text)
    assert len(inline) == 1 and "SwaggerUIBundle" in inline[0]
    assert script_hash(inline[0]) in csp["script-src"]
    assert "'unsafe-inline'" in csp["style-src"]  # Swagger UI styles inline: this page only
    for src in re.findall(r'(?:src|href)="(https://[^"/]+)', docs.text):
        assert src in csp["script-src"] + csp["style-src"] + csp["img-src"], src
    assert world.client.get("/docs/oauth2-redirect").status_code == 404  # not served


@pytest.mark.parametrize("path", ["/openapi.json", "/metrics"])
def test_documents_carry_them_too(world: World, path: str) -> None:
    assert_secured(world.client.get(path, headers=world.auth("admin")))
