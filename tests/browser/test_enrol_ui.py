"""Enrolment in the browser (headless Chromium against a real `medai serve`): an admin adds a
user on the admin page and is shown a one-time code (never a password field); the user, on a
360 px phone in Turkish, is refused a common password with the reason in Turkish, chooses a
good one, and signs in with it; the code then no longer works. Accessibility by axe-core.

Screenshots land in ``MEDAI_SCREENSHOTS`` (default: the test's temporary folder)."""

from __future__ import annotations

import pytest

from helpers.browser import PHONE, _axe, _shot
from helpers.platform import (
    PASSWORD,
    ui_server,
)

pytestmark = pytest.mark.slow
CHOSEN = "kestane-kebap-ilkbahar"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    with ui_server(
        tmp_path_factory.mktemp("enrol-home"),
        {"admin": "admin"},
        MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={tiny_imaging_dir}",
    ) as base:
        yield base


def test_a_new_user_enrols_on_a_phone_in_turkish_and_signs_in(server, browser):
    base = server
    admin_ctx = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    page = admin_ctx.new_page()
    page.goto("/login?lang=tr")
    page.get_by_label("Kullanıcı adı").fill("admin")
    page.get_by_label("Parola").fill(PASSWORD)
    page.get_by_role("button", name="Giriş").click()
    page.wait_for_url("**/admin")
    form = page.locator("#user-form")
    assert form.locator("input[type=password]").count() == 0  # an admin sets no password
    form.get_by_label("Kullanıcı adı").fill("dr.zeynep")
    form.get_by_label("Rol").select_option("radiologist")
    form.get_by_role("button", name="Kullanıcı ekle").click()
    secret = page.locator("#user-secret")
    secret.wait_for(state="visible")
    code = secret.locator(".code").inner_text()
    assert len(code.replace("-", "")) == 12
    page.locator("#users").get_by_text("Kayıt bekleniyor").wait_for()
    _shot(page, "admin-enrol-code.png")
    admin_ctx.close()

    # bypass_csp: only so that axe-core can be injected (the CSP is tested elsewhere)
    ctx = browser.new_context(base_url=base, viewport=PHONE, locale="tr-TR", bypass_csp=True)
    page = ctx.new_page()
    page.goto("/login?lang=tr")
    page.get_by_role("link", name="Kayıt kodunuz mu var? Parolanızı belirleyin").click()
    page.wait_for_url("**/enrol")
    assert page.locator("html").get_attribute("lang") == "tr"
    page.get_by_label("Kayıt kodu").fill(code.lower())
    page.get_by_label("Yeni parola", exact=True).fill("12345678")
    page.get_by_label("Yeni parola (tekrar)").fill("12345678")
    page.get_by_role("button", name="Parolayı kaydet").click()
    error = page.locator("#enrol-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "Bu parola yaygın ya da sızdırılmış parola listelerinde var."
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "enrol-tr-360-refused.png")

    page.get_by_label("Yeni parola", exact=True).fill(CHOSEN)
    page.get_by_label("Yeni parola (tekrar)").fill(CHOSEN + "x")
    page.get_by_role("button", name="Parolayı kaydet").click()
    assert error.inner_text() == "İki parola aynı değil."
    page.get_by_label("Yeni parola (tekrar)").fill(CHOSEN)
    page.get_by_role("button", name="Parolayı kaydet").click()
    done = page.locator("#enrol-done-text")
    done.wait_for(state="visible")
    assert done.inner_text() == (
        "dr.zeynep için parola kaydedildi. Artık bu parolayla giriş yapabilirsiniz."
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert _axe(page) == []
    _shot(page, "enrol-tr-360-done.png")

    page.get_by_role("link", name="Giriş").last.click()
    page.wait_for_url("**/login")
    page.get_by_label("Kullanıcı adı").fill("dr.zeynep")
    page.get_by_label("Parola").fill(CHOSEN)
    page.get_by_role("button", name="Giriş").click()
    page.wait_for_url("**/worklist")
    ctx.close()

    again = browser.new_context(base_url=base, viewport=PHONE)
    page = again.new_page()
    page.goto("/enrol?lang=tr")
    page.get_by_label("Kayıt kodu").fill(code)
    page.get_by_label("Yeni parola", exact=True).fill(CHOSEN + "-2")
    page.get_by_label("Yeni parola (tekrar)").fill(CHOSEN + "-2")
    page.get_by_role("button", name="Parolayı kaydet").click()
    page.locator("#enrol-error").wait_for(state="visible")
    assert "kullanılmış" in page.locator("#enrol-error").inner_text()  # single use
    again.close()
