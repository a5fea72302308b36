"""The two-person rule in the browser (headless Chromium against a real `medai serve`): a
clinician an admin made signs in on a 360 px phone in Turkish and is told their account awaits a
radiologist's approval; a radiologist, on a phone in English, approves them from the worklist;
the clinician then reads studies. Accessibility by axe-core (serious/critical)."""

from __future__ import annotations

import httpx
import pytest

from helpers.browser import PHONE, _axe, _shot, _sign_in
from helpers.platform import PASSWORD, http_login, ui_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with ui_server(
        tmp_path_factory.mktemp("approval-home"),
        {"admin": "admin", "rad1": "radiologist"},
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base


def test_a_radiologist_approves_a_pending_colleague_on_a_phone(server, browser):
    base = server
    admin = http_login(base, "admin")
    made = httpx.post(
        f"{base}/api/v1/users",
        headers=admin,
        timeout=30,
        json={"username": "dr.yeni", "role": "clinician"},
    ).json()
    assert (
        httpx.post(
            f"{base}/api/v1/auth/enrol",
            timeout=30,
            json={"code": made["enrol_code"], "password": PASSWORD},
        ).status_code
        == 200
    )

    # an account whose holder has not enrolled yet is listed, but cannot be approved
    httpx.post(
        f"{base}/api/v1/users",
        headers=admin,
        timeout=30,
        json={"username": "dr.kodlu", "role": "clinician"},
    ).raise_for_status()

    ctx, page = _sign_in(browser, base, "dr.yeni", "tr")
    notice = page.locator("#approval-pending")
    assert "radyoloğun onayını bekliyor" in notice.inner_text()
    assert page.locator("#approvals").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert _axe(page) == []
    _shot(page, "approval-pending-tr-360.png")
    ctx.close()

    ctx, page = _sign_in(browser, base, "rad1", "en")
    section = page.locator("#approvals")
    section.wait_for(state="visible")
    assert page.locator("#approval-pending").count() == 0
    assert section.locator("li").first.inner_text().startswith("dr.yeni · Clinician")
    waiting = section.locator('li[data-username="dr.kodlu"]')
    assert "not yet enrolled" in waiting.inner_text()
    assert waiting.get_by_role("button").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert _axe(page) == []
    _shot(page, "approvals-en-360.png")
    section.get_by_role("button", name="Approve dr.yeni").click()
    page.locator("#approvals-status").get_by_text("dr.yeni approved.").wait_for()
    assert section.locator("li").count() == 1  # dr.kodlu waits for its holder's enrolment
    ctx.close()

    clin = http_login(base, "dr.yeni")
    assert httpx.get(f"{base}/api/v1/studies", headers=clin, timeout=30).status_code == 200
