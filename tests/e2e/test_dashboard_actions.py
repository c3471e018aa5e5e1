"""Dead letters and operators' actions in a real headless Chromium against a real
`apiary serve` and a real `apiary bot --exec` whose task fails: the dead-lettered task
shows on the dead letters page with its reason, its page shows its attempts, an admin
retries it from there (after a confirmation) and it runs again as a new series; a client
sees no action and a forged POST without the page's token is refused; the pages run under
their Content Security Policy with no violation."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Hive, start_bot, task
from tests.e2e.test_dashboard import ARTIFACTS, browser, sign_in  # noqa: F401  (fixture)
from tests.e2e.test_dashboard_sessions import csp_reports
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

# Two attempts, a short backoff: a task whose every attempt fails is dead in a second.
RETRY = {"default": {"max_attempts": 2, "initial_backoff_s": 0.2, "max_backoff_s": 0.2}}


# A command that fails every attempt, retryably (exit 75, EX_TEMPFAIL: kind "temporary").
FAILING = shlex.join([sys.executable, "-c", "import sys; sys.exit(75)"])


def retrying_twice(client: httpx.Client) -> None:
    current = client.get("/v1/config")
    changed = client.patch(
        "/v1/config",
        json={"changes": {"retry": RETRY}, "reason": "two attempts for the demo"},
        headers={"If-Match": current.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text


def dead(client: httpx.Client, task_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (t := task(client, task_id))["state"] == "dead" and t,
        timeout=60,
        what=f"task {task_id} dead-lettered",
    )


def test_a_dead_letter_is_shown_and_an_admin_retries_it_from_its_page(
    hive: Hive,
    browser: Any,  # noqa: F811
) -> None:
    hive.start()
    admin_key = hive.key("admin")
    admin = hive.client(admin_key)
    retrying_twice(admin)
    bot = start_bot(hive, hive.key("bot"), "failing", "--capabilities", "words", "--exec", FAILING)
    try:
        body = {"type": "reverse", "capabilities": ["words"], "payload": {"no": "text"}}
        created = admin.post("/v1/tasks", json=body)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        dead(admin, task_id)

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        blocked = csp_reports(page)
        sign_in(page, hive, admin_key)
        page.goto(f"{hive.url}/dashboard/dead-letters?type=reverse")
        row = f"#dead-tasks tr[data-task='{task_id}']"
        page.wait_for_selector(row, timeout=10_000)
        assert page.inner_text(f"{row} .reason") == "attempts exhausted: 2 of 2"
        assert "UTC" in page.inner_text(row)  # a full date and time
        page.screenshot(path=str(ARTIFACTS / "dashboard-dead-letters.png"), full_page=True)

        page.click(f"{row} a")
        page.wait_for_selector("#attempts tr[data-outcome='failed'][data-attempt='2']")
        outcomes = page.eval_on_selector_all(
            "#attempts tr[data-attempt]", "rs => rs.map(r => r.dataset.outcome)"
        )
        assert outcomes == ["failed", "failed"]
        assert "attempts exhausted" in page.inner_text("#dead-reason")
        assert '"no": "text"' in page.inner_text("#payload pre")  # pretty JSON, as a block
        assert "exited with status 75" in page.inner_text("#error pre")
        assert page.query_selector("#why tr.chosen") is not None  # why this bot: a table

        page.click("#actions button[data-action='retry']")  # asks first: nothing sent yet
        page.wait_for_selector("#confirm:not([hidden])")
        assert task(admin, task_id)["state"] == "dead"
        page.fill("#confirm-reason", "one more try")
        page.click("#confirm-yes")
        # A new series of attempts: the bot fails it twice again.
        page.wait_for_selector("#attempts tr[data-series='2'][data-attempt='2']", timeout=30_000)
        redriven = page.inner_text("#timeline tr[data-kind='Redriven']")
        actor = page.inner_text("#timeline tr[data-kind='Redriven'] td:nth-child(4)")
        assert actor == "admin" and "one more try" in redriven  # the admin's key, in the log
        page.screenshot(path=str(ARTIFACTS / "dashboard-attempts.png"), full_page=True)

        page.goto(f"{hive.url}/dashboard/tasks")
        page.wait_for_selector(f"#tasks tr[data-task='{task_id}'] [data-state='dead']")
        assert "exited with status 75" in page.inner_text(f"#tasks tr[data-task='{task_id}'] .err")
        assert blocked == []
    finally:
        assert bot.stop() == 0


def test_a_client_sees_no_action_and_a_forged_post_is_refused(
    hive: Hive,
    browser: Any,  # noqa: F811
) -> None:
    hive.start()
    admin = hive.client(hive.key("admin"))
    created = admin.post("/v1/tasks", json={"type": "reverse", "payload": {}})
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    cancelled = admin.post(f"/v1/tasks/{task_id}/cancel", json={"reason": "for the test"})
    assert cancelled.status_code == 200, cancelled.text

    context = browser.new_context()
    page = context.new_page()
    blocked = csp_reports(page)
    sign_in(page, hive, hive.key("client"))
    page.goto(f"{hive.url}/dashboard/tasks/{task_id}")
    page.wait_for_selector("h1 [data-state='cancelled']", timeout=10_000)
    assert page.query_selector("button[data-action]") is None
    page.goto(f"{hive.url}/dashboard/dead-letters")
    page.wait_for_selector("#dead-tasks")
    assert page.query_selector("button[data-action]") is None

    # The client's own session, with its page's token: still refused (403).
    token = page.get_attribute("meta[name='csrf-token']", "content")
    retry = f"{hive.url}/dashboard/actions/tasks/{task_id}/retry"
    same_site = {"Origin": hive.url, "Content-Type": "application/json"}
    as_client = context.request.post(retry, data="{}", headers={**same_site, "X-CSRF-Token": token})
    assert as_client.status == 403
    assert "Only an admin key" in as_client.json()["detail"]
    context.close()

    # An admin's session, but a forged request: no CSRF token (another site's form).
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, hive, hive.key("admin"))
    forged = context.request.post(retry, data="{}", headers=same_site)
    assert forged.status == 403
    assert task(admin, task_id)["state"] == "cancelled"
    context.close()
    assert blocked == []
