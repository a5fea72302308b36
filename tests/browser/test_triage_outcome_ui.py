"""Triage labels in the browser (real ``medai serve``, Chromium): the triage screen shows the
record number; a clinician opens that record on the Referral page, sees the complaint and the
AI's suggestion as given, and records the department the patient was sent to — Turkish at
desktop width, English on a phone, no serious accessibility violation."""

from __future__ import annotations

import re

import pytest

from helpers.platform import ui_server

pytestmark = pytest.mark.slow
COMPLAINT = "iki haftadır kulağımda çınlama ve ağrı var"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("outcome-ui")
    with ui_server(
        home,
        {"clin": "clinician"},
        MEDAI_DATABASE_URL="",
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base


def test_a_clinician_records_the_referral_of_a_kiosk_triage(server, browser, shots):
    from helpers.browser import AXE, axe_violations, sign_in

    ctx = browser.new_context(
        base_url=server, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = ctx.new_page()
    page.goto("/triage")
    page.get_by_label("Şikâyetiniz (Türkçe)").fill(COMPLAINT)
    page.get_by_role("button", name=re.compile("Bölüm öner")).click()
    number = page.locator("#triage-record-no")
    number.wait_for()
    record = re.search(r"\d+", number.inner_text()).group(0)
    ctx.clear_cookies()

    sign_in(page, "clin")
    page.goto("/triage-outcome")
    page.get_by_label("Başvuru numarası").fill(record)
    page.get_by_role("button", name="Getir").click()
    page.locator("#outcome-complaint").filter(has_text="çınlama").wait_for()
    assert page.locator("#outcome-ai .triage-outcome").count() == 1
    page.get_by_label("Yönlendirildiği bölüm").select_option("ent")
    page.get_by_label("Acil olarak değerlendirildi").check()
    page.get_by_role("button", name="Kaydet").click()
    page.locator("#outcome-message").filter(has_text="Kaydedildi").wait_for()
    if AXE.is_file():
        page.wait_for_load_state("networkidle")
        assert axe_violations(page) == []
    page.screenshot(path=str(shots / "referral-tr-1280.png"), full_page=True)
    ctx.close()

    phone = browser.new_context(base_url=server, viewport={"width": 360, "height": 740})
    page = phone.new_page()
    sign_in(page, "clin")
    page.goto(f"/triage-outcome?record={record}&lang=en")
    page.locator("#outcome-message").filter(has_text="Recorded").wait_for()
    assert page.locator("#outcome-department").input_value() == "ent"
    assert page.locator("#outcome-urgent").is_checked()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(shots / "referral-en-360.png"), full_page=True)
    phone.close()
