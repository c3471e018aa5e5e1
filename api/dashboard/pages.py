"""The HTML shells of the dashboard's pages (the data is fetched and drawn by the script)."""

from __future__ import annotations

from html import escape

NAV = (
    ("overview", "Overview", ""),
    ("tasks", "Tasks", "/tasks"),
    ("dead-letters", "Dead letters", "/dead-letters"),
    ("bots", "Bots", "/bots"),
    ("incidents", "Incidents", "/incidents"),
    ("schedules", "Schedules", "/schedules"),
    ("messages", "Messages", "/messages"),
    ("profile", "Profile", "/profile"),
    ("config", "Config", "/config"),
)


def page(
    name: str, title: str, *, csrf: str, admin: bool, subject: str = "", refused: str = ""
) -> str:
    """``refused``: why this viewer may not see the page (said instead of its data, which
    the script then does not fetch). ``csrf``: the session's CSRF token, which the script
    sends with every request that changes something (signing out, an action). ``admin``:
    the page shows an admin's actions (the server refuses them to anyone else all the
    same); each asks for confirmation in ``#confirm`` first."""
    links = "".join(
        f'<a href="/dashboard{href}"{" class=on" if name == key else ""}>{label}</a>'
        for key, label, href in NAV
    )
    content = (
        f'<p id="refused" class="bad">{escape(refused)}</p>'
        if refused
        else '<p class="muted">Loading…</p>'
    )
    flag = (" data-refused" if refused else "") + (" data-admin" if admin else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Apiary</title>
<meta name="csrf-token" content="{escape(csrf)}">
<link rel="stylesheet" href="/dashboard/static/dashboard.css">
</head>
<body data-page="{escape(name)}" data-subject="{escape(subject)}"{flag}>
<header><strong>Apiary</strong><nav>{links}</nav>
<span id="mode" class="mode" data-mode="" title="the hive's mode"></span>
<span id="live" class="live off" title="live updates">live</span>
<button id="signout" type="button">sign out</button></header>
<main id="main">{content}</main>
<div id="confirm" hidden><p id="confirm-text"></p>
<label>reason <input id="confirm-reason" maxlength="1000"
 placeholder="why (kept in the log)"></label>
<button id="confirm-yes" type="button">confirm</button>
<button id="confirm-no" type="button">cancel</button>
<p id="confirm-error" class="bad"></p></div>
<script src="/dashboard/static/dashboard.js"></script>
</body></html>"""


def sign_in_page() -> str:
    return """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Apiary</title>
<link rel="stylesheet" href="/dashboard/static/dashboard.css"></head>
<body><main class="narrow"><h1>Apiary</h1>
<form id="signin"><label>API key <input id="key" type="password" autocomplete="off"
 placeholder="apk_…" required></label> <button>Sign in</button>
<p id="error" class="bad"></p></form></main>
<script src="/dashboard/static/signin.js"></script></body></html>"""
