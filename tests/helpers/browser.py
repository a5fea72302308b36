"""Shared by the tests of several files (moved from browser/test_web_ui.py, browser/test_enrol_ui.py, browser/test_approval_ui.py)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from helpers.paths import AXE
from helpers.platform import (
    PASSWORD,
)

DESKTOP = {"width": 1280, "height": 900}


class Watch:
    """Every host the page asked for."""

    def __init__(self, page) -> None:
        self.hosts: set[str] = set()
        page.on("request", lambda r: self.hosts.add(urlparse(r.url).netloc))


def new_page(browser, base, viewport=DESKTOP, bypass_csp=False):
    ctx = browser.new_context(
        base_url=base, viewport=viewport, accept_downloads=True, bypass_csp=bypass_csp
    )
    page = ctx.new_page()
    return ctx, page, Watch(page)


def sign_in(page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Kullanıcı adı").fill(username)
    page.get_by_label("Parola").fill(PASSWORD)
    page.get_by_role("button", name="Giriş").click()
    page.wait_for_url(lambda url: "/login" not in url)


def login_page(
    browser, base, viewport=DESKTOP, lang="tr", user="rad1", bypass_csp=False, **options
):
    """A new browser context signed in as ``user`` through the login form, the UI in ``lang``
    (``bypass_csp`` only so that axe-core can be injected; the CSP is tested elsewhere);
    ``options``: more of Playwright's context options (``service_workers="block"`` for a test
    that routes the page's own files: the app's service worker would fetch them instead)."""
    ctx = browser.new_context(base_url=base, viewport=viewport, bypass_csp=bypass_csp, **options)
    page = ctx.new_page()
    page.goto(f"/login?lang={lang}")
    page.locator("#username").fill(user)
    page.locator("#password").fill(PASSWORD)
    page.locator("#login-form button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return ctx, page


def csrf(page) -> dict[str, str]:
    """The CSRF header a signed-in page's own API calls carry (its ``medai_csrf`` cookie)."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "medai_csrf")
    return {"X-CSRF-Token": token}


def axe_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": len(v["nodes"])}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


PHONE = {"width": 360, "height": 740}


def _shot(page, name: str) -> Path:
    out = Path(os.environ.get("MEDAI_SCREENSHOTS") or "/tmp")
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _axe(page) -> list[dict]:
    if not AXE.exists():
        return []
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _sign_in(browser, base: str, name: str, lang: str):
    ctx = browser.new_context(base_url=base, viewport=PHONE, bypass_csp=True)
    page = ctx.new_page()
    page.goto(f"/login?lang={lang}")
    page.locator("#username").fill(name)
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/worklist")
    return ctx, page


def answer_undecided(page, present: bool | None = None) -> list[str]:
    """Answer the sign dialog's Var / Yok question for each label the AI left undecided (the
    dialog is open): ``present`` for each, or by default the first present and the others
    absent, as ``helpers.platform.decided`` does. Returns the labels answered, in order."""
    page.locator("#sign-dialog").wait_for(state="visible")
    questions = page.locator("#sign-undecided fieldset")
    answered = []
    for i in range(questions.count()):
        q = questions.nth(i)
        value = (i == 0) if present is None else present
        q.locator(f"input[value='{str(value).lower()}']").check()
        answered.append(q.get_attribute("data-label"))
    return answered
