"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a
real `apiary serve`: sign in with a key, watch a task move through its states live, and a
config change (and its rollback) appear on the config page."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.dashboard.session import COOKIE
from tests.e2e.harness import REPO, Hive, outage, start_bot
from tests.waiting import wait_for

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
    page.wait_for_selector("#mode[data-mode='normal'][data-ready='yes']")  # every check holds
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


def test_the_page_shows_the_mode_critical_during_an_outage_without_a_reload(
    hive: Hive, browser: Any
) -> None:
    hive.start()
    page = browser.new_page()
    sign_in(page, hive, hive.key("client"))
    page.wait_for_selector("#mode[data-mode='normal']", timeout=10_000)
    page.evaluate("window.sameDocument = true")
    with outage(hive.db_url):  # the page cannot fetch now: the stream brings the mode
        page.wait_for_selector("#mode[data-mode='critical'][data-ready='no']", timeout=20_000)
        assert "database" in page.inner_text("#mode")
    page.wait_for_selector("#mode[data-mode='normal'][data-ready='yes']", timeout=30_000)
    assert page.evaluate("window.sameDocument") is True


def test_the_dashboard_needs_a_key(hive: Hive) -> None:
    import httpx

    hive.start()
    anonymous = httpx.get(f"{hive.url}/dashboard/data/overview")
    assert anonymous.status_code == 401
    page = httpx.get(f"{hive.url}/dashboard", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/dashboard/login"
    wrong = httpx.post(
        f"{hive.url}/dashboard/session", json={"key": "apk_nope"}, headers={"Origin": hive.url}
    )
    assert wrong.status_code == 401
    bad = httpx.get(f"{hive.url}/dashboard/data/overview", cookies={COOKIE: "x"})
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


def test_the_config_page_shows_a_change_and_its_rollback_live_admins_only(
    make_hive: Callable[..., Hive], browser: Any
) -> None:
    pools = [{"name": "writers", "capabilities": ["writing"], "min_bots": 0, "max_bots": 3}]
    hive = make_hive(APIARY_POOLS=json.dumps(pools)).start()
    admin = hive.key("admin")
    client = hive.client(admin)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, hive, admin)
    # The overview's processes: this one, running everything and leading every loop.
    page.wait_for_selector("#processes tr[data-role='all']", timeout=10_000)
    assert "dispatcher" in page.inner_text("#processes tr[data-role='all']")
    # and what it uses, as its beat said: memory, and its two pools' connections
    rss = page.get_attribute("#processes tr[data-role='all'] td[data-rss]", "data-rss")
    assert rss is not None and int(rss) > 10 * 2**20
    pools = page.inner_text("#processes tr[data-role='all'] td.pools")
    assert "reads" in pools and "log" in pools
    assert page.inner_text("#hive-checks tr[data-check='engine'] td:last-child") == "ok"

    page.click("nav a[href='/dashboard/config']")
    page.wait_for_selector("#knobs tr[data-knob='max_batch']")
    page.wait_for_selector("#live.on", timeout=10_000)
    assert page.inner_text("#knobs tr[data-knob='max_batch'] td:last-child") == "1000"
    assert "writers" in page.inner_text("#pools")
    first = client.get("/v1/config")
    page.evaluate("window.sameDocument = true")

    changed = client.patch(
        "/v1/config",
        json={"changes": {"max_batch": 10}, "reason": "smaller batches for the demo"},
        headers={"If-Match": first.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    new = changed.json()["version"]
    page.wait_for_selector(f"#config-version[data-version='{new}']", timeout=10_000)
    row = f"#history tr[data-version='{new}']"
    assert "max_batch: 1000 -> 10" in page.inner_text(f"{row} li[data-path='max_batch']")
    assert "smaller batches for the demo" in page.inner_text(row)
    assert page.inner_text("#knobs tr[data-knob='max_batch'] td:last-child") == "10"

    back = client.post(
        "/v1/config/rollback",
        json={"version": first.json()["version"], "reason": "the demo is over"},
        headers={"If-Match": changed.headers["ETag"]},
    )
    assert back.status_code == 200, back.text
    restored = f"#history tr[data-version='{new + 1}']"
    page.wait_for_selector(f"{restored} [data-restores='{first.json()['version']}']")
    assert "max_batch: 10 -> 1000" in page.inner_text(restored)
    assert page.evaluate("window.sameDocument") is True  # live, not reloaded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-config.png"), full_page=True)

    # Every process applies the version in force; the overview shows which one each has.
    wait_for(
        lambda: (
            {p["config_version"] for p in client.get("/v1/processes").json()["items"]} == {new + 1}
        ),
        what="the process on the rolled-back version",
    )
    page.goto(f"{hive.url}/dashboard")
    page.wait_for_selector(f"#processes tr[data-role='all'] td[data-config='{new + 1}']")

    # A client key signs in but is refused the config, on the page and its data.
    other = browser.new_context()
    refused = other.new_page()
    sign_in(refused, hive, hive.key("client"))
    refused.goto(f"{hive.url}/dashboard/config")
    assert "Only an admin key" in refused.inner_text("#refused")
    assert refused.query_selector("#knobs") is None
    data = refused.request.get(f"{hive.url}/dashboard/data/config")
    assert data.status == 403
    other.close()


def test_an_incident_is_shown_with_its_evidence_and_acknowledged_by_an_admin(
    hive: Hive, browser: Any
) -> None:
    """Two bots killed with kill -9: the incidents page lists the bots-lost incident; its
    page links each lost bot's event, and an admin acknowledges it after confirming."""
    hive.start()
    admin_key = hive.admin_key()
    admin = hive.client(admin_key)
    current = admin.get("/v1/config")
    changed = admin.patch(
        "/v1/config",
        json={"changes": {"bot_lease_ttl_s": 2.0}, "reason": "quick losses"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    bots = [start_bot(hive, hive.key("bot"), f"doomed-{i}", "--capabilities", "x") for i in (0, 1)]

    def registered() -> bool:
        names = {b["name"] for b in admin.get("/v1/bots").json()["items"]}
        return {"doomed-0", "doomed-1"} <= names

    wait_for(registered, timeout=60, what="two bots registered")
    for bot in bots:
        bot.kill9()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, hive, admin_key)
    page.goto(f"{hive.url}/dashboard/incidents")
    page.wait_for_selector("#incidents tr[data-rule='bots-lost'] a", timeout=30_000)
    page.click("#incidents tr[data-rule='bots-lost'] a")
    page.wait_for_selector("#evidence tr[data-position]")
    assert page.locator("#evidence a[href='/dashboard/bots']").count() >= 2
    page.click("button[data-action='ack']")
    page.fill("#confirm-reason", "the test killed them")
    page.click("#confirm-yes")
    page.wait_for_selector("h1 [data-state='acknowledged']", timeout=10_000)
    assert "the test killed them" in page.inner_text("#note")
    admin.close()


def test_the_profile_page_names_the_bottleneck_with_its_evidence(hive: Hive, browser: Any) -> None:
    """One bot that takes one task at a time and six slow tasks at once: the profile page
    names queue wait for their type as a finding, with its evidence, beside the stages per
    type and bot and the processes' own timings (the dispatcher's rounds among them)."""
    hive.start()
    admin_key = hive.admin_key()
    admin = hive.client(admin_key)
    bot = start_bot(
        hive, hive.key("bot"), "lone", "--capabilities", "slow", "--exec", "sleep 0.3",
        "--max-concurrency", "1",
    )  # fmt: skip
    try:
        wait_for(lambda: admin.get("/v1/bots").json()["items"], timeout=60, what="the bot")
        sent = admin.post("/v1/tasks/batch", json={"tasks": [{"type": "slow", "payload": {}}] * 6})
        assert sent.status_code == 201, sent.text
        ids = [t["task"]["id"] for t in sent.json()["items"]]

        def done() -> bool:
            return all(admin.get(f"/v1/tasks/{t}").json().get("state") == "succeeded" for t in ids)

        wait_for(done, timeout=60, what="the six tasks done")

        def loops_written() -> bool:  # each process writes its minutes every few seconds
            report = admin.get("/v1/profile", params={"window": "5m"}).json()
            return bool(report["process"]["loops"])

        wait_for(loops_written, timeout=30, what="the processes' timings written")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, hive, admin_key)
        page.goto(f"{hive.url}/dashboard/profile?window=5m")
        finding = "#findings li[data-rule='queue_wait']"
        page.wait_for_selector(finding, timeout=30_000)
        assert "type `slow` is queue wait" in page.inner_text(finding)
        page.click(f"{finding} summary")
        assert "pending" in page.inner_text(f"{finding} details")
        assert "slow" in page.inner_text("#types")
        assert "lone" in page.inner_text("#profile-bots")
        assert "dispatcher" in page.inner_text("main")  # the processes' loops
    finally:
        admin.close()
        bot.stop()
