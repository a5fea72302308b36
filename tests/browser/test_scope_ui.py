"""The model's scope on the study page and the model card, in headless Chromium against a real
``medai serve``: beside the findings, what the AI model looks for and what it does not assess
(the one words table), a film unlike its training films flagged plainly above the findings (not
hidden, not an error), a lateral film refused with the reason named — in Turkish and English,
on a 360 px phone and a desktop. Screenshots land in ``MEDAI_SCREENSHOTS``."""

from __future__ import annotations

import json

import pytest

from helpers.browser import DESKTOP, PHONE, _axe
from helpers.paths import SRC
from helpers.platform import PASSWORD, ui_server
from helpers.scope import frontal_film, lateral_film, png, scoped_model

pytestmark = pytest.mark.slow
T = json.loads((SRC / "platform/web/messages.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, tfidf_model_dir, tiny_imaging_dir):
    home = tmp_path_factory.mktemp("scope-ui-home")
    cxr = scoped_model(tiny_imaging_dir, home / "cxr-scoped", flag_all=True)
    users = {"admin": "admin", "rad1": "radiologist"}
    with ui_server(home, users, MEDAI_MODELS=f"triage={tfidf_model_dir},cxr={cxr}") as base:
        yield base


def open_page(browser, base, viewport, user="rad1", lang="tr"):
    ctx = browser.new_context(base_url=base, viewport=viewport, bypass_csp=True)  # for axe
    page = ctx.new_page()
    page.goto(f"/login?lang={lang}")
    page.locator("#username").fill(user)
    page.locator("#password").fill(PASSWORD)
    page.locator("#login-form button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return ctx, page


def upload(page, data: bytes, ref: str) -> dict:
    import time

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "medai_csrf")
    r = page.request.post(
        "/api/v1/studies",
        headers={"X-CSRF-Token": csrf},
        multipart={
            "file": {"name": f"{ref}.png", "mimeType": "image/png", "buffer": data},
            "task": "cxr",
            "patient_ref": ref,
        },
    )
    assert r.status == 201, r.text()
    study = r.json()
    for _ in range(600):
        study = page.request.get(f"/api/v1/studies/{study['id']}").json()
        if study["status"] not in ("received", "analysing"):
            return study
        time.sleep(0.1)
    raise AssertionError(f"study {study['id']} stayed {study['status']}")


def no_overflow(page) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= page.viewport_size["width"]


@pytest.mark.parametrize(
    "lang, viewport", [("tr", PHONE), ("en", PHONE), ("tr", DESKTOP), ("en", DESKTOP)]
)
def test_the_scope_and_an_out_of_scope_flag_stand_beside_the_findings(
    server, browser, shots, lang, viewport
):
    t = T[lang]
    ctx, page = open_page(browser, server, viewport, lang=lang)
    study = upload(page, png(frontal_film(60)), f"P-SCOPE-UI-{lang}-{viewport['width']}")
    assert study["status"] == "ai_drafted"
    page.goto(f"/studies/{study['id']}")
    page.locator("#findings tbody tr").first.wait_for()
    flag = page.locator("#scope-flag")
    assert flag.is_visible() and flag.get_attribute("role") == "status"  # plain, not an alert
    head = t["scope_flag_unlike_training"].split("(")[0].strip()
    assert flag.inner_text().startswith(head)
    # above the findings table, inside the findings card
    assert flag.bounding_box()["y"] < page.locator("#findings").bounding_box()["y"]
    scope = page.locator("#scope")
    assert scope.is_visible()
    assert scope.locator("h3").inner_text().startswith(t["scope_title"])
    detects = page.locator("#scope-detects").inner_text()
    cannot = page.locator("#scope-cannot").inner_text()
    want = {
        "tr": ("Aradığı bulgular: pnömoni ve COVID-19.", "tüberküloz", "pnömotoraks"),
        "en": ("Looks for: pneumonia and COVID-19.", "tuberculosis", "pneumothorax"),
    }[lang]
    assert detects == want[0]
    assert want[1] in cannot and want[2] in cannot and "_" not in cannot
    check = page.locator("#scope-check").inner_text()
    assert t["view_frontal"] in check
    no_overflow(page)
    assert _axe(page) == []
    name = "phone" if viewport is PHONE else "desktop"
    page.screenshot(path=str(shots / f"study-scope-{lang}-{name}.png"), full_page=True)
    ctx.close()


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_a_lateral_png_says_why_the_ai_did_not_read_it(server, browser, shots, lang):
    t = T[lang]
    ctx, page = open_page(browser, server, PHONE, lang=lang)
    study = upload(page, png(lateral_film(61)), f"P-LAT-UI-{lang}")
    assert study["status"] == "refused"
    page.goto(f"/studies/{study['id']}")
    page.locator("#no-ai").wait_for(state="visible")
    reason = page.locator("#no-ai-reason").inner_text()
    assert reason == t["reason_lateral_view"].replace(
        "{task}", {"tr": "Akciğer grafisi", "en": "Chest X-ray"}[lang]
    )
    assert page.locator("#findings").is_hidden()
    no_overflow(page)
    page.screenshot(path=str(shots / f"study-lateral-{lang}-phone.png"), full_page=True)
    ctx.close()


@pytest.mark.parametrize("lang", ["tr", "en"])
def test_the_model_card_shows_the_scope(server, browser, shots, lang):
    t = T[lang]
    ctx, page = open_page(browser, server, DESKTOP, user="admin", lang=lang)
    card = page.locator("#card-cxr")
    card.locator("summary").click()
    card.get_by_text(t["card_scope"]).wait_for()
    text = card.inner_text()
    assert t["card_scope_cannot"] in text
    assert ("tüberküloz" if lang == "tr" else "tuberculosis") in text
    assert ("24 lateral grafinin 24" if lang == "tr" else "24 of 24 lateral films") in text
    card.screenshot(path=str(shots / f"admin-card-scope-{lang}.png"))
    ctx.close()
