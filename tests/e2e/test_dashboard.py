"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a
real `apiary serve`: sign in with a key, watch a task move through its states live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, Hive, outage, start_bot

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium); CI installs it",
        allow_module_level=True,
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


def sign_in(page: Any, hive: Hive, key: str) -> None:
    page.goto(f"{hive.url}/dashboard")
    assert page.url.endswith("/dashboard/login")  # no key yet: sent to sign in
    page.fill("#key", key)
    page.click("button")
    page.wait_for_url(f"{hive.url}/dashboard")


def test_a_task_is_seen_moving_through_its_states_without_a_reload(
    hive: Hive, browser: Any
) -> None:
    hive.start()
    admin = hive.key("admin")
    client = hive.client(admin)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, hive, admin)
    page.wait_for_selector("svg[aria-label='Tasks by state']")
    page.wait_for_selector("#mode[data-mode='normal']")  # every check holds
    assert page.inner_text("#mode-card .mode") == "normal"

    created = client.post(
        "/v1/tasks",
        json={"type": "writing", "payload": {"text": "watch me go.", "style": "upper"}},
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    page.goto(f"{hive.url}/dashboard/tasks/{task_id}")
    page.wait_for_selector("h1 [data-state='pending']", timeout=10_000)
    page.wait_for_selector("#live.on", timeout=10_000)
    # Record every state the heading shows from now on, and mark this document: a reload
    # would lose both.
    page.evaluate(
        """() => {
          window.seen = [document.querySelector('h1 [data-state]').dataset.state];
          new MutationObserver(() => {
            const s = document.querySelector('h1 [data-state]');
            if (s && window.seen.at(-1) !== s.dataset.state) window.seen.push(s.dataset.state);
          }).observe(document.getElementById('main'), {childList: true, subtree: true});
        }"""
    )
    bot = start_bot(hive, hive.key("bot"), "writer", "--capabilities", "writing")
    try:
        page.wait_for_selector("h1 [data-state='succeeded']", timeout=20_000)
        bots = browser.new_page()
        bots.context.add_cookies(page.context.cookies())
        bots.goto(f"{hive.url}/dashboard/bots")
        # The bot's learned success rate (one success: 100%) and no task held any more.
        bots.wait_for_selector("#bots td[data-success='1']", timeout=10_000)
    finally:
        assert bot.stop() == 0
    seen = page.evaluate("window.seen")
    assert seen[0] == "pending" and seen[-1] == "succeeded", seen  # the same document: no reload
    kinds = page.eval_on_selector_all(
        "#timeline tr[data-kind]", "rs => rs.map(r => r.dataset.kind)"
    )
    # No bot could do it at first (Unroutable), then one came.
    assert kinds == ["Submitted", "Unroutable", "Assigned", "Started", "Succeeded"], kinds
    hashes = page.eval_on_selector_all("#timeline td[title]", "cs => cs.map(c => c.title)")
    assert all(len(h) == 64 for h in hashes), hashes  # each event's chain hash, in full
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-task.png"), full_page=True)
    page.goto(f"{hive.url}/dashboard")
    page.wait_for_selector("svg[aria-label='Tasks by state']")
    page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)


def test_the_page_shows_the_mode_degraded_during_an_outage_without_a_reload(
    hive: Hive, browser: Any
) -> None:
    hive.start()
    page = browser.new_page()
    sign_in(page, hive, hive.key("client"))
    page.wait_for_selector("#mode[data-mode='normal']", timeout=10_000)
    page.evaluate("window.sameDocument = true")
    with outage(hive.db_url):  # the page cannot fetch now: the stream brings the mode
        page.wait_for_selector("#mode[data-mode='degraded']", timeout=20_000)
        assert "database" in page.inner_text("#mode")
    page.wait_for_selector("#mode[data-mode='normal']", timeout=30_000)
    assert page.evaluate("window.sameDocument") is True


def test_the_dashboard_needs_a_key(hive: Hive) -> None:
    import httpx

    hive.start()
    anonymous = httpx.get(f"{hive.url}/dashboard/data/overview")
    assert anonymous.status_code == 401
    page = httpx.get(f"{hive.url}/dashboard", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/login"
    wrong = httpx.post(f"{hive.url}/dashboard/session", json={"key": "apk_nope"})
    assert wrong.status_code == 401
    bad = httpx.get(f"{hive.url}/dashboard/data/overview", cookies={"apiary_dashboard_key": "x"})
    assert bad.status_code == 401


def test_schedules_and_dead_letters_appear_live(hive: Hive, browser: Any) -> None:
    hive.start()
    admin = hive.key("admin")
    client = hive.client(admin)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, hive, admin)

    page.goto(f"{hive.url}/dashboard/schedules")
    page.wait_for_selector("#schedules")
    body = {"name": "tick", "every_s": 1, "overlap": "allow_all", "template": {"type": "noop"}}
    created = client.post("/v1/schedules", json=body)
    assert created.status_code == 201, created.text
    row = f"tr[data-schedule='{created.json()['id']}']"
    page.wait_for_selector(f"{row} td[data-fired='2']", timeout=15_000)  # it fired, twice
    assert "pending" in page.inner_text(row)  # its runs, waiting for a bot

    page.click("nav a[href='/dashboard/messages']")
    page.wait_for_selector("svg[aria-label='Messages by state']")
    sent = client.post("/v1/messages", json={"to_capability": "nobody", "body": {}, "ttl_s": 1})
    assert sent.status_code == 201, sent.text
    page.wait_for_selector("#dead-letters td:has-text('undeliverable')", timeout=15_000)
    assert sent.json()["items"][0]["id"][:8] in page.inner_text("#dead-letters")
    page.screenshot(path=str(ARTIFACTS / "dashboard-messages.png"), full_page=True)
